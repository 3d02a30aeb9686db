"""The shape of ``agents_core.embedded``: a face that imports on use, a cheap launcher, layers.

``agents_core.embedded`` offers its names without importing the modules behind them: the
``agents-core`` launcher is one of its modules, so every command runs the package's
``__init__`` first. These tests hold what makes that safe: the names type checkers read are the
names that run, the launcher loads nothing but the standard library and three small modules of
ours, and no module of the package imports another's private names or takes part in a cycle.
And what a pid is (issue 25, E2), with processes that only look like servers: no server is
started here.
"""

from __future__ import annotations

import ast
import contextlib
import graphlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import agents_core.embedded as embedded
from agents_core.embedded import (
    EmbeddedServer,
    EmbeddedServerError,
    Record,
    server_status,
    stop_server,
)
from agents_core.embedded.data_dir import ServerDir
from tests.helpers import modules_loaded_by

#: The ``agents-core`` command, as its entry point runs it.
AGENTS_CORE = [sys.executable, "-c", "from agents_core.embedded.launcher import main; main()"]

PACKAGE = Path(embedded.__file__).parent


def type_checking_imports() -> dict[str, str]:
    """What type checkers read in ``__init__``: each name and the module it comes from."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )
    return {
        alias.asname or alias.name: str(node.module)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def test_every_name_type_checkers_read_is_the_object_its_module_defines() -> None:
    names = type_checking_imports()
    assert set(embedded.__all__) <= set(names)
    for name, module in names.items():
        assert getattr(embedded, name) is getattr(importlib.import_module(module), name), name
    offered = {
        name
        for name in dir(embedded)
        if not name.startswith("_") and not isinstance(getattr(embedded, name), types.ModuleType)
    }
    assert offered - {"TYPE_CHECKING", "annotations"} == set(names)


def test_a_name_the_package_does_not_offer_is_an_attribute_error() -> None:
    misspelt = "EmbededServer"
    with pytest.raises(AttributeError, match="EmbededServer"):
        getattr(embedded, misspelt)


def test_the_launcher_loads_only_the_standard_library_and_three_small_modules() -> None:
    """What every ``agents-core`` command imports before it knows whether a worker runs it."""
    loaded = modules_loaded_by("agents_core.embedded.launcher")
    ours = {name for name in loaded if name.split(".")[0] == "agents_core"}
    assert ours == {
        "agents_core",
        "agents_core.embedded",
        "agents_core.embedded.config",
        "agents_core.embedded.errors",
        "agents_core.embedded.launcher",
        "agents_core.embedded.ownership",
    }
    others = [name for name in loaded - ours if name.split(".")[0] not in sys.stdlib_module_names]
    assert others == []


def test_no_module_imports_private_names_of_another_and_none_is_in_a_cycle() -> None:
    imports: dict[str, set[str]] = {}
    private: list[str] = []
    for path in sorted(PACKAGE.glob("*.py")):
        used = imports.setdefault(path.stem, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
                private += [
                    f"{path.name}: {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and node.module.startswith("agents_core")
                ]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            used |= {m.rsplit(".", 1)[1] for m in modules if m.startswith("agents_core.embedded.")}
    assert private == []
    assert imports["launcher"] == {"config", "errors", "ownership"}
    list(graphlib.TopologicalSorter(imports).static_order())  # CycleError if there is one


def test_a_server_on_another_storage_is_never_taken_for_ours(tmp_path: Path) -> None:
    """Issue 25, E2: ``storage in command`` matched ``<dir>/storage.bak`` (and an empty storage
    any secantusd), so ``server status`` signalled an unrelated server."""
    from agents_core.embedded.processes import runs

    storage = tmp_path / "storage"
    other = subprocess.Popen(
        [
            *(sys.executable, "-c", "import time; time.sleep(60)"),
            *("secantusd-py", "--storage-path", f"{storage}.bak"),
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while not runs(other.pid, "secantusd", f"{storage}.bak"):  # its cmdline is set
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not runs(other.pid, "secantusd", str(storage))
        assert not runs(other.pid, "secantusd", "")
        assert not runs(other.pid, "supervisor", f"{storage}.bak")
    finally:
        other.kill()
        other.wait()


def lookalike(storage: str) -> subprocess.Popen[bytes]:
    """A process whose command line is a ``secantusd-py`` on ``storage``, once it shows."""
    from agents_core.embedded.processes import runs

    process = subprocess.Popen(
        [
            *(sys.executable, "-c", "import time; time.sleep(60)"),
            *("secantusd-py", "--storage-path", storage),
        ]
    )
    deadline = time.monotonic() + 10
    while not runs(process.pid, "secantusd", storage):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return process


def dead_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    return int(finished.stdout)


def stale_record(data_dir: Path, pid: int, server_start: str) -> ServerDir:
    """``data_dir`` with the record of a supervisor that died, naming ``pid`` as its server."""
    directory = ServerDir(data_dir)
    directory.create()
    gone = dead_pid()
    storage = str(directory.storage)
    record = Record(pid, 9, gone, gone, time.time(), 300.0, storage, server_start=server_start)
    directory.write_record(record)
    return directory


@contextlib.contextmanager
def orphaned_server(data_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """What a killed supervisor leaves: a server of ours (a look-alike, with its own start
    token in the record) still running on ``data_dir``'s storage; killed at the end."""
    from agents_core.embedded.processes import start_token

    orphan = lookalike(str(data_dir / "storage"))
    try:
        token = start_token(orphan.pid)
        assert token is not None
        stale_record(data_dir, orphan.pid, server_start=token)
        yield orphan
    finally:
        orphan.kill()
        orphan.wait()


def test_a_recycled_pid_is_never_taken_for_the_recorded_server(tmp_path: Path) -> None:
    """Issue 25, E2: a process is the recorded server only if it started when the recorded one
    did; its command line alone matched a process that took the pid later."""
    from agents_core.embedded.processes import start_token

    data_dir = tmp_path / "data"
    other = lookalike(str(data_dir / "storage"))
    try:
        token = start_token(other.pid)
        assert token is not None
        assert start_token(os.getpid()) not in (None, token)
        stale_record(data_dir, other.pid, server_start=f"{token}0")  # another start: recycled
        assert stop_server(data_dir) is None  # clears the stale record...
        assert not (data_dir / "server.json").exists()
        assert other.poll() is None  # ...without signalling the process that has its pid now
        stale_record(data_dir, other.pid, server_start=token)  # the recorded server itself
        assert stop_server(data_dir) is None
        assert other.wait(10) == -signal.SIGTERM  # an orphaned server of ours is stopped
    finally:
        other.kill()
        other.wait()


def test_server_status_never_signals_a_process(tmp_path: Path) -> None:
    """Issue 25, E2: ``server status`` stopped the server of a stale record; a command whose
    name sounds read-only never signals anything."""
    data_dir = tmp_path / "data"
    with orphaned_server(data_dir) as orphan:
        assert server_status(data_dir) is None  # no supervisor: not running
        shown = subprocess.run(
            [*AGENTS_CORE, "server", "status", "--json"],
            env={**os.environ, "AGENTS_CORE_DATA": str(data_dir), "AGENTS_CORE_CLI_WORKER": "0"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        assert orphan.poll() is None  # a status never signals
        assert (data_dir / "server.json").exists()  # the record of a live server stays


#: ``AGENTS_CORE`` with a short wait for the server of a stale record (``SHUTDOWN_TIMEOUT_S``,
#: 15 s: its parent-death signal usually stops it well before), so that a read command that
#: finds one still running gives up at once here.
AGENTS_CORE_QUICK = [
    sys.executable,
    "-c",
    "import agents_core.embedded.server as server; server.SHUTDOWN_TIMEOUT_S = 0.2\n"
    "from agents_core.embedded.launcher import main; main()",
]


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a command that uses the embedded server of ``data_dir``."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "AGENTS_CORE_MONGODB_URI")
    }
    return {**env, "AGENTS_CORE_DATA": str(data_dir), **extra}


def test_a_server_that_may_not_signal_names_the_stale_server_instead(tmp_path: Path) -> None:
    """Issue 25, E2: ``EmbeddedServer(..., stop_stale=False)`` (what a read command opens) waits
    for the server a dead supervisor left, and if it still runs, says so without signalling."""
    data_dir = tmp_path / "data"
    with orphaned_server(data_dir) as orphan:
        with pytest.raises(EmbeddedServerError) as raised:
            EmbeddedServer(data_dir, stop_stale=False, shutdown_timeout=0.1).start()
        message = str(raised.value)
        assert "\n" not in message
        assert str(data_dir) in message
        assert f"pid {orphan.pid}" in message
        assert "`agents-core server stop`" in message
        assert orphan.poll() is None  # never signalled
        assert (data_dir / "server.json").exists()  # left for `server stop`


@pytest.mark.parametrize(
    ("command", "worker"),
    [
        (["sessions"], "0"),
        (["sessions"], "1"),  # through the launcher, which finds a dead supervisor's cli.sock
        (["serve", "--port", "0"], "0"),
        (["export-otel", "ab12"], "0"),
    ],
    ids=["sessions", "sessions-worker", "serve", "export-otel"],
)
def test_a_read_command_never_signals_the_server_a_dead_supervisor_left(
    tmp_path: Path, command: list[str], worker: str
) -> None:
    """Issue 25, E2: every command but ``server status`` stopped the server of a stale record
    (SIGTERM, then SIGKILL) on its way to the database: ``sessions``, ``show``, ``serve``...
    A command that only reads waits for it to go, then fails in one line that names it and
    what stops it; ``server stop`` does."""
    data_dir = tmp_path / "data"
    try:
        with orphaned_server(data_dir) as orphan:
            if worker != "0":  # a SIGKILLed supervisor leaves its socket behind
                leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                leftover.bind(str(data_dir / "cli.sock"))
                leftover.close()
            env = cli_env(data_dir, AGENTS_CORE_CLI_WORKER=worker)
            read = subprocess.run(
                [*AGENTS_CORE_QUICK, *command], env=env, capture_output=True, text=True, timeout=60
            )
            assert orphan.poll() is None  # never signalled
            assert read.returncode == 1, read.stderr
            (line,) = read.stderr.strip().splitlines()
            assert str(data_dir) in line
            assert f"pid {orphan.pid}" in line
            assert "`agents-core server stop`" in line
            assert (data_dir / "server.json").exists()
            stop = subprocess.run(
                [*AGENTS_CORE, "server", "stop", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert stop.returncode == 0, stop.stderr
            assert orphan.wait(10) == -signal.SIGTERM  # `server stop` stops it
            assert not (data_dir / "server.json").exists()
    finally:
        stop_server(data_dir)  # a server started after the orphan was stopped, if any


def test_a_writing_command_still_stops_the_server_a_dead_supervisor_left(tmp_path: Path) -> None:
    """Issue 25, E2: the recovery that read commands lost stays for the commands that write."""
    data_dir = tmp_path / "data"
    with orphaned_server(data_dir) as orphan:
        env = cli_env(data_dir, AGENTS_CORE_CLI_WORKER="0", AGENTS_CORE_EMBEDDED_IDLE_S="2")
        demo = subprocess.run(
            [*AGENTS_CORE_QUICK, "demo", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert demo.returncode == 0, demo.stderr
        assert orphan.wait(10) == -signal.SIGTERM  # stopped, and a new server started
        stop_server(data_dir)
