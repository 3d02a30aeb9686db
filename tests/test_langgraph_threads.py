"""LangGraph threads as people see them: ``AgentsCoreSaver.alist_threads``/``aget_thread``,
``ThreadReader``, ``agents-core threads``/``thread`` and the trace view's ``/threads`` pages.

On both backends; the bounded reads are counted on the wire server.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import httpx
import markupsafe
import pytest

pytest.importorskip("langgraph.checkpoint.base", reason="the langgraph extra is not installed")

from langgraph.checkpoint.base import empty_checkpoint
from typer.testing import CliRunner

from agents_core.cli import app
from agents_core.db import (
    InvalidInputError,
    NotFoundError,
    SessionsRepository,
    close_db,
    default_connection,
    init_db,
)
from agents_core.integrations.langchain import NAMESPACE as RUNS_NAMESPACE
from agents_core.integrations.langgraph import AgentsCoreSaver
from agents_core.integrations.langgraph.threads import ThreadReader
from agents_core.testing.commands import CommandCounter
from agents_core.trace.web import create_app
from tests import _langgraph_app as graph_app

#: Thread ids a listing must keep apart and in order, whatever they hold.
ODD_IDS = ["a b/c", 't"q', "ü-thread", "<script>alert(1)</script>", "t-1", "t-10", "t-2"]
QUESTION = "Where is my refund for <b>A-17</b>?"


def config(thread: str, ns: str = "") -> Any:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}


async def put(saver: AgentsCoreSaver, thread: str, *, ns: str = "", step: int = 0) -> None:
    checkpoint = empty_checkpoint()
    version = saver.get_next_version(None, None)
    checkpoint["channel_values"] = {"count": step}
    checkpoint["channel_versions"] = {"count": version}
    await saver.aput(
        config(thread, ns), checkpoint, {"source": "loop", "step": step}, {"count": version}
    )


async def interrupted_thread(thread: str) -> None:
    """The test graph's first turn: model, tool, model, then an interrupt awaiting approval."""
    graph = graph_app.build(graph_app.FIRST_TURN, AgentsCoreSaver())
    await graph.ainvoke({"messages": [("user", QUESTION)]}, {"configurable": {"thread_id": thread}})


@pytest.mark.usefixtures("backend")
async def test_threads_are_listed_in_id_order_each_once_in_pages() -> None:
    saver = AgentsCoreSaver()
    for thread in ODD_IDS:
        await put(saver, thread, step=1)
        await put(saver, thread, step=2)
    await put(saver, "t-1", ns="child:1", step=7)  # a subgraph's namespace: not a thread
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await saver.alist_threads(limit=3, after=cursor)
        seen += [summary.thread_id for summary in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    # By id (as their keys sort: a quote is escaped there, so 't"q' comes after 't-2').
    assert seen == sorted(ODD_IDS, key=lambda thread: json.dumps(thread, ensure_ascii=False))
    assert seen.index('t"q') > seen.index("t-2")
    assert pages == 3
    page = await saver.alist_threads(limit=100)
    latest = {summary.thread_id: summary.latest for summary in page.items}
    assert all(found is not None and found.step == 2 for found in latest.values())
    assert page.next_cursor is None
    with pytest.raises(InvalidInputError):
        await saver.alist_threads(after="not a cursor!")
    with pytest.raises(InvalidInputError):
        await saver.alist_threads(limit=0)


@pytest.mark.usefixtures("backend")
async def test_a_thread_shows_its_state_its_interrupt_and_its_checkpoints() -> None:
    await interrupted_thread("refund-1")
    await SessionsRepository().get_or_create_by_external_id("refund-1", namespace=RUNS_NAMESPACE)
    reader = ThreadReader()
    state = await reader.get("refund-1", limit=2)
    assert state.interrupted
    assert state.namespaces == [""]
    [messages] = state.values
    assert messages.channel == "messages"
    assert messages.text.splitlines() == [
        f"human: {QUESTION}",
        'ai: lookup_order({"order_id": "A-17"})',
        "tool: order A-17: refund of 42 EUR waiting for approval",
        "ai: The refund of 42 EUR needs your approval.",
    ]
    assert [message["type"] for message in messages.value] == ["human", "ai", "tool", "ai"]
    [waiting] = state.pending_writes
    assert waiting.channel == "__interrupt__"
    assert waiting.value[0]["value"] == {"question": "Approve the refund of 42 EUR?"}
    # The checkpoints, newest first, in pages; the newest is the latest.
    steps: list[int | None] = []
    before = None
    while True:
        page = await reader.get("refund-1", limit=2, before=before)
        steps += [checkpoint.step for checkpoint in page.checkpoints]
        if page.older_before is None:
            break
        before = page.older_before
    assert steps == [3, 2, 1, 0, -1]
    assert state.latest is not None
    assert state.latest.checkpoint_id == state.checkpoints[0].checkpoint_id
    assert [c.seq for c in state.checkpoints] == [5, 4]
    assert state.checkpoints[0].parent_id == state.checkpoints[1].checkpoint_id
    # The session where the thread's runs are recorded.
    session = await SessionsRepository().find_by_external_id("refund-1", namespace=RUNS_NAMESPACE)
    assert session is not None
    assert state.session_id == str(session.id)
    with pytest.raises(NotFoundError):
        await reader.get("no-such-thread")
    with pytest.raises(InvalidInputError):
        await reader.get({"$ne": ""})  # type: ignore[arg-type]


async def test_reading_threads_is_bounded(wire_db: str, command_log: CommandCounter) -> None:
    saver = AgentsCoreSaver()
    for n in range(30):
        await put(saver, f"t-{n:02}", step=1)
    for step in range(2, 40):
        await put(saver, "t-00", step=step)
    await saver.setup()
    with command_log.recording() as names:
        page = await saver.alist_threads(limit=10)
    assert names == ["find"]  # the heads of the page, one range of the _id index
    with command_log.recording() as names:
        await saver.alist_threads(limit=10, after=page.next_cursor)
    assert names == ["find"]
    with command_log.recording() as names:
        state = await saver.aget_thread("t-00", limit=5)
    assert names == ["find", "aggregate", "find"]  # its heads, its newest, a seq range
    assert state is not None
    assert [c.step for c in state.checkpoints] == [39, 38, 37, 36, 35]
    with command_log.recording() as names:
        await saver.aget_thread("t-00", limit=5, before=state.older_before)
    assert names == ["find", "aggregate", "find", "find"]  # and where `before` is


def test_the_cli_lists_threads_and_shows_one(
    wire_uri: str, layer_by_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def store() -> None:
        await init_db(wire_uri, database=layer_by_uri)
        try:
            await interrupted_thread("refund-2")
            saver = AgentsCoreSaver()
            for thread in ("older", "t-x"):
                await put(saver, thread)
        finally:
            await close_db()

    asyncio.run(store())
    monkeypatch.setenv("MONGODB_URI", wire_uri)
    monkeypatch.setenv("MONGODB_DB", layer_by_uri)
    runner = CliRunner()
    listed = runner.invoke(app, ["threads", "--limit", "2"], catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    assert "older" in listed.output
    assert "refund-2" in listed.output
    assert "step 3 (loop)" in listed.output
    assert "t-x" not in listed.output
    [hint] = [line for line in listed.output.splitlines() if line.startswith("more: ")]
    more = runner.invoke(app, ["threads", *hint.split()[3:]], catch_exceptions=False)
    assert "t-x" in more.output
    assert "refund-2" not in more.output
    shown = runner.invoke(app, ["thread", "refund-2", "--limit", "2"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].split() == ["Thread", "refund-2", "interrupted"]
    for expected in (f"human: {QUESTION}", "ai: The refund of 42 EUR needs your approval.",
                     "__interrupt__", "Approve the refund of 42 EUR?"):  # fmt: skip
        assert any(expected in line for line in lines), (expected, shown.output)
    assert lines[-1].startswith("more: agents-core thread refund-2 --before ")
    as_json = runner.invoke(app, ["thread", "refund-2", "--json"], catch_exceptions=False)
    state = json.loads(as_json.output)
    assert [c["step"] for c in state["checkpoints"]] == [3, 2, 1, 0, -1]
    assert state["values"][0]["value"][0] == {"type": "human", "content": QUESTION}
    missing = runner.invoke(app, ["thread", "nope"], catch_exceptions=False)
    assert missing.exit_code == 1
    assert "thread 'nope' not found; `agents-core threads` lists the threads" in missing.output


@pytest.fixture
async def web(backend: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(threads=ThreadReader))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        yield http


def esc(text: str) -> str:
    return str(markupsafe.escape(text))


async def test_the_trace_view_lists_threads_and_shows_one(web: httpx.AsyncClient) -> None:
    hostile = "<script>alert(1)</script>"
    await interrupted_thread(hostile)
    await put(AgentsCoreSaver(), "a b/c")
    await SessionsRepository().get_or_create_by_external_id(hostile, namespace=RUNS_NAMESPACE)
    index = await web.get("/")
    assert 'href="/threads"' in index.text
    listed = await web.get("/threads")
    assert listed.status_code == 200
    path = "/threads/" + urllib.parse.quote(hostile, safe="")
    assert f'href="{path}">{esc(hostile)}</a>' in listed.text
    assert 'href="/threads/a%20b%2Fc">a b/c</a>' in listed.text
    assert "<script>" not in listed.text
    page = await web.get(path)
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert f'<h1 id="thread-id">{esc(hostile)}</h1>' in page.text
    assert esc(f"human: {QUESTION}") in page.text
    assert "interrupted" in page.text
    session = await SessionsRepository().find_by_external_id(hostile, namespace=RUNS_NAMESPACE)
    assert session is not None
    assert f'href="/sessions/{session.id}"' in page.text
    for response in (listed, page):
        assert "script-src" not in response.headers["content-security-policy"]
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert (await web.get("/threads/a%20b%2Fc")).status_code == 200
    # The same as JSON.
    api = (await web.get("/api/threads?limit=1")).json()
    assert [t["thread_id"] for t in api["threads"]] == [hostile]
    rest = (await web.get(f"/api/threads?after={api['next']}")).json()
    assert ([t["thread_id"] for t in rest["threads"]], rest["next"]) == (["a b/c"], None)
    state = (await web.get("/api" + path)).json()
    assert state["thread_id"] == hostile
    assert state["pending_writes"][0]["channel"] == "__interrupt__"
    # Missing things and malformed parameters.
    missing = await web.get("/threads/nope")
    assert missing.status_code == 404
    assert missing.headers["content-security-policy"].startswith("default-src 'none'")
    assert (await web.get("/api/threads/nope")).json() == {"error": "thread nope not found"}
    assert (await web.get("/api/threads?after=%24ne")).status_code == 400
    assert (await web.get("/api/threads?limit=0")).status_code == 400
    assert (await web.get(f"/api{path}?limit=x")).status_code == 400


@pytest.mark.usefixtures("backend")
async def test_without_a_thread_reader_the_pages_say_so() -> None:
    transport = httpx.ASGITransport(app=create_app(default_connection()))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        assert 'href="/threads"' not in (await http.get("/")).text
        page = await http.get("/threads")
        assert page.status_code == 404
        assert "not served here" in page.text
        assert (await http.get("/api/threads/t")).status_code == 404
