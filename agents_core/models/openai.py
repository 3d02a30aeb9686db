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
output); the finish reason is the API's own. Needs the ``openai`` extra.

Timeouts and retries: the SDK's own defaults (600 s a try, 2 retries) leave an interactive user
waiting half an hour; here each try gets ``timeout`` (``DEFAULT_TIMEOUT``: 60 s, of which 10 s to
connect) and the SDK retries rate limits, server errors and lost connections ``max_retries``
times (``DEFAULT_MAX_RETRIES``: 1), so a dead server is reported within about two minutes.

Every failure raises a ``ModelError`` subclass with one readable line that says what to check,
which the runner records on the run before failing it: ``ModelConnectionError`` (no server at
``base_url``), ``ModelTimeoutError``, ``ModelStatusError`` (an HTTP error status, with the
server's message) and ``ModelResponseError`` (a 2xx body that is not a chat completion: cut-off
JSON, an HTML page, another shape, a choice without a message, a token count that is not one).
"""

from __future__ import annotations

import json
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from agents_core.db import Price
from agents_core.models.chat import chat_tools, to_chat_messages
from agents_core.runner.model import (
    ModelConnectionError,
    ModelError,
    ModelRequest,
    ModelResponse,
    ModelResponseError,
    ModelStatusError,
    ModelTimeoutError,
    ToolRequest,
    Usage,
)

__all__ = ["DEFAULT_MAX_RETRIES", "DEFAULT_TIMEOUT", "OpenAIChatModel"]

#: Seconds a try may take (a person waits for it), and the part of it allowed for connecting.
DEFAULT_TIMEOUT = 60.0
_CONNECT_TIMEOUT = 10.0
#: Retries after a rate limit, a server error or a lost connection (the SDK's own back-off).
DEFAULT_MAX_RETRIES = 1
#: How much of an unexpected body an error quotes.
_EXCERPT = 120


class OpenAIChatModel:
    """A ``ModelClient`` for ``model`` on the Chat Completions API, with ``tools``.

    With ``client`` (an ``AsyncOpenAI`` of the caller's), that client is used with its own
    timeout and retries (unless ``timeout`` or ``max_retries`` are given) and left open by
    ``aclose``; otherwise one is made from ``base_url`` and ``api_key`` (else the
    ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` environment variables), with ``timeout`` seconds
    a try (default ``DEFAULT_TIMEOUT``) and ``max_retries`` (default ``DEFAULT_MAX_RETRIES``),
    and closed by ``aclose``. ``price`` prices every call (``ModelCall.cost``).
    """

    def __init__(
        self,
        model: str,
        *,
        client: AsyncOpenAI | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        price: Price | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError("model must be a model name")
        if price is not None and not isinstance(price, Price):
            raise TypeError("price must be a Price")
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout < float("inf")
        ):
            raise ValueError("timeout must be a positive number of seconds")
        if max_retries is not None and (
            isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0
        ):
            raise ValueError("max_retries must be a non-negative integer")
        self.model = model
        self.price = price
        self._owns_client = client is None
        if client is None:
            seconds = DEFAULT_TIMEOUT if timeout is None else float(timeout)
            try:
                client = AsyncOpenAI(
                    base_url=base_url,
                    api_key=api_key,
                    timeout=openai.Timeout(seconds, connect=min(seconds, _CONNECT_TIMEOUT)),
                    max_retries=DEFAULT_MAX_RETRIES if max_retries is None else max_retries,
                )
            except openai.OpenAIError as exc:  # e.g. no API key anywhere
                raise ModelError(str(exc)) from exc
        elif timeout is not None or max_retries is not None:
            client = client.with_options(
                timeout=openai.NOT_GIVEN if timeout is None else float(timeout),
                max_retries=openai.NOT_GIVEN if max_retries is None else max_retries,
            )
        self.client = client

    async def complete(self, request: ModelRequest) -> ModelResponse:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": to_chat_messages(request.messages, instructions=request.agent.instructions),
        }
        if request.tools:
            params["tools"] = chat_tools(request.tools)
        completion = await self._create(params)
        choices = getattr(completion, "choices", None)
        if not isinstance(completion, ChatCompletion) or not isinstance(choices, list):
            raise ModelResponseError(
                f"{self.model}: the server answered with something that is not a chat "
                f"completion: {_excerpt(completion)}",
                hint=f"check that {self.client.base_url} is an OpenAI-compatible API",
            )
        if not choices:
            raise ModelResponseError(f"{self.model}: the response has no choices")
        # The SDK builds a 2xx body without validating it: what is used here is checked here.
        choice = choices[0]
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None)
        finish_reason = getattr(choice, "finish_reason", None)
        if message is None or not isinstance(text, str | None):
            raise self._malformed("its first choice has no assistant message")
        if not isinstance(finish_reason, str | None):
            raise self._malformed(f"its finish reason is {_excerpt(repr(finish_reason))}")
        requested = getattr(message, "tool_calls", None) or []
        if not isinstance(requested, list):
            raise self._malformed(f"its tool calls are {_excerpt(repr(requested))}")
        answered_by = completion.model
        return ModelResponse(
            text=text,
            tool_calls=[_tool_request(self.model, call) for call in requested],
            usage=self._usage(completion.usage),
            model=answered_by if isinstance(answered_by, str) and answered_by else self.model,
            finish_reason=finish_reason,
            price=self.price,
        )

    def _malformed(self, what: str) -> ModelResponseError:
        return ModelResponseError(
            f"{self.model}: the response is not a valid chat completion: {what}",
            hint=f"check that {self.client.base_url} is an OpenAI-compatible API",
        )

    def _usage(self, usage: Any) -> Usage:
        """The call's tokens; a count that is not a number from 0 is a ``ModelResponseError``
        (recording it as 0 would lose what the call cost)."""
        if usage is None:
            return Usage()
        prompt_details = getattr(usage, "prompt_tokens_details", None)
        completion_details = getattr(usage, "completion_tokens_details", None)
        counts = {
            "prompt_tokens": getattr(usage, "prompt_tokens", None),
            "completion_tokens": getattr(usage, "completion_tokens", None),
            "cached_tokens": getattr(prompt_details, "cached_tokens", None),
            "reasoning_tokens": getattr(completion_details, "reasoning_tokens", None),
        }
        for name, count in counts.items():
            if count is not None and (
                isinstance(count, bool) or not isinstance(count, int) or count < 0
            ):
                raise self._malformed(
                    f"its usage's {name} is not a count from 0: {_excerpt(repr(count))}"
                )
        return Usage(
            input_tokens=counts["prompt_tokens"] or 0,
            output_tokens=counts["completion_tokens"] or 0,
            cached_input_tokens=counts["cached_tokens"] or 0,
            reasoning_tokens=counts["reasoning_tokens"] or 0,
        )

    async def _create(self, params: dict[str, Any]) -> object:
        """The API's answer, every failure of the call translated to a ``ModelError``."""
        where = str(self.client.base_url)
        try:
            return await self.client.chat.completions.create(**params)
        except openai.APITimeoutError as exc:
            raise ModelTimeoutError(
                f"{self.model}: no answer from {where} within {_seconds(self.client.timeout)}",
                hint="check the server's load, or give a longer timeout",
            ) from exc
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise ModelConnectionError(
                f"{self.model}: could not connect to {where}: {cause}",
                hint="check that the server runs and that the base URL is right",
            ) from exc
        except openai.APIStatusError as exc:
            reason = _reason(exc)
            raise ModelStatusError(
                f"{self.model}: HTTP {exc.status_code}: {reason}",
                status=exc.status_code,
                server_message=reason,
                hint=_status_hint(exc.status_code),
            ) from exc
        except (json.JSONDecodeError, openai.APIResponseValidationError) as exc:
            raise ModelResponseError(
                f"{self.model}: the server's answer is not a valid chat completion ({exc})",
                hint=f"check that {where} is an OpenAI-compatible API",
            ) from exc
        except openai.OpenAIError as exc:
            raise ModelError(f"{self.model}: {exc}") from exc

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


def _status_hint(status: int) -> str:
    if status in (401, 403):
        return "check the API key (OPENAI_API_KEY)"
    if status == 404:
        return "check the model name and the base URL"
    if status == 429:
        return "the server's rate limit or quota: wait, or check the account's limits"
    if status >= 500:
        return "the server failed: try again later"
    return "check the request the server refused"


def _seconds(timeout: object) -> str:
    seconds = timeout.read if isinstance(timeout, openai.Timeout) else timeout
    return f"{seconds:g} s" if isinstance(seconds, int | float) else "the timeout"


def _excerpt(value: object) -> str:
    text = value if isinstance(value, str) else type(value).__name__
    text = " ".join(text.split())
    return repr(text[:_EXCERPT] + ("…" if len(text) > _EXCERPT else ""))


def _reason(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return exc.message
