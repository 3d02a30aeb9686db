"""What the runner needs from a language model, and a deterministic one for tests and the demo.

A model client implements ``ModelClient``: turn a ``ModelRequest`` (the agent, its conversation
so far, the definitions of its tools) into a ``ModelResponse`` (text, tool calls, usage, the
API's finish reason, the price the call is charged at). ``agents_core.models.OpenAIChatModel``
does it for OpenAI's Chat Completions API and compatible servers; ``agents_core.models.chat``
converts a conversation into that API's messages. The runner never needs to change for a new
client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from agents_core.db import Agent, Message, Price

__all__ = [
    "ModelClient",
    "ModelConnectionError",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "ModelResponseError",
    "ModelStatusError",
    "ModelTimeoutError",
    "ScriptExhaustedError",
    "ScriptedModel",
    "ToolDefinition",
    "ToolRequest",
    "Usage",
]


@dataclass(frozen=True, slots=True)
class Usage:
    """The tokens one model call used."""

    #: All prompt tokens, cached ones included.
    input_tokens: int = 0
    output_tokens: int = 0
    #: The part of ``input_tokens`` served from the provider's cache.
    cached_input_tokens: int = 0
    #: The part of ``output_tokens`` spent on reasoning.
    reasoning_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """The model asks for ``name`` to be called with ``arguments`` (a JSON object, as text).

    ``id`` is the model's id of the call, which its result must answer; the runner makes one
    for a model that gives none.
    """

    name: str
    arguments: str = "{}"
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """What a model is told about a tool: its name, what it does, its parameters' JSON Schema."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One model call: the agent, its conversation so far (oldest first) and its tools."""

    agent: Agent
    messages: Sequence[Message]
    tools: Sequence[ToolDefinition]


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """The model's answer: text for the user and/or tools to call, and what the call cost."""

    text: str | None = None
    tool_calls: Sequence[ToolRequest] = ()
    usage: Usage = field(default_factory=Usage)
    #: The model that answered, as the API names it.
    model: str | None = None
    #: The API's own finish reason (``stop``, ``tool_calls``, ``length``, …).
    finish_reason: str | None = None
    #: The price the call is charged at: the runner computes and stores its cost from it.
    price: Price | None = None

    @property
    def cost(self) -> float:
        if self.price is None:
            return 0.0
        usage = self.usage
        return self.price.cost(usage.input_tokens, usage.output_tokens, usage.cached_input_tokens)


class ModelError(Exception):
    """A model API refused or failed a call (after its client's own retries).

    ``str(error)`` is one readable line that ends with what to check. The subclasses tell the
    kinds apart: ``ModelConnectionError`` (``ModelTimeoutError``), ``ModelStatusError`` and
    ``ModelResponseError``; a ``ScriptedModel`` or another client may raise ``ModelError`` itself.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        server_message: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(f"{message}; {hint}" if hint else message)
        #: The HTTP status, when the server answered.
        self.status = status
        #: What the server said about the failure, when it said something.
        self.server_message = server_message
        #: What to check.
        self.hint = hint


class ModelConnectionError(ModelError):
    """The model's server could not be reached, or the connection broke."""


class ModelTimeoutError(ModelConnectionError):
    """The model's server did not answer within the client's timeout."""


class ModelStatusError(ModelError):
    """The model's server answered with an error status (``status``, ``server_message``)."""


class ModelResponseError(ModelError):
    """The model's server answered, but not with a completion: a body that is not JSON (cut
    off, an HTML page), or JSON of another shape."""


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

    Responses are recorded like a real model's: named ``model``, charged at ``price``, with the
    finish reason an API would give (``tool_calls`` or ``stop``) unless the step sets its own.

    >>> model = ScriptedModel([
    ...     ModelResponse(tool_calls=[ToolRequest("clock")]),
    ...     lambda request: ModelResponse(text=f"It is {request.messages[-1].content}."),
    ... ])
    """

    def __init__(
        self, steps: Iterable[Step], *, model: str = "scripted", price: Price | None = None
    ) -> None:
        self._steps = list(steps)
        self.model = model
        self.price = price
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
        response = step(request) if callable(step) else step
        return replace(
            response,
            model=response.model or self.model,
            price=response.price or self.price,
            finish_reason=response.finish_reason
            or ("tool_calls" if response.tool_calls else "stop"),
        )
