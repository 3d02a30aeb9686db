"""Another local user: what the CLI and the embedded server trust (issue 25, S1 and S2).

A data directory, every file the CLI reads in it and the warm worker's socket are used only if
they are ours: owned by our uid, writable by nobody else. The tests that play another user run
as root and drop to uid 65534 (``nobody``) in a child process; elsewhere they are skipped.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.uri_parser import parse_uri

from agents_core.embedded.data_dir import Record, ServerDir

#: The other local user.
NOBODY = 65534
#: What must never reach another user.
SECRET = "sk-secret-that-only-i-may-see"

as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="plays another local user: needs root to drop to uid 65534"
)

#: The ``agents-core`` command, as its entry point runs it.
AGENTS_CORE = [sys.executable, "-c", "from agents_core.embedded.launcher import main; main()"]

#: Asks the launcher alone whether a worker ran the command (and what it said the exit code was).
LAUNCH = """
import sys
from agents_core.embedded.launcher import run_in_worker
sys.argv = ["agents-core", *sys.argv[1:]]
print("worker exit code:", run_in_worker())
"""

#: A warm worker's impostor: it binds ``cli.sock`` (as root: the test's folders are root's),
#: chowns it to nobody if told to, becomes nobody, listens, and reports on stdout what each
#: connection sent; it answers as a worker would and picks the exit code (42).
IMPOSTOR = """
import json, os, socket, struct, sys
path, chown = sys.argv[1], sys.argv[2] == "chown"
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(path)
if chown:
    os.chown(path, 65534, 65534)
os.setgid(65534)
os.setuid(65534)
listener.listen(8)
print("listening", flush=True)
while True:
    connection, _ = listener.accept()
    connection.settimeout(10)
    data, fds = b"", []
    try:
        data, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
        while data and len(data) < 4 + struct.unpack("!I", data[:4])[0]:
            chunk = connection.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        if data:
            for message in ({"pid": os.getpid()}, {"exit": 42}):
                body = json.dumps(message).encode()
                connection.sendall(struct.pack("!I", len(body)) + body)
    except OSError:
        pass
    for fd in fds:  # the victim's terminal: let go of it, or its pipes never end
        os.close(fd)
    secret = sys.argv[3] in data.decode(errors="replace")
    print(json.dumps({"bytes": len(data), "fds": len(fds), "secret": secret}), flush=True)
    connection.close()
"""


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "MONGODB_DB")}
    return env | {"AGENTS_CORE_DATA": str(data_dir), "OPENAI_API_KEY": SECRET} | extra


@pytest.fixture
def impostor() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def listen_as_nobody(
    socket_path: Path, started: list[subprocess.Popen[str]], *, chown: bool
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", IMPOSTOR, str(socket_path), "chown" if chown else "keep", SECRET],
        stdout=subprocess.PIPE,
        text=True,
    )
    started.append(process)
    assert process.stdout is not None
    assert process.stdout.readline() == "listening\n"
    return process


def what_it_heard(process: subprocess.Popen[str]) -> list[dict[str, object]]:
    process.kill()
    out, _ = process.communicate()
    return [json.loads(line) for line in out.splitlines()]


@as_root
@pytest.mark.parametrize(
    "case", ["their directory", "their socket in my directory", "their listener on my socket"]
)
def test_the_cli_sends_nothing_to_a_worker_socket_another_user_controls(
    tmp_path: Path, impostor: list[subprocess.Popen[str]], case: str
) -> None:
    """S1: the launcher sent the environment (``OPENAI_API_KEY``), argv and cwd, and passed the
    terminal, to whoever listened on ``./.agents-core/cli.sock``, and took its exit code."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    if case == "their directory":
        os.chown(data_dir, NOBODY, NOBODY)
    listener = listen_as_nobody(
        data_dir / "cli.sock", impostor, chown=case != "their listener on my socket"
    )
    launched = subprocess.run(
        [sys.executable, "-c", LAUNCH, "sessions"],
        env=env_for(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert launched.stdout == "worker exit code: None\n", launched.stderr  # run here instead
    heard = what_it_heard(listener)
    assert not any(message["secret"] or message["bytes"] or message["fds"] for message in heard)


@as_root
def test_a_data_directory_of_another_user_is_refused_in_one_line(tmp_path: Path) -> None:
    """S1: refused like git's ``safe.directory``, root included: one line naming the directory,
    its owner and the variable that chooses another; exit code 1."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chown(data_dir, NOBODY, NOBODY)
    shown = subprocess.run(
        [*AGENTS_CORE, "sessions"], env=env_for(data_dir), capture_output=True, text=True
    )
    assert shown.returncode == 1
    assert shown.stdout == ""
    [line] = shown.stderr.splitlines()
    assert str(data_dir) in line
    assert "nobody (uid 65534)" in line
    assert "AGENTS_CORE_DATA" in line
    assert not (data_dir / "storage").exists()  # nothing was started in it


def test_a_data_directory_that_others_can_write_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o777)
    for command in (["sessions"], ["server", "status"]):
        shown = subprocess.run(
            [*AGENTS_CORE, *command], env=env_for(data_dir), capture_output=True, text=True
        )
        assert shown.returncode == 1
        [line] = shown.stderr.splitlines()
        assert f"cannot use the data directory {data_dir}: it can be written by others" in line
        assert "AGENTS_CORE_DATA" in line


@as_root
@pytest.mark.parametrize("how", ["owned by nobody", "writable by others"])
def test_a_server_record_another_user_could_write_is_refused(
    tmp_path: Path, wire_uri: str, how: str
) -> None:
    """S2: with ``AGENTS_CORE_CLI_WORKER=0`` the CLI used the port of a ``server.json`` that
    another user wrote, and listed (or would have written to) their planted sessions."""
    database = f"planted_{os.getpid()}"
    planted_client: MongoClient[dict[str, Any]] = MongoClient(wire_uri)  # "their" server
    with planted_client:
        planted_client[database]["sessions"].insert_one({"title": "PLANTED BY ANOTHER USER"})
    port = parse_uri(wire_uri)["nodelist"][0][1]
    data_dir = tmp_path / "data"
    directory = ServerDir(data_dir)
    directory.create()  # mine, 0700
    storage = str(directory.storage)
    directory.write_record(Record(os.getpid(), port, os.getpid(), 0, 0.0, 300.0, storage))
    record = data_dir / "server.json"
    if how == "owned by nobody":
        os.chown(record, NOBODY, NOBODY)
    else:
        record.chmod(0o666)
    # Their supervisor holds server.owner (here: this test, on their behalf).
    owner = os.open(data_dir / "server.owner", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(owner, fcntl.LOCK_EX)
    try:
        shown = subprocess.run(
            [*AGENTS_CORE, "sessions"],
            env=env_for(data_dir, AGENTS_CORE_CLI_WORKER="0", MONGODB_DB=database),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.close(owner)
    assert "PLANTED" not in shown.stdout
    assert shown.returncode == 1
    [line] = shown.stderr.splitlines()
    assert f"cannot use the data directory {data_dir}: its server.json" in line
    assert "AGENTS_CORE_DATA" in line
