"""Another local user: what the CLI and the embedded server trust (issue 25, S1 to S3).

A data directory, every file the CLI reads in it and the warm worker's socket are used only if
they are ours: owned by our uid, writable by nobody else. The embedded server refuses every
command without its credentials, and its files are the owner's alone. The tests that play
another user run as root and drop to uid 65534 (``nobody``) in a child process; elsewhere they
are skipped.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure
from pymongo.uri_parser import parse_uri

from agents_core.embedded import (
    EmbeddedServer,
    EmbeddedServerError,
    server_executable,
    start_server,
    stop_server,
)
from agents_core.embedded.data_dir import Record, ServerDir

try:
    server_executable()
except EmbeddedServerError:  # pragma: no cover - the dev extra installs it
    pytest.skip("secantusd-py is not installed", allow_module_level=True)

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


# --- S3: the embedded server and its files are the owner's alone ------------------------------


def modes(root: Path) -> dict[str, int]:
    """The permission bits of ``root``'s whole tree (symbolic links not followed)."""
    return {
        str(path.relative_to(root)): path.lstat().st_mode & 0o777
        for path in [root, *root.rglob("*")]
    }


def test_every_file_and_folder_of_a_data_directory_is_its_owners_alone(tmp_path: Path) -> None:
    """S3: ``server.json`` and the WiredTiger files were 0644: another user read the port and,
    with the server stopped, the conversations (``strings``)."""
    data_dir = tmp_path / "data"
    older = tmp_path / "older"  # what an older version left: 0755 and 0644
    (older / "storage").mkdir(parents=True, mode=0o755)
    for name in ("secantusd.log", "supervisor.log", "server.users", "server.lock"):
        (older / name).write_text("")
        (older / name).chmod(0o644)
    try:
        for path in (data_dir, older):
            start_server(path, idle_s=300)
            deadline = time.monotonic() + 60
            while not (path / "cli.sock").exists():  # once the worker's CLI is imported
                assert time.monotonic() < deadline, "no worker socket after 60 s"
                time.sleep(0.1)
            seen = modes(path)
            assert "storage/WiredTiger" in seen
            assert "cli.sock" in seen  # the warm worker's socket too
            assert {name: mode for name, mode in seen.items() if mode & 0o077} == (
                {} if path == data_dir else {".": 0o755}  # a folder it did not create is left
            )
    finally:
        stop_server(data_dir)
        stop_server(older)
    assert modes(data_dir)["storage"] == 0o700  # and so they stay once it is stopped


def test_the_embedded_server_refuses_every_command_without_its_credentials(
    tmp_path: Path,
) -> None:
    """S3: the server took commands on 127.0.0.1 from anyone: another user read the port,
    listed the sessions and rewrote every assistant message."""
    data_dir = tmp_path / "data"
    try:
        started = subprocess.run(
            [*AGENTS_CORE, "server", "start"],
            env=env_for(data_dir),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert started.returncode == 0, started.stderr
        [uri] = [word for word in started.stdout.split() if word.startswith("mongodb://")]
        record = ServerDir(data_dir).read_record()
        assert record is not None
        assert uri == record.uri
        credentials = data_dir / "server.credentials"
        assert credentials.stat().st_mode & 0o777 == 0o600
        assert record.password in credentials.read_text()
        anyone = f"mongodb://127.0.0.1:{record.port}/?retryWrites=false"
        wrong = uri.replace(record.password, "guessed")
        for refused in (anyone, wrong):
            client: MongoClient[dict[str, Any]] = MongoClient(
                refused, serverSelectionTimeoutMS=10_000
            )
            with client, pytest.raises(OperationFailure) as raised:
                client["agents_core"]["sessions"].find_one()
            assert raised.value.code in (13, 18)  # Unauthorized, AuthenticationFailed
        client = MongoClient(uri, serverSelectionTimeoutMS=10_000)
        with client:  # the URI as printed
            client["agents_core"]["sessions"].insert_one({"title": "mine"})
            assert client["agents_core"]["sessions"].count_documents({}) == 1
        # The next start of the same storage keeps its user and its password.
        stop_server(data_dir)
        again, _ = start_server(data_dir, idle_s=300)
        assert (again.user, again.password) == (record.user, record.password)
        with MongoClient(again.uri, serverSelectionTimeoutMS=10_000) as client:
            assert client["agents_core"]["sessions"].count_documents({}) == 1
    finally:
        stop_server(data_dir)


INTRUDER = {"createUser": "intruder", "pwd": "let-me-in", "roles": ["root"], "$db": "elsewhere"}


@pytest.fixture
def intruding(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Another user who connects while the first user is created, creating one of their own
    (in a database nobody would look in) on each of the first ``len(list)`` starts."""
    from agents_core.embedded import secure

    rounds: list[int] = [1]
    original = secure.create_user

    def create_user(port: int, password: str) -> int:
        if rounds:
            rounds.pop()
            with socket.create_connection(("127.0.0.1", port), timeout=30) as theirs:
                assert secure.command(theirs, INTRUDER)["ok"] == 1
        return original(port, password)

    monkeypatch.setattr(secure, "create_user", create_user)
    return rounds


def test_the_first_user_is_created_again_on_an_empty_storage_if_anyone_else_connected(
    tmp_path: Path, intruding: list[int]
) -> None:
    """S3: ``--auth`` has no localhost exception, so the first user is created on a start
    without it; anyone who connects meanwhile could create a user of their own."""
    with EmbeddedServer(tmp_path / "data", shared=False) as server:
        assert intruding == []  # it connected, once
        port = server.record.port
        intruder = f"mongodb://intruder:let-me-in@127.0.0.1:{port}/?authSource=elsewhere"
        client: MongoClient[dict[str, Any]] = MongoClient(intruder, serverSelectionTimeoutMS=10_000)
        with client, pytest.raises(OperationFailure):
            client.admin.command("listDatabases")
        with MongoClient(server.uri, serverSelectionTimeoutMS=10_000) as client:
            client.admin.command("listDatabases")


def test_a_storage_with_data_and_no_credentials_is_refused_if_anyone_else_connected(
    tmp_path: Path, intruding: list[int]
) -> None:
    """An older version's storage is given its user the same way; if anyone else connected
    meanwhile it cannot be started over (it holds the conversations): one line says so."""
    data_dir = tmp_path / "data"
    with EmbeddedServer(data_dir, shared=False):  # made secure once: the intruder came then
        pass
    intruding.append(1)
    (data_dir / "server.credentials").unlink()  # as an older version left it
    with pytest.raises(EmbeddedServerError) as raised:
        EmbeddedServer(data_dir, shared=False).start()
    message = str(raised.value)
    assert "\n" not in message
    assert "another process connected" in message
    assert str(data_dir / "storage") in message
    assert not (data_dir / "server.credentials").exists()
