"""What the OpenAI Agents SDK reported, checked against the runs agents-core recorded.

``compare(traces, spans, runs)`` takes the traces and the ended spans a reference processor
saw (the SDK's own ``SPAN_PROCESSOR_TESTING`` in its test suite, spans in their start order)
and the run recorded for each trace id, and lists every difference:

- one run per trace (``runs[trace_id]``), of source ``openai-agents``, its status ``failed``
  exactly when a span that frames the run (task, agent, turn, or a top-level span) has an
  error, with that error's message (not one within a tool: an agent used as a tool that
  failed is its tool call's error, the outer run goes on);
- one model call per generation or response span, in the same order, with equal token counts:
  the span's usage, or, where the span carries none (``ScriptedModel``), its turn's usage when
  that turn has one such span; one model call, too, for a turn that reports tokens but has no
  such span (its model emitted none: ``ScriptedModel()`` without ``emit_traces``), at the
  turn's place; and the run's total equal to the sum of its task spans' usage (the SDK's own
  sum: a check of where the tokens went);
- one tool call per function span, in the same order, with equal name, input and output, and
  an error (status ``error``, the span's message) exactly where the span has one;
- one step per other span (handoff, guardrail, agent, custom, …) of the same kind, with an
  error where the span has one;
- the calls of the run in the spans' start order (model, tool and step interleaved alike).

It reads nothing but the spans and the records: nothing of the processor's code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.tracing import Span, Trace

from agents_core.db import (
    ModelCall,
    ModelCallStatus,
    Run,
    RunStatus,
    RunStep,
    StepStatus,
    ToolCall,
    ToolCallStatus,
)

__all__ = ["Comparison", "compare"]

SOURCE = "openai-agents"
_MODEL = frozenset({"generation", "response"})
_FRAMING = frozenset({"task", "agent", "turn"})


@dataclass(slots=True)
class Comparison:
    """What was compared, and every difference found."""

    traces: int = 0
    #: Spans compared, by the SDK's span type.
    spans: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def add(self, other: Comparison) -> None:
        self.traces += other.traces
        self.spans.update(other.spans)
        self.problems += other.problems


def compare(
    traces: Sequence[Trace], spans: Sequence[Span[Any]], runs: Mapping[str, Run | None]
) -> Comparison:
    """Check each of ``traces`` against ``runs`` (by trace id); ``spans`` in start order."""
    result = Comparison()
    by_trace: dict[str, list[Span[Any]]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    for trace in traces:
        result.traces += 1
        own = by_trace.get(trace.trace_id, [])
        result.spans.update(span.span_data.type for span in own)
        run = runs.get(trace.trace_id)
        where = f"trace {trace.trace_id} ({trace.name!r})"
        if run is None:
            result.problems.append(f"{where}: no run recorded")
            continue
        result.problems += [f"{where}: {problem}" for problem in _problems(own, run)]
    return result


def _problems(spans: list[Span[Any]], run: Run) -> list[str]:
    problems: list[str] = []
    if run.source != SOURCE:
        problems.append(f"run source {run.source!r}")
    problems += _run_status(spans, run)
    # The run and its turns frame the calls: they are not calls themselves, but for a turn
    # whose model left no span (then the turn stands for its model call).
    silent = _silent_turns(spans)
    framed = [
        span
        for span in spans
        if span.span_data.type not in ("task", "turn") or span.span_id in silent
    ]
    expected_kinds = [_kind(span) for span in framed]
    kinds = [_recorded_kind(call) for call in run.calls()]
    if kinds != expected_kinds:
        problems.append(f"calls in order {kinds}, the spans' start order is {expected_kinds}")
    models = [span for span in framed if _kind(span) == "model"]
    tools = [span for span in framed if _kind(span) == "tool"]
    steps = [span for span in framed if _kind(span) == "step"]
    problems += _model_calls(models, spans, run)
    problems += _tool_calls(tools, run.tool_calls)
    problems += _steps(steps, run.steps)
    return problems


def _kind(span: Span[Any]) -> str:
    kind = span.span_data.type
    if kind in _MODEL or kind == "turn":  # a turn among the calls: a silent one
        return "model"
    return "tool" if kind == "function" else "step"


def _turn_of(span: Span[Any], by_id: Mapping[str, Span[Any]]) -> Span[Any] | None:
    parent = by_id.get(span.parent_id or "")
    while parent is not None and parent.span_data.type != "turn":
        parent = by_id.get(parent.parent_id or "")
    return parent


def _silent_turns(spans: list[Span[Any]]) -> set[str]:
    """Turns that report tokens but hold no generation or response span."""
    by_id = {span.span_id: span for span in spans}
    with_model = {
        turn.span_id
        for span in spans
        if span.span_data.type in _MODEL and (turn := _turn_of(span, by_id)) is not None
    }
    silent: set[str] = set()
    for span in spans:
        usage = getattr(span.span_data, "usage", None)
        tokens = isinstance(usage, dict) and (
            usage.get("input_tokens") or usage.get("output_tokens")
        )
        if span.span_data.type == "turn" and span.span_id not in with_model and tokens:
            silent.add(span.span_id)
    return silent


def _recorded_kind(call: ModelCall | ToolCall | RunStep) -> str:
    return (
        "model" if isinstance(call, ModelCall) else "tool" if isinstance(call, ToolCall) else "step"
    )


def _within_tool(span: Span[Any], by_id: Mapping[str, Span[Any]]) -> bool:
    parent = by_id.get(span.parent_id or "")
    while parent is not None and parent.span_data.type != "function":
        parent = by_id.get(parent.parent_id or "")
    return parent is not None


def _run_status(spans: list[Span[Any]], run: Run) -> list[str]:
    by_id = {span.span_id: span for span in spans}
    framing_errors = [
        span.error
        for span in spans
        if span.error is not None
        and (span.span_data.type in _FRAMING or span.parent_id is None)
        and not _within_tool(span, by_id)
    ]
    if not framing_errors:
        if run.status != RunStatus.completed:
            return [f"run {run.status.value} ({run.error!r}) though no span of the run failed"]
        return []
    if run.status != RunStatus.failed:
        return [f"run {run.status.value}, the spans say {framing_errors[0]!r}"]
    if not any(str(error.get("message")) in (run.error or "") for error in framing_errors):
        return [f"run error {run.error!r}, the spans say {framing_errors!r}"]
    return []


def _usage(span: Span[Any]) -> dict[str, Any] | None:
    usage = getattr(span.span_data, "usage", None)
    if isinstance(usage, dict) and usage:
        return usage
    response_usage = getattr(getattr(span.span_data, "response", None), "usage", None)
    if response_usage is not None:
        dumped: dict[str, Any] = response_usage.model_dump()
        return dumped
    return None


def _expected_usage(models: list[Span[Any]], spans: list[Span[Any]]) -> list[dict[str, Any]]:
    """The usage each model span stands for: its own (a silent turn's too), else its turn's
    when the turn has no other model span (a turn's usage is its model spans' together)."""
    by_id = {span.span_id: span for span in spans}
    in_turn = Counter(
        turn.span_id for span in models if (turn := _turn_of(span, by_id)) is not None
    )
    expected: list[dict[str, Any]] = []
    for span in models:
        usage = _usage(span)
        turn = _turn_of(span, by_id) if usage is None else None
        if usage is None and turn is not None and in_turn[turn.span_id] == 1:
            usage = getattr(turn.span_data, "usage", None)
        expected.append(usage or {})
    return expected


def _model_calls(models: list[Span[Any]], spans: list[Span[Any]], run: Run) -> list[str]:
    calls = run.model_calls
    if len(calls) != len(models):
        return [
            f"{len(calls)} model calls recorded for {len(models)} model spans (or silent turns)"
        ]
    problems: list[str] = []
    for n, (span, call, usage) in enumerate(
        zip(models, calls, _expected_usage(models, spans), strict=True)
    ):
        tokens = (usage.get("input_tokens", 0) or 0, usage.get("output_tokens", 0) or 0)
        if (call.input_tokens, call.output_tokens) != tokens:
            problems.append(
                f"model call {n}: tokens {(call.input_tokens, call.output_tokens)}, span {tokens}"
            )
        cached = usage.get("cached_input_tokens")
        if cached is None:
            details = usage.get("input_tokens_details")
            details = details[0] if isinstance(details, list) and details else details
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
        if cached is not None and call.cached_input_tokens != cached:
            problems.append(f"model call {n}: {call.cached_input_tokens} cached, span {cached}")
        problems += _error("model call", n, span, call.status == ModelCallStatus.error, call.error)
    # Each run of the trace (a nested run too: an agent used as a tool) has its task span,
    # whose usage the SDK sums itself: together, every model call's tokens.
    tasks = [span.span_data.usage for span in spans if span.span_data.type == "task"]
    if tasks and all(isinstance(usage, dict) for usage in tasks):
        total = sum(
            (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0) for usage in tasks
        )
        if run.tokens != total:
            problems.append(f"run tokens {run.tokens}, the task spans' usage says {total}")
    return problems


def _tool_calls(tools: list[Span[Any]], calls: list[ToolCall]) -> list[str]:
    if len(calls) != len(tools):
        return [f"{len(calls)} tool calls recorded for {len(tools)} function spans"]
    problems: list[str] = []
    for n, (span, call) in enumerate(zip(tools, calls, strict=True)):
        exported = span.span_data.export()
        expected = (exported["name"], exported["input"] or "", exported["output"])
        if (call.tool_name, call.input, call.output) != expected:
            problems.append(
                f"tool call {n}: {(call.tool_name, call.input, call.output)!r}, span {expected!r}"
            )
        problems += _error("tool call", n, span, call.status == ToolCallStatus.error, call.error)
    return problems


def _steps(spans: list[Span[Any]], steps: list[RunStep]) -> list[str]:
    if len(steps) != len(spans):
        return [f"{len(steps)} steps recorded for {len(spans)} other spans"]
    problems: list[str] = []
    for n, (span, step) in enumerate(zip(spans, steps, strict=True)):
        if step.kind != span.span_data.type:
            problems.append(f"step {n}: kind {step.kind!r}, span {span.span_data.type!r}")
        problems += _error("step", n, span, step.status == StepStatus.error, step.error)
    return problems


def _error(what: str, n: int, span: Span[Any], failed: bool, error: str | None) -> list[str]:
    if span.error is None:
        return [f"{what} {n}: error {error!r}, the span has none"] if failed or error else []
    message = str(span.error.get("message"))
    if not failed or message not in (error or ""):
        return [f"{what} {n}: error {error!r}, the span's is {span.error!r}"]
    return []
