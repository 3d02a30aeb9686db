"""The ``agents-core`` command through typer's test runner (and, in parallel, as processes),
against real servers: the embedded one of a temporary data directory, or the session's wire
server through ``MONGODB_URI`` with a fresh database per test."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from pymongo import MongoClient
from pymongo.errors import ServerSelectionTimeoutError
from typer.testing import CliRunner

from agents_core import __version__, embedded
from agents_core.cli import app
from agents_core.cli.common import CLI_SERVER_TIMEOUT_MS
from agents_core.db import (
    AgentsRepository,
    Connection,
    CreateAgentDTO,
    DatabaseError,
    MessagesRepository,
    Run,
    RunsRepository,
    SessionsRepository,
    ToolCallsRepository,
    close_db,
    get_database,
    init_db,
)
from agents_core.db import client as client_module
from agents_core.embedded import server_status, stop_server
from tests.helpers import make_run

T = TypeVar("T")

runner = CliRunner()
#: A short idle time, so that no server outlives the tests that started it by much.
IDLE_S = "2"
#: Generous bound on waiting for a server to go (a loaded CI machine).
PATIENCE_S = 60.0


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {PATIENCE_S} s: {what}"
        time.sleep(0.1)


def servers_on(data_dir: Path) -> list[str]:
    """Command lines of the live processes that serve this data directory's storage."""
    storage = str(data_dir / "storage")
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            zombie = "\nState:\tZ" in (entry / "status").read_text()
        except OSError:
            continue
        if "secantusd" in command and storage in command and not zombie:
            found.append(command)
    return found


def use_embedded(patch: pytest.MonkeyPatch, data_dir: Path) -> None:
    patch.delenv("MONGODB_URI", raising=False)
    patch.delenv("AGENTS_CORE_MONGODB_URI", raising=False)
    patch.delenv("MONGODB_DB", raising=False)
    patch.setenv("AGENTS_CORE_DATA", str(data_dir))
    patch.setenv("AGENTS_CORE_EMBEDDED_IDLE_S", IDLE_S)


@pytest.fixture(scope="module")
def embedded_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One embedded data directory for the module, its server stopped at the end."""
    data = tmp_path_factory.mktemp("agents-core-data")
    with pytest.MonkeyPatch.context() as patch:
        use_embedded(patch, data)
        yield data
    stop_server(data)
    assert not servers_on(data)


@pytest.fixture(scope="module")
def two_demos(embedded_data: Path) -> tuple[Any, Any]:
    return invoke("demo"), invoke("demo")


# --- the embedded database ----------------------------------------------------------------------


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
    # Where to go next, runnable as printed after `make demo` (issue 23).
    assert "agents-core serve" in first.output
    assert ".venv/bin/agents-core" in first.output


def test_a_second_invocation_sees_the_first_ones_data(two_demos: tuple[Any, Any]) -> None:
    first, second = two_demos
    assert second.exit_code == 0, second.output
    first_session = first.output.split("Session:")[1].split()[0]
    assert f"│ {first_session[-6:]} │" in second.output  # in its table, by the end of its id
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


def test_search_finds_a_phrase_in_both_demos(two_demos: tuple[Any, Any]) -> None:
    found = invoke("search", "what time IS", "--json")
    assert found.exit_code == 0, found.output
    assert found.output.startswith("{"), repr(found.output[:300])
    result = json.loads(found.output)
    assert result["method"] == "scan"  # the embedded SecantusDB has no text index
    assert [hit["role"] for hit in result["hits"]] == ["user", "user"]
    assert {hit["excerpt"] for hit in result["hits"]} == {"What time is it in UTC?"}
    table = invoke("search", "1 / 0", "--limit", "1")
    assert table.exit_code == 0, table.output
    assert "no text index" in table.output
    assert "1 / 0" in table.output
    assert invoke("search", "zzz-nowhere").output.startswith("no message contains")
    refused = invoke("search", "x", "--since", "last tuesday")
    assert refused.exit_code == 2
    assert "--since must be a day" in refused.output


def test_the_demo_agent_is_listed_with_its_tools(two_demos: tuple[Any, Any]) -> None:
    listed = json.loads(invoke("agents", "--json").output)
    assert [(a["name"], a["tools"]) for a in listed] == [
        ("demo-assistant", ["calculator", "clock"])
    ]
    text = invoke("agents")
    assert text.exit_code == 0
    assert "demo-assistant" in text.output
    assert "calculator, clock" in text.output


def test_unknown_and_malformed_ids_fail_clearly(embedded_data: Path) -> None:
    malformed = invoke("show", "not-an-id")
    assert malformed.exit_code == 2
    assert "invalid id 'not-an-id'" in malformed.output
    unknown = invoke("runs", "0123456789abcdef01234567")
    assert unknown.exit_code == 1
    assert "not found" in unknown.output
    assert "agents-core sessions" in unknown.output  # what to do next


def test_the_server_commands(embedded_data: Path, two_demos: tuple[Any, Any]) -> None:
    # The demos' server stops once unused for IDLE_S, maybe before this test begins on a loaded
    # machine: a server started here, that stays up until stopped, is the one these commands see.
    invoke("server", "stop")
    first = json.loads(invoke("server", "start", "--json", "--idle", "300").output)
    assert first["started"] is True
    status = json.loads(invoke("server", "status", "--json").output)
    assert (status["running"], status["pid"]) == (True, first["pid"])
    assert (status["healthy"], status["problem"]) == (True, None)
    assert status["data_dir"] == str(embedded_data)
    assert status["uri"].endswith("?retryWrites=false&authSource=admin")
    assert invoke("server", "status").output.startswith("Embedded SecantusDB at")
    started = json.loads(invoke("server", "start", "--json").output)
    assert (started["started"], started["pid"]) == (False, status["pid"])
    stopped = invoke("server", "stop")
    assert stopped.exit_code == 0
    assert f"pid {status['pid']}" in stopped.output
    assert not servers_on(embedded_data)
    assert json.loads(invoke("server", "status", "--json").output)["running"] is False
    assert "no embedded server is running" in invoke("server", "status").output
    assert "no embedded server was running" in invoke("server", "stop").output
    again = json.loads(invoke("server", "start", "--json", "--idle", "1").output)
    assert (again["started"], again["idle_s"]) == (True, 1.0)
    wait_until(lambda: server_status(embedded_data) is None, "the idle server to stop")


def test_twenty_parallel_commands_share_one_server_and_lose_nothing(tmp_path: Path) -> None:
    """Demos and reads at the same moment on one data directory, as separate processes."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "MONGODB_DB")}
    env |= {"AGENTS_CORE_DATA": str(data), "AGENTS_CORE_EMBEDDED_IDLE_S": IDLE_S}
    # The installed entry point: the first commands start the server, later ones may be run
    # by its warm worker.
    command = [sys.executable, "-c", "from agents_core.embedded.launcher import main; main()"]

    def start(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*command, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    seed = start("demo", "--json")
    seeded_out, seeded_err = seed.communicate(timeout=300)
    assert seed.returncode == 0, seeded_err
    seeded = json.loads(seeded_out)["session"]["id"]
    reads = [("sessions", "--json"), ("show", seeded, "--json"), ("runs", seeded, "--json")]
    reads += [("agents", "--json"), ("show", seeded)]
    jobs = [start("demo", "--json") if i % 2 == 0 else start(*reads[i // 2 % 5]) for i in range(20)]
    results = [
        (list(cast(Sequence[str], job.args))[3:], *job.communicate(timeout=600), job.returncode)
        for job in jobs
    ]
    failed = [(args, code, stderr) for args, _, stderr, code in results if code != 0]
    assert failed == []
    demo_outputs = [stdout for args, stdout, _, _ in results if args == ["demo", "--json"]]
    demos = [json.loads(stdout)["session"]["id"] for stdout in demo_outputs]
    assert len(demos) == 10
    # Read it all back through the directory's server (started again if it went idle).
    server = embedded.EmbeddedServer(data, idle_s=float(IDLE_S))
    client: MongoClient[dict[str, Any]]
    with server, MongoClient(server.uri) as client:
        db: Any = client["agents_core"]
        assert db["agents"].count_documents({}) == 1  # get_or_create, also when racing
        for session in [seeded, *demos]:
            assert db["messages"].count_documents({"session_id": _oid(session)}) == 12
            runs = list(db["runs"].find({"session_id": _oid(session)}))
            assert [run["status"] for run in runs] == ["completed"] * 3
            assert all(call["status"] != "pending" for run in runs for call in run["tool_calls"])
    wait_until(lambda: server_status(data) is None, "the shared server to stop once idle")
    wait_until(lambda: not servers_on(data), "no server process left")
    assert (data / "storage").is_dir()
    assert not (data / "server.json").exists()


def _oid(value: str) -> Any:
    from bson import ObjectId

    return ObjectId(value)


# --- errors -------------------------------------------------------------------------------------


def test_an_unreachable_mongodb_uri_fails_within_seconds_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONGODB_URI", "mongodb://admin:hunter2@127.0.0.1:9/")
    failures: list[DatabaseError] = []
    connect = client_module.connect

    async def connect_and_keep_the_failure(*args: Any, **kwargs: Any) -> Connection:
        try:
            return await connect(*args, **kwargs)
        except DatabaseError as exc:
            failures.append(exc)
            raise

    monkeypatch.setattr(client_module, "connect", connect_and_keep_the_failure)
    result = invoke("sessions")
    assert result.exit_code == 1
    assert "timed out" in result.output
    assert "docker compose up -d" in result.output
    assert "unset MONGODB_URI" in result.output
    assert "EmbeddedServer" not in result.output  # the command's advice, not the library's
    assert "hunter2" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    # Within seconds because the driver gave up after the command's own selection timeout (its
    # error says which it used), not after the driver's 30 s: the cause, not a stopwatch.
    (failure,) = failures
    assert isinstance(failure.__cause__, ServerSelectionTimeoutError)
    assert f"Timeout: {CLI_SERVER_TIMEOUT_MS / 1000}s" in str(failure.__cause__)
    assert CLI_SERVER_TIMEOUT_MS <= 5_000


def test_a_missing_server_binary_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_embedded(monkeypatch, tmp_path)
    monkeypatch.setattr("agents_core.embedded.processes.shutil.which", lambda _name: None)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    result = invoke("sessions")
    assert result.exit_code == 1
    assert "secantusd-py not found" in result.output
    assert "agents-core[embedded]" in result.output


@pytest.mark.parametrize("kind", ["file", "unwritable", "too-long"])
def test_an_unusable_data_directory_is_one_line_that_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    if kind == "file":
        (tmp_path / "a-file").write_text("")
        bad, reason = tmp_path / "a-file", "it is a file, not a directory"
    elif kind == "too-long":  # issue 25, C1: a traceback while it explained the first error
        bad, reason = tmp_path / ("d" * 300), "its path is longer than the file system allows"
    else:
        bad, reason = Path("/proc/agents-core-cannot-be-here"), "No such file or directory"
    use_embedded(monkeypatch, tmp_path)
    monkeypatch.setenv("AGENTS_CORE_DATA", str(bad))
    result = invoke("sessions")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"cannot use the data directory {bad}" in lines[0]
    assert reason in lines[0]
    assert "AGENTS_CORE_DATA" in lines[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("AGENTS_CORE_SOCKET_TIMEOUT_MS", "soon"), ("AGENTS_CORE_MAX_MESSAGE_BYTES", "0")],
)
def test_a_malformed_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = invoke("sessions")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert variable in lines[0]
    assert repr(value) in lines[0]


def test_a_malformed_idle_time_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_embedded(monkeypatch, tmp_path)
    monkeypatch.setenv("AGENTS_CORE_EMBEDDED_IDLE_S", "a while")
    result = invoke("sessions")
    assert result.exit_code == 1
    assert "AGENTS_CORE_EMBEDDED_IDLE_S" in result.output
    assert "'a while'" in result.output


def test_json_errors_are_json_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    malformed = invoke("show", "xyz", "--json")
    assert malformed.exit_code == 2
    assert malformed.stdout == ""
    error = json.loads(malformed.stderr)
    assert error["exit_code"] == 2
    assert "invalid id 'xyz'" in error["error"]
    monkeypatch.setenv("AGENTS_CORE_SOCKET_TIMEOUT_MS", "soon")
    setting = invoke("sessions", "--json")
    assert (setting.exit_code, setting.stdout) == (1, "")
    assert "AGENTS_CORE_SOCKET_TIMEOUT_MS" in json.loads(setting.stderr)["error"]


def test_usage_errors_exit_2() -> None:
    assert invoke("runs").exit_code == 2
    assert invoke("runs", "--abandon", "0123456789abcdef01234567").exit_code == 2


def test_version_and_short_help() -> None:
    version = invoke("--version")
    assert (version.exit_code, version.output) == (0, f"agents-core {__version__}\n")
    for args in (["-h"], ["server", "-h"], ["show", "-h"]):
        shown = invoke(*args)
        assert shown.exit_code == 0
        assert "Usage" in shown.output
    assert "agents" in invoke("-h").output


def test_server_status_as_json_stays_off_the_database_layer(tmp_path: Path) -> None:
    # The JSON of records is encoded by the db layer's json_default, imported for a record only:
    # `server` prints plain values, and a cold `server status --json` never loads the layer.
    code = (
        "import sys; from agents_core.cli import main; "
        "sys.argv = ['agents-core', 'server', 'status', '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2] == ['agents_core', 'db']))"
    )
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    env["AGENTS_CORE_DATA"] = str(tmp_path / "data")
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    *status, loaded = shown.stdout.splitlines()
    assert json.loads("\n".join(status)) == {"data_dir": str(tmp_path / "data"), "running": False}
    assert loaded == "[]"


# --- on the wire server, each test with a fresh database ------------------------------------------


@dataclass
class Wire:
    uri: str
    database: str

    def run(self, work: Callable[[], Awaitable[T]]) -> T:
        async def with_layer() -> T:
            await init_db(self.uri, database=self.database)
            try:
                return await work()
            finally:
                await close_db()

        return asyncio.run(with_layer())


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch, wire_uri: str) -> Iterator[Wire]:
    """A sync test: the command runs its own event loop, as it does from a shell."""
    wire = Wire(wire_uri, f"test_cli_{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("MONGODB_URI", wire_uri)
    monkeypatch.setenv("MONGODB_DB", wire.database)
    try:
        yield wire
    finally:
        wire.run(lambda: get_database().client.drop_database(wire.database))


#: Stored text that rich would read as markup (or emoji) if it were given the chance.
TRICKY = ["[/]", "[bold]loud[/bold]", "list[str]", "[red]x", ":smile:"]


@dataclass
class Tricky:
    session: str
    other_session: str
    run: str
    agent: str


def seed_tricky(wire: Wire) -> Tricky:
    async def work() -> Tricky:
        agent = await AgentsRepository().create(
            CreateAgentDTO(name="agent [bold]", instructions="[/] be [red]", tools=["list[str]"])
        )
        sessions = SessionsRepository()
        session = await sessions.create("[/] [bold]loud[/bold] list[str]", user_id="[red]x")
        other = await sessions.create(":smile: list[str]", user_id="u")
        await sessions.set_active_agent(session.id, agent.id)
        for text in TRICKY:
            await MessagesRepository().create(session.id, "user", f"say {text}")
        run = await RunsRepository().create(session.id, agent.id)
        call = await ToolCallsRepository().create(run.id, "list[str]", "[bold]in[/bold]")
        await ToolCallsRepository().complete(call.id, "out [/] list[str]", "error", 3.0)
        await RunsRepository().complete(run.id, "failed", "boom [/red] list[str]")
        return Tricky(str(session.id), str(other.id), str(run.id), str(agent.id))

    return wire.run(work)


@pytest.mark.parametrize("columns", [None, "80"], ids=["table", "blocks"])
def test_stored_strings_are_printed_as_text_never_markup(
    wire: Wire, monkeypatch: pytest.MonkeyPatch, columns: str | None
) -> None:
    if columns is not None:
        monkeypatch.setenv("COLUMNS", columns)
    tricky = seed_tricky(wire)
    listed = invoke("sessions")
    assert listed.exit_code == 0, listed.output
    for text in ("[/] [bold]loud[/bold] list[str]", ":smile: list[str]", "[red]x"):
        assert text in listed.output
    shown = invoke("show", tricky.session)
    assert shown.exit_code == 0, shown.output
    for text in TRICKY:
        assert f"say {text}" in shown.output
    for text in ("[bold]in[/bold]", "out [/] list[str]", "boom [/red] list[str]", "[red]x"):
        assert text in shown.output
    agents = invoke("agents")
    assert agents.exit_code == 0, agents.output
    for text in ("agent [bold]", "list[str]", "[/] be [red]"):
        assert text in agents.output
    # Ids are printed by their last 6 digits (ids one process made differ there), never cut
    # short with an ellipsis; show's header has the session's whole.
    assert tricky.session[-6:] in listed.output
    assert tricky.session not in listed.output
    assert tricky.session in shown.output
    assert f"run {tricky.run[-6:]} " in shown.output
    assert tricky.agent[-6:] in agents.output
    is_table = "┃" in listed.output
    assert is_table == (columns is None)


def test_show_takes_a_run_id_or_a_unique_prefix(wire: Wire) -> None:
    tricky = seed_tricky(wire)
    by_run = invoke("show", tricky.run)
    assert by_run.exit_code == 0, by_run.output
    assert f"The turn of run {tricky.run}" in by_run.output
    assert f"Session {tricky.session}" in by_run.output
    turn = json.loads(invoke("show", tricky.run, "--json").output)
    assert turn["run"]["id"] == tricky.run
    assert [m["content"] for m in turn["turn"]] == ["say :smile:"]  # the user message before it
    # Ids made by one process within seconds share their first hex digits (the timestamp).
    ids = (tricky.session, tricky.other_session, tricky.run)
    common = next(
        tricky.session[:n] for n in range(24, -1, -1) if all(i[:n] == ids[0][:n] for i in ids)
    )
    assert common
    ambiguous = invoke("show", common)
    assert ambiguous.exit_code == 1
    assert "ambiguous" in ambiguous.output
    unique = next(
        tricky.session[:n]
        for n in range(len(common) + 1, 25)
        if not any(
            other.startswith(tricky.session[:n]) for other in (tricky.other_session, tricky.run)
        )
    )
    by_prefix = json.loads(invoke("show", unique, "--json").output)
    assert by_prefix["session"]["id"] == tricky.session
    missing = invoke("show", "f" * 12)
    assert missing.exit_code == 1
    assert "no recent session or run id ends with ffffffffffff" in missing.output


def test_durations_are_humanised(wire: Wire) -> None:
    tricky = seed_tricky(wire)

    async def slow_run() -> None:
        run = await RunsRepository().find_by_id(tricky.run)
        await get_database()["runs"].update_one(
            {"_id": run.id}, {"$set": {"completed_at": run.started_at + timedelta(seconds=3723)}}
        )

    wire.run(slow_run)
    shown = invoke("runs", tricky.session)
    assert "took 1 h 2 min" in shown.output
    assert "│ 3.0 ms │" in shown.output  # the tool call's 3 ms, in its "took" column


def test_stale_runs_are_listed_and_abandoned_with_their_tool_calls(wire: Wire) -> None:
    async def stale_run() -> tuple[Run, str]:
        run = await make_run()
        call = await ToolCallsRepository().create(run.id, "slow", "{}")
        await get_database()["runs"].update_one(
            {"_id": run.id}, {"$set": {"started_at": run.started_at - timedelta(hours=3)}}
        )
        return run, call.id

    run, call_id = wire.run(stale_run)
    listed = invoke("runs", "--stale", "--older-than", "60", "--json")
    assert [r["id"] for r in json.loads(listed.output)] == [str(run.id)]
    abandoned = invoke("runs", "--stale", "--abandon")
    assert abandoned.exit_code == 0
    assert "abandoned" in abandoned.output
    assert json.loads(invoke("runs", "--stale", "--json").output) == []
    stored = wire.run(lambda: RunsRepository().find_by_id(run.id))
    assert stored.error == "abandoned"
    assert [(c.id, c.status.value) for c in stored.tool_calls] == [(call_id, "error")]


def test_help_names_the_program_whoever_runs_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The warm worker runs the CLI inside ``python -m agents_core.embedded.supervisor``: click
    took its program name from that (``python -m agents_core.agents-core``)."""
    import importlib.machinery
    import types

    from agents_core.cli import main

    worker = types.ModuleType("__main__")
    worker.__package__ = "agents_core.embedded"
    worker.__spec__ = importlib.machinery.ModuleSpec("agents_core.embedded.supervisor", None)
    monkeypatch.setitem(sys.modules, "__main__", worker)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/agents-core", "--help"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "agents-core [OPTIONS] COMMAND" in out
    assert "python -m" not in out
