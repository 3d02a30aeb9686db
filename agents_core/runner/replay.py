"""What ``AgentRunner.replay`` plays back: a recorded turn's model answers and tool results.

A replay runs the turn again in a fork of its session taken just before it. Tools never run:
``RecordedTools`` answers each call with the recorded tool call of the same name and arguments,
in order (an unmatched call is an ``error`` "not in the recording"). The model is the recorded
one unless another is given: ``RecordedModel`` answers with the turn's recorded assistant
messages, in order, with the recorded usage, model name, price and finish reason of each call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agents_core.db import Message, MessageRole, ModelCall, ToolCall, ToolCallStatus
from agents_core.runner.model import (
    ModelRequest,
    ModelResponse,
    ScriptExhaustedError,
    ToolDefinition,
    ToolRequest,
    Usage,
)
from agents_core.runner.tools import ToolError, ToolRegistry

__all__ = ["NOT_RECORDED", "RecordedModel", "RecordedTools"]

#: The start of the error of a tool call a replay found no recording for.
NOT_RECORDED = "not in the recording"


class RecordedModel:
    """A ``ModelClient`` that gives a recorded turn's answers again, in order."""

    def __init__(self, turn: Sequence[Message], model_calls: Sequence[ModelCall]) -> None:
        answers = [m for m in turn if m.role is MessageRole.assistant]
        calls = [c for c in model_calls if c.status.value == "success"]
        self.model = calls[0].model if calls else "recorded"
        self._responses = [
            _response(answer, calls[n] if n < len(calls) else None)
            for n, answer in enumerate(answers)
        ]
        # A last call answered with neither text nor tools left no message: it ended the turn.
        if len(calls) > len(answers):
            self._responses.append(_response(None, calls[len(answers)]))
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest) -> ModelResponse:
        if len(self.requests) >= len(self._responses):
            raise ScriptExhaustedError(
                f"the recording has {len(self._responses)} model answers, no more"
            )
        self.requests.append(request)
        return self._responses[len(self.requests) - 1]


class RecordedTools(ToolRegistry):
    """The definitions of ``tools``, with the recorded results of ``calls`` instead of running."""

    def __init__(self, tools: ToolRegistry, calls: Sequence[ToolCall]) -> None:
        super().__init__()
        self._live = tools
        self._unused = list(calls)

    @property
    def names(self) -> list[str]:
        return self._live.names

    def definitions(self, names: list[str] | None = None) -> list[ToolDefinition]:
        return self._live.definitions(names)

    def __contains__(self, name: object) -> bool:
        return name in self._live

    def validate(self, name: str, arguments: str) -> dict[str, Any]:
        return self._live.validate(name, arguments)

    async def execute(self, name: str, arguments: str) -> str:
        for index, call in enumerate(self._unused):
            if call.tool_name == name and call.input == arguments:
                del self._unused[index]
                output = call.output or ""
                if call.status is ToolCallStatus.error:
                    raise ToolError(output)
                return output
        raise ToolError(f"{NOT_RECORDED}: tool {name!r} with arguments {arguments}")


def _response(answer: Message | None, call: ModelCall | None) -> ModelResponse:
    requested = [] if answer is None else answer.requested_tool_calls
    usage: Mapping[str, int] = (
        {}
        if call is None
        else {
            "input_tokens": call.input_tokens,
            "output_tokens": call.output_tokens,
            "cached_input_tokens": call.cached_input_tokens,
            "reasoning_tokens": call.reasoning_tokens,
        }
    )
    return ModelResponse(
        text=None if answer is None else answer.content or None,
        tool_calls=[ToolRequest(r.name, r.arguments, r.id) for r in requested],
        usage=Usage(**usage),
        model=None if call is None else call.model,
        finish_reason=None if call is None else call.finish_reason,
        price=None if call is None else call.price,
    )
