"""``agents-core show`` (the trace tree) and ``export-otel``, on the wire server of the tests."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pymongo
import pytest
from typer.testing import CliRunner

from agents_core.cli import app
from agents_core.db import (
    AgentsRepository,
    CreateAgentDTO,
    FinishedRun,
    MessagesRepository,
    RunsRepository,
    SessionsRepository,
)
from agents_core.db.documents import utcnow
from tests.test_cli import Wire, wire  # noqa: F401  (a fixture)
from tests.test_otel import _Receiver, decoded, receiver  # noqa: F401  (a fixture)

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def demo_session(wire_uri: str) -> Iterator[dict[str, Any]]:
    """One ``agents-core demo`` in a database of its own on the wire server."""
    database = f"test_cli_trace_{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MONGODB_URI", wire_uri)
        patch.setenv("MONGODB_DB", database)
        result = invoke("demo", "--json")
        assert result.exit_code == 0, result.output
        yield json.loads(result.output)
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(wire_uri) as client:
        client.drop_database(database)


def test_show_prints_the_trace_tree(demo_session: dict[str, Any]) -> None:
    session_id = demo_session["session"]["id"]
    result = invoke("show", session_id)
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in ("Turn 1", "Turn 3", "model scripted-demo", "tool calculator", "█"):
        assert expected in out
    assert "ZeroDivisionError: division by zero" in out
    assert (
        out.rstrip()
        .splitlines()[-1]
        .startswith("3 turn(s) · 3 run(s) · 3 tool call(s) (1 error(s))")
    )
    # --json is unchanged: the session with its messages, and the runs.
    shown = json.loads(invoke("show", session_id, "--json").output)
    assert sorted(shown) == ["runs", "session"]
    assert len(shown["session"]["messages"]) == 12
    assert [len(run["model_calls"]) for run in shown["runs"]] == [2, 2, 2]


def test_export_otel_sends_a_run(
    demo_session: dict[str, Any],
    receiver: tuple[str, type[_Receiver]],  # noqa: F811
) -> None:
    url, handler = receiver
    run = demo_session["runs"][2]
    result = invoke(
        "export-otel", run["id"], "--endpoint", f"{url}/v1/traces", "--header", "x-key=1"
    )
    assert result.exit_code == 0, result.output
    assert "as 4 spans" in result.output
    (request,) = handler.requests
    spans = decoded(request)["spans"]
    ((_, attributes),) = spans["invoke_agent demo-assistant"]
    assert attributes["agents_core.run.id"] == run["id"]
    assert attributes["gen_ai.conversation.id"] == demo_session["session"]["id"]
    ((_, tool),) = spans["execute_tool calculator"]
    assert "gen_ai.tool.call.arguments" not in tool
    assert handler.headers_seen[0]["x-key"] == "1"


def test_export_otel_refuses_bad_input(
    demo_session: dict[str, Any],
    receiver: tuple[str, type[_Receiver]],  # noqa: F811
) -> None:
    url, handler = receiver
    assert invoke("export-otel", "nope", "--endpoint", url).exit_code == 2
    run_id = demo_session["runs"][0]["id"]
    assert invoke("export-otel", run_id, "--header", "novalue").exit_code == 2
    handler.status = 400
    refused = invoke("export-otel", run_id, "--endpoint", f"{url}/v1/traces")
    assert refused.exit_code == 1
    assert "did not accept" in refused.output


def test_export_otel_json_counts_what_it_sent(
    demo_session: dict[str, Any],
    receiver: tuple[str, type[_Receiver]],  # noqa: F811
) -> None:
    url, handler = receiver
    run = demo_session["runs"][2]
    endpoint = f"{url}/v1/traces"
    result = invoke("export-otel", run["id"][-6:], "--endpoint", endpoint, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "run_id": run["id"],
        "endpoint": endpoint,
        "spans": 4,  # the run, its two model calls and its tool call
        "score_events": 0,
    }
    assert sum(len(found) for found in decoded(handler.requests[0])["spans"].values()) == 4
    # No collector there: JSON on stderr, at once.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    refused = invoke(
        "export-otel", run["id"], "--endpoint", f"http://127.0.0.1:{port}/v1/traces", "--json"
    )
    assert refused.exit_code == 1
    assert refused.stdout == ""
    error = json.loads(refused.stderr)
    assert error["exit_code"] == 1
    assert error["error"].startswith("could not connect to the OTLP endpoint")


@pytest.mark.parametrize("token", ["short", "x" * 20 + " y"])
def test_serve_refuses_a_token_it_cannot_use_before_it_starts(token: str) -> None:
    result = invoke("serve", "--host", "0.0.0.0", "--token", token)
    assert result.exit_code == 2
    assert "--token: a token is 16 to 256 characters" in result.output
    assert token not in result.output
    assert "Database" not in result.output  # nothing was started


def _summary(output: str) -> str:
    """The tree's summary line (a hint to the older page may follow it)."""
    return next(line for line in reversed(output.splitlines()) if " turn(s) · " in line)


def test_show_pages_put_each_run_in_its_turn(demo_session: dict[str, Any]) -> None:
    """The demo's 3 turns of 4 messages (1-4, 5-8, 9-12), a run each (issue 23: paging with
    --before and --limit put every run under the page's first turn, counted them all, and
    called the oldest messages the latest)."""
    session_id = demo_session["session"]["id"]
    runs = [run["id"] for run in demo_session["runs"]]
    tokens = [run["tokens"] for run in demo_session["runs"]]

    def page(*args: str) -> tuple[list[int], list[str]]:
        shown = json.loads(invoke("show", session_id, *args, "--json").output)
        return [m["seq"] for m in shown["session"]["messages"]], [r["id"] for r in shown["runs"]]

    # A page begins at a user message: the turn cut off is whole on the page before.
    assert page("--before", "11", "--limit", "4") == ([9, 10], [runs[2]])
    assert page("--before", "9", "--limit", "4") == ([5, 6, 7, 8], [runs[1]])
    assert page("--before", "5", "--limit", "4") == ([1, 2, 3, 4], [runs[0]])
    assert page("--before", "13", "--limit", "8") == ([5, 6, 7, 8, 9, 10, 11, 12], runs[1:])
    assert page("--limit", "6") == ([9, 10, 11, 12], [runs[2]])
    assert page() == (list(range(1, 13)), runs)
    # The tree: the page's turns with their runs, totals and which messages it shows.
    oldest = invoke("show", session_id, "--before", "5", "--limit", "4").output
    assert f"run {runs[0][-6:]} " in oldest
    assert runs[1][-6:] not in oldest
    assert runs[2][-6:] not in oldest
    assert _summary(oldest).startswith("1 turn(s) · 1 run(s) · 1 tool call(s) (0 error(s)) · ")
    assert f"· {tokens[0]:,} tokens" in _summary(oldest)
    assert _summary(oldest).endswith("(messages #1 to #4 of 12)")
    middle = invoke("show", session_id, "--before", "13", "--limit", "8").output
    assert _summary(middle).startswith("2 turn(s) · 2 run(s) · 2 tool call(s) (1 error(s)) · ")
    assert f"{tokens[1] + tokens[2]:,} tokens" in _summary(middle)
    assert _summary(middle).endswith("(latest 8 of 12 messages)")
    assert f"older: agents-core show {session_id[-6:]} --before 5" in middle
    cut = invoke("show", session_id, "--before", "11", "--limit", "4").output
    assert _summary(cut).startswith("1 turn(s) · 1 run(s)")
    assert _summary(cut).endswith("(messages #9 to #10 of 12)")


def test_show_of_an_older_run_finds_its_turn(demo_session: dict[str, Any]) -> None:
    first = demo_session["runs"][0]
    shown = json.loads(invoke("show", first["id"], "--limit", "4", "--json").output)
    assert [m["seq"] for m in shown["turn"]] == [1, 2, 3, 4]
    text = invoke("show", first["id"], "--limit", "4").output
    assert "What is 17 * 23?" in text
    assert _summary(text).startswith("1 turn(s) · 1 run(s) · 1 tool call(s)")


def test_show_of_a_framework_run_shows_its_own_turn(wire: Wire) -> None:  # noqa: F811
    """A framework's run starts before its user message is stored (the OpenAI Agents SDK):
    ``show RUN`` showed the turn before it, whose user message was the last one before the
    run's start."""

    async def work() -> str:
        agent = await AgentsRepository().create(CreateAgentDTO(name="sdk"))
        session = await SessionsRepository().create("framework")
        messages = MessagesRepository()
        await messages.create(session.id, "user", "first question")
        await messages.create(session.id, "assistant", "first answer")
        question = await messages.create(session.id, "user", "second question")
        await messages.create(session.id, "assistant", "second answer")
        finished = FinishedRun(
            source="sdk",
            external_id="trace-2",
            session_id=session.id,
            agent_id=agent.id,
            started_at=question.created_at - timedelta(milliseconds=1),
            completed_at=utcnow() + timedelta(milliseconds=1),
        )
        (run_id,) = await RunsRepository().insert_finished([finished])
        return str(run_id)

    run_id = wire.run(work)
    shown = invoke("show", run_id, "--json")
    assert shown.exit_code == 0, shown.output
    turn = json.loads(shown.output)["turn"]
    assert [(m["seq"], m["content"]) for m in turn] == [
        (3, "second question"),
        (4, "second answer"),
    ]


def test_show_refuses_a_before_beyond_any_seq_as_a_usage_error(
    demo_session: dict[str, Any],
) -> None:
    """The largest seq the layer takes is a page like any other; one more is a usage error
    (exit code 2, as every other malformed option), not a failure of the database (1)."""
    session_id = demo_session["session"]["id"]
    largest = invoke("show", session_id, "--before", str(2**62), "--json")
    assert largest.exit_code == 0, largest.output
    assert len(json.loads(largest.output)["session"]["messages"]) == 12
    beyond = invoke("show", session_id, "--before", str(2**62 + 1))
    assert beyond.exit_code == 2, beyond.output
