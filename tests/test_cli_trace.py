"""``agents-core show`` (the trace tree) and ``export-otel``, on the wire server of the tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
from typer.testing import CliRunner

from agents_core.cli import app
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


@pytest.mark.parametrize("token", ["short", "x" * 20 + " y"])
def test_serve_refuses_a_token_it_cannot_use_before_it_starts(token: str) -> None:
    result = invoke("serve", "--host", "0.0.0.0", "--token", token)
    assert result.exit_code == 2
    assert "--token: a token is 16 to 256 characters" in result.output
    assert token not in result.output
    assert "Database" not in result.output  # nothing was started
