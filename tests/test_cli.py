"""The ``agents-core`` command through typer's test runner, against real servers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from typer.testing import CliRunner

from agents_core.cli import app
from agents_core.db import Run, RunsRepository, close_db, get_database, init_db
from tests.helpers import make_run

T = TypeVar("T")

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def embedded_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two demos recorded in one embedded data directory (each invocation its own server)."""
    data = tmp_path_factory.mktemp("agents-core-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MONGODB_URI", raising=False)
        patch.delenv("MONGODB_DB", raising=False)
        patch.setenv("AGENTS_CORE_DATA", str(data))
        yield data


@pytest.fixture(scope="module")
def two_demos(embedded_data: Path) -> tuple[Any, Any]:
    return invoke("demo"), invoke("demo")


def test_demo_prints_the_transcript_and_the_trace(
    two_demos: tuple[Any, Any], embedded_data: Path
) -> None:
    first, _ = two_demos
    assert first.exit_code == 0, first.output
    assert f"embedded SecantusDB at {embedded_data.resolve()}" in first.output
    for expected in ("What is 17 * 23?", "391", "calculator", "clock", "success", "error"):
        assert expected in first.output
    assert "ZeroDivisionError: division by zero" in first.output
    assert "tokens" in first.output
    assert "cost $" in first.output


def test_a_second_invocation_sees_the_first_ones_data(two_demos: tuple[Any, Any]) -> None:
    first, second = two_demos
    assert second.exit_code == 0, second.output
    first_session = first.output.split("Session:")[1].split()[0]
    assert first_session in second.output
    assert "2 demo session(s)" in second.output


def test_sessions_show_and_runs_read_it_back(two_demos: tuple[Any, Any]) -> None:
    listed = invoke("sessions", "--json")
    assert listed.exit_code == 0, listed.output
    sessions = json.loads(listed.output)
    assert len(sessions) == 2
    newest = sessions[0]["id"]
    shown = json.loads(invoke("show", newest, "--json").output)
    # Per turn: the question, the model's tool request, the tool's result, the answer.
    assert len(shown["session"]["messages"]) == 12
    assert [run["status"] for run in shown["runs"]] == ["completed"] * 3
    assert [len(run["model_calls"]) for run in shown["runs"]] == [2] * 3
    table = invoke("runs", newest)
    assert table.exit_code == 0
    assert table.output.count("completed") == 3
    assert "calculator" in table.output


def test_unknown_and_malformed_ids_fail_clearly(embedded_data: Path) -> None:
    malformed = invoke("show", "not-an-id")
    assert malformed.exit_code == 2
    assert "invalid session id" in malformed.output
    unknown = invoke("runs", "0123456789abcdef01234567")
    assert unknown.exit_code == 1
    assert "not found" in unknown.output


def test_an_unreachable_mongodb_uri_fails_within_seconds_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONGODB_URI", "mongodb://admin:hunter2@127.0.0.1:9/")
    started = time.monotonic()
    result = invoke("sessions")
    assert result.exit_code == 1
    assert "timed out" in result.output
    assert "hunter2" not in result.output
    assert time.monotonic() - started < 10


def test_a_missing_server_binary_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.setenv("AGENTS_CORE_DATA", str(tmp_path))
    monkeypatch.setattr("agents_core.embedded.shutil.which", lambda _name: None)
    monkeypatch.setattr("agents_core.embedded.sys.executable", str(tmp_path / "python"))
    result = invoke("sessions")
    assert result.exit_code == 1
    assert "secantusd-py not found" in result.output
    assert "agents-core[embedded]" in result.output


def test_usage_errors_exit_2() -> None:
    assert invoke("runs").exit_code == 2
    assert invoke("runs", "--abandon", "0123456789abcdef01234567").exit_code == 2


def test_stale_runs_are_listed_and_abandoned(
    monkeypatch: pytest.MonkeyPatch, wire_uri: str
) -> None:
    """A sync test: the command runs its own event loop, as it does from a shell."""
    database = f"test_cli_{uuid.uuid4().hex[:8]}"

    async def with_layer(work: Callable[[], Awaitable[T]]) -> T:
        await init_db(wire_uri, database=database)
        try:
            return await work()
        finally:
            await close_db()

    async def stale_run() -> Run:
        run = await make_run()
        await get_database()["runs"].update_one(
            {"_id": run.id}, {"$set": {"started_at": run.started_at - timedelta(hours=3)}}
        )
        return run

    run = asyncio.run(with_layer(stale_run))
    monkeypatch.setenv("MONGODB_URI", wire_uri)
    monkeypatch.setenv("MONGODB_DB", database)
    try:
        listed = invoke("runs", "--stale", "--older-than", "60", "--json")
        assert [r["id"] for r in json.loads(listed.output)] == [str(run.id)]
        abandoned = invoke("runs", "--stale", "--abandon")
        assert abandoned.exit_code == 0
        assert "abandoned" in abandoned.output
        assert json.loads(invoke("runs", "--stale", "--json").output) == []
        stored = asyncio.run(with_layer(lambda: RunsRepository().find_by_id(run.id)))
        assert stored.error == "abandoned"
    finally:
        asyncio.run(with_layer(lambda: get_database().client.drop_database(database)))
