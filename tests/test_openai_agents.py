"""AgentsCoreSession: the OpenAI Agents SDK's Session protocol on agents-core.

The SDK's own session tests run against it too (``make test-openai-agents``); these are ours:
the protocol on both backends, event loops, owned clients, and a conversation through the
SDK's ``Runner`` shown by ``agents-core show``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

import httpx
import markupsafe
import pytest
from agents import Agent, RunConfig, Runner, SessionSettings, function_tool
from agents.memory import Session as SdkSession
from agents.testing import ScriptedModel, assistant_message, function_call
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from agents_core.cli import app
from agents_core.db import (
    InvalidInputError,
    InvalidStateError,
    MessageRole,
    MessagesRepository,
    SessionsRepository,
    close_db,
    get_database,
    init_db,
)
from agents_core.db import validation as check
from agents_core.db.limits import MAX_NAME_LENGTH
from agents_core.db.validation import title_from
from agents_core.integrations.openai_agents import NAMESPACE, AgentsCoreSession
from agents_core.testing.commands import CommandCounter
from agents_core.trace.web import create_app
from tests.test_items import ITEMS as ALL_ITEMS

NO_TRACING = RunConfig(tracing_disabled=True)


#: The items of every kind, typed as the SDK's items (``TResponseInputItem``) are passed.
ITEMS: list[Any] = ALL_ITEMS


def said(text: str) -> Any:
    """A user message item."""
    return {"role": "user", "content": text}


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.text(st.characters(exclude_categories=()), max_size=1200))
def test_a_title_made_of_any_text_is_a_name(text: str) -> None:
    title = title_from(text)
    if title is None:
        assert text.split() == [] or not any(char.isprintable() for char in text)
    else:
        assert check.name(title, "title") == title
        assert len(title) <= MAX_NAME_LENGTH
        assert title == " ".join(title.split())


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("Where is my refund?", "Where is my refund?"),
        ("  two\r\nlines\u2028and\ttabs  ", "two lines and tabs"),
        ("zero\u200bwidth\u202e", "zerowidth"),
        ("x" * 250, "x" * 199 + "\u2026"),
        ("a " * 2000, ("a " * 100)[:199].rstrip() + "\u2026"),
        (" \n\u200b\t", None),
        ("", None),
    ],
)
def test_a_title_is_the_text_on_one_line_cut_to_a_names_length(
    text: str, title: str | None
) -> None:
    assert title_from(text) == title


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

    async def test_its_first_user_message_is_its_title(self) -> None:
        session = AgentsCoreSession("titled")
        first = "  Where is\n my refund?\u200b\tOrder 42. "
        await session.add_items([{"role": "developer", "content": "Be brief."}, said(first)])
        await session.add_items([said("And my invoice?")])
        core = await session.core_session()
        assert core is not None
        assert core.title == "Where is my refund? Order 42."
        long = AgentsCoreSession("long")
        await long.add_items([said("word " * 100)])
        core = await long.core_session()
        assert core is not None
        assert core.title is not None
        assert (len(core.title), core.title[-1]) == (MAX_NAME_LENGTH, "\u2026")

    async def test_a_session_found_untitled_is_titled_once_by_a_user_message(self) -> None:
        created = await SessionsRepository().get_or_create_by_external_id(
            "found", namespace=NAMESPACE
        )
        assert created.title is None
        session = AgentsCoreSession("found")
        await session.add_items([ITEMS[2]])  # no user message: nothing to title it with
        assert (await SessionsRepository().find_by_id(created.id, message_limit=0)).title is None
        await session.add_items([said("Hello?")])
        await session.add_items([said("Still there?")])
        await AgentsCoreSession("found").add_items([said("Anyone?")])
        assert (await SessionsRepository().find_by_id(created.id)).title == "Hello?"
        assert await SessionsRepository().set_title_if_untitled(created.id, "Other") is False

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


#: The three-turn conversation below, as its transcript shows it, in order.
TRANSCRIPT = [
    "What is 17 * 23?",
    'calculator({"a":17,"b":23,"op":"*"})',
    "391.0",
    "17 x 23 = 391.",
    "And plus 9?",
    "400.0",
    "Thanks!",
    "You're welcome!",
]


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
            transport = httpx.ASGITransport(app=create_app())
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1:8000"
            ) as http:
                listed, page = await http.get("/"), await http.get(f"/sessions/{core.id}")
            assert (listed.status_code, page.status_code) == (200, 200)
            pages.extend([listed.text, page.text])
            return str(core.id), outputs, stored
        finally:
            await close_db()

    pages: list[str] = []
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
    # Titled by its first message: in the trace view's listing and page, and in the CLI's.
    listed, page = pages
    assert f'href="/sessions/{session_id}">What is 17 * 23?</a>' in listed
    assert '<h1 id="session-title">What is 17 * 23?</h1>' in page
    transcript = page[page.index("<h2>Transcript</h2>") :]
    positions = [transcript.index(str(markupsafe.escape(text))) for text in TRANSCRIPT]
    assert positions == sorted(positions)
    sessions = CliRunner().invoke(app, ["sessions", "--json"], catch_exceptions=False)
    assert [(s["id"], s["title"]) for s in json.loads(sessions.output)] == [(session_id, turns[0])]
    shown = CliRunner().invoke(app, ["show", session_id], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].split() == ["Session", session_id, *turns[0].split(), "active"]
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
async def test_a_title_costs_no_command_but_on_a_session_found_untitled(
    command_log: CommandCounter,
) -> None:
    """Set in the insert that creates the session; one compare-and-set when found untitled."""
    titled, untitled = AgentsCoreSession("titled"), AgentsCoreSession("untitled")
    with command_log.recording() as creating_titled:
        await titled.add_items([said("Hi")])
    with command_log.recording() as creating_untitled:
        await untitled.add_items([ITEMS[2]])
    assert creating_titled == creating_untitled
    with command_log.recording() as appending:
        await titled.add_items([said("Again")])
    with command_log.recording() as titling:
        await untitled.add_items([said("Hello")])
    assert titling == [*appending, "update"]
    with command_log.recording() as appending_titled:
        await untitled.add_items([said("Again")])
    assert appending_titled == appending


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
