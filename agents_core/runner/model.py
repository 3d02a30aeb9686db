"""What the runner needs from a language model, and a deterministic one for tests and the demo.

An adapter for a real model (OpenAI-style chat completions, say) implements ``ModelClient``:
turn the conversation and the agent's enabled tools into a request, and the reply into a
``ModelResponse``. The runner never needs to change for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from agents_core.db import Agent, Message

__all__ = [
    "ModelClient",
    "ModelRequest",
    "ModelResponse",
    "ScriptExhaustedError",
    "ScriptedModel",
    "ToolRequest",
    "Usage",
]


@dataclass(frozen=True, slots=True)
class Usage:
    """What one model call cost."""

    tokens: int = 0
    cost: float = 0.0


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """The model asks for ``name`` to be called with ``arguments`` (a JSON object, as text)."""

    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One model call: the agent, its conversation so far (oldest first) and its enabled tools."""

    agent: Agent
    messages: Sequence[Message]
    tools: Sequence[str]


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """The model's answer: text for the user and/or tools to call, and the call's usage."""

    text: str | None = None
    tool_calls: Sequence[ToolRequest] = ()
    usage: Usage = field(default_factory=Usage)


@runtime_checkable
class ModelClient(Protocol):
    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Answer the conversation in ``request``."""
        ...


#: A scripted step: a fixed response, a function of the request, or an exception to raise.
Step = ModelResponse | Callable[[ModelRequest], ModelResponse] | BaseException


class ScriptExhaustedError(RuntimeError):
    """A ``ScriptedModel`` was asked for more responses than it was given."""


class ScriptedModel:
    """A ``ModelClient`` that plays back ``steps`` in order; ``requests`` keeps what it was asked.

    >>> model = ScriptedModel([
    ...     ModelResponse(tool_calls=[ToolRequest("clock")]),
    ...     lambda request: ModelResponse(text=f"It is {request.messages[-1].content}."),
    ... ])
    """

    def __init__(self, steps: Iterable[Step]) -> None:
        self._steps = list(steps)
        self.requests: list[ModelRequest] = []

    @property
    def remaining(self) -> int:
        return len(self._steps) - len(self.requests)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        if self.remaining <= 0:
            raise ScriptExhaustedError(f"the script has only {len(self._steps)} steps")
        step = self._steps[len(self.requests)]
        self.requests.append(request)
        if isinstance(step, BaseException):
            raise step
        return step(request) if callable(step) else step
