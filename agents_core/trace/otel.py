"""Runs as OpenTelemetry spans, following the GenAI semantic conventions (extra ``otel``).

Usage::

    from agents_core.trace.otel import export_run, record_run

    run = await RunsRepository().find_by_id(run_id)
    export_run(run, agent_name="support", endpoint="http://localhost:4318/v1/traces")

    # or into a tracer of your own (the SDK's in-memory exporter in tests, say):
    record_run(run, tracer=provider.get_tracer("agents_core"), agent_name="support")

One trace per run: ``invoke_agent {agent name}`` for the run, with a child ``chat {model}`` per
model call, ``execute_tool {tool name}`` per tool call and, for a framework's run, a span per
step (``handoff triage → billing``, ``guardrail polite``: its kind and name, ``SpanKind.INTERNAL``,
``agents_core.step.*`` attributes), each with the start and end times of its record (not the
time of the export). The mapping:

=========================================  ===============================================
span / attribute                           from
=========================================  ===============================================
``gen_ai.operation.name``                  ``invoke_agent`` / ``chat`` / ``execute_tool``
``gen_ai.conversation.id`` (every span)    the session id
``gen_ai.agent.name``, ``gen_ai.agent.id`` the agent
``gen_ai.request.model``,
``gen_ai.response.model``                  ``ModelCall.model``
``gen_ai.usage.input_tokens``              ``input_tokens`` (the run: summed over its calls)
``gen_ai.usage.output_tokens``             ``output_tokens`` (idem)
``gen_ai.usage.cache_read.input_tokens``   ``cached_input_tokens`` (idem)
``gen_ai.usage.reasoning.output_tokens``   ``reasoning_tokens`` (idem)
``gen_ai.response.finish_reasons``         ``[finish_reason]``
``gen_ai.tool.name``, ``gen_ai.tool.type`` ``ToolCall.tool_name``, ``function``
``gen_ai.tool.call.id``                    the model's id of the call (``request_id``), else ours
``gen_ai.tool.call.arguments`` / ``.result`` input / output, only with ``capture_content=True``
``gen_ai.provider.name``                   ``provider_name`` when given (runs do not record it)
``agents_core.cost``                       the call's or run's cost (currency of the price)
``agents_core.run.id``, ``.status``, …     our ids and statuses
``agents_core.run.source``, ``.external_id`` a framework's run: where it came from
``agents_core.step.kind``, ``.name``,
``.data`` (JSON)                           a framework run's step
``error.type`` + span status ``ERROR``     a failed run, model call, tool call or step
=========================================  ===============================================

A run's scores (``Run.scores``) are events of its ``invoke_agent`` span, in the order they were
added, each at the time it was added: the GenAI conventions' ``gen_ai.evaluation.result`` event,
which they ask to be parented to the span of the operation evaluated. The conventions define it
as a log-based event; this export sends traces only, so it is a span event (what the SDK's
``Span.add_event`` records), with the attributes the conventions give it:

=========================================  ===============================================
event attribute                            from
=========================================  ===============================================
``gen_ai.evaluation.name``                 ``Score.name``
``gen_ai.evaluation.score.value``          ``Score.value`` (a number score)
``gen_ai.evaluation.score.label``          ``Score.label`` (a label score)
``gen_ai.evaluation.explanation``          ``Score.comment``, when given
``agents_core.score.id``, ``.by``          ours: the score's id, and who gave it (when given)
=========================================  ===============================================

Tool arguments and results can hold personal data, so they leave the process only when the
caller opts in, as the conventions ask.
"""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from agents_core.db import (
    ModelCall,
    ModelCallStatus,
    Run,
    RunStatus,
    RunStep,
    Score,
    StepStatus,
    ToolCall,
    ToolCallStatus,
)
from agents_core.trace import call_duration_ms, step_name

try:
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "agents_core.trace.otel needs OpenTelemetry: pip install 'agents-core[otel]'"
    ) from exc

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "CALL_INDEX_ATTRIBUTE",
    "COST_ATTRIBUTE",
    "EVALUATION_EVENT",
    "SCOPE",
    "ExportError",
    "export_run",
    "record_run",
]

#: The instrumentation scope of the spans.
SCOPE = "agents_core"
#: Cost is not part of the GenAI conventions: it goes under our own namespace.
COST_ATTRIBUTE = "agents_core.cost"
#: A call span's place among its run's calls, in recorded order (0 first).
CALL_INDEX_ATTRIBUTE = "agents_core.call.index"
#: The name of a score's event on its run's span (the GenAI conventions' evaluation result).
EVALUATION_EVENT = "gen_ai.evaluation.result"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ERROR_NAME = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


def _ns(at: datetime) -> int:
    """Nanoseconds since the epoch, exactly (floats lose the microseconds at this magnitude)."""
    return (at - _EPOCH) // timedelta(microseconds=1) * 1000


def _error_type(text: str | None) -> str:
    """A low-cardinality ``error.type``: the exception's name leading the text, else ``_OTHER``."""
    if text:
        match = _ERROR_NAME.match(text.strip())
        if match:
            return match[1]
    return "_OTHER"


def _fail(span: Span, text: str | None) -> None:
    span.set_attribute("error.type", _error_type(text))
    span.set_status(Status(StatusCode.ERROR, text or None))


def _model_end(call: ModelCall) -> datetime:
    return call.started_at + timedelta(milliseconds=call.duration_ms)


def _tool_end(call: ToolCall) -> datetime:
    duration = call_duration_ms(call)
    return call.started_at + timedelta(milliseconds=duration or 0.0)


def _step_end(step: RunStep) -> datetime:
    return step.started_at + timedelta(milliseconds=step.duration_ms or 0.0)


def _run_end(run: Run) -> datetime:
    ends = [_model_end(call) for call in run.model_calls]
    ends += [_tool_end(call) for call in run.tool_calls]
    ends += [_step_end(step) for step in run.steps]
    if run.completed_at is not None:
        ends.append(run.completed_at)
    return max([run.started_at, *ends])


def record_run(
    run: Run,
    *,
    tracer: Tracer,
    agent_name: str,
    capture_content: bool = False,
    provider_name: str | None = None,
) -> None:
    """Emit ``run`` as spans on ``tracer`` (a new trace: no current span is its parent)."""
    common: dict[str, Any] = {"gen_ai.conversation.id": str(run.session_id)}
    if provider_name:
        common["gen_ai.provider.name"] = provider_name
    usage = {
        "gen_ai.usage.input_tokens": sum(c.input_tokens for c in run.model_calls),
        "gen_ai.usage.output_tokens": sum(c.output_tokens for c in run.model_calls),
        "gen_ai.usage.cache_read.input_tokens": sum(c.cached_input_tokens for c in run.model_calls),
        "gen_ai.usage.reasoning.output_tokens": sum(c.reasoning_tokens for c in run.model_calls),
    }
    root = tracer.start_span(
        f"invoke_agent {agent_name}",
        context=Context(),
        kind=SpanKind.INTERNAL,
        start_time=_ns(run.started_at),
        attributes={
            **common,
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent_name,
            "gen_ai.agent.id": str(run.agent_id),
            **usage,
            COST_ATTRIBUTE: run.cost,
            "agents_core.run.id": str(run.id),
            "agents_core.run.status": run.status.value,
            "agents_core.run.tokens": run.tokens,
            **(
                {
                    "agents_core.run.source": run.source,
                    "agents_core.run.external_id": run.external_id,
                }
                if run.source is not None and run.external_id is not None
                else {}
            ),
        },
    )
    parent = trace.set_span_in_context(root)
    # In recorded order, each span carrying its place (timestamps tie: a receiver sorting by
    # them alone would misorder calls of one millisecond).
    for index, call in enumerate(run.calls()):
        placed = {**common, CALL_INDEX_ATTRIBUTE: index}
        if isinstance(call, ModelCall):
            _chat_span(tracer, parent, call, placed)
        elif isinstance(call, ToolCall):
            _tool_span(tracer, parent, call, placed, capture_content=capture_content)
        else:
            _step_span(tracer, parent, call, placed)
    for score in run.scores:
        root.add_event(EVALUATION_EVENT, _score_attributes(score), _ns(score.created_at))
    if run.status == RunStatus.failed:
        _fail(root, run.error)
    elif run.status == RunStatus.completed:
        root.set_status(Status(StatusCode.OK))
    root.end(end_time=_ns(_run_end(run)))


def _score_attributes(score: Score) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.evaluation.name": score.name,
        "agents_core.score.id": score.id,
    }
    if score.value is not None:
        attributes["gen_ai.evaluation.score.value"] = score.value
    if score.label is not None:
        attributes["gen_ai.evaluation.score.label"] = score.label
    if score.comment is not None:
        attributes["gen_ai.evaluation.explanation"] = score.comment
    if score.by is not None:
        attributes["agents_core.score.by"] = score.by
    return attributes


def _chat_span(tracer: Tracer, parent: Context, call: ModelCall, common: Mapping[str, Any]) -> None:
    attributes: dict[str, Any] = {
        **common,
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": call.model,
        "gen_ai.usage.input_tokens": call.input_tokens,
        "gen_ai.usage.output_tokens": call.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": call.cached_input_tokens,
        "gen_ai.usage.reasoning.output_tokens": call.reasoning_tokens,
        COST_ATTRIBUTE: call.cost,
        "agents_core.model_call.status": call.status.value,
    }
    if call.status == ModelCallStatus.success:
        attributes["gen_ai.response.model"] = call.model
    if call.finish_reason:
        attributes["gen_ai.response.finish_reasons"] = [call.finish_reason]
    if call.price is not None:
        attributes["agents_core.price.input_per_million"] = call.price.input_per_million
        attributes["agents_core.price.output_per_million"] = call.price.output_per_million
        if call.price.cached_input_per_million is not None:
            attributes["agents_core.price.cached_input_per_million"] = (
                call.price.cached_input_per_million
            )
    failed = call.status == ModelCallStatus.error
    span = _Child(f"chat {call.model}", SpanKind.CLIENT, call.started_at, _model_end(call))
    _emit(tracer, parent, span, attributes, failed=failed, error=call.error)


def _tool_span(
    tracer: Tracer,
    parent: Context,
    call: ToolCall,
    common: Mapping[str, Any],
    *,
    capture_content: bool,
) -> None:
    attributes: dict[str, Any] = {
        **common,
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": call.tool_name,
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": call.request_id or call.id,
        "agents_core.tool_call.id": call.id,
        "agents_core.tool_call.status": call.status.value,
    }
    if capture_content:
        attributes["gen_ai.tool.call.arguments"] = call.input
        if call.output is not None:
            attributes["gen_ai.tool.call.result"] = call.output
    failed = call.status == ToolCallStatus.error
    name = f"execute_tool {call.tool_name}"
    span = _Child(name, SpanKind.INTERNAL, call.started_at, _tool_end(call))
    _emit(tracer, parent, span, attributes, failed=failed, error=call.error or call.output)


def _step_span(tracer: Tracer, parent: Context, step: RunStep, common: Mapping[str, Any]) -> None:
    attributes = {
        **common,
        "agents_core.step.kind": step.kind,
        "agents_core.step.name": step.name,
        "agents_core.step.status": step.status.value,
        "agents_core.step.data": json.dumps(step.data, ensure_ascii=False),
    }
    failed = step.status == StepStatus.error
    span = _Child(step_name(step), SpanKind.INTERNAL, step.started_at, _step_end(step))
    _emit(tracer, parent, span, attributes, failed=failed, error=step.error)


class _Child(NamedTuple):
    """What a call's or step's span is, under its run's span."""

    name: str
    kind: SpanKind
    started_at: datetime
    ended_at: datetime


def _emit(
    tracer: Tracer,
    parent: Context,
    child: _Child,
    attributes: Mapping[str, Any],
    *,
    failed: bool,
    error: str | None,
) -> None:
    span = tracer.start_span(
        child.name,
        context=parent,
        kind=child.kind,
        start_time=_ns(child.started_at),
        attributes=attributes,
    )
    if failed:
        _fail(span, error)
    span.end(end_time=_ns(child.ended_at))


class ExportError(RuntimeError):
    """An OTLP receiver refused the spans, or could not be reached."""


def export_run(
    run: Run,
    *,
    endpoint: str,
    agent_name: str,
    capture_content: bool = False,
    provider_name: str | None = None,
    headers: Mapping[str, str] | None = None,
    service_name: str | None = None,
    timeout: float = 10.0,
) -> None:
    """Send ``run``'s spans to an OTLP/HTTP (protobuf) endpoint, e.g. ``…:4318/v1/traces``.

    ``service_name``: the resource's ``service.name`` (default: ``OTEL_SERVICE_NAME``, else
    ``agents-core``). Raises ``ExportError`` when nothing listens at the endpoint ("could not
    connect", found out with one TCP connection, at most ``min(timeout, 3)`` seconds, before
    the exporter's retries) or the receiver did not accept the spans.
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    _reachable(endpoint, min(timeout, 3.0))
    name = service_name or os.environ.get("OTEL_SERVICE_NAME", "").strip() or "agents-core"
    exporter = OTLPSpanExporter(endpoint=endpoint, headers=dict(headers or {}), timeout=timeout)
    # Kept in memory first, then sent in one request whose result we can report.
    collected = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(SimpleSpanProcessor(collected))
    try:
        record_run(
            run,
            tracer=provider.get_tracer(SCOPE),
            agent_name=agent_name,
            capture_content=capture_content,
            provider_name=provider_name,
        )
        result = exporter.export(collected.get_finished_spans())
    finally:
        exporter.shutdown()  # type: ignore[no-untyped-call]
        provider.shutdown()
    if result != SpanExportResult.SUCCESS:
        raise ExportError(f"the OTLP endpoint {endpoint} did not accept the spans")


def _reachable(endpoint: str, timeout: float) -> None:
    """``ExportError`` unless a TCP connection to ``endpoint``'s host and port opens (unless a
    proxy in the environment carries the export: then the exporter finds out itself)."""
    parsed = urllib.parse.urlsplit(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ExportError(f"the OTLP endpoint {endpoint!r} is not an http(s) URL")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        raise ExportError(f"the OTLP endpoint {endpoint!r} has no valid port") from None
    if urllib.request.getproxies().get(parsed.scheme) and not urllib.request.proxy_bypass(
        parsed.hostname
    ):
        return  # the exporter goes through that proxy (HTTP(S)_PROXY): a direct try says nothing
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ExportError(
            f"could not connect to the OTLP endpoint {endpoint} ({exc.strerror or exc}): "
            "is a collector listening there?"
        ) from None
