"""Runs as OpenTelemetry GenAI spans: the SDK's in-memory exporter, and a real OTLP receiver."""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agents_core.db import Run
from agents_core.trace.otel import COST_ATTRIBUTE, ExportError, export_run, record_run
from tests.recorded import MODEL_ERROR, record_demo, record_hostile

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns(value: datetime) -> int:
    """A record's datetime as span nanoseconds."""
    return (value - EPOCH) // timedelta(microseconds=1) * 1000


def spans_of(run: Run, **options: Any) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    record_run(run, tracer=provider.get_tracer("test"), agent_name="demo-assistant", **options)
    provider.shutdown()
    return list(exporter.get_finished_spans())


def by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


async def test_a_run_is_an_invoke_agent_span_with_chat_and_tool_children(backend: str) -> None:
    demo = await record_demo()
    run = demo.runs[2]  # its tool call fails
    spans = spans_of(run)
    names = by_name(spans)
    assert sorted(names) == [
        "chat scripted-demo",
        "execute_tool calculator",
        "invoke_agent demo-assistant",
    ]
    (root,) = names["invoke_agent demo-assistant"]
    chats = sorted(names["chat scripted-demo"], key=lambda s: s.start_time or 0)
    (tool,) = names["execute_tool calculator"]
    assert root.parent is None
    assert root.context is not None
    for child in (*chats, tool):
        assert child.parent is not None
        assert child.parent.span_id == root.context.span_id
        assert child.context is not None
        assert child.context.trace_id == root.context.trace_id
    assert root.kind == SpanKind.INTERNAL
    assert all(chat.kind == SpanKind.CLIENT for chat in chats)
    # Times are the record's, to the microsecond.
    assert root.start_time == ns(run.started_at)
    assert run.completed_at is not None
    assert root.end_time is not None
    assert root.end_time >= ns(run.completed_at)
    for chat, call in zip(chats, run.model_calls, strict=True):
        assert chat.start_time == ns(call.started_at)
        assert chat.end_time == ns(call.started_at + timedelta(milliseconds=call.duration_ms))
        attributes = dict(chat.attributes or {})
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.request.model"] == "scripted-demo"
        assert attributes["gen_ai.usage.input_tokens"] == call.input_tokens
        assert attributes["gen_ai.usage.output_tokens"] == call.output_tokens
        assert attributes["gen_ai.usage.cache_read.input_tokens"] == call.cached_input_tokens
        assert attributes["gen_ai.usage.reasoning.output_tokens"] == call.reasoning_tokens
        assert attributes["gen_ai.response.finish_reasons"] == (call.finish_reason,)
        assert attributes["gen_ai.conversation.id"] == str(run.session_id)
        assert attributes[COST_ATTRIBUTE] == pytest.approx(call.cost)
        assert chat.status.status_code == StatusCode.UNSET
    root_attributes = dict(root.attributes or {})
    assert root_attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root_attributes["gen_ai.agent.name"] == "demo-assistant"
    assert root_attributes["gen_ai.agent.id"] == str(run.agent_id)
    assert root_attributes["gen_ai.conversation.id"] == str(run.session_id)
    assert root_attributes["gen_ai.usage.input_tokens"] == sum(
        c.input_tokens for c in run.model_calls
    )
    assert root_attributes["gen_ai.usage.output_tokens"] == sum(
        c.output_tokens for c in run.model_calls
    )
    assert root_attributes[COST_ATTRIBUTE] == pytest.approx(run.cost)
    assert root.status.status_code == StatusCode.OK
    tool_call = run.tool_calls[0]
    tool_attributes = dict(tool.attributes or {})
    assert tool_attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool_attributes["gen_ai.tool.name"] == "calculator"
    assert tool_attributes["gen_ai.tool.call.id"] == tool_call.request_id
    assert tool_attributes["error.type"] == "ZeroDivisionError"
    assert tool.status.status_code == StatusCode.ERROR
    assert tool.status.description == "ZeroDivisionError: division by zero"
    assert tool.start_time == ns(tool_call.started_at)
    # Arguments and results stay home unless asked for.
    assert "gen_ai.tool.call.arguments" not in tool_attributes
    assert "gen_ai.tool.call.result" not in tool_attributes


async def test_tool_content_only_when_the_user_opts_in(backend: str) -> None:
    demo = await record_demo()
    run = demo.runs[0]
    (tool,) = by_name(spans_of(run, capture_content=True))["execute_tool calculator"]
    attributes = dict(tool.attributes or {})
    assert attributes["gen_ai.tool.call.arguments"] == run.tool_calls[0].input
    assert attributes["gen_ai.tool.call.result"] == "391"
    (root,) = by_name(spans_of(run, provider_name="openai"))["invoke_agent demo-assistant"]
    assert dict(root.attributes or {})["gen_ai.provider.name"] == "openai"


async def test_a_failed_model_call_and_run_are_errors(backend: str) -> None:
    hostile = await record_hostile()
    failed = hostile.runs[1]
    assert failed.status.value == "failed"
    spans = spans_of(failed)
    (root,) = by_name(spans)["invoke_agent demo-assistant"]
    (chat,) = [span for span in spans if span.name.startswith("chat ")]
    assert chat.status.status_code == StatusCode.ERROR
    assert dict(chat.attributes or {})["error.type"] == "ModelError"
    assert "gen_ai.response.model" not in dict(chat.attributes or {})
    assert root.status.status_code == StatusCode.ERROR
    assert root.status.description == f"ModelError: {MODEL_ERROR}"
    assert dict(root.attributes or {})["error.type"] == "ModelError"
    assert dict(root.attributes or {})["agents_core.run.status"] == "failed"


class _Receiver(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP protobuf exports on /v1/traces, like a collector."""

    requests: list[ExportTraceServiceRequest]
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/v1/traces" or self.headers["Content-Type"] != "application/x-protobuf":
            self.send_response(404)
            self.end_headers()
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        type(self).requests.append(request)
        type(self).headers_seen.append(dict(self.headers))
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    headers_seen: list[dict[str, str]]

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"requests": [], "headers_seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def decoded(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """Span name -> (span, attributes as Python values), and the resource's attributes."""
    spans: dict[str, Any] = {}
    resource: dict[str, Any] = {}
    for resource_spans in request.resource_spans:
        for attribute in resource_spans.resource.attributes:
            resource[attribute.key] = attribute.value.string_value
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                values: dict[str, Any] = {}
                for attribute in span.attributes:
                    kind = attribute.value.WhichOneof("value")
                    value = getattr(attribute.value, kind)
                    if kind == "array_value":
                        value = [v.string_value for v in value.values]
                    values[attribute.key] = value
                spans.setdefault(span.name, []).append((span, values))
    return {"spans": spans, "resource": resource}


async def test_export_run_sends_otlp_to_a_real_receiver(
    backend: str, receiver: tuple[str, type[_Receiver]]
) -> None:
    url, handler = receiver
    demo = await record_demo()
    run = demo.runs[2]
    export_run(
        run,
        endpoint=f"{url}/v1/traces",
        agent_name="demo-assistant",
        capture_content=True,
        headers={"x-tenant": "t1"},
    )
    (request,) = handler.requests
    assert handler.headers_seen[0]["x-tenant"] == "t1"
    found = decoded(request)
    assert found["resource"]["service.name"] == "agents-core"
    spans = found["spans"]
    assert sorted((name, len(items)) for name, items in spans.items()) == [
        ("chat scripted-demo", 2),
        ("execute_tool calculator", 1),
        ("invoke_agent demo-assistant", 1),
    ]
    ((root, root_attributes),) = spans["invoke_agent demo-assistant"]
    ((tool, tool_attributes),) = spans["execute_tool calculator"]
    assert tool.parent_span_id == root.span_id
    assert tool.trace_id == root.trace_id
    assert root.start_time_unix_nano == ns(run.started_at)
    assert root_attributes["gen_ai.conversation.id"] == str(run.session_id)
    assert root_attributes["agents_core.cost"] == pytest.approx(run.cost)
    assert tool_attributes["gen_ai.tool.call.id"] == run.tool_calls[0].request_id
    assert tool_attributes["gen_ai.tool.call.arguments"] == run.tool_calls[0].input
    assert tool.status.code == 2  # STATUS_CODE_ERROR
    for chat, attributes in spans["chat scripted-demo"]:
        assert chat.parent_span_id == root.span_id
        assert attributes["gen_ai.response.finish_reasons"] in (["tool_calls"], ["stop"])


async def test_export_run_reports_a_refusal(
    backend: str, receiver: tuple[str, type[_Receiver]]
) -> None:
    url, handler = receiver
    handler.status = 400
    demo = await record_demo()
    with pytest.raises(ExportError, match="did not accept"):
        export_run(demo.runs[0], endpoint=f"{url}/v1/traces", agent_name="a", timeout=5)


async def test_otel_service_name_names_the_service(
    backend: str, receiver: tuple[str, type[_Receiver]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = receiver
    demo = await record_demo()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "support-bot")
    export_run(demo.runs[0], endpoint=f"{url}/v1/traces", agent_name="a")
    export_run(demo.runs[0], endpoint=f"{url}/v1/traces", agent_name="a", service_name="given")
    names = [decoded(request)["resource"]["service.name"] for request in handler.requests]
    assert names == ["support-bot", "given"]


async def test_no_collector_is_could_not_connect_at_once(backend: str) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = await record_demo()
    with pytest.raises(ExportError, match="could not connect") as info:
        export_run(demo.runs[0], endpoint=f"http://127.0.0.1:{port}/v1/traces", agent_name="a")
    assert "did not accept" not in str(info.value)
    with pytest.raises(ExportError, match="not an http"):
        export_run(demo.runs[0], endpoint="ftp://x/v1/traces", agent_name="a")


class _Proxy(_Receiver):
    """An HTTP proxy that is also the collector: it takes the request for the absolute URL a
    proxied client sends, notes that URL, and answers as the collector would."""

    proxied: list[str]

    def do_POST(self) -> None:
        type(self).proxied.append(self.path)
        self.path = urllib.parse.urlsplit(self.path).path
        super().do_POST()


async def test_a_collector_behind_a_proxy_is_not_refused_by_the_connect_check(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exporter sends through ``HTTP_PROXY``; the check that a collector listens must not
    connect past the proxy to a host only the proxy reaches (it said 'could not connect')."""
    handler: type[_Proxy] = type(
        "Proxy", (_Proxy,), {"requests": [], "headers_seen": [], "proxied": []}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
    endpoint = "http://collector.invalid:4318/v1/traces"  # no such host: only the proxy knows
    try:
        demo = await record_demo()
        export_run(demo.runs[0], endpoint=endpoint, agent_name="a")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert handler.proxied == [endpoint]
    assert len(handler.requests) == 1
