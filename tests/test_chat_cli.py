"""``agents-core chat`` against a Chat Completions server on loopback, lines from a pipe."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from typer.testing import CliRunner

from agents_core.cli import app
from agents_core.db import (
    ModelCallStatus,
    Price,
    Run,
    RunsRepository,
    SessionsRepository,
    close_db,
    init_db,
)
from tests.chat_server import Reply, completion, error, serve

runner = CliRunner()


@pytest.fixture
def chat_env(monkeypatch: pytest.MonkeyPatch, wire_uri: str) -> tuple[str, str]:
    """The wire server's URI and the chat's database (a fresh one)."""
    database = f"chat_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("MONGODB_URI", wire_uri)
    monkeypatch.setenv("MONGODB_DB", database)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    return wire_uri, database


def chat_runs(where: tuple[str, str]) -> list[Run]:
    """The runs of the chat's session (the one session of user ``chat``), oldest first."""

    async def read() -> list[Run]:
        await init_db(where[0], database=where[1])
        try:
            (session,) = await SessionsRepository().list_active(user_id="chat")
            return await RunsRepository().list_by_session(session.id)
        finally:
            await close_db()

    return asyncio.run(read())


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
def test_a_long_model_error_is_still_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    reason = "the request was refused because " + "of this and that " * 10
    with serve([error(400, reason, "invalid_request_error"), completion("ok")]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        result = runner.invoke(app, ["chat"], input="one\ntwo\n")
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.output.splitlines() if "model error" in line]
    assert line.startswith("model error: gpt-4.1-mini: HTTP 400: the request was refused")
    assert line.endswith("check the request the server refused")


@pytest.mark.usefixtures("chat_env")
def test_an_answer_without_a_message_is_a_model_error_and_the_chat_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = completion("lost").body | {"choices": [{"index": 0, "finish_reason": "stop"}]}
    with serve([Reply(200, broken), completion("ok")]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        result = runner.invoke(app, ["chat"], input="one\ntwo\n")
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "model error: gpt-4.1-mini: the response is not a valid chat completion" in (
        result.output
    )
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


def test_price_prices_every_model_call_in_dollars_per_million_tokens(
    monkeypatch: pytest.MonkeyPatch, chat_env: tuple[str, str]
) -> None:
    steps = [
        completion(tool_calls=[("c1", "calculator", '{"expression": "6 * 7"}')]),
        completion("42.", prompt_tokens=1_000, completion_tokens=200, cached_tokens=400),
    ]
    with serve(steps) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        result = runner.invoke(app, ["chat", "--price", "2/8/0.5"], input="what is 6 * 7?\n")
    assert result.exit_code == 0, result.output
    (run,) = chat_runs(chat_env)
    price = Price(input_per_million=2, output_per_million=8, cached_input_per_million=0.5)
    first, second = run.model_calls
    assert first.price == price
    assert first.cost == pytest.approx((10 * 2 + 5 * 8) / 1e6)
    assert second.cost == pytest.approx((600 * 2 + 400 * 0.5 + 200 * 8) / 1e6)
    assert run.cost == pytest.approx(first.cost + second.cost)
    assert f"cost ${run.cost:.6f}" in result.output  # the turn's trace


def test_without_a_price_the_cached_rate_is_the_input_rate(
    monkeypatch: pytest.MonkeyPatch, chat_env: tuple[str, str]
) -> None:
    with serve([completion("hi", prompt_tokens=100, cached_tokens=50)]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        result = runner.invoke(app, ["chat", "--price", "0.40/1.60"], input="hello\n")
    assert result.exit_code == 0, result.output
    ((call,),) = [run.model_calls for run in chat_runs(chat_env)]
    assert call.price == Price(input_per_million=0.4, output_per_million=1.6)
    assert call.cost == pytest.approx((100 * 0.4 + 5 * 1.6) / 1e6)


def test_timeout_bounds_each_try_of_a_model_call(
    monkeypatch: pytest.MonkeyPatch, chat_env: tuple[str, str]
) -> None:
    late = dataclasses.replace(completion("too late"), delay=1.0)
    # Two tries (one retry), each given up after 0.2 s; then the next turn is answered.
    with serve([late, late, completion("in time")]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        result = runner.invoke(app, ["chat", "--timeout", "0.2"], input="one\ntwo\n")
    assert result.exit_code == 0, result.output
    assert "model error: gpt-4.1-mini: no answer from http://127.0.0.1" in result.output
    assert "within 0.2 s" in result.output
    assert "assistant: in time" in result.output
    failed, answered = chat_runs(chat_env)
    assert failed.model_calls[0].status is ModelCallStatus.error
    assert answered.status.value == "completed"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--price", "abc"),
        ("--price", "1"),
        ("--price", "1/2/3/4"),
        ("--price", "1/-2"),
        ("--price", "nan/1"),
        ("--price", "1/inf"),
        ("--price", "1//2"),
        ("--timeout", "0"),
        ("--timeout", "-5"),
        ("--timeout", "inf"),
        ("--timeout", "nan"),
        ("--timeout", "soon"),
    ],
)
def test_a_garbage_price_or_timeout_is_a_one_line_usage_error(
    monkeypatch: pytest.MonkeyPatch, option: str, value: str
) -> None:
    # Refused before anything else: no key, no database, no model server is needed.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:9/never")
    result = runner.invoke(app, ["chat", option, value], input="hi\n")
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: {option} must be ")
    assert repr(value) in line


#: The chat as a program of its own (not the warm worker's launcher): its streams are ours.
CHAT = [sys.executable, "-c", "from agents_core.cli import main; main()", "chat"]


def _read_all(fd: int, process: subprocess.Popen[bytes]) -> bytes:
    """Everything written to the terminal ``fd`` until ``process`` has ended."""
    data = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        if not ready:
            process.kill()
            raise AssertionError(f"the chat hung; it wrote {data!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: every writer of the terminal has gone
            break
        if not chunk:
            break
        data += chunk
    process.wait(timeout=30)
    return data


def _terminal_env(chat_env: tuple[str, str], base_url: str) -> dict[str, str]:
    """The chat's environment on a terminal: the test database, the model server, and none of
    the variables that force or forbid colour (rich decides by the terminal alone)."""
    dropped = {"FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"}
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    return env | {
        "MONGODB_URI": chat_env[0],
        "MONGODB_DB": chat_env[1],
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": base_url,
        "TERM": "xterm-256color",
        "COLUMNS": "120",
    }


@pytest.mark.parametrize("stdout_is_a_terminal", [True, False], ids=["terminal", "pipe"])
def test_the_chat_says_that_it_waits_for_the_model_on_a_terminal_only(
    chat_env: tuple[str, str], stdout_is_a_terminal: bool
) -> None:
    master, slave = pty.openpty()
    with serve([completion("the answer")]) as server:
        env = _terminal_env(chat_env, server.base_url)
        process = subprocess.Popen(
            [*CHAT, "--model", "gpt-test"],
            stdin=slave,
            stdout=slave if stdout_is_a_terminal else subprocess.PIPE,
            stderr=slave,
            env=env,
        )
        os.close(slave)
        os.write(master, b"what is it?\n\n")  # one turn, then an empty line ends the chat
        terminal = _read_all(master, process)
        piped = b""
        if process.stdout is not None:
            with process.stdout:
                piped = process.stdout.read()
        os.close(master)
    assert process.returncode == 0, (terminal + piped).decode(errors="replace")
    assert b"the answer" in terminal + piped
    if stdout_is_a_terminal:
        assert b"waiting for gpt-test" in terminal
    else:  # stdin and stderr are the terminal, stdout a pipe: nothing extra anywhere
        assert b"waiting" not in terminal + piped
        assert b"\x1b" not in piped


def test_with_json_the_waiting_line_is_on_stderr_and_stdout_is_json_only(
    chat_env: tuple[str, str],
) -> None:
    """``chat --json`` on a terminal: stdout (one terminal) gets only the turns' JSON lines, the
    waiting line goes to stderr (another terminal)."""
    out_master, out_slave = pty.openpty()
    err_master, err_slave = pty.openpty()
    with serve([completion("the answer")]) as server:
        env = _terminal_env(chat_env, server.base_url)
        process = subprocess.Popen(
            [*CHAT, "--model", "gpt-test", "--json"],
            stdin=subprocess.PIPE,
            stdout=out_slave,
            stderr=err_slave,
            env=env,
        )
        os.close(out_slave)
        os.close(err_slave)
        assert process.stdin is not None
        with process.stdin:
            process.stdin.write(b"what is it?\n\n")
        printed = _read_all(out_master, process)
        said = _read_all(err_master, process)
        os.close(out_master)
        os.close(err_master)
    assert process.returncode == 0, (printed + said).decode(errors="replace")
    (line,) = printed.decode().splitlines()
    assert json.loads(line)["answer"] == "the answer"
    assert b"waiting for gpt-test" in said


@pytest.mark.usefixtures("chat_env")
def test_a_piped_chat_prints_no_status_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve([completion("fine")]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        result = runner.invoke(app, ["chat"], input="how are you?\n")
    assert result.exit_code == 0, result.output
    assert "assistant: fine" in result.output
    assert "waiting" not in result.output


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_ctrl_c_while_the_model_thinks_records_the_cancelled_model_call(
    chat_env: tuple[str, str], as_json: bool
) -> None:
    released = threading.Event()

    def slow(body: object) -> Reply:
        released.wait(60)  # until the chat has been interrupted
        return completion("too late")

    with serve([slow]) as server:
        env = {
            **os.environ,
            "MONGODB_URI": chat_env[0],
            "MONGODB_DB": chat_env[1],
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": server.base_url,
        }
        process = subprocess.Popen(
            [*CHAT, "--model", "gpt-test", *(["--json"] if as_json else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            assert process.stdin is not None
            process.stdin.write(b"think hard\n")
            process.stdin.flush()
            deadline = time.monotonic() + 60
            while not server.requests:  # the model has been asked
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the model was never asked"
                time.sleep(0.05)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
        finally:
            released.set()
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 130, (out + err).decode()
    last = err.decode().strip().splitlines()[-1]
    if as_json:  # stderr under --json is one JSON object a line, this one too
        assert json.loads(last) == {"error": "interrupted", "exit_code": 130}
        assert out == b""
    else:
        assert last == "interrupted"
    (run,) = chat_runs(chat_env)
    assert (run.status.value, run.error) == ("failed", "cancelled")
    (call,) = run.model_calls
    assert (call.model, call.status, call.error) == ("gpt-test", ModelCallStatus.error, "cancelled")
    assert call.duration_ms >= 0


def test_ctrl_c_at_the_prompt_ends_the_chat(chat_env: tuple[str, str]) -> None:
    """Ctrl-C while the chat waits for the user's line (on a terminal) ends it at once, as it
    does while the model thinks: it no longer waits for a line after the interrupt."""
    master, slave = pty.openpty()
    with serve([]) as server:
        process = subprocess.Popen(
            [*CHAT, "--model", "gpt-test"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=_terminal_env(chat_env, server.base_url),
        )
        os.close(slave)
        seen = b""
        try:
            while b"you: " not in seen:  # the prompt: the chat is reading the user's line
                ready, _, _ = select.select([master], [], [], 60)
                assert ready, f"no prompt; the chat wrote {seen!r}"
                seen += os.read(master, 4096)
            process.send_signal(signal.SIGINT)
            try:
                ended = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                ended = None
            seen += _read_all(master, process) if ended is not None else b""
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            os.close(master)
    assert ended == 130, seen.decode(errors="replace")
    assert b"interrupted" in seen
    assert server.requests == []
