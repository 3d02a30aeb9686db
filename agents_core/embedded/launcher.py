"""The ``agents-core`` entry point: hand the command to the embedded server's warm worker.

Importing ``agents_core.db`` (Beanie, PyMongo, pydantic-settings, the document classes) costs
most of a second of CPU, far more than a read on a running server. So when the command would
use the embedded server of ``AGENTS_CORE_DATA`` and that server runs, its supervisor, which has
the CLI imported already, forks a worker that runs the command with this process's stdin,
stdout and stderr (passed over ``cli.sock`` with ``SCM_RIGHTS``), environment, working
directory and arguments, and sends back the exit code. Anything else (``MONGODB_URI`` set, no
server yet, a supervisor running other code than this process would) runs the CLI right here.
``AGENTS_CORE_CLI_WORKER=0`` turns the worker off.

Nothing goes to a socket that another user could control (issue 25, S1): the data directory
and the socket must be ours (``ownership``: owned by our uid, writable by nobody else), and the
process listening on it must run as our uid (``SO_PEERCRED``), checked before anything is sent.
Otherwise the command runs here, where a data directory that is not ours is refused in one line.
Sending the environment to a process of our own uid discloses nothing: it can read
``/proc/PID/environ`` of ours anyway.

Standard library only: this module (with the package's ``__init__``, ``config``, ``errors`` and
``ownership``) is all that a warm command imports.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from agents_core.embedded.config import data_dir_from_env
from agents_core.embedded.errors import DataDirectoryError
from agents_core.embedded.ownership import ours, peer_uid

__all__ = ["SOCKET", "code_stamp", "frame", "main", "read_frame", "run_in_worker"]

#: The supervisor's socket, in the data directory.
SOCKET = "cli.sock"
#: How long to wait for a supervisor to accept a command (it answers in milliseconds).
_ACCEPT_TIMEOUT_S = 10.0
#: ``sun_path`` holds 108 bytes on Linux (104 on macOS); longer paths run the CLI here.
_MAX_SOCKET_PATH = 100


def main() -> None:
    try:
        code = run_in_worker()
    except KeyboardInterrupt:  # Ctrl-C before any command started
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    if code is None:
        from agents_core.cli import main as run_here

        run_here()
        return
    sys.exit(code)


def code_stamp() -> str:
    """Which code this is: the package's path and its newest source file's mtime."""
    root = Path(__file__).resolve().parents[1]  # agents_core: the CLI's code as well as ours
    newest = 0
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime_ns)
    return f"{root}:{newest}:{sys.executable}"


def frame(payload: Mapping[str, object]) -> bytes:
    """``payload`` as one message: its JSON's length (4 bytes, big-endian), then the JSON."""
    data = json.dumps(payload).encode()
    return struct.pack("!I", len(data)) + data


def read_frame(connection: socket.socket, start: bytes = b"") -> dict[str, object] | None:
    """One ``frame``'s JSON object, or ``None`` at EOF or if it is not an object.

    ``start``: the frame's first bytes, already read (with the descriptors that came with them).
    ``ValueError`` if it is not JSON.
    """
    header = _read_exactly(connection, 4 - len(start))
    if header is None:
        return None
    body = _read_exactly(connection, struct.unpack("!I", start + header)[0])
    if body is None:
        return None
    message = json.loads(body)
    return message if isinstance(message, dict) else None


def _read_exactly(connection: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def run_in_worker() -> int | None:
    """The command's exit code from the warm worker, or ``None`` to run it here."""
    if os.environ.get("AGENTS_CORE_CLI_WORKER") == "0":
        return None
    if os.environ.get("MONGODB_URI") or os.environ.get("AGENTS_CORE_MONGODB_URI"):
        return None
    try:
        data_dir = data_dir_from_env()
    except DataDirectoryError:
        return None  # the CLI explains what is wrong with it
    path = data_dir / SOCKET
    if len(bytes(path)) > _MAX_SOCKET_PATH or not (ours(data_dir) and ours(path)):
        return None  # the CLI refuses a data directory that is not ours
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    relay = _Relay()  # from here a Ctrl-C is kept for the worker, once we know it
    try:
        connection.settimeout(_ACCEPT_TIMEOUT_S)
        connection.connect(str(path))
        if peer_uid(connection) != os.geteuid():
            raise ConnectionRefusedError("the worker's socket is another user's")
        request = {
            "argv": sys.argv,
            "env": dict(os.environ),
            "cwd": os.getcwd(),
            "stamp": code_stamp(),
        }
        socket.send_fds(connection, [frame(request)], [0, 1, 2])
        accepted = read_frame(connection)
    except (OSError, ValueError):
        accepted = None  # no server, a stale socket, a supervisor going away
    worker = None if accepted is None else accepted.get("pid")
    if not isinstance(worker, int):  # run it here (refused: other code, or closing down)
        connection.close()
        relay.restore()
        return None
    relay.forward_to(worker)
    return _wait(connection, worker)


class _Relay:
    """Signals for the worker: kept until its pid is known, then forwarded as they come."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.worker: int | None = None
        self.pending: list[int] = []
        self.previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.worker is None:
            self.pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.worker, signum)

    def forward_to(self, worker: int) -> None:
        self.worker = worker
        for signum in self.pending:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signum)

    def restore(self) -> None:
        """No worker: back to the usual handlers, and what came meanwhile is ours."""
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        if signal.SIGINT in self.pending:
            raise KeyboardInterrupt
        if self.pending:
            os.kill(os.getpid(), self.pending[0])


def _wait(connection: socket.socket, worker: int) -> int:
    """The worker's exit code (signals are forwarded to it meanwhile)."""
    connection.settimeout(None)  # a command (a demo) takes as long as it takes
    try:
        finished = read_frame(connection)
    except (OSError, ValueError):
        finished = None
    finally:
        connection.close()
    code = None if finished is None else finished.get("exit")
    if not isinstance(code, int):
        sys.stderr.write(f"error: the worker (pid {worker}) of the embedded server died\n")
        return 1
    return code
