"""A conversation as OpenAI Chat Completions messages (no SDK needed).

Usage::

    messages = to_chat_messages(history, instructions=agent.instructions)
    tools = chat_tools(definitions)

The conversion keeps what the API requires whatever the history holds: an assistant message's
``tool_calls`` come before their ``tool`` results, every result answers a call of the assistant
message before it, parallel calls stay in one assistant message, and each call gets a result.
Where the stored history cannot say it (a turn interrupted before a tool's result was stored, or
a result stored without the request it answers, as messages written before requests were
recorded), the conversion adds the missing half, marked as such, rather than dropping content.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from agents_core.db import Message, MessageRole
from agents_core.runner.model import ToolDefinition

__all__ = ["MISSING_RESULT", "UNRECORDED_TOOL", "chat_tools", "to_chat_messages"]

#: The result given to a requested call whose result was never stored.
MISSING_RESULT = "error: no result was recorded for this tool call (the turn was interrupted)"
#: The tool name given to a stored result whose request was not recorded.
UNRECORDED_TOOL = "unrecorded_tool"


def chat_tools(definitions: Iterable[ToolDefinition]) -> list[dict[str, Any]]:
    """Tool definitions as Chat Completions ``tools``."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": dict(tool.parameters),
            },
        }
        for tool in definitions
    ]


def to_chat_messages(
    messages: Sequence[Message], *, instructions: str | None = None
) -> list[dict[str, Any]]:
    """``messages`` (oldest first) as Chat Completions messages, after a system message of
    ``instructions`` if given."""
    out: list[dict[str, Any]] = []
    if instructions:
        out.append({"role": "system", "content": instructions})
    pending: list[str] = []  # requested ids of the current assistant message not yet answered
    for message in messages:
        if message.role == MessageRole.tool:
            answered = message.request_id
            if answered is None or answered not in pending:
                _close(out, pending)
                answered = answered or f"call_{message.tool_call_id or message.seq}"
                out.append(_assistant_asking(answered))
            else:
                pending.remove(answered)
            out.append({"role": "tool", "tool_call_id": answered, "content": message.content})
            continue
        _close(out, pending)
        if message.role == MessageRole.assistant and message.requested_tool_calls:
            out.append(
                {
                    "role": "assistant",
                    "content": message.content or None,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        }
                        for call in message.requested_tool_calls
                    ],
                }
            )
            pending = [call.id for call in message.requested_tool_calls]
        else:
            out.append({"role": message.role.value, "content": message.content})
    _close(out, pending)
    return out


def _close(out: list[dict[str, Any]], pending: list[str]) -> None:
    """Answer the calls of the last assistant message that got no stored result."""
    for call_id in pending:
        out.append({"role": "tool", "tool_call_id": call_id, "content": MISSING_RESULT})
    pending.clear()


def _assistant_asking(call_id: str) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": UNRECORDED_TOOL, "arguments": "{}"},
            }
        ],
    }
