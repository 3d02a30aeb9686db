"""``agents-core chat`` against a Chat Completions server on loopback, lines from a pipe."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from agents_core.cli import app
from tests.chat_server import completion, error, serve

runner = CliRunner()


@pytest.fixture
def chat_env(monkeypatch: pytest.MonkeyPatch, wire_uri: str) -> None:
    monkeypatch.setenv("MONGODB_URI", wire_uri)
    monkeypatch.setenv("MONGODB_DB", f"chat_{uuid.uuid4().hex[:10]}")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


@pytest.mark.usefixtures("chat_env")
def test_a_piped_conversation_with_a_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = [
        completion(tool_calls=[("c1", "calculator", '{"expression": "6 * 7"}')]),
        completion("6 * 7 = 42."),
        completion("You are welcome."),
    ]
    with serve(steps) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        result = runner.invoke(
            app, ["chat", "--model", "gpt-test"], input="what is 6 * 7?\nthanks\n"
        )
    assert result.exit_code == 0, result.output
    assert server.violations == []
    assert len(server.requests) == 3
    assert "assistant: 6 * 7 = 42." in result.output
    assert "assistant: You are welcome." in result.output
    assert "calculator" in result.output  # the turn's trace, after its answer
    assert result.output.index("6 * 7 = 42.") < result.output.index("calculator", 200)
    # The model saw the demo's tools with their schemas.
    tools = {t["function"]["name"]: t["function"] for t in server.requests[0]["tools"]}
    assert tools["calculator"]["parameters"]["required"] == ["expression"]


@pytest.mark.usefixtures("chat_env")
def test_a_model_error_is_one_line_and_the_chat_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve([error(400, "bad request", "invalid_request_error"), completion("ok")]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        result = runner.invoke(app, ["chat"], input="one\ntwo\n")
    assert result.exit_code == 0, result.output
    assert "model error: gpt-4.1-mini: HTTP 400: bad request" in result.output
    assert "assistant: ok" in result.output


@pytest.mark.usefixtures("chat_env")
def test_json_is_a_line_a_turn_and_a_model_error_a_line_on_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps = [
        completion(tool_calls=[("c1", "calculator", '{"expression": "6 * 7"}')]),
        completion("6 * 7 = 42."),
        error(400, "bad request", "invalid_request_error"),
        completion("You are welcome."),
    ]
    with serve(steps) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        result = runner.invoke(app, ["chat", "--json"], input="what is 6 * 7?\nagain\nthanks\n")
    assert result.exit_code == 0, result.output
    turns = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(t["input"], t["answer"]) for t in turns] == [
        ("what is 6 * 7?", "6 * 7 = 42."),
        ("thanks", "You are welcome."),
    ]
    assert len({t["session_id"] for t in turns}) == 1
    first = turns[0]["run"]
    assert (first["status"], len(first["tool_calls"]), first["session_id"]) == (
        "completed",
        1,
        turns[0]["session_id"],
    )
    (failed,) = [json.loads(line) for line in result.stderr.splitlines()]
    assert failed["input"] == "again"
    assert failed["error"].startswith("model error: gpt-4.1-mini: HTTP 400: bad request")


def test_without_a_key_or_server_the_chat_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = runner.invoke(app, ["chat"], input="hi\n")
    assert result.exit_code == 1
    assert "set OPENAI_API_KEY" in result.output
    assert len(result.output.strip().splitlines()) == 1


#: What a model's answer may hold (issue 25, T1): a window title (OSC 0), the clipboard (OSC 52),
#: a cleared screen (CSI 2J), DEL and a C1 CSI, beside a newline and a tab (printed as such).
HOSTILE = "a\x1b]0;pwned\x07b\x1b]52;c;Y3VybCBldmlsLnNofHNo\x07c\x1b[2Jd\x7fe\x9b31mf\ng\th"


@pytest.mark.usefixtures("chat_env")
def test_a_models_control_characters_are_shown_not_sent_to_the_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps = [completion(HOSTILE), error(400, "refused \x1b[2J here", "invalid_request_error")]
    with serve(steps) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        result = runner.invoke(app, ["chat"], input="hi\nagain\n")
    assert result.exit_code == 0, result.output
    assert not any(ch in result.output for ch in "\x1b\x07\x7f\x9b")
    # Shown as symbols (C1 escaped); the newline stays one, the tab is white space.
    shown = "assistant: a␛]0;pwned␇b␛]52;c;Y3VybCBldmlsLnNofHNo␇c␛[2Jd␡e\\x9b31mf\ng "
    assert shown in result.output
    assert "model error: gpt-4.1-mini: HTTP 400: refused ␛[2J here" in result.output
