"""One embedded server per data directory: shared, recorded, stopped when idle, never orphaned.

These tests start real SecantusDB servers through ``agents_core.embedded`` (each on its own
``tmp_path``) with short idle times. Waits are bounded polls for a state ("the server is gone"),
never assertions on how long something took.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from agents_core.embedded import (
    DataDirectoryError,
    EmbeddedServer,
    EmbeddedServerError,
    Record,
    server_executable,
    server_status,
    start_server,
    stop_server,
)
from agents_core.embedded.data_dir import ServerDir
from agents_core.embedded.secure import CREDENTIALS

try:
    server_executable()
except EmbeddedServerError:  # pragma: no cover - the dev extra installs it
    pytest.skip("secantusd-py is not installed", allow_module_level=True)

#: Generous bound on any wait for a server to come or go (a loaded CI machine).
PATIENCE_S = 60.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {PATIENCE_S} s: {what}"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def servers_on(data_dir: Path) -> list[int]:
    """The pids of every process whose command line names this data directory's storage."""
    storage = str(data_dir / "storage")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "secantusd" in command and storage in command and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def ping(uri: str) -> None:
    client: MongoClient[dict[str, Any]]
    with MongoClient(uri, serverSelectionTimeoutMS=10_000) as client:
        client.admin.command("ping")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh data directory; whatever server a test left on it is stopped afterwards."""
    path = tmp_path / "data"
    yield path
    stop_server(path)
    wait_until(lambda: not servers_on(path), "the test's server to stop")


def test_processes_share_one_server_and_it_stops_once_idle(data_dir: Path) -> None:
    with EmbeddedServer(data_dir, idle_s=1.0) as first:
        assert first.started
        assert first.uri.endswith("/?retryWrites=false&authSource=admin")
        ping(first.uri)
        with EmbeddedServer(data_dir, idle_s=1.0) as second:  # while the first one uses it
            assert not second.started
            assert second.pid == first.pid
        record = first.record
        # The second has let go; the first's lease holds it (asked after the release, a loaded
        # machine could take longer than the idle time to ask).
        status = server_status(data_dir)
        assert status is not None
        assert status[0] == record
        assert json.loads((data_dir / "server.json").read_text())["pid"] == record.pid
    wait_until(lambda: server_status(data_dir) is None, "the idle server to stop")
    assert not servers_on(data_dir)
    assert not (data_dir / "server.json").exists()
    # It stopped for being unused for its idle time, by the supervisor's own measure.
    (idle_for,) = re.findall(r"unused for ([0-9.]+) s", (data_dir / "supervisor.log").read_text())
    assert float(idle_for) >= record.idle_s


def test_a_lease_keeps_the_server_up_past_its_idle_time(data_dir: Path) -> None:
    with EmbeddedServer(data_dir, idle_s=0.5) as server:
        time.sleep(2.0)  # four idle times: the lease must hold it
        ping(server.uri)
        assert server_status(data_dir) is not None


def test_a_relative_data_dir_is_resolved_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    server = EmbeddedServer("relative/data", idle_s=0.5)
    assert server.data_dir == tmp_path / "relative" / "data"
    try:
        with server:  # its lease holds the server while it is looked up
            assert (tmp_path / "relative" / "data" / "storage" / "WiredTiger").exists()
            # The same folder named by its absolute path is the same server and the same data.
            status = server_status(tmp_path / "relative" / "data")
            assert status is not None
            assert status[0].storage == str(tmp_path / "relative" / "data" / "storage")
        assert not (tmp_path / "relative" / "data" / "relative").exists()
    finally:
        stop_server(tmp_path / "relative" / "data")


def test_stop_server_stops_it_and_the_next_user_starts_a_new_one(data_dir: Path) -> None:
    record, started = start_server(data_dir, idle_s=300)
    assert started
    assert start_server(data_dir, idle_s=300) == (record, False)
    assert stop_server(data_dir) == record
    assert not alive(record.pid)
    assert not alive(record.owner)
    assert server_status(data_dir) is None
    assert stop_server(data_dir) is None
    with EmbeddedServer(data_dir, idle_s=0.5) as server:
        assert server.started
        assert server.pid != record.pid
        ping(server.uri)


def test_a_killed_supervisor_takes_its_server_down_and_is_replaced(data_dir: Path) -> None:
    record, _ = start_server(data_dir, idle_s=300)
    os.kill(record.owner, signal.SIGKILL)
    wait_until(lambda: not alive(record.pid), "the server to follow its supervisor")
    assert (data_dir / "server.json").exists()  # the stale record is still there
    with EmbeddedServer(data_dir, idle_s=0.5) as server:
        assert server.started
        assert server.pid != record.pid
        ping(server.uri)


def test_a_stale_record_is_cleaned_up(data_dir: Path) -> None:
    directory = ServerDir(data_dir)
    directory.create()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    storage = str(data_dir / "storage")
    directory.write_record(Record(pid, 9, pid, pid, time.time(), 300.0, storage))
    assert server_status(data_dir) is None
    assert not (data_dir / "server.json").exists()
    directory.write_record(Record(pid, 9, pid, pid, time.time(), 300.0, storage))
    with EmbeddedServer(data_dir, idle_s=0.5) as server:
        assert server.started
        ping(server.uri)


SCRIPT = """
import sys, time
from agents_core.embedded import EmbeddedServer
with EmbeddedServer(sys.argv[1], idle_s=1.0) as server:
    print(server.pid, flush=True)
    time.sleep(600)
"""


def test_a_script_killed_inside_with_leaves_no_orphan(data_dir: Path) -> None:
    """SIGTERM kills Python without running ``__exit__``: its lease ends with the process."""
    script = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    assert script.stdout is not None
    pid = int(script.stdout.readline())
    script.stdout.close()
    script.send_signal(signal.SIGTERM)
    script.wait()
    wait_until(lambda: not alive(pid), "the idle server to stop after its user was killed")
    assert server_status(data_dir) is None
    with EmbeddedServer(data_dir, idle_s=0.5) as server:  # the WiredTiger lock is free
        ping(server.uri)


def test_an_unrecorded_server_on_the_storage_is_named_in_one_line(data_dir: Path) -> None:
    with EmbeddedServer(data_dir, shared=False) as private:
        with pytest.raises(EmbeddedServerError) as raised:
            EmbeddedServer(data_dir).start()
        message = str(raised.value)
        assert "\n" not in message
        assert f"process {private.pid}" in message
        assert "secantusd" in message
    assert server_status(data_dir) is None


def test_a_held_lock_is_reported_with_its_holder(data_dir: Path) -> None:
    directory = ServerDir(data_dir)
    directory.create()
    with directory.lock(1.0), pytest.raises(EmbeddedServerError) as raised:
        EmbeddedServer(data_dir, lock_timeout=0.3).start()
    assert f"process {os.getpid()}" in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("kind", ["file", "unwritable"])
def test_an_unusable_data_directory_says_why(tmp_path: Path, kind: str) -> None:
    if kind == "file":
        path = tmp_path / "a-file"
        path.write_text("not a directory")
        bad = path / "data"
    else:
        bad = Path("/proc/agents-core-cannot-be-here")  # unwritable, even for root
    with pytest.raises(DataDirectoryError) as raised:
        EmbeddedServer(bad).start()
    assert str(bad) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_an_in_memory_server_cannot_be_shared() -> None:
    with pytest.raises(ValueError, match="in-memory"):
        EmbeddedServer(None, shared=True)


LAUNCH = """
import sys
from agents_core.embedded.launcher import run_in_worker
sys.argv = ["agents-core", *sys.argv[1:]]
print("worker exit code:", run_in_worker())
"""


def test_a_running_server_runs_commands_in_its_warm_worker(data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "MONGODB_DB")}
    env["AGENTS_CORE_DATA"] = str(data_dir)

    def launch(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", LAUNCH, *args],
            env=env | extra,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert launch("sessions").stdout.strip() == "worker exit code: None"  # no server yet
    record, _ = start_server(data_dir, idle_s=300)
    wait_until(lambda: (data_dir / "cli.sock").exists(), "the worker's socket")
    listed = launch("sessions", "--json")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "[]\nworker exit code: 0\n"  # its stdout is this process's
    malformed = launch("show", "zz")
    assert malformed.stdout == "worker exit code: 2\n"
    assert "invalid id 'zz'" in malformed.stderr
    off = launch("sessions", AGENTS_CORE_CLI_WORKER="0")
    assert off.stdout.strip() == "worker exit code: None"
    elsewhere = launch("sessions", MONGODB_URI="mongodb://127.0.0.1:9/")
    assert elsewhere.stdout.strip() == "worker exit code: None"
    assert server_status(data_dir) == (record, [])


def test_the_worker_refuses_other_code(data_dir: Path) -> None:
    from agents_core.embedded.launcher import frame, read_frame

    start_server(data_dir, idle_s=300)
    wait_until(lambda: (data_dir / "cli.sock").exists(), "the worker's socket")
    request = {"argv": ["agents-core", "sessions"], "env": {}, "cwd": "/", "stamp": "other"}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(30)
        connection.connect(str(data_dir / "cli.sock"))
        socket.send_fds(connection, [frame(request)], [0, 1, 2])
        assert read_frame(connection) is None  # closed without an answer: run it yourself
    assert (data_dir / "cli.sock").stat().st_mode & 0o777 == 0o600


# --- E1 (issue 25): a storage that failed is said in one line, and the server comes back -------

#: What WiredTiger writes to the server's log when its disk fills up under a write.
PANIC_LINES = (
    "[1796480820:132656][30314:0x7efe3b7fe6c0], WT_SESSION.commit_transaction: "
    "[WT_VERB_DEFAULT][ERROR]: __log_fs_write, 218: /x/storage/WiredTigerLog.0000000001: "
    "handle-write: pwrite: failed to write 4096 bytes at offset 0: No space left on device\n"
    "[1796480820:132665][30314:0x7efe3b7fe6c0], WT_SESSION.commit_transaction: "
    "[WT_VERB_DEFAULT][ERROR]: __log_fs_write, 218: the process must exit and restart: "
    "WT_PANIC: WiredTiger library panic\n"
)


def connect(uri: str, **options: Any) -> MongoClient[dict[str, Any]]:
    return MongoClient(uri, **{"serverSelectionTimeoutMS": 10_000, **options})


def fill(path: Path) -> None:
    """Take every free byte of ``path``'s file system with that one file."""
    filler = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(filler, 0, shutil.disk_usage(path.parent).free)
    finally:
        os.close(filler)
    assert shutil.disk_usage(path.parent).free == 0


def write_until_refused(client: MongoClient[dict[str, Any]]) -> None:
    """Write 100 kB documents until the server refuses one."""
    for i in range(1000):
        try:
            client["e1"]["big"].insert_one({"i": i, "x": os.urandom(100_000)})
        except PyMongoError:
            return
    raise AssertionError("1,000 writes of 100 kB fitted on a disk of 64 MB")


def _panicked_and_restarted(
    data_dir: Path, *, lose_password: bool = False
) -> tuple[Record, Record]:
    """A supervised server holding one document, whose log then says that its storage
    panicked (and whose credentials file is gone first, with ``lose_password``): its record,
    and the record of the server its supervisor started again."""
    record, _ = start_server(data_dir, idle_s=300)
    with connect(record.uri) as client:
        client["e1"]["kept"].insert_one({"kept": 1})
    if lose_password:
        (data_dir / CREDENTIALS).unlink()
    with (data_dir / "secantusd.log").open("a") as log:
        log.write(PANIC_LINES)

    def restarted() -> bool:
        status = server_status(data_dir)
        return status is not None and status[0].pid != record.pid and not status[0].problem

    wait_until(restarted, "the supervisor to start its server again")
    status = server_status(data_dir)
    assert status is not None
    return record, status[0]


def test_a_server_whose_storage_panicked_is_restarted_on_its_port(data_dir: Path) -> None:
    """E1: after ``WT_PANIC`` secantusd-py kept running and answered ``internal server error``
    to every command, even once there was room again, until ``server stop``. The panic is
    injected into its log here (``test_a_full_disk_…`` fills a real disk, as root)."""
    record, again = _panicked_and_restarted(data_dir)
    assert (again.port, again.owner, again.password) == (record.port, record.owner, record.password)
    assert not alive(record.pid)
    assert "the embedded database's disk is full" in (data_dir / "supervisor.log").read_text()
    with connect(record.uri) as client:  # the URI its users have is still good
        assert client["e1"]["kept"].find_one({}, {"_id": 0}) == {"kept": 1}


def test_a_restart_that_gave_the_user_a_new_password_records_the_new_one(data_dir: Path) -> None:
    """The supervisor's restart after a panic provisions the user again when the password was
    lost meanwhile (the credentials file gone): its record, and so every client's URI, must
    carry the new password. It kept the old one, and nobody could log in any more."""
    record, again = _panicked_and_restarted(data_dir, lose_password=True)
    assert again.password != record.password
    assert json.loads((data_dir / CREDENTIALS).read_text())["password"] == again.password
    with connect(again.uri) as client:
        assert client["e1"]["kept"].find_one({}, {"_id": 0}) == {"kept": 1}


def test_a_full_disk_is_said_in_one_line_and_the_server_recovers_once_there_is_room(
    tmp_path: Path,
) -> None:
    """E1 on a real disk: a tmpfs of 64 MB, filled up while the server writes."""
    if os.geteuid() != 0:
        pytest.skip("fills a small tmpfs: needs root to mount one")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)])
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    data_dir = disk / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "MONGODB_DB")}
    env["AGENTS_CORE_DATA"] = str(data_dir)
    command = [sys.executable, "-c", "from agents_core.embedded.launcher import main; main()"]
    try:
        record, _ = start_server(data_dir, idle_s=300)
        with connect(record.uri) as client:
            client["e1"]["kept"].insert_one({"kept": 1})
            client["e1"]["big"].insert_one({"i": -1})
            fill(disk / "filler")
            write_until_refused(client)
        demo = subprocess.run(
            [*command, "demo"], env=env, capture_output=True, text=True, timeout=120
        )
        assert demo.returncode == 1
        [line] = demo.stderr.splitlines()
        assert line.startswith("error: the embedded database's disk is full: "), line
        assert str(data_dir) in line
        shown = subprocess.run(
            [*command, "server", "status", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        status = json.loads(shown.stdout)
        assert status["healthy"] is False
        assert status["problem"].startswith("the embedded database's disk is full: ")
        (disk / "filler").unlink()

        def writes() -> bool:
            found = server_status(data_dir)
            if found is None or found[0].problem:
                return False
            try:
                with connect(found[0].uri, serverSelectionTimeoutMS=2_000) as client:
                    client["e1"]["after"].insert_one({"room": True})
            except PyMongoError:
                return False
            return True

        wait_until(writes, "the server to write again once there is room")
        with connect(record.uri) as client:
            assert client["e1"]["kept"].find_one({}, {"_id": 0}) == {"kept": 1}
    finally:
        stop_server(data_dir)
        wait_until(lambda: not servers_on(data_dir), "the test's server to stop")
        subprocess.run(["umount", str(disk)], check=True)
