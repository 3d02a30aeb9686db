"""``agents-core delete``, ``fork``, ``retention`` and paging of ``sessions``/``show``, on the
wire server (sync tests: each command runs its own event loop, as from a shell)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from bson import ObjectId
from typer.testing import CliRunner

from agents_core.cli import app
from agents_core.db import MessagesRepository, close_db, get_database, init_db
from tests.helpers import make_session

T = TypeVar("T")

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch, wire_uri: str) -> Iterator[str]:
    name = f"test_cli_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MONGODB_URI", wire_uri)
    monkeypatch.setenv("MONGODB_DB", name)
    yield name
    asyncio.run(with_layer(wire_uri, name, lambda: get_database().client.drop_database(name)))


async def with_layer(uri: str, database: str, work: Callable[[], Awaitable[T]]) -> T:
    await init_db(uri, database=database)
    try:
        return await work()
    finally:
        await close_db()


def seed(uri: str, database: str, sessions: int, messages: int) -> list[ObjectId]:
    async def work() -> list[ObjectId]:
        ids = []
        for i in range(sessions):
            session = await make_session(f"chat {i}", user_id="u")
            for n in range(messages):
                await MessagesRepository().create(session.id, "user", f"m{n + 1}")
            ids.append(session.id)
        return ids

    return asyncio.run(with_layer(uri, database, work))


def test_fork_show_before_and_delete(database: str, wire_uri: str) -> None:
    (session_id,) = seed(wire_uri, database, 1, 5)
    forked = invoke("fork", str(session_id), "--at-seq", "3", "--title", "What if", "--json")
    assert forked.exit_code == 0, forked.output
    fork = json.loads(forked.output)
    assert (fork["title"], fork["forked_from"], fork["forked_at_seq"]) == (
        "What if",
        str(session_id),
        3,
    )
    shown = json.loads(invoke("show", fork["id"], "--json").output)
    assert [m["content"] for m in shown["session"]["messages"]] == ["m1", "m2", "m3"]
    older = json.loads(
        invoke("show", str(session_id), "--before", "4", "--limit", "2", "--json").output
    )
    assert [m["seq"] for m in older["session"]["messages"]] == [2, 3]
    table = invoke("fork", str(session_id))
    assert "forked session" in table.output
    assert "at seq 5" in table.output
    deleted = invoke("delete", str(session_id))
    assert deleted.exit_code == 0, deleted.output
    assert f"deleted session {session_id}" in deleted.output
    again = invoke("delete", str(session_id))
    assert again.exit_code == 1
    assert "not found" in again.output
    assert invoke("show", str(session_id)).exit_code == 1
    assert invoke("delete", "nope").exit_code == 2
    assert invoke("fork", fork["id"], "--at-seq", "9").exit_code == 1


def test_sessions_pages_with_before(database: str, wire_uri: str) -> None:
    created = seed(wire_uri, database, 5, 0)
    first = invoke("sessions", "--limit", "2")
    assert first.exit_code == 0, first.output
    hint = next(line for line in first.output.splitlines() if line.startswith("more:"))
    cursor = hint.split("--before ")[1].strip()
    ids: list[str] = []
    listed = invoke("sessions", "--limit", "2", "--json")
    ids += [s["id"] for s in json.loads(listed.stdout)]
    while cursor:
        page = invoke("sessions", "--limit", "2", "--before", cursor, "--json")
        assert page.exit_code == 0, page.output
        ids += [s["id"] for s in json.loads(page.stdout)]
        cursor = page.stderr.split("--before ")[1].strip() if "--before" in page.stderr else ""
    assert sorted(ids) == sorted(str(i) for i in created)
    assert len(ids) == 5
    bad = invoke("sessions", "--before", "garbage")
    assert bad.exit_code == 1
    assert "cursor" in bad.output


def test_retention_removes_idle_sessions(database: str, wire_uri: str) -> None:
    created = seed(wire_uri, database, 2, 2)
    kept = invoke("retention", "--older-than", "30", "--json")
    assert json.loads(kept.output) == {
        "removed": 0,
        "resumed": 0,
        "kept": 0,
        "dry_run": False,
        "messages": None,
        "runs": None,
    }
    planned = invoke("retention", "--older-than", "0", "--dry-run")
    assert planned.exit_code == 0, planned.output
    assert "dry run, nothing changed: would remove 2 idle session(s)" in planned.output
    for session_id in created:
        assert invoke("show", str(session_id)).exit_code == 0  # still there
    removed = invoke("retention", "--older-than", "0")
    assert removed.exit_code == 0, removed.output
    assert "removed 2 idle session(s)" in removed.output
    for session_id in created:
        assert invoke("show", str(session_id)).exit_code == 1
    assert invoke("retention").exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ("retention", "--older-than", "inf"),
        ("retention", "--older-than", "1e9"),
        ("retention", "--older-than", "nan"),
        ("runs", "--stale", "--older-than", "18446744073709551616"),
        ("runs", "--stale", "--older-than", "inf"),
    ],
)
def test_an_age_beyond_any_limit_is_a_usage_error_in_one_line(args: tuple[str, ...]) -> None:
    """Issue 25, C1: these printed an OverflowError traceback."""
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "older-than" in result.output


def test_the_cli_age_limit_is_the_layers() -> None:
    from agents_core.cli.common import MAX_AGE_DAYS
    from agents_core.db.limits import MAX_STALE_AGE

    assert timedelta(days=MAX_AGE_DAYS) == MAX_STALE_AGE
