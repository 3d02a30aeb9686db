"""The embedded server started so that it refuses every command without credentials.

SecantusDB's ``--auth`` (SCRAM-SHA-256) refuses every command but the handshake from a
connection that has not logged in. It has no localhost exception: the first user is created
while the server runs without ``--auth``, and anyone who connects then could create one of
their own (in any database: users cannot be listed across databases). That start is made safe
(issue 25, S3)::

    1. An empty storage, or one whose first start never finished (``server.provisioning``),
       is emptied.
    2. ``secantusd-py`` runs without ``--auth`` and logs every connection as it accepts it,
       before any of its commands runs (``--log-level DEBUG``).
    3. One connection of ours creates the user ``agents-core`` (role ``root``) with a random
       password, checkpoints (``fsync``), and the server is killed at once.
    4. Its log must show that connection and no other. Otherwise an empty storage is started
       over (up to ``ATTEMPTS`` times); a storage that held data already (an older version's)
       cannot be, and is refused in one line.
    5. The password goes to ``server.credentials`` (0600); from then on the storage is only
       ever served with ``--auth``.

The provisioning start costs about a second, once per storage; a start with ``--auth`` costs
nothing more, and a connection ~5 ms of client CPU (SCRAM's key derivation). Standard library,
and PyMongo's ``bson`` for that one connection (imported only then).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import Any

from agents_core.embedded.config import DATA_ENV
from agents_core.embedded.data_dir import SERVER_LOG, Record, ServerDir
from agents_core.embedded.errors import EmbeddedServerError
from agents_core.embedded.processes import spawn_server, start_token, terminate, wait_for_port

__all__ = ["ATTEMPTS", "USER", "command", "create_user", "read_password", "start_secured"]

#: The one user of an embedded server (in ``admin``, role ``root``).
USER = "agents-core"
#: How many times the first user of an empty storage is created before giving up.
ATTEMPTS = 3
#: Where the password is kept (0600, JSON ``{"user": ..., "password": ...}``).
CREDENTIALS = "server.credentials"
#: Present while an empty storage is given its first user: a storage found with it is emptied.
PROVISIONING = "server.provisioning"

_ACCEPTED = re.compile(r"client \d+ connected from \('[^']*', (?P<port>\d+)\)")
_OP_MSG = 2013
_DUPLICATE_USER = 51003


def start_secured(
    directory: ServerDir,
    timeout: float,
    *,
    port: int = 0,
    preexec_fn: Callable[[], Any] | None = None,
) -> tuple[subprocess.Popen[bytes], int, str]:
    """``secantusd-py`` on ``directory``'s storage with ``--auth``, listening (on ``port``, or a
    free one): its process, its port, and the password of ``USER``.

    The storage is given its user first if it has none yet (see the module's docstring).
    ``EmbeddedServerError`` (one line) if it cannot be started or made safe.
    """
    directory.prepare_storage()
    password = read_password(directory)
    if password is None or not _holds_data(directory):
        password = _provision(directory, timeout, preexec_fn)
    else:  # a first start that ended between keeping the password and saying it was done
        with contextlib.suppress(FileNotFoundError):
            directory.file(PROVISIONING).unlink()
    log = directory.file(SERVER_LOG)
    storage = str(directory.storage)
    process = spawn_server(storage, log, cwd=directory.path, port=port, preexec_fn=preexec_fn)
    try:
        return process, wait_for_port(process, log, timeout, storage), password
    except BaseException:
        terminate(process, timeout)
        raise


def secured_record(
    directory: ServerDir,
    process: subprocess.Popen[bytes],
    port: int,
    password: str,
    *,
    started_by: int,
    idle_s: float,
) -> Record:
    """The record of the server ``start_secured`` gave (``process``, ``port``, ``password``),
    kept by this process (its owner: the supervisor, or a private server's user)."""
    return Record(
        pid=process.pid,
        port=port,
        owner=os.getpid(),
        started_by=started_by,
        started_at=time.time(),
        idle_s=idle_s,
        storage=str(directory.storage),
        server_start=start_token(process.pid) or "",
        owner_start=start_token(os.getpid()) or "",
        user=USER,
        password=password,
    )


def read_password(directory: ServerDir) -> str | None:
    """The password kept in the directory, or ``None`` if it has none."""
    try:
        kept = json.loads(directory.read_text(CREDENTIALS))
    except FileNotFoundError:
        return None
    except ValueError:  # torn: as good as none (the user is given a new password)
        return None
    password = kept.get("password") if isinstance(kept, dict) else None
    return password if isinstance(password, str) and password else None


def create_user(port: int, password: str) -> int:
    """Create (or give a new password to) ``USER`` on the server at ``port``, which runs
    without ``--auth``, and checkpoint it; the local port of the one connection used."""
    user = {"pwd": password, "roles": ["root"], "$db": "admin"}
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            reply = command(connection, {"createUser": USER, **user})
            if reply.get("code") == _DUPLICATE_USER:  # its password was lost: a new one
                reply = command(connection, {"updateUser": USER, **user})
            if reply.get("ok") == 1:
                reply = command(connection, {"fsync": 1, "$db": "admin"})
            local_port = int(connection.getsockname()[1])
    except OSError as exc:
        raise EmbeddedServerError(f"cannot create the embedded server's user: {exc}") from exc
    if reply.get("ok") != 1:
        raise EmbeddedServerError(
            f"cannot create the embedded server's user: {reply.get('errmsg', reply)}"
        )
    return local_port


def command(connection: socket.socket, body: Mapping[str, Any]) -> dict[str, Any]:
    """One command (``body`` names its ``$db``) as an ``OP_MSG``, and its reply."""
    import bson  # PyMongo's, for the one connection that needs it

    payload = struct.pack("<I", 0) + b"\0" + bson.encode(body)  # flags, a body section
    connection.sendall(struct.pack("<iiii", 16 + len(payload), 1, 0, _OP_MSG) + payload)
    (length,) = struct.unpack("<i", _read(connection, 4))
    reply = _read(connection, length - 4)
    return bson.decode(reply[12 + 4 + 1 :])  # header rest, flags, section kind


def _provision(directory: ServerDir, timeout: float, preexec_fn: Callable[[], Any] | None) -> str:
    """Give the storage its user while nobody else can have connected; the password."""
    storage = directory.storage
    held_data = _holds_data(directory) and not directory.file(PROVISIONING).exists()
    for _ in range(ATTEMPTS):
        if not held_data:
            directory.write_text(PROVISIONING, "")
            shutil.rmtree(storage)
            directory.prepare_storage()
        password = secrets.token_urlsafe(32)
        if _created_alone(directory, password, timeout, preexec_fn):
            directory.write_text(CREDENTIALS, json.dumps({"user": USER, "password": password}))
            with contextlib.suppress(FileNotFoundError):
                directory.file(PROVISIONING).unlink()
            return password
        if held_data:
            raise EmbeddedServerError(
                f"another process connected to the embedded server of {storage} while its user "
                "was being created, and may have created one of its own; move that storage "
                f"away and start again, or set {DATA_ENV} to another directory"
            )
    raise EmbeddedServerError(
        f"another process connected to the embedded server of {storage} each of the "
        f"{ATTEMPTS} times its first user was being created; set {DATA_ENV} to a directory "
        "that only you can reach"
    )


def _created_alone(
    directory: ServerDir, password: str, timeout: float, preexec_fn: Callable[[], Any] | None
) -> bool:
    """Run the server without ``--auth``, create the user; whether no one else connected."""
    log = directory.file(SERVER_LOG)
    storage = str(directory.storage)
    process = spawn_server(storage, log, cwd=directory.path, auth=False, preexec_fn=preexec_fn)
    try:
        ours = create_user(wait_for_port(process, log, timeout, storage), password)
    finally:
        process.kill()  # at once: the user is checkpointed, and nobody else gets a moment
        process.wait()
    accepted = [int(found["port"]) for found in _ACCEPTED.finditer(directory.read_text(SERVER_LOG))]
    if ours not in accepted:  # its log does not say who connected: nothing can be vouched for
        raise EmbeddedServerError(
            f"cannot tell who connected to the embedded server while its user was being "
            f"created ({log} does not list the connections)"
        )
    return accepted == [ours]


def _holds_data(directory: ServerDir) -> bool:
    return (directory.storage / "WiredTiger").exists()


def _read(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise EmbeddedServerError("the embedded server closed the connection")
        data += chunk
    return data
