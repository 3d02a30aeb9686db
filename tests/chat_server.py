"""A Chat Completions server on loopback that replays scripted responses and checks requests.

It checks every request the way the real API does, and answers a violation with the API's
400 error (and remembers it in ``violations``): a ``tool`` message must answer a call of the
assistant message before it, every call of an assistant message must be answered before the
next other message, call ids are unique, and every tool is ``{"type": "function", "function":
{"name", "parameters": <JSON Schema of an object>}}``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ChatServer", "Reply", "completion", "error", "raw", "serve"]


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    #: Sent instead of ``body`` as JSON (a cut-off body, an HTML page, ...).
    raw: bytes | None = None
    content_type: str = "application/json"
    #: Seconds to wait before answering (a server slower than the client's timeout).
    delay: float = 0.0


def raw(status: int, data: bytes, content_type: str = "application/json") -> Reply:
    """An answer of exactly ``data`` (whatever it is)."""
    return Reply(status, {}, raw=data, content_type=content_type)


def completion(
    text: str | None = None,
    tool_calls: Sequence[tuple[str, str, str]] = (),
    *,
    model: str = "gpt-test",
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    finish_reason: str | None = None,
) -> Reply:
    """A 200 answer: ``tool_calls`` as ``(id, name, arguments)``."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [
            {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}
            for id, name, arguments in tool_calls
        ]
    return Reply(
        200,
        {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": cached_tokens},
                "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
            },
        },
    )


def error(status: int, message: str, kind: str = "server_error") -> Reply:
    # retry-after-ms keeps the SDK's retries quick in tests.
    return Reply(status, {"error": {"message": message, "type": kind}}, {"retry-after-ms": "10"})


Step = Reply | Callable[[dict[str, Any]], Reply]


class ChatServer:
    """Replays ``steps`` in order, one per request; ``requests`` keeps every request body."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        self.requests: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self._lock = threading.Lock()
        self.base_url = ""

    def handle(self, path: str, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            if path.rstrip("/") != "/v1/chat/completions":
                return error(404, f"unknown path {path}", "invalid_request_error")
            problems = check_request(body)
            if problems:
                self.violations.extend(problems)
                return error(400, "; ".join(problems), "invalid_request_error")
            if not self.steps:
                self.violations.append("more requests than scripted steps")
                return error(500, "script exhausted")
            step = self.steps.pop(0)
        return step(body) if callable(step) else step


def check_request(body: dict[str, Any]) -> list[str]:
    """What the real API would refuse in ``body``."""
    problems: list[str] = []
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.append("'model' is required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "'messages' must be a non-empty list"]
    seen: set[str] = set()
    pending: list[str] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                problems.append(
                    f"messages[{index}]: messages with role 'tool' must be a response to a "
                    f"preceding message with 'tool_calls' (tool_call_id {call_id!r})"
                )
            else:
                pending.remove(call_id)
            if not isinstance(message.get("content"), str):
                problems.append(f"messages[{index}]: a tool message needs string content")
            continue
        if pending:
            problems.append(
                f"messages[{index}]: an assistant message with 'tool_calls' must be followed by "
                f"tool messages responding to each 'tool_call_id' (missing: {pending})"
            )
            pending = []
        if role not in {"system", "user", "assistant", "developer"}:
            problems.append(f"messages[{index}]: unknown role {role!r}")
        calls = message.get("tool_calls")
        if role == "assistant" and calls:
            for call in calls:
                call_id = call.get("id")
                function = call.get("function") or {}
                if call.get("type") != "function" or not function.get("name"):
                    problems.append(f"messages[{index}]: malformed tool call {call!r}")
                if not isinstance(function.get("arguments"), str):
                    problems.append(f"messages[{index}]: tool call arguments must be a string")
                if not isinstance(call_id, str) or call_id in seen:
                    problems.append(f"messages[{index}]: duplicate or missing call id {call_id!r}")
                seen.add(call_id)
                pending.append(call_id)
        elif not isinstance(message.get("content"), str):
            problems.append(f"messages[{index}]: content must be a string")
    if pending:
        problems.append(f"the last assistant message's tool calls are unanswered: {pending}")
    for tool in body.get("tools") or []:
        function = tool.get("function") or {}
        parameters = function.get("parameters")
        if tool.get("type") != "function" or not function.get("name"):
            problems.append(f"tools: malformed tool {tool!r}")
        elif not isinstance(parameters, dict) or parameters.get("type") != "object":
            problems.append(f"tools: {function['name']}: parameters must be a JSON Schema object")
    return problems


@contextmanager
def serve(steps: Sequence[Step]) -> Iterator[ChatServer]:
    """A ``ChatServer`` listening on 127.0.0.1 (a free port) while the block runs."""
    chat = ChatServer(steps)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                reply = error(400, "body is not JSON", "invalid_request_error")
            else:
                reply = chat.handle(self.path, body)
            data = json.dumps(reply.body).encode() if reply.raw is None else reply.raw
            if reply.delay:
                time.sleep(reply.delay)
            try:
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type)
                self.send_header("content-length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (its timeout): nobody reads the answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    chat.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield chat
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
