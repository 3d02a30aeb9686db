"""OpenAI Agents SDK traces recorded as agents-core runs (the ``openai-agents`` extra).

Usage::

    from agents import add_trace_processor
    from agents_core.integrations.openai_agents import AgentsCoreTracingProcessor

    add_trace_processor(AgentsCoreTracingProcessor.from_uri("mongodb://localhost:27017/app"))

Each trace the SDK ends becomes one run (``Runner.run``, ``run_sync`` and ``run_streamed``
each make one trace): generation and response spans its model calls, function spans (MCP
tools' too) its tool calls, handoff, guardrail, agent, custom and other spans its steps, all in
the order the SDK started them. A run that keeps its items in an ``AgentsCoreSession`` is
recorded in that session; ``RunConfig(group_id=...)`` names the conversation otherwise (a
trace with the ``session_id`` of an ``AgentsCoreSession`` as its group is recorded in that
session; add ``trace_metadata={"user_id": ...}`` when the session has a ``user_id``).

Design notes:

- **Nothing waits for the database.** The SDK calls processors synchronously, from the agent's
  thread and loop. The spans of a trace are kept in memory until the trace ends, then turned
  into one ``FrameworkRun`` and handed to a ``RunWriter`` (``agents_core.integrations.
  recording``): a bounded queue written in batches by a thread of its own. Nothing here raises
  into the SDK; what cannot be recorded is counted and logged once.
- **Order is the SDK's start order.** Every span is numbered in ``on_span_start`` (two spans
  often share a timestamp: the SDK's own test processor does the same), and the run's calls
  are in that order, never sorted by time.
- **Usage where the SDK puts it.** A generation or response span carries its call's usage
  when the model reports it (Chat Completions, Responses). ``agents.testing.ScriptedModel`` and
  other models that do not leave it on the span: the turn's usage (its ``custom`` ``turn``
  span) goes to the turn's model call when it is the turn's only one (a turn whose call was
  retried has a span with usage: the turn's is that usage, never counted again).
- **A trace ends when its last span does.** The SDK may end a trace while a span of it is
  still open (a tool that keeps running after a parallel guardrail's tripwire ended the run):
  its run is written when the last such span ends, or at the next ``force_flush`` or
  ``shutdown`` (then without the spans still open, counted in ``dropped_spans``).
- **Bounded.** At most ``MAX_OPEN_TRACES`` traces are followed at once (a trace that never ends
  is dropped when the bound is reached, counted) and ``MAX_SPANS_PER_TRACE`` spans of one trace
  are kept (the rest are counted, the run is recorded without them).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agents_core.db import (
    Connection,
    FinishedToolCall,
    ModelCall,
    ModelCallStatus,
    Price,
    RunStatus,
    RunStep,
    Settings,
    StepStatus,
    ToolCallStatus,
)
from agents_core.db.documents import utcnow
from agents_core.db.limits import MAX_NAME_LENGTH
from agents_core.integrations.openai_agents.session import (
    NAMESPACE,
    SessionLink,
    follow_trace_links,
    session_of_trace,
)
from agents_core.integrations.recording import (
    AgentRef,
    FrameworkRun,
    RunWriter,
    SessionRef,
    WriterStats,
    price_of,
    token_count,
)

try:
    from agents.tracing import Span, Trace, TracingProcessor
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "agents_core.integrations.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'agents-core[openai-agents]'"
    ) from exc

__all__ = [
    "MAX_OPEN_TRACES",
    "MAX_SPANS_PER_TRACE",
    "SOURCE",
    "TRACE_NAMESPACE",
    "AgentsCoreTracingProcessor",
]

#: The ``source`` of the runs recorded here (their ``external_id`` is the SDK's trace id).
SOURCE = "openai-agents"
#: The external-id namespace of the session a trace without a group gets (its trace id).
TRACE_NAMESPACE = "openai-agents-trace"
#: Traces followed at once: beyond it, the trace that started first is given up (counted).
MAX_OPEN_TRACES = 10_000
#: Spans kept of one trace (the layer keeps at most 1,000 model calls, tool calls and steps
#: each).
MAX_SPANS_PER_TRACE = 4_000
#: The model name recorded when a span does not say it (``agents.testing.ScriptedModel``, or
#: a response span without its response).
UNKNOWN_MODEL = "unknown"
#: The workflow name of a resumed run whose trace this processor did not see start.
_RESUMED = "resumed run"
#: Longest error text kept of a span, in characters (what the SDK puts there is short).
_ERROR_CHARS = 4_096
#: Longest JSON of a step's data kept whole, in characters (beyond: cut, marked ``truncated``).
_DATA_CHARS = 8_192
#: Deepest nesting of a step's data kept as it is (the layer refuses more than 90 levels).
_DATA_DEPTH = 64

_MODEL_SPANS = frozenset({"generation", "response"})
#: ``_model_call``: the model's name is the span's.
_FROM_SPAN: Any = object()
#: Spans that frame the run: an error on one of them is the run's (but within a tool: an agent
#: used as a tool that failed is its tool call's error).
_RUN_SPANS = frozenset({"task", "agent", "turn"})


@dataclass(frozen=True, slots=True)
class _TraceInfo:
    """What a trace says of itself when it starts."""

    name: str
    group_id: str | None
    metadata: dict[str, Any] | None


@dataclass(slots=True)
class _OpenTrace:
    """A part of a trace being followed: the trace from its start to its end, or a resumed
    run's spans in a trace that had ended (``continuation``)."""

    trace_id: str
    info: _TraceInfo
    started_at: datetime
    continuation: bool = False
    #: The SDK's start order of each span, by span id.
    order: dict[str, int] = field(default_factory=dict)
    #: Spans that ended, with their start order.
    ended: list[tuple[int, Span[Any]]] = field(default_factory=list)
    #: Spans numbered and not yet ended. A continuation ends when none is left; so does a
    #: trace that ended while some were still open (``draining``).
    active: int = 0
    #: The SDK ended the trace while some of its spans were still open (a tool still running
    #: when a guardrail's tripwire ended the run): recorded when the last of them ends.
    draining: bool = False


class AgentsCoreTracingProcessor(TracingProcessor):
    """A ``TracingProcessor`` of the OpenAI Agents SDK (0.24) that records each trace as a run.

    ``AgentsCoreTracingProcessor()`` writes through the layer's connection (``init_db``'s, found
    when it first writes), ``AgentsCoreTracingProcessor(connection)`` through that
    connection's database, ``from_uri(uri)`` through a connection of its own: in each case a
    connection of the writer's own thread (see ``RunWriter``). ``prices``: the price of each
    model by name, from which each model call's cost is computed (a dated snapshot's name
    without a price of its own, ``gpt-4.1-2025-04-14``, takes its model's: ``gpt-4.1``).
    ``writer_options`` go to ``RunWriter`` (``max_queue_size``, ``max_batch_size``,
    ``schedule_delay``, …).
    """

    def __init__(
        self,
        connection: Connection | None = None,
        *,
        prices: Mapping[str, Price] | None = None,
        **writer_options: Any,
    ) -> None:
        self._init(RunWriter(connection, **writer_options), prices)

    @classmethod
    def from_uri(
        cls,
        uri: str,
        *,
        database: str | None = None,
        settings: Settings | None = None,
        prices: Mapping[str, Price] | None = None,
        **writer_options: Any,
    ) -> AgentsCoreTracingProcessor:
        """A processor with a connection of its own (``RunWriter.from_uri``): the URI is
        checked now, the connection opened by the first write; it creates the layer's indexes,
        so the database needs no ``init_db``."""
        processor = cls.__new__(cls)
        writer = RunWriter.from_uri(uri, database=database, settings=settings, **writer_options)
        processor._init(writer, prices)
        return processor

    def _init(self, writer: RunWriter, prices: Mapping[str, Price] | None) -> None:
        self._writer = writer
        self._prices: dict[str, Price] = dict(prices or {})
        for name, price in self._prices.items():
            if not isinstance(price, Price):
                raise TypeError(f"prices[{name!r}] must be a Price, not {type(price).__name__}")
        self._lock = threading.Lock()
        self._traces: dict[str, _OpenTrace] = {}
        #: Traces that ended, for a resumed run that continues one (the oldest forgotten first).
        self._ended: dict[str, _TraceInfo] = {}
        self._dropped_spans = 0
        follow_trace_links()  # a run's AgentsCoreSession names its conversation

    @property
    def writer(self) -> RunWriter:
        """The writer the runs go to (``writer.stats()``: what was written, dropped, failed)."""
        return self._writer

    def stats(self) -> WriterStats:
        """``writer.stats()``: runs submitted, written, dropped and failed so far."""
        return self._writer.stats()

    @property
    def dropped_spans(self) -> int:
        """Spans not recorded: ended outside a trace being followed (it started before this
        processor, or had ended), or beyond ``MAX_SPANS_PER_TRACE``."""
        return self._dropped_spans

    # -----------------------------------------------------------------------------------------
    # The SDK's TracingProcessor protocol: called from the agent's thread, never raises

    def on_trace_start(self, trace: Trace) -> None:
        try:
            info = _TraceInfo(
                name=trace.name,
                group_id=getattr(trace, "group_id", None),
                metadata=getattr(trace, "metadata", None),
            )
            self._open(_OpenTrace(trace.trace_id, info, utcnow()))
        except Exception as exc:
            self._writer.count_dropped(1, f"trace not followed ({type(exc).__name__}: {exc})")

    def on_span_start(self, span: Span[Any]) -> None:
        try:
            with self._lock:
                opened = self._traces.get(span.trace_id)
            if opened is None:
                # A run resumed after an interruption continues its trace without starting it
                # again (or the trace started before this processor): follow its spans as a
                # part of the trace's run, until every one of them has ended.
                info = self._ended.get(span.trace_id) or _TraceInfo(_RESUMED, None, None)
                opened = self._open(
                    _OpenTrace(span.trace_id, info, utcnow(), continuation=True), replace=False
                )
            with self._lock:
                if len(opened.order) < MAX_SPANS_PER_TRACE and span.span_id not in opened.order:
                    opened.order[span.span_id] = len(opened.order)
                    opened.active += 1
        except Exception as exc:
            self._writer.count_dropped(0, f"span not numbered ({type(exc).__name__}: {exc})")

    def on_span_end(self, span: Span[Any]) -> None:
        try:
            finished = None
            with self._lock:
                opened = self._traces.get(span.trace_id)
                number = None if opened is None else opened.order.get(span.span_id)
                if number is None:
                    self._dropped_spans += 1
                else:
                    assert opened is not None
                    opened.ended.append((number, span))
                    opened.active -= 1
                    if opened.active == 0 and (opened.continuation or opened.draining):
                        finished = self._traces.pop(span.trace_id)
            if number is None:
                # A span that ended after its trace's run was written (the trace was flushed,
                # or given up, while the span was open), or one too many: the run is written
                # without it.
                self._writer.count_dropped(
                    0, "span(s) not recorded (see AgentsCoreTracingProcessor.dropped_spans)"
                )
            if finished is not None:
                self._finish(finished)
        except Exception as exc:
            self._writer.count_dropped(0, f"span not recorded ({type(exc).__name__}: {exc})")

    def on_trace_end(self, trace: Trace) -> None:
        try:
            link = session_of_trace(trace.trace_id)
            with self._lock:
                opened = self._traces.get(trace.trace_id)
                if opened is not None:
                    if link is not None:
                        opened.info = _linked(opened.info, link)
                    ended = self._ended
                    if len(ended) >= MAX_OPEN_TRACES and trace.trace_id not in ended:
                        del ended[next(iter(ended))]
                    ended[trace.trace_id] = opened.info
                    if opened.active:
                        # Spans still open: the run is recorded when the last one ends (or at
                        # the next flush), so a tool that outlives its trace is in it.
                        opened.draining = True
                        opened = None
                    else:
                        del self._traces[trace.trace_id]
        except Exception as exc:
            self._writer.count_dropped(1, f"trace not recorded ({type(exc).__name__}: {exc})")
            return
        if opened is not None:
            self._finish(opened)

    def _open(self, opened: _OpenTrace, *, replace: bool = True) -> _OpenTrace:
        """Follow ``opened`` (the one followed already, if not ``replace``), within the bound."""
        with self._lock:
            current = self._traces.get(opened.trace_id)
            if current is not None and not replace:
                return current
            given_up = None
            if len(self._traces) >= MAX_OPEN_TRACES and current is None:
                given_up = self._traces.pop(next(iter(self._traces)))
            self._traces[opened.trace_id] = opened
        if given_up is not None and given_up.draining:
            self._finish(given_up)  # it ended: recorded without the spans still open
        elif given_up is not None:
            self._writer.count_dropped(
                1, f"more than {MAX_OPEN_TRACES} traces open: one that never ended given up"
            )
        return opened

    def _finish_draining(self) -> None:
        """Record the traces that ended with spans still open, without those spans (each
        one counted in ``dropped_spans`` when it ends)."""
        with self._lock:
            draining = [opened for opened in self._traces.values() if opened.draining]
            for opened in draining:
                del self._traces[opened.trace_id]
        for opened in draining:
            self._finish(opened)

    def _finish(self, opened: _OpenTrace) -> None:
        try:
            run = _run_of(opened, utcnow(), self._prices)
        except Exception as exc:
            self._writer.count_dropped(
                1, f"trace not turned into a run ({type(exc).__name__}: {exc})"
            )
            return
        self._writer.submit(run)

    def force_flush(self, timeout: float | None = None) -> None:
        """Wait until every run of a trace ended so far is written or given up (at most
        ``timeout`` seconds; ``None``: as long as it takes). A trace that ended with spans
        still open is recorded now, without them."""
        self._finish_draining()
        self._writer.force_flush(timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        """Write what is queued (at most ``timeout`` seconds), close the writer's connection.
        Traces still open are not recorded (counted); one that ended with spans still open
        is, without them."""
        self._finish_draining()
        with self._lock:
            open_traces, self._traces = len(self._traces), {}
        if open_traces:
            self._writer.count_dropped(open_traces, "traces still open at shutdown")
        self._writer.shutdown(timeout)


def _linked(info: _TraceInfo, link: SessionLink) -> _TraceInfo:
    """``info`` of a trace whose run stored items in ``link``'s ``AgentsCoreSession``: without a
    group, the session's id is its group; with that group (or none) and no ``user_id`` in its
    metadata, the session's user is its user. A group naming another conversation wins."""
    if info.group_id is not None and info.group_id != link.session_id:
        return info
    metadata = dict(info.metadata or {})
    given = metadata.get("user_id")
    if link.user_id is not None and not (isinstance(given, str) and given.strip()):
        metadata["user_id"] = link.user_id
    return _TraceInfo(info.name, link.session_id, metadata)


# ---------------------------------------------------------------------------------------------
# A trace as a run


def _run_of(trace: _OpenTrace, ended_at: datetime, prices: Mapping[str, Price]) -> FrameworkRun:
    spans = [span for _, span in sorted(trace.ended, key=lambda entry: entry[0])]
    by_id = {span.span_id: span for span in spans}
    turn_usage, silent_turns = _turn_usage(spans, by_id)
    calls: list[ModelCall | FinishedToolCall | RunStep] = []
    agents: dict[str, AgentRef] = {}
    error: str | None = None
    for span in spans:
        data = span.span_data
        kind = data.type
        framing = kind in _RUN_SPANS or span.parent_id is None
        if (
            framing
            and error is None
            and span.error is not None
            # A run within a tool (an agent used as a tool) failed: its tool call did, and the
            # outer run went on (a failure it did not handle is on its own spans too).
            and _enclosing(span, by_id, "function") is None
        ):
            error = _error_text(span.error)
        if kind == "turn" and span.span_id in silent_turns:
            # A model that left no span of its call (a custom Model, ScriptedModel without
            # emit_traces): the turn's usage says it was called, here.
            usage = getattr(data, "usage", None) or {}
            calls.append(_model_call(span, usage, _timing(span)[0], 0.0, prices, model=None))
        if kind in ("task", "turn"):
            continue  # the run itself, and its turns: their usage is the model calls'
        started, duration = _timing(span)
        if kind in _MODEL_SPANS:
            usage = _span_usage(span) or turn_usage.get(span.span_id) or {}
            calls.append(_model_call(span, usage, started, duration, prices))
        elif kind == "function":
            calls.append(_tool_call(span, started, duration))
        else:
            if kind == "agent":
                name = _name(data.name)
                tools = tuple(_name(tool) for tool in (data.tools or []))
                agents.setdefault(name, AgentRef(name, tools))
            calls.append(_step(span, kind, started, duration))
    info = trace.info
    user_id = (info.metadata or {}).get("user_id")
    user = _name(user_id) if isinstance(user_id, str) and user_id.strip() else None
    title = _name(info.name)
    if info.group_id:
        session = SessionRef(
            external_id=info.group_id, namespace=NAMESPACE, user_id=user, title=title
        )
    else:
        session = SessionRef(
            external_id=trace.trace_id, namespace=TRACE_NAMESPACE, user_id=user, title=title
        )
    return FrameworkRun(
        source=SOURCE,
        external_id=trace.trace_id,
        # The part: its first span (unique in the trace), so a resumed run's spans are
        # appended to the run and a retried part is not.
        part=spans[0].span_id if spans else trace.trace_id,
        session=session,
        agents=tuple(agents.values()) or (AgentRef(title),),
        started_at=trace.started_at,
        completed_at=ended_at,
        status=RunStatus.failed if error is not None else RunStatus.completed,
        error=error,
        calls=calls,
    )


def _turn_usage(
    spans: list[Span[Any]], by_id: Mapping[str, Span[Any]]
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Where each turn span's usage goes: to the model call span of the turn when it is the
    turn's only one and has no usage of its own (``ScriptedModel`` puts it only on the turn),
    by that span's id; and the turns with tokens but no model call span at all (the model left
    none: a call is recorded for the turn itself). A turn with a model span that carries usage
    (a call retried after a failed one) gives its usage to none: it is theirs already."""
    model_spans: dict[str, list[Span[Any]]] = {}
    for span in spans:
        if span.span_data.type in _MODEL_SPANS:
            turn = _enclosing(span, by_id, "turn")
            if turn is not None:
                model_spans.setdefault(turn.span_id, []).append(span)
    given: dict[str, dict[str, Any]] = {}
    for turn_id, in_turn in model_spans.items():
        usage = getattr(by_id[turn_id].span_data, "usage", None)
        if len(in_turn) == 1 and _span_usage(in_turn[0]) is None and isinstance(usage, dict):
            given[in_turn[0].span_id] = usage
    with_model = set(model_spans)
    silent = {
        span.span_id
        for span in spans
        if span.span_data.type == "turn"
        and span.span_id not in with_model
        and isinstance(usage := getattr(span.span_data, "usage", None), dict)
        and any(_tokens(usage)[:2])
    }
    return given, silent


def _enclosing(span: Span[Any], by_id: Mapping[str, Span[Any]], kind: str) -> Span[Any] | None:
    """The nearest span of ``kind`` that ``span`` is within (``None``: none)."""
    seen = 0
    parent = by_id.get(span.parent_id or "")
    while parent is not None and seen < MAX_SPANS_PER_TRACE:
        if parent.span_data.type == kind:
            return parent
        parent = by_id.get(parent.parent_id or "")
        seen += 1
    return None


def _span_usage(span: Span[Any]) -> dict[str, Any] | None:
    """The usage a generation or response span carries, if any."""
    data = span.span_data
    usage = getattr(data, "usage", None)
    if isinstance(usage, dict) and usage:
        return usage
    response = getattr(data, "response", None)
    response_usage = getattr(response, "usage", None)
    if response_usage is not None and hasattr(response_usage, "model_dump"):
        dumped = response_usage.model_dump()
        if isinstance(dumped, dict):
            return dumped
    return None


def _tokens(usage: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """Input, output, cached input and reasoning tokens of the SDK's usage dicts (span usage,
    turn usage, a Responses ``usage``: the details are a dict, or a list of one)."""
    cached = usage.get("cached_input_tokens")
    if cached is None:
        cached = _detail(usage.get("input_tokens_details"), "cached_tokens")
    reasoning = usage.get("reasoning_tokens")
    if reasoning is None:
        reasoning = _detail(usage.get("output_tokens_details"), "reasoning_tokens")
    return (
        token_count(usage.get("input_tokens")),
        token_count(usage.get("output_tokens")),
        token_count(cached),
        token_count(reasoning),
    )


def _detail(details: Any, key: str) -> Any:
    if isinstance(details, list) and details:
        details = details[0]
    return details.get(key) if isinstance(details, dict) else getattr(details, key, None)


def _model_call(
    span: Span[Any],
    usage: Mapping[str, Any],
    started: datetime,
    duration: float,
    prices: Mapping[str, Price],
    *,
    model: Any = _FROM_SPAN,
) -> ModelCall:
    data = span.span_data
    if model is _FROM_SPAN:
        model = getattr(data, "model", None) or getattr(
            getattr(data, "response", None), "model", None
        )
    name = _name(str(model)) if model else UNKNOWN_MODEL
    input_tokens, output_tokens, cached, reasoning = _tokens(usage)
    price = price_of(prices, name)
    return ModelCall(
        model=name,
        started_at=started,
        duration_ms=duration,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=min(cached, input_tokens),
        reasoning_tokens=min(reasoning, output_tokens),
        cost=0.0 if price is None else price.cost(input_tokens, output_tokens, cached),
        price=price,
        status=ModelCallStatus.error if span.error is not None else ModelCallStatus.success,
        error=None if span.error is None else _error_text(span.error),
    )


def _tool_call(span: Span[Any], started: datetime, duration: float) -> FinishedToolCall:
    data = span.span_data
    output = data.output
    return FinishedToolCall(
        tool_name=_name(data.name),
        input="" if data.input is None else str(data.input),
        output=None if output is None else str(output),
        status=ToolCallStatus.error if span.error is not None else ToolCallStatus.success,
        error=None if span.error is None else _error_text(span.error),
        started_at=started,
        duration_ms=duration,
    )


def _step(span: Span[Any], kind: str, started: datetime, duration: float) -> RunStep:
    exported = span.span_data.export()
    details = {key: value for key, value in exported.items() if key != "type"}
    if kind == "handoff":
        name = f"{details.get('from_agent') or '?'} → {details.get('to_agent') or '?'}"
    elif kind == "mcp_tools":
        name = f"list tools {details.get('server') or ''}".strip()
    else:
        name = str(details.get("name") or kind)
    return RunStep(
        kind=_name(kind),
        name=_name(name),
        started_at=started,
        duration_ms=duration,
        status=StepStatus.error if span.error is not None else StepStatus.success,
        error=None if span.error is None else _error_text(span.error),
        data=_json_object(details),
    )


def _timing(span: Span[Any]) -> tuple[datetime, float]:
    """The span's start (UTC) and duration in milliseconds (0 if the SDK did not say)."""
    started = _parse_time(span.started_at)
    ended = _parse_time(span.ended_at)
    if started is None:
        started = ended or utcnow()
    if ended is None or ended < started:
        return started, 0.0
    return started, (ended - started) / timedelta(milliseconds=1)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _error_text(error: Mapping[str, Any]) -> str:
    """``message: detail`` of a span error (the detail: ``data.error`` if that is all there is,
    else its JSON), at most ``_ERROR_CHARS`` characters."""
    message = str(error.get("message") or "error")
    data = error.get("data")
    if isinstance(data, dict) and set(data) == {"error"}:
        detail = str(data["error"])
    elif data:
        detail = json.dumps(data, default=str, ensure_ascii=False)
    else:
        detail = ""
    text = f"{message}: {detail}" if detail else message
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


def _name(value: Any) -> str:
    """A name the layer takes: one line, not blank, at most ``MAX_NAME_LENGTH`` characters."""
    text = " ".join(str(value).split()) or "?"
    return text if len(text) <= MAX_NAME_LENGTH else text[: MAX_NAME_LENGTH - 1] + "…"


def _json_object(details: Mapping[str, Any]) -> dict[str, Any]:
    """``details`` as a JSON object the layer stores: what JSON cannot hold becomes its string,
    integers beyond 64 bits too; cut to ``_DATA_CHARS`` characters of JSON, or nested deeper
    than ``_DATA_DEPTH`` (then ``{"truncated": <the JSON's start>}``)."""
    text = json.dumps(details, default=str, ensure_ascii=False)
    if len(text) > _DATA_CHARS:
        return {"truncated": text[:_DATA_CHARS]}
    value = json.loads(text, parse_int=_int64)
    if not isinstance(value, dict):
        return {"value": value}
    if _deeper_than(value, _DATA_DEPTH):
        return {"truncated": text}
    return value


def _int64(digits: str) -> int | str:
    number = int(digits)
    return number if -(2**63) <= number < 2**63 else digits


def _deeper_than(value: Any, depth: int) -> bool:
    if depth < 0:
        return True
    if isinstance(value, dict):
        return any(_deeper_than(entry, depth - 1) for entry in value.values())
    if isinstance(value, list):
        return any(_deeper_than(entry, depth - 1) for entry in value)
    return False
