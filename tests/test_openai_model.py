"""OpenAIChatModel against a Chat Completions server on loopback that checks every request."""

from __future__ import annotations

import re

import openai
import pytest
import pytest_asyncio
from bson import ObjectId
from openai import AsyncOpenAI

from agents_core.db import (
    AgentsRepository,
    CreateAgentDTO,
    ModelCallStatus,
    Run,
    RunsRepository,
    RunStatus,
    SessionsRepository,
    ToolCallStatus,
)
from agents_core.models import Price
from agents_core.models.openai import OpenAIChatModel
from agents_core.runner import (
    AgentRunner,
    ModelConnectionError,
    ModelError,
    ModelResponseError,
    ModelStatusError,
    ModelTimeoutError,
    ToolRegistry,
)
from tests.chat_server import ChatServer, Reply, completion, error, raw, serve

pytestmark = pytest.mark.usefixtures("backend")

PRICE = Price(input_per_million=2.0, output_per_million=8.0, cached_input_per_million=0.5)


def tools() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool("add")
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @registry.tool("lookup")
    async def lookup(order: str) -> dict[str, str]:
        """Look an order up."""
        if order == "missing":
            raise KeyError(order)
        return {"order": order, "status": "shipped"}

    registry.register("secret", lambda: "never", description="Not enabled for the agent.")
    return registry


async def routed_session() -> ObjectId:
    agent = await AgentsRepository().create(
        CreateAgentDTO(name="support", instructions="Be brief.", tools=["add", "lookup"])
    )
    session = await SessionsRepository().create("chat")
    await SessionsRepository().set_active_agent(session.id, agent.id)
    return session.id


@pytest_asyncio.fixture
async def client() -> AsyncOpenAI:
    # The SDK's client, pointed at each test's server by base_url; retries kept short.
    return AsyncOpenAI(api_key="test-key", base_url="http://127.0.0.1:9/v1", max_retries=2)


def model_on(server: ChatServer, *, price: Price | None = PRICE) -> OpenAIChatModel:
    return OpenAIChatModel("gpt-test", base_url=server.base_url, api_key="test-key", price=price)


async def test_a_three_turn_conversation_with_tools_is_accepted_and_recorded() -> None:
    sid = await routed_session()
    steps = [
        completion(tool_calls=[("call_a", "add", '{"a": 2, "b": 3}')], prompt_tokens=50),
        completion("2 + 3 = 5", prompt_tokens=80, completion_tokens=6),
        completion(
            "Checking.",
            tool_calls=[
                ("call_b", "lookup", '{"order": "A-1"}'),
                ("call_c", "add", '{"a": 1, "b": 1}'),
            ],
        ),
        completion("A-1 is shipped, and 1 + 1 = 2."),
        completion("You are welcome."),
    ]
    with serve(steps) as server:
        model = model_on(server)
        runner = AgentRunner(model, tools())
        runs = [
            await runner.run(sid, "what is 2 + 3?"),
            await runner.run(sid, "where is A-1, and 1 + 1?"),
            await runner.run(sid, "thanks"),
        ]
        await model.aclose()
    assert server.violations == []
    assert len(server.requests) == 5
    assert [r.status for r in runs] == [RunStatus.completed] * 3
    assert [len(r.model_calls) for r in runs] == [2, 2, 1]
    first = runs[0].model_calls[0]
    assert (first.model, first.input_tokens, first.output_tokens, first.price) == (
        "gpt-test",
        50,
        5,
        PRICE,
    )
    assert first.cost == pytest.approx((50 * 2.0 + 5 * 8.0) / 1e6)
    assert first.finish_reason == "tool_calls"
    assert runs[0].tokens == 50 + 5 + 80 + 6
    assert runs[0].cost == pytest.approx(sum(c.cost for c in runs[0].model_calls))
    # The parallel calls ran, in order, each answering its own request.
    assert [(c.tool_name, c.request_id, c.output) for c in runs[1].tool_calls] == [
        ("lookup", "call_b", '{"order": "A-1", "status": "shipped"}'),
        ("add", "call_c", "2"),
    ]
    # The last request carried the whole conversation, the system prompt and the tools.
    last = server.requests[-1]
    assert last["messages"][0] == {"role": "system", "content": "Be brief."}
    assert [m["role"] for m in last["messages"][1:]] == [
        "user", "assistant", "tool", "assistant",
        "user", "assistant", "tool", "tool", "assistant",
        "user",
    ]  # fmt: skip
    assert [t["function"]["name"] for t in last["tools"]] == ["add", "lookup"]
    add_schema = last["tools"][0]["function"]["parameters"]
    assert add_schema["required"] == ["a", "b"]
    assert last["tools"][0]["function"]["description"] == "Add two integers."


async def test_failing_refused_and_invalid_tool_calls_are_errors_the_model_sees() -> None:
    sid = await routed_session()
    steps = [
        completion(
            tool_calls=[
                ("c1", "lookup", '{"order": "missing"}'),
                ("c2", "secret", "{}"),
                ("c3", "add", '{"a": "two", "b": 3}'),
                ("c4", "add", "{not json"),
            ]
        ),
        completion("Some of that failed."),
    ]
    with serve(steps) as server:
        run = await AgentRunner(model_on(server), tools()).run(sid, "do things")
    assert server.violations == []
    assert run.status is RunStatus.completed
    statuses = [(c.tool_name, c.status) for c in run.tool_calls]
    assert statuses == [("lookup", ToolCallStatus.error)] + [
        (name, ToolCallStatus.error) for name in ("secret", "add", "add")
    ]
    outputs = [c.output or "" for c in run.tool_calls]
    assert "KeyError" in outputs[0]
    assert "not enabled" in outputs[1]
    assert "a: Input should be a valid integer" in outputs[2]
    assert "not valid JSON" in outputs[3]
    results = [m for m in server.requests[1]["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in results] == [
        ("c1", outputs[0]),
        ("c2", outputs[1]),
        ("c3", outputs[2]),
        ("c4", outputs[3]),
    ]


async def test_a_rate_limit_is_retried_by_the_sdk(client: AsyncOpenAI) -> None:
    sid = await routed_session()
    with serve([error(429, "slow down", "rate_limit_error"), completion("hello")]) as server:
        model = OpenAIChatModel("gpt-test", client=client.with_options(base_url=server.base_url))
        run = await AgentRunner(model, tools()).run(sid, "hi")
    assert run.status is RunStatus.completed
    assert len(server.requests) == 2
    assert [c.status for c in run.model_calls] == [ModelCallStatus.success]


async def test_a_server_error_after_the_retries_fails_the_run_readably(
    client: AsyncOpenAI,
) -> None:
    sid = await routed_session()
    with serve([error(500, "the model is overloaded")] * 3) as server:
        model = OpenAIChatModel("gpt-test", client=client.with_options(base_url=server.base_url))
        with pytest.raises(ModelStatusError, match="HTTP 500: the model is overloaded") as caught:
            await AgentRunner(model, tools()).run(sid, "hi")
    assert (caught.value.status, caught.value.server_message) == (500, "the model is overloaded")
    assert len(server.requests) == 3  # the first try and the SDK's two retries
    (run,) = await _runs(sid)
    assert run.status is RunStatus.failed
    assert run.error == (
        "ModelStatusError: gpt-test: HTTP 500: the model is overloaded; "
        "the server failed: try again later"
    )
    (call,) = run.model_calls
    assert (call.status, call.model, call.error) == (ModelCallStatus.error, "gpt-test", run.error)


HTML = b"<!doctype html><html><body><h1>502 Bad Gateway</h1></body></html>"
CUT_OFF = b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index'


@pytest.mark.parametrize(
    ("reply", "kind", "text"),
    [
        (raw(200, CUT_OFF), ModelResponseError, "not a valid chat completion"),
        (raw(200, HTML, "text/html"), ModelResponseError, "not a chat completion: '<!doctype"),
        (raw(200, b'{"hello": "world"}'), ModelResponseError, "not a chat completion"),
        (raw(200, b"[1, 2]"), ModelResponseError, "not a chat completion"),
        (error(401, "Incorrect API key provided"), ModelStatusError, "check the API key"),
        (error(404, "The model does not exist"), ModelStatusError, "check the model name"),
        (Reply(200, {}, delay=1.0), ModelTimeoutError, "no answer from http://127.0.0.1"),
    ],
    ids=["cut-off-json", "html-page", "wrong-shape", "json-array", "401", "404", "timeout"],
)
async def test_every_failure_of_the_server_is_a_model_error_that_says_what_to_check(
    reply: Reply, kind: type[ModelError], text: str
) -> None:
    sid = await routed_session()
    with serve([reply]) as server:
        model = OpenAIChatModel(
            "gpt-test", base_url=server.base_url, api_key="k", timeout=0.3, max_retries=0
        )
        with pytest.raises(kind, match=text) as caught:
            await AgentRunner(model, tools()).run(sid, "hi")
        await model.aclose()
    assert caught.value.hint
    assert str(caught.value).endswith(f"; {caught.value.hint}")  # what to check, on the line
    assert "\n" not in str(caught.value)
    (run,) = await _runs(sid)
    assert run.status is RunStatus.failed
    assert run.error is not None
    assert run.error.startswith(f"{kind.__name__}: gpt-test: ")


def _answer(choice: object, **fields: object) -> Reply:
    """A 200 chat completion whose first choice is ``choice`` (and ``fields`` in place of the
    completion's own)."""
    body = completion("ok").body | {"choices": [choice]} | fields
    return Reply(200, body)


GOOD_CHOICE = completion("ok").body["choices"][0]
USAGE = completion("ok").body["usage"]


@pytest.mark.parametrize(
    "reply",
    [
        _answer({"index": 0, "finish_reason": "stop"}),
        _answer({"index": 0, "message": None, "finish_reason": "stop"}),
        _answer(None),
        _answer({**GOOD_CHOICE, "message": {"role": "assistant", "content": 42}}),
        _answer(GOOD_CHOICE, usage={**USAGE, "prompt_tokens": -5}),
        _answer(GOOD_CHOICE, usage={**USAGE, "completion_tokens": "many"}),
        _answer({**GOOD_CHOICE, "finish_reason": ["stop"]}),
        _answer({**GOOD_CHOICE, "message": {"role": "assistant", "tool_calls": 5}}),
    ],
    ids=[
        "no-message",
        "null-message",
        "null-choice",
        "number-content",
        "negative-tokens",
        "text-tokens",
        "list-finish-reason",
        "number-tool-calls",
    ],
)
async def test_a_completion_with_a_malformed_choice_or_usage_is_a_response_error(
    reply: Reply,
) -> None:
    """A 2xx chat completion whose parts the runner uses are of another shape fails the run
    with a ``ModelResponseError`` (one line, what to check), its model call recorded; not an
    ``AttributeError`` or a validation error that ends ``agents-core chat`` with a traceback."""
    sid = await routed_session()
    with serve([reply]) as server, pytest.raises(ModelResponseError) as caught:
        await AgentRunner(model_on(server), tools()).run(sid, "hi")
    assert "\n" not in str(caught.value)
    assert caught.value.hint
    (run,) = await _runs(sid)
    assert run.status is RunStatus.failed
    (call,) = run.model_calls
    assert (call.status, call.error) == (ModelCallStatus.error, run.error)


async def test_a_completion_that_names_no_model_as_text_is_recorded_as_the_model_asked() -> None:
    sid = await routed_session()
    with serve([_answer(GOOD_CHOICE, model=7)]) as server:
        run = await AgentRunner(model_on(server), tools()).run(sid, "hi")
    assert run.status is RunStatus.completed
    assert [call.model for call in run.model_calls] == ["gpt-test"]


async def test_a_server_that_is_not_there_is_a_connection_error() -> None:
    url = "http://127.0.0.1:9/v1"
    model = OpenAIChatModel("gpt-test", base_url=url, api_key="k", max_retries=0)
    sid = await routed_session()
    with pytest.raises(ModelConnectionError, match=re.escape(f"could not connect to {url}")):
        await AgentRunner(model, tools()).run(sid, "hi")
    await model.aclose()


async def test_timeouts_and_retries_default_to_an_interactive_wait(client: AsyncOpenAI) -> None:
    from agents_core.models.openai import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT

    model = OpenAIChatModel("gpt-test", api_key="k", base_url="http://127.0.0.1:9/v1")
    assert model.client.max_retries == DEFAULT_MAX_RETRIES == 1
    assert isinstance(model.client.timeout, openai.Timeout)
    assert model.client.timeout.read == DEFAULT_TIMEOUT == 60.0
    tuned = OpenAIChatModel("gpt-test", client=client, timeout=5, max_retries=0)
    assert (tuned.client.timeout, tuned.client.max_retries) == (5.0, 0)
    assert client.max_retries == 2  # the caller's client is left as it was
    for bad in ({"timeout": 0}, {"timeout": float("nan")}, {"max_retries": -1}):
        with pytest.raises(ValueError, match=r"timeout|max_retries"):
            OpenAIChatModel("gpt-test", api_key="k", **bad)
    await model.aclose()
    await client.close()


async def test_a_malformed_tool_call_fails_the_run() -> None:
    sid = await routed_session()
    broken = completion(tool_calls=[("c1", "", "{}")])
    with serve([broken]) as server, pytest.raises(ModelError, match="malformed tool call"):
        await AgentRunner(model_on(server), tools()).run(sid, "hi")
    (run,) = await _runs(sid)
    assert (run.status, run.model_calls[0].status) == (RunStatus.failed, ModelCallStatus.error)


async def test_cached_and_reasoning_tokens_are_mapped_and_priced() -> None:
    sid = await routed_session()
    reply = completion(
        "ok",
        prompt_tokens=1_000,
        completion_tokens=300,
        cached_tokens=800,
        reasoning_tokens=200,
        model="gpt-test-2026",
    )
    with serve([reply]) as server:
        run = await AgentRunner(model_on(server), tools()).run(sid, "hi")
    (call,) = run.model_calls
    assert (
        call.model,
        call.input_tokens,
        call.cached_input_tokens,
        call.output_tokens,
        call.reasoning_tokens,
    ) == ("gpt-test-2026", 1_000, 800, 300, 200)
    # Cached input is a part of the input, at its own rate: 200 x 2.0 + 800 x 0.5 + 300 x 8.0.
    assert call.cost == pytest.approx((200 * 2.0 + 800 * 0.5 + 300 * 8.0) / 1e6)
    assert run.tokens == 1_300


async def test_aclose_closes_only_a_client_it_made(client: AsyncOpenAI) -> None:
    owned = OpenAIChatModel("gpt-test", api_key="k", base_url="http://127.0.0.1:9/v1")
    await owned.aclose()
    assert owned.client.is_closed()
    injected = OpenAIChatModel("gpt-test", client=client)
    await injected.aclose()
    assert not client.is_closed()
    await client.close()


async def test_without_an_api_key_the_model_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelError, match="api_key"):
        OpenAIChatModel("gpt-test")


async def _runs(session_id: ObjectId) -> list[Run]:
    return await RunsRepository().list_by_session(session_id)
