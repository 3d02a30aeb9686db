"""``OpenAIChatModel``: the runner's ``ModelClient`` on OpenAI's Chat Completions API.

Usage::

    from agents_core.models import Price
    from agents_core.models.openai import OpenAIChatModel

    model = OpenAIChatModel(
        "gpt-4.1-mini",
        price=Price(input_per_million=0.40, output_per_million=1.60, cached_input_per_million=0.10),
    )  # OPENAI_API_KEY from the environment
    run = await AgentRunner(model, tools).run(session.id, "Where is my refund?")
    await model.aclose()

Any OpenAI-compatible server (vLLM, Ollama, LiteLLM, …) works through ``base_url``. The call
is not streamed. Usage maps cached input tokens (``prompt_tokens_details.cached_tokens``, part
of the input) and reasoning tokens (``completion_tokens_details.reasoning_tokens``, part of the
output); the finish reason is the API's own. The SDK retries rate limits and server errors
itself (``max_retries`` of the client); what still fails raises ``ModelError`` with a readable
text, which the runner records on the run before failing it. Needs the ``openai`` extra.
"""

from __future__ import annotations

from typing import Any

import openai
from openai import AsyncOpenAI

from agents_core.db import Price
from agents_core.models.chat import chat_tools, to_chat_messages
from agents_core.runner.model import ModelError, ModelRequest, ModelResponse, ToolRequest, Usage

__all__ = ["OpenAIChatModel"]


class OpenAIChatModel:
    """A ``ModelClient`` for ``model`` on the Chat Completions API, with ``tools``.

    With ``client`` (an ``AsyncOpenAI`` of the caller's), that client is used as it is and left
    open by ``aclose``; otherwise one is made from ``base_url`` and ``api_key`` (else the
    ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` environment variables) and closed by ``aclose``.
    """

    def __init__(
        self,
        model: str,
        *,
        client: AsyncOpenAI | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        price: Price | None = None,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError("model must be a model name")
        if price is not None and not isinstance(price, Price):
            raise TypeError("price must be a Price")
        self.model = model
        self.price = price
        self._owns_client = client is None
        if client is None:
            try:
                client = AsyncOpenAI(base_url=base_url, api_key=api_key)
            except openai.OpenAIError as exc:  # e.g. no API key anywhere
                raise ModelError(str(exc)) from exc
        self.client = client

    async def complete(self, request: ModelRequest) -> ModelResponse:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": to_chat_messages(request.messages, instructions=request.agent.instructions),
        }
        if request.tools:
            params["tools"] = chat_tools(request.tools)
        try:
            completion = await self.client.chat.completions.create(**params)
        except openai.APIStatusError as exc:
            raise ModelError(f"{self.model}: HTTP {exc.status_code}: {_reason(exc)}") from exc
        except openai.APIConnectionError as exc:  # includes timeouts
            raise ModelError(f"{self.model}: {exc}") from exc
        if not completion.choices:
            raise ModelError(f"{self.model}: the response has no choices")
        choice = completion.choices[0]
        return ModelResponse(
            text=choice.message.content,
            tool_calls=[
                _tool_request(self.model, call) for call in choice.message.tool_calls or []
            ],
            usage=_usage(completion.usage),
            model=completion.model or self.model,
            finish_reason=choice.finish_reason,
            price=self.price,
        )

    async def aclose(self) -> None:
        """Close the client if this model made it (an injected one is left open)."""
        if self._owns_client:
            await self.client.close()

    def __repr__(self) -> str:
        return f"OpenAIChatModel({self.model!r}, base_url={str(self.client.base_url)!r})"


def _tool_request(model: str, call: Any) -> ToolRequest:
    function = getattr(call, "function", None)
    name = getattr(function, "name", None)
    arguments = getattr(function, "arguments", None)
    if getattr(call, "type", None) != "function" or not isinstance(name, str) or not name:
        raise ModelError(f"{model}: malformed tool call in the response: {call!r}"[:500])
    return ToolRequest(
        name=name,
        arguments=arguments if isinstance(arguments, str) else "{}",
        id=call.id if isinstance(call.id, str) and call.id else None,
    )


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cached_input_tokens=getattr(prompt_details, "cached_tokens", None) or 0,
        reasoning_tokens=getattr(completion_details, "reasoning_tokens", None) or 0,
    )


def _reason(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return exc.message
