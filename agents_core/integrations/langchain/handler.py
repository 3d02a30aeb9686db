"""LangChain and LangGraph runs recorded in agents-core: :class:`AgentsCoreCallbackHandler`.

Usage (``pip install 'agents-core[langgraph]'``)::

    from agents_core.integrations.langchain import AgentsCoreCallbackHandler

    handler = AgentsCoreCallbackHandler.from_uri("mongodb://…", database="app")
    config = {"configurable": {"thread_id": "t-1"}, "callbacks": [handler]}
    await graph.ainvoke(inputs, config)        # recorded in the background once it ends
    handler.shutdown(5.0)                      # at exit (also done at interpreter exit)

Design notes:

- **One top-level invocation, one run.** The first callback without a parent (a graph's
  ``ainvoke``/``invoke``/``astream``/``astream_events``, or a chat model or tool invoked alone)
  opens a run; every callback whose parent belongs to it (nodes, subgraphs, chains, models,
  tools, however deep) is part of it. Chat-model calls become model calls (the model's name,
  usage from ``usage_metadata`` with cached and reasoning tokens, duration, finish reason,
  status, error, a cost from ``prices``: the answering model's price, else the price of the
  model asked for, else of either's name without a snapshot's date, ``recording.price_of``);
  tool calls become tool calls (name, input as JSON,
  output, error, duration, the model's call id). The run is written whole when the invocation
  ends; its agent is the top-level graph's name, with the tools its models were offered.
- **Order is the callbacks' order.** Each call takes its place in the run when its start
  callback arrives (under a lock, never by a clock): parallel tool calls keep the order
  LangGraph started them in, whatever their timestamps.
- **Sessions are threads.** A run is recorded under the session whose external id (namespace
  ``langgraph``) is the invocation's ``thread_id`` (from ``configurable``, which LangChain copies
  into every callback's metadata), created on first use. ``AgentsCoreSaver`` keeps that
  thread's checkpoints under the same ``thread_id``: the session holds what the agent did, the
  saver its state. An invocation without a ``thread_id`` gets a session of its own (namespace
  ``langchain-run``, named by the run's id).
- **Interrupts are not failures.** ``interrupt()`` ends the run ``completed`` with an
  ``interrupt`` step (the interrupt's values and ids) where it happened: in place of the tool
  call it interrupted (which did not finish, and runs again on resumption), else when the
  node's interrupt is reported. The resumed invocation (``Command(resume=…)``) is a new run of
  the same session.
- **Never in the graph's way.** Callbacks only update memory under a lock (no I/O, no await)
  and hand a finished run to a ``RunWriter`` (``agents_core.integrations.recording``): a bounded
  queue written in batches by a thread of its own; a run that finds it full is dropped and
  counted. Every callback catches its own errors (logged once per callback): a graph never
  sees one. The handler is a synchronous ``BaseCallbackHandler`` with ``run_inline = True``, so
  LangChain calls it directly where the graph runs (its event loop, or its thread): an
  ``AsyncCallbackHandler`` would cost a new event loop per callback in a synchronous
  ``invoke`` (LangChain runs async handlers there through ``asyncio.Runner`` in its thread
  pool), and a sync handler without ``run_inline`` a thread-pool hop per callback in async code.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import bson

try:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import BaseMessage, ToolMessage
    from langchain_core.outputs import LLMResult
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "agents_core.integrations.langchain needs langchain-core: "
        "pip install 'agents-core[langgraph]'"
    ) from exc

try:
    from langgraph.errors import GraphBubbleUp, GraphInterrupt
except ImportError:  # pragma: no cover - LangChain without LangGraph: nothing interrupts

    class GraphBubbleUp(Exception):  # type: ignore[no-redef]
        """Never raised without LangGraph."""

    class GraphInterrupt(GraphBubbleUp):  # type: ignore[no-redef]
        """Never raised without LangGraph."""


from agents_core.db import (
    Connection,
    FinishedToolCall,
    ModelCall,
    ModelCallStatus,
    Price,
    RunStatus,
    RunStep,
    Settings,
    ToolCallStatus,
)
from agents_core.db import validation as check
from agents_core.db.errors import InvalidInputError
from agents_core.db.limits import (
    MAX_ERROR_BYTES,
    MAX_EXTERNAL_ID_LENGTH,
    MAX_MODEL_CALLS_PER_RUN,
    MAX_NAME_LENGTH,
    MAX_STEP_DATA_BYTES,
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

__all__ = ["NAMESPACE", "RUN_NAMESPACE", "AgentsCoreCallbackHandler"]

logger = logging.getLogger(__name__)

#: The external-id namespace of the sessions that LangGraph threads map to (by ``thread_id``).
NAMESPACE = "langgraph"
#: The namespace of the session of an invocation without a ``thread_id`` (by its run id).
RUN_NAMESPACE = "langchain-run"
#: Most invocations recorded at once; one more is not recorded (counted as dropped).
MAX_OPEN_INVOCATIONS = 10_000
#: The error of a model or tool call whose invocation ended before it did.
UNFINISHED = "did not finish: its invocation ended first"


# ---------------------------------------------------------------------------------------------
# What one top-level invocation did, collected in memory until it ends


@dataclass(slots=True, eq=False)  # compared by identity
class _Model:
    """A chat-model (or LLM) call: open from its start callback to its end or error."""

    model: str
    started_at: datetime
    clock: float
    call: ModelCall | None = None


@dataclass(slots=True, eq=False)  # compared by identity
class _Tool:
    """A tool call: open from its start callback to its end or error."""

    name: str
    #: The tool's input as given (the arguments), and as text (JSON).
    args: Any
    input: str
    request_id: str | None
    started_at: datetime
    clock: float
    output: str | None = None
    error: str | None = None
    finished: bool = False
    duration_ms: float | None = None


@dataclass(slots=True, eq=False)  # compared by identity
class _Interrupt:
    """An ``interrupt()``: where it happened (a tool, else a node), reported once."""

    name: str
    started_at: datetime
    duration_ms: float | None
    values: list[Any]
    ids: list[str]
    #: The interrupted tool's input (``None``: a node was interrupted).
    tool_input: Any = None


_Entry = _Model | _Tool | _Interrupt


@dataclass(slots=True)
class _Invocation:
    """One top-level invocation: a run once it ends."""

    run_id: UUID
    source: str
    name: str
    thread_id: str | None
    started_at: datetime
    clock: float
    #: Model calls, tool calls and interrupts in the order their callbacks started them.
    entries: list[_Entry] = field(default_factory=list)
    #: The tools the models were offered, then the ones called (names, in first-seen order).
    tools: dict[str, None] = field(default_factory=dict)
    #: The interrupt steps recorded, by the ids of their interrupts.
    interrupts: dict[str, _Interrupt] = field(default_factory=dict)
    models: int = 0
    tool_calls: int = 0
    finished: bool = False


#: Where the callbacks of an invocation that is not recorded go (to be ignored).
_IGNORED = _Invocation(UUID(int=0), "", "", None, datetime.min.replace(tzinfo=UTC), 0.0)
_IGNORED.finished = True


@dataclass(slots=True)
class _Member:
    """A callback run of an invocation: its model or tool call, or the node it runs in."""

    invocation: _Invocation
    entry: _Model | _Tool | None
    node: str


# ---------------------------------------------------------------------------------------------
# The handler


class AgentsCoreCallbackHandler(BaseCallbackHandler):
    """Records each top-level LangChain/LangGraph invocation as an agents-core run.

    ``AgentsCoreCallbackHandler()`` writes to the layer's database (``init_db``);
    ``AgentsCoreCallbackHandler.from_uri(...)`` to one of its own. ``prices`` (by model name)
    gives model calls their cost. Pass it in a config's ``callbacks``; one handler serves any
    number of graphs and concurrent invocations. ``force_flush()`` waits for what is queued,
    ``shutdown()`` writes it and stops the writer.
    """

    #: Called directly where the graph runs (no thread hop, no event loop of its own).
    run_inline = True
    raise_error = False

    def __init__(
        self,
        connection: Connection | None = None,
        *,
        prices: Mapping[str, Price] | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        self._writer = RunWriter(connection, **options)
        self._prices: dict[str, Price] = dict(prices or {})
        settings = connection.settings if connection is not None else Settings()
        self._max_tool_calls = settings.max_tool_calls_per_run
        self._max_tools = settings.max_tools_per_agent
        self._max_text_bytes = settings.max_payload_bytes
        self._lock = threading.Lock()
        #: Every callback run being recorded (model, tool, chain) and the invocation it is in.
        self._runs: dict[UUID, _Member] = {}
        self._open = 0
        #: What was logged already (each kind of problem is logged once).
        self._warned: set[str] = set()

    @classmethod
    def from_uri(
        cls,
        uri: str,
        *,
        database: str | None = None,
        prices: Mapping[str, Price] | None = None,
        **options: Any,
    ) -> AgentsCoreCallbackHandler:
        """A handler whose writer has a connection of its own, opened when it first writes.

        The URI is checked now (``InvalidInputError``). ``database``: else the URI's path, else
        ``agents_core``. ``options`` are the ``RunWriter``'s (queue and batch sizes, delays).
        """
        handler = cls(prices=prices)
        handler._writer = RunWriter.from_uri(uri, database=database, **options)
        return handler

    # -----------------------------------------------------------------------------------------
    # The writer

    def force_flush(self, timeout: float | None = None) -> bool:
        """Wait until every run finished so far is written or given up (``True``), or until
        ``timeout`` seconds have passed (``False``). Never raises. Blocks: from async code, call
        it in a thread (``await asyncio.to_thread(handler.force_flush, 5)``)."""
        return self._writer.force_flush(timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Write what is queued (at most ``timeout`` seconds), then stop the writer. Runs that
        finish afterwards are dropped (counted). Never raises."""
        return self._writer.shutdown(timeout)

    def stats(self) -> WriterStats:
        """What happened to the runs so far: submitted, written, dropped, failed, pending."""
        return self._writer.stats()

    # -----------------------------------------------------------------------------------------
    # Callbacks (LangChain's signatures)

    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        with self._guard("on_chain_start"):
            name = _run_name(serialized, kwargs, "chain")
            node = str((metadata or {}).get("langgraph_node") or name)
            self._start(run_id, parent_run_id, name, metadata, lambda inv: None, node)

    def on_chain_end(
        self,
        outputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        with self._guard("on_chain_end"):
            self._end(run_id, None)

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        with self._guard("on_chain_error"):
            self._end(run_id, error)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        with self._guard("on_chat_model_start"):
            self._start_model(run_id, parent_run_id, serialized, metadata, kwargs)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        with self._guard("on_llm_start"):
            self._start_model(run_id, parent_run_id, serialized, metadata, kwargs)

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        with self._guard("on_llm_end"):
            self._end(run_id, None, response=response)

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        with self._guard("on_llm_error"):
            self._end(run_id, error)

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        with self._guard("on_tool_start"):
            name = _run_name(serialized, kwargs, "tool")
            text = input_str if inputs is None else _json(inputs)
            request_id = kwargs.get("tool_call_id")
            request = (_name(request_id, "") or None) if isinstance(request_id, str) else None

            def tool(invocation: _Invocation) -> _Tool:
                invocation.tools.setdefault(name, None)
                args = input_str if inputs is None else inputs
                return _Tool(name, args, text, request, _now(), time.perf_counter())

            self._start(run_id, parent_run_id, name, metadata, tool, name)

    def on_tool_end(
        self,
        output: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        with self._guard("on_tool_end"):
            self._end(run_id, None, output=output)

    def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        with self._guard("on_tool_error"):
            self._end(run_id, error)

    # -----------------------------------------------------------------------------------------
    # Bookkeeping (under the lock: memory only)

    def _start_model(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        serialized: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> None:
        params = kwargs.get("invocation_params")
        params = params if isinstance(params, dict) else {}
        name = _run_name(serialized, kwargs, "model")
        model = _requested_model(metadata, params, name)
        offered = _tool_names(params.get("tools"))

        def entry(invocation: _Invocation) -> _Model:
            for tool in offered:
                invocation.tools.setdefault(tool, None)
            return _Model(model, _now(), time.perf_counter())

        self._start(run_id, parent_run_id, name, metadata, entry, model)

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        metadata: dict[str, Any] | None,
        entry: Callable[[_Invocation], _Model | _Tool | None],
        node: str,
    ) -> None:
        dropped = over = False
        with self._lock:
            parent = None if parent_run_id is None else self._runs.get(parent_run_id)
            if parent is not None:
                invocation = parent.invocation
            elif self._open < MAX_OPEN_INVOCATIONS:  # top level (or under a parent not seen)
                invocation = _new_invocation(run_id, name, metadata)
                self._open += 1
            else:  # not recorded; what runs under it is followed, to be ignored as well
                invocation, dropped = _IGNORED, True
            call = None if invocation.finished else entry(invocation)
            if isinstance(call, _Model):
                over = invocation.models >= MAX_MODEL_CALLS_PER_RUN
                invocation.models += not over
            elif isinstance(call, _Tool):
                over = invocation.tool_calls >= self._max_tool_calls
                invocation.tool_calls += not over
            if call is not None and not over:
                invocation.entries.append(call)
            self._runs[run_id] = _Member(invocation, None if over else call, node)
        if dropped:
            self._writer.count_dropped(
                1, f"{MAX_OPEN_INVOCATIONS} LangChain invocations were being recorded already"
            )
        elif over:
            self._warn_once(
                "over", "agents-core: a run has more calls than a run holds; the rest are left out"
            )

    def _end(
        self,
        run_id: UUID,
        error: BaseException | None,
        *,
        response: LLMResult | None = None,
        output: Any = None,
    ) -> None:
        finished: _Invocation | None = None
        with self._lock:
            member = self._runs.pop(run_id, None)
            if member is None:
                return
            invocation, entry = member.invocation, member.entry
            if invocation.finished:  # a late callback of a run already written
                return
            if isinstance(error, GraphInterrupt):
                self._interrupted(invocation, member, error)
            elif isinstance(entry, _Model):
                entry.call = self._model_call(entry, response, error)
            elif isinstance(entry, _Tool):
                _finish_tool(entry, output, error)
            if run_id == invocation.run_id:
                invocation.finished = True
                self._open -= 1
                finished = invocation
        if finished is not None:
            self._record(finished, error)

    def _interrupted(self, invocation: _Invocation, member: _Member, error: GraphInterrupt) -> None:
        """Record each interrupt once: at the tool it interrupted, else at the first node that
        reports it (every level it crosses reports it again, parallel ones together)."""
        interrupts = error.args[0] if error.args else ()
        found = [(str(getattr(i, "id", "")), getattr(i, "value", i)) for i in interrupts]
        known = invocation.interrupts
        entry = member.entry
        if isinstance(entry, _Tool):
            # The tool did not finish (it runs again when the graph resumes): its place in the
            # run is the interrupt's.
            duration_ms = (time.perf_counter() - entry.clock) * 1000
            ids, values = [i for i, _ in found], [v for _, v in found]
            step = _Interrupt(entry.name, entry.started_at, duration_ms, values, ids, entry.args)
            invocation.entries[invocation.entries.index(entry)] = step
            invocation.tool_calls -= 1
            for i in ids:
                # A node inside the tool (a subgraph it ran) reported it first.
                earlier = known.get(i)
                covered = earlier is not None and set(earlier.ids) <= set(ids)
                if covered and earlier in invocation.entries:
                    invocation.entries.remove(earlier)
            known.update(dict.fromkeys(ids, step))
            return
        new = [(i, value) for i, value in found if i not in known]
        if new:
            ids, values = [i for i, _ in new], [v for _, v in new]
            step = _Interrupt(member.node, _now(), None, values, ids)
            invocation.entries.append(step)
            known.update(dict.fromkeys(ids, step))

    def _model_call(
        self, entry: _Model, response: LLMResult | None, error: BaseException | None
    ) -> ModelCall:
        duration_ms = (time.perf_counter() - entry.clock) * 1000
        usage = _usage(response)
        model = _answered_model(response) or entry.model
        price = price_of(self._prices, model, entry.model)
        cost = 0.0 if price is None else price.cost(usage[0], usage[1], usage[2])
        return ModelCall(
            model=_name(model, "model"),
            started_at=entry.started_at,
            duration_ms=duration_ms,
            input_tokens=usage[0],
            output_tokens=usage[1],
            cached_input_tokens=usage[2],
            reasoning_tokens=usage[3],
            cost=cost,
            price=price,
            finish_reason=_finish_reason(response),
            status=ModelCallStatus.success if error is None else ModelCallStatus.error,
            error=None if error is None else _error_text(error),
        )

    @contextmanager
    def _guard(self, callback: str) -> Iterator[None]:
        """A callback's errors stay here (the graph never sees them): logged once per callback."""
        try:
            yield
        except Exception as exc:
            self._warn_once(
                callback,
                f"agents-core: {callback} failed, its run may be recorded in part: {exc!r}",
            )

    def _warn_once(self, kind: str, message: str) -> None:
        with self._lock:
            if kind in self._warned:
                return
            self._warned.add(kind)
        logger.warning("%s (logged once)", message)

    # -----------------------------------------------------------------------------------------
    # A finished invocation, handed to the writer

    def _record(self, invocation: _Invocation, error: BaseException | None) -> None:
        try:
            run = self._framework_run(invocation, error)
        except Exception as exc:
            self._writer.count_dropped(1, f"a LangChain run could not be read: {exc!r}")
            return
        self._writer.submit(run)

    def _framework_run(self, invocation: _Invocation, error: BaseException | None) -> FrameworkRun:
        failed = error is not None and not isinstance(error, GraphBubbleUp)
        name = _name(invocation.name, "graph")
        thread = invocation.thread_id
        if thread is not None and not _valid_thread(thread):
            self._warn_once(
                "thread_id",
                f"agents-core: thread_id {thread[:80]!r} cannot name a session (longer than "
                f"{MAX_EXTERNAL_ID_LENGTH} characters, blank or with line breaks): its runs "
                "get sessions of their own",
            )
            thread = None
        session = (
            SessionRef(external_id=thread, namespace=NAMESPACE, title=name)
            if thread is not None
            else SessionRef(external_id=str(invocation.run_id), namespace=RUN_NAMESPACE, title=name)
        )
        tools = tuple(_name(tool, "tool") for tool in invocation.tools)[: self._max_tools]
        return FrameworkRun(
            source=invocation.source,
            external_id=str(invocation.run_id),
            session=session,
            agents=(AgentRef(name, tools),),
            started_at=invocation.started_at,
            completed_at=_now(),
            status=RunStatus.failed if failed else RunStatus.completed,
            error=_error_text(error) if failed and error is not None else None,
            calls=[self._call(entry) for entry in invocation.entries],
        )

    def _call(self, entry: _Entry) -> ModelCall | FinishedToolCall | RunStep:
        if isinstance(entry, _Model):
            if entry.call is not None:
                return entry.call
            return ModelCall(  # its invocation ended first (cancelled)
                model=_name(entry.model, "model"),
                started_at=entry.started_at,
                duration_ms=(time.perf_counter() - entry.clock) * 1000,
                status=ModelCallStatus.error,
                error=UNFINISHED,
            )
        if isinstance(entry, _Tool):
            if not entry.finished:
                entry.duration_ms = (time.perf_counter() - entry.clock) * 1000
                entry.error = UNFINISHED
            return FinishedToolCall(
                tool_name=_name(entry.name, "tool"),
                input=_clip(entry.input, self._max_text_bytes),
                output=None if entry.output is None else _clip(entry.output, self._max_text_bytes),
                status=ToolCallStatus.success if entry.error is None else ToolCallStatus.error,
                error=entry.error,
                request_id=entry.request_id,
                started_at=entry.started_at,
                duration_ms=entry.duration_ms,
            )
        data: dict[str, Any] = {"values": entry.values, "ids": entry.ids}
        if entry.tool_input is not None:
            data["tool_input"] = entry.tool_input
        return RunStep(
            kind="interrupt",
            name=_name(entry.name, "interrupt"),
            started_at=entry.started_at,
            duration_ms=entry.duration_ms,
            data=_bounded(_plain(data)),
        )


# ---------------------------------------------------------------------------------------------
# What the callbacks carry, read


def _now() -> datetime:
    return datetime.now(UTC)


def _new_invocation(run_id: UUID, name: str, metadata: Mapping[str, Any] | None) -> _Invocation:
    meta = metadata or {}
    thread = meta.get("thread_id")
    return _Invocation(
        run_id=run_id,
        source="langgraph" if meta.get("ls_integration") == "langgraph" else "langchain",
        name=name,
        thread_id=None if thread is None or thread == "" else str(thread),
        started_at=_now(),
        clock=time.perf_counter(),
    )


def _valid_thread(thread: str) -> bool:
    try:
        check.name(thread, "thread_id", max_length=MAX_EXTERNAL_ID_LENGTH)
    except InvalidInputError:
        return False
    return True


def _run_name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any], kind: str) -> str:
    """The name LangChain gives the run (``name=``, else the serialized object's)."""
    name = kwargs.get("name")
    if not name and serialized:
        name = serialized.get("name") or (serialized.get("id") or [None])[-1]
    return str(name) if name else kind


def _requested_model(
    metadata: Mapping[str, Any] | None, params: Mapping[str, Any], name: str
) -> str:
    """The model asked for: LangSmith's ``ls_model_name``, the call's parameters, else the
    chat model's class name (a fake or custom model names none)."""
    for value in (
        (metadata or {}).get("ls_model_name"),
        params.get("model"),
        params.get("model_name"),
    ):
        if isinstance(value, str) and value:
            return value
    return name


def _tool_names(tools: object) -> list[str]:
    """Names of the tools bound to a model (OpenAI's ``{"function": {"name"}}`` or ``{"name"}``)."""
    names: list[str] = []
    if isinstance(tools, list | tuple):
        for tool in tools:
            if not isinstance(tool, Mapping):
                continue
            function = tool.get("function")
            name = function.get("name") if isinstance(function, Mapping) else tool.get("name")
            if isinstance(name, str) and name:
                names.append(name)
    return names


def _messages(response: LLMResult | None) -> Iterator[BaseMessage]:
    for generations in response.generations if response is not None else ():
        for generation in generations:
            message = getattr(generation, "message", None)
            if isinstance(message, BaseMessage):
                yield message


def _usage(response: LLMResult | None) -> tuple[int, int, int, int]:
    """Input, output, cached input and reasoning tokens of the call's ``usage_metadata``
    (LangChain's standard usage), else the provider's ``token_usage``.

    A model run is one request: its usage is that of the first message carrying one, never a
    sum over the generations (a request for several choices, OpenAI's ``n``, has the
    request's usage on each choice's message).
    """
    for message in _messages(response):
        usage = getattr(message, "usage_metadata", None)
        if not usage:
            continue
        details_in = usage.get("input_token_details") or {}
        details_out = usage.get("output_token_details") or {}
        return (
            token_count(usage.get("input_tokens")),
            token_count(usage.get("output_tokens")),
            token_count(details_in.get("cache_read")),
            token_count(details_out.get("reasoning")),
        )
    if response is not None and isinstance(response.llm_output, Mapping):
        legacy = response.llm_output.get("token_usage")
        if isinstance(legacy, Mapping):
            return (
                token_count(legacy.get("prompt_tokens")),
                token_count(legacy.get("completion_tokens")),
                0,
                0,
            )
    return 0, 0, 0, 0


def _answered_model(response: LLMResult | None) -> str | None:
    """The model that answered, as the provider names it (``response_metadata``)."""
    for message in _messages(response):
        for key in ("model_name", "model"):
            value = message.response_metadata.get(key)
            if isinstance(value, str) and value:
                return value
    output = response.llm_output if response is not None else None
    if isinstance(output, Mapping):
        value = output.get("model_name") or output.get("model")
        if isinstance(value, str) and value:
            return value
    return None


def _finish_reason(response: LLMResult | None) -> str | None:
    for generations in response.generations if response is not None else ():
        for generation in generations:
            message = getattr(generation, "message", None)
            metadata = message.response_metadata if isinstance(message, BaseMessage) else {}
            info = generation.generation_info or {}
            for value in (
                metadata.get("finish_reason"),
                metadata.get("stop_reason"),
                info.get("finish_reason"),
            ):
                if isinstance(value, str) and value:
                    return value
    return None


def _finish_tool(entry: _Tool, output: Any, error: BaseException | None) -> None:
    duration_ms = (time.perf_counter() - entry.clock) * 1000
    if error is not None:
        entry.error = _error_text(error)
    else:
        entry.output = _text(output)
        if isinstance(output, ToolMessage) and output.status == "error":
            entry.error = entry.output
    entry.duration_ms, entry.finished = duration_ms, True


def _text(value: Any) -> str:
    """A tool's output as text: a message's content, a string, else JSON."""
    if isinstance(value, BaseMessage):
        value = value.content
    return value if isinstance(value, str) else _json(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _error_text(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return _clip(text, MAX_ERROR_BYTES)


def _name(value: object, fallback: str) -> str:
    """A name the layer takes (one line, ``MAX_NAME_LENGTH`` characters at most)."""
    text = "".join(c if c.isprintable() else " " for c in str(value)).strip()
    return text[:MAX_NAME_LENGTH] or fallback


def _clip(text: str, max_bytes: int) -> str:
    """``text`` as the layer stores it: valid UTF-8 (lone surrogates replaced), bounded."""
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return data.decode("utf-8") if len(data) != len(text) else text
    note = f"\n[truncated from {len(data)} bytes]"
    return data[: max_bytes - len(note.encode())].decode("utf-8", "ignore") + note


def _plain(value: Any) -> Any:
    """``value`` as JSON data (what cannot be JSON becomes its ``str``)."""
    return json.loads(_json(value))


def _bounded(data: dict[str, Any]) -> dict[str, Any]:
    """Step data within ``MAX_STEP_DATA_BYTES`` (with room for escaped names): values too large
    are kept as the start of their JSON text."""
    budget = MAX_STEP_DATA_BYTES - 1024
    if len(bson.encode(data)) <= budget:
        return data
    bounded: dict[str, Any] = {}
    for key, value in data.items():
        text = _json(value)
        share = budget // len(data)
        bounded[key] = value if len(text.encode()) <= share else _clip(text, share - 64)
    bounded["truncated"] = True
    return bounded
