"""AgentsCoreSession: the OpenAI Agents SDK's Session protocol on agents-core.

The SDK's own session tests run against it too (``make test-openai-agents``); these are ours:
the protocol on both backends, event loops, owned clients, and a conversation through the
SDK's ``Runner`` shown by ``agents-core show``.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner, SessionSettings, function_tool
from agents.memory import Session as SdkSession
from agents.testing import ScriptedModel, assistant_message, function_call
from typer.testing import CliRunner

from agents_core.cli import app
from agents_core.db import (
    InvalidInputError,
    InvalidStateError,
    MessageRole,
    MessagesRepository,
    close_db,
    get_database,
    init_db,
)
from agents_core.integrations.openai_agents import NAMESPACE, AgentsCoreSession
from tests.test_items import ITEMS as ALL_ITEMS

NO_TRACING = RunConfig(tracing_disabled=True)


#: The items of every kind, typed as the SDK's items (``TResponseInputItem``) are passed.
ITEMS: list[Any] = ALL_ITEMS


def said(text: str) -> Any:
    """A user message item."""
    return {"role": "user", "content": text}


@pytest.mark.usefixtures("backend")
class TestProtocol:
    async def test_it_is_an_sdk_session_created_on_first_write(self) -> None:
        session = AgentsCoreSession("conv-1")
        assert isinstance(session, SdkSession)
        assert session.session_settings == SessionSettings()
        assert await session.get_items() == []
        assert await session.pop_item() is None
        await session.clear_session()
        assert await session.core_session() is None  # reads and clears create nothing
        await session.add_items([])
        assert await session.core_session() is None
        await session.add_items(ITEMS[:2])
        core = await session.core_session()
        assert core is not None
        assert (core.external_id, core.external_namespace, core.last_seq) == (
            "conv-1",
            NAMESPACE,
            2,
        )

    async def test_items_come_back_exactly_latest_first_limited(self) -> None:
        session = AgentsCoreSession("conv-1")
        await session.add_items(ITEMS[:4])
        await session.add_items(ITEMS[4:])
        assert await session.get_items() == ITEMS
        assert await session.get_items(limit=3) == ITEMS[-3:]
        assert await session.get_items(limit=0) == []
        assert await session.get_items(limit=-1) == []
        assert await AgentsCoreSession("conv-1").get_items(limit=100) == ITEMS  # another instance

    async def test_session_settings_limit_is_the_default_limit(self) -> None:
        session = AgentsCoreSession("conv", session_settings={"limit": 2})
        assert session.session_settings == SessionSettings(limit=2)
        await session.add_items([said(str(i)) for i in range(5)])
        assert [item["content"] for item in await session.get_items()] == ["3", "4"]  # type: ignore[typeddict-item]
        assert len(await session.get_items(limit=4)) == 4
        with pytest.raises(TypeError, match="Unknown session settings: limitt"):
            AgentsCoreSession("conv", session_settings={"limitt": 1})
        with pytest.raises(TypeError):
            AgentsCoreSession(42)  # type: ignore[arg-type]

    async def test_pop_and_clear(self) -> None:
        session = AgentsCoreSession("conv")
        await session.add_items(ITEMS[:3])
        assert await session.pop_item() == ITEMS[2]
        assert await session.get_items() == ITEMS[:2]
        await session.clear_session()
        assert await session.get_items() == []
        assert await session.pop_item() is None
        await session.add_items([ITEMS[5]])
        assert await session.get_items() == [ITEMS[5]]
        core = await session.core_session()
        assert core is not None
        assert (core.cleared_through_seq, core.last_seq) == (3, 4)

    async def test_user_ids_scope_session_ids(self) -> None:
        mine, theirs = (
            AgentsCoreSession("chat", user_id="u1"),
            AgentsCoreSession("chat", user_id="u2"),
        )
        await mine.add_items([said("mine")])
        assert await theirs.get_items() == []
        assert await AgentsCoreSession("chat").get_items() == []
        core = await mine.core_session()
        assert core is not None
        assert core.user_id == "u1"

    async def test_unstorable_items_are_refused_and_nothing_is_written(self) -> None:
        session = AgentsCoreSession("conv")
        await session.add_items([ITEMS[0]])
        with pytest.raises(InvalidInputError):
            await session.add_items([ITEMS[1], {"bad": object()}])  # type: ignore[list-item]
        with pytest.raises(InvalidInputError):
            await session.add_items("not a list")  # type: ignore[arg-type]
        assert await session.get_items() == [ITEMS[0]]

    async def test_the_sdk_runner_keeps_history_in_it(self) -> None:
        session = AgentsCoreSession("runner")
        model = ScriptedModel([[assistant_message("Paris")], [assistant_message("France")]])
        agent = Agent(name="geo", model=model)
        first = await Runner.run(agent, "Capital?", session=session, run_config=NO_TRACING)
        second = await Runner.run(agent, "Country?", session=session, run_config=NO_TRACING)
        assert (first.final_output, second.final_output) == ("Paris", "France")
        history = model.calls[-1].input
        assert [item.get("content") for item in history[:1]] == ["Capital?"]
        assert len(await session.get_items()) == 4


def _in_thread(work: Any) -> Any:
    """``work()`` in a thread of its own (its own event loop, as Runner.run_sync there)."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed back to the test
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if errors:
        raise errors[0]
    return result[0]


@pytest.fixture
def layer_by_uri(wire_uri: str) -> Iterator[str]:
    """A database name; the test connects with ``init_db(wire_uri, database=name)``."""
    name = f"test_oa_{uuid.uuid4().hex[:10]}"
    yield name

    async def drop() -> None:
        await init_db(wire_uri, database=name)
        await get_database().client.drop_database(name)
        await close_db()

    asyncio.run(drop())


def test_calls_from_other_loops_use_a_client_of_their_own(wire_uri: str, layer_by_uri: str) -> None:
    """init_db with a URI: five threads, each with its own loop, append to one session."""

    async def main() -> list[Any]:
        await init_db(wire_uri, database=layer_by_uri)
        try:
            session = AgentsCoreSession("threads")
            await session.add_items([said("first")])

            def append(n: int) -> None:
                loop = asyncio.new_event_loop()
                try:
                    loop.run_until_complete(session.add_items([said(str(n))]))
                finally:
                    loop.close()

            threads = [threading.Thread(target=append, args=(n,)) for n in range(5)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            from_thread = _in_thread(lambda: asyncio.run(session.get_items(limit=2)))
            assert len(from_thread) == 2
            return await session.get_items()
        finally:
            await close_db()

    items = asyncio.run(main())
    assert items[0] == said("first")
    assert sorted(item["content"] for item in items[1:]) == [str(n) for n in range(5)]


@pytest.mark.usefixtures("wire_db")
async def test_an_injected_client_on_another_loop_is_refused_clearly() -> None:
    session = AgentsCoreSession("injected")
    await session.add_items([said("x")])
    with pytest.raises(InvalidStateError, match="bound to another event loop"):
        _in_thread(lambda: asyncio.run(session.get_items()))


# Runner.run_sync shuts its loop's async generators down after each run and keeps the loop for
# the next; PyMongo opens one per command (AsyncMongoClient._tmp_session), which asyncio then
# reports with this warning (the command still runs). The SDK's MongoDBSession gets it too.
@pytest.mark.filterwarnings(
    "ignore:asynchronous generator .* was scheduled after loop.shutdown_asyncgens:ResourceWarning"
)
def test_from_uri_owns_its_client_and_serves_run_sync(wire_uri: str, layer_by_uri: str) -> None:
    base, _, query = wire_uri.partition("?")
    session = AgentsCoreSession.from_uri("owned", f"{base.rstrip('/')}/{layer_by_uri}?{query}")
    model = ScriptedModel([[assistant_message("one")], [assistant_message("two")]])
    agent = Agent(name="sync", model=model)

    def run_sync_twice() -> tuple[Any, Any]:
        # Runner.run_sync runs on this thread's default loop; the session's client is bound to
        # the first loop that uses it (this one), the later asyncio.run gets a client per call.
        first = Runner.run_sync(agent, "hi", session=session, run_config=NO_TRACING)
        second = Runner.run_sync(agent, "again", session=session, run_config=NO_TRACING)
        run_sync_loop = asyncio.get_event_loop()  # the thread's default loop, which run_sync used
        items = asyncio.run(session.get_items())
        run_sync_loop.run_until_complete(session.close())
        run_sync_loop.close()
        return (first.final_output, second.final_output), items

    outputs, items = _in_thread(run_sync_twice)
    assert outputs == ("one", "two")
    assert len(items) == 4
    assert items[0] == said("hi")
    with pytest.raises(InvalidStateError):
        asyncio.run(session.add_items([said("closed")]))

    async def indexes() -> set[str]:
        await init_db(wire_uri, database=layer_by_uri)
        try:
            return set(await get_database()["session_external_ids"].index_information())
        finally:
            await close_db()

    assert "external_namespace_user_id_external_id_unique" in asyncio.run(indexes())


@function_tool
def calculator(a: float, b: float, op: str) -> float:
    """Apply ``op`` (one of + - * /) to ``a`` and ``b``."""
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op]


def test_a_three_turn_conversation_is_shown_by_the_cli(
    wire_uri: str, layer_by_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the SDK's Runner, with a function tool and the SDK's scripted test model."""
    model = ScriptedModel(
        [
            [function_call("calculator", {"a": 17, "b": 23, "op": "*"}, call_id="call_1")],
            [assistant_message("17 x 23 = 391.")],
            [function_call("calculator", {"a": 391, "b": 9, "op": "+"}, call_id="call_2")],
            [assistant_message("391 + 9 = 400.")],
            [assistant_message("You're welcome!")],
        ]
    )
    agent = Agent(name="maths", instructions="Use the calculator.", model=model, tools=[calculator])
    turns = ["What is 17 * 23?", "And plus 9?", "Thanks!"]

    async def conversation() -> tuple[str, list[Any], list[Any]]:
        await init_db(wire_uri, database=layer_by_uri)
        try:
            session = AgentsCoreSession("support-7", user_id="u-42")
            outputs = [
                (await Runner.run(agent, turn, session=session, run_config=NO_TRACING)).final_output
                for turn in turns
            ]
            core = await session.core_session()
            assert core is not None
            stored = await MessagesRepository().find_by_session(core.id, 100)
            return str(core.id), outputs, stored
        finally:
            await close_db()

    session_id, outputs, stored = asyncio.run(conversation())
    assert outputs == ["17 x 23 = 391.", "391 + 9 = 400.", "You're welcome!"]
    assert [(m.role, m.item_type) for m in stored] == [
        (MessageRole.user, "message"),
        (MessageRole.assistant, "function_call"),
        (MessageRole.tool, "function_call_output"),
        (MessageRole.assistant, "message"),
        (MessageRole.user, "message"),
        (MessageRole.assistant, "function_call"),
        (MessageRole.tool, "function_call_output"),
        (MessageRole.assistant, "message"),
        (MessageRole.user, "message"),
        (MessageRole.assistant, "message"),
    ]
    assert [m.call_id for m in stored if m.call_id] == ["call_1", "call_1", "call_2", "call_2"]
    assert model.calls[-1].input[0] == {"content": "What is 17 * 23?", "role": "user"}

    monkeypatch.setenv("MONGODB_URI", wire_uri)
    monkeypatch.setenv("MONGODB_DB", layer_by_uri)
    shown = CliRunner().invoke(app, ["show", session_id], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    for expected in (
        "user u-42",
        "messages 10",
        "What is 17 * 23?",
        'calculator({"a":17,"b":23,"op":"*"})',
        "391.0",
        "17 x 23 = 391.",
        "And plus 9?",
        "400.0",
        "You're welcome!",
    ):
        assert any(expected in line for line in lines), (expected, shown.output)
    order = [turns[0], "391.0", "17 x 23 = 391.", turns[1], "400.0", turns[2], "You're welcome!"]
    positions = [next(i for i, line in enumerate(lines) if text in line) for text in order]
    assert positions == sorted(positions)


@pytest.mark.usefixtures("wire_db")
async def test_a_session_follows_the_layer_to_another_database(wire_client: Any) -> None:
    """Its remembered id belongs to the first database: it looks the id up again."""
    session = AgentsCoreSession("moving")
    await session.add_items([said("first")])
    other = f"test_{uuid.uuid4().hex[:12]}"
    await init_db(client=wire_client, database=other, replace=True)
    try:
        await AgentsCoreSession("moving").add_items([ITEMS[0], ITEMS[1]])
        assert await session.get_items() == [ITEMS[0], ITEMS[1]]
        assert await session.pop_item() == ITEMS[1]
        await session.add_items([ITEMS[2]])
        assert await session.get_items() == [ITEMS[0], ITEMS[2]]
    finally:
        await wire_client.drop_database(other)
