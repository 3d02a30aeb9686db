"""A data directory's supervisor: ``python -m agents_core.embedded.supervisor DIR``.

Started (detached, in its own session) by the first process that needs the directory's server,
while that process holds ``server.lock``. It forks once more so that it is nobody's child to
reap, takes ``server.owner`` for its life, starts ``secantusd-py`` as its own child (on Linux
with a parent-death signal, so a SIGKILLed supervisor takes its server down with it), writes
``server.json``, answers one JSON line on stdout (the record, or an error) and then watches:

- the server exits on its own: the record goes, the supervisor exits;
- the server's log says WiredTiger panicked (a full disk, issue 25 E1: it would answer every
  command with an internal error for good): the record says what is wrong (``problem``), the
  server is killed and started again on the same storage and port, every ``RETRY_S`` seconds
  until it starts (once there is room again); then ``problem`` is cleared;
- SIGTERM or SIGINT (``agents-core server stop``): take ``server.lock`` so that nobody new
  joins, let the leases end (up to ``STOP_GRACE_S``), stop the server, remove the record;
- nobody has held a lease on ``server.users`` for ``--idle-s`` seconds: the same, unless a
  process is joining (it holds ``server.lock``) or leased meanwhile.

Standard library only, so it starts in milliseconds.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, NoReturn

from agents_core.embedded.data_dir import (
    SERVER_LOG,
    SHUTDOWN_TIMEOUT_S,
    STOP_GRACE_S,
    SUPERVISOR_LOG,
    LockTimeoutError,
    Record,
    ServerDir,
)
from agents_core.embedded.errors import EmbeddedServerError
from agents_core.embedded.launcher import SOCKET, code_stamp, frame, read_frame
from agents_core.embedded.ownership import peer_uid
from agents_core.embedded.processes import (
    PANIC,
    start_token,
    storage_problem,
    terminate,
    wait_until,
)
from agents_core.embedded.secure import secured_record, start_secured

#: How often the supervisor looks at its server and its users.
POLL_S = 0.2
#: ``supervisor.log`` is emptied when a supervisor starts and finds it larger than this.
LOG_MAX_BYTES = 1024 * 1024
#: How long a supervisor waits before it tries again to start a server whose storage failed.
RETRY_S = 2.0
_PR_SET_PDEATHSIG = 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents_core.embedded.supervisor")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--idle-s", type=float, required=True)
    parser.add_argument("--startup-timeout", type=float, default=30.0)
    parser.add_argument("--started-by", type=int, default=os.getppid())
    args = parser.parse_args(argv)
    if os.fork() > 0:  # the launcher waits for this process only; the supervisor is its child
        os._exit(0)
    os.umask(0o077)  # every file it or its server makes is its owner's alone
    directory = ServerDir(args.data_dir)
    answer = os.fdopen(os.dup(1), "w")
    _detach_stdout()
    owner = directory.hold_owner()
    _trim_log(directory)
    if owner is None:
        _answer(answer, error=f"another supervisor owns {directory.path}")
        return 1
    _log(directory, f"supervisor {os.getpid()} starting secantusd-py (idle {args.idle_s:g} s)")
    try:
        process, port, password = start_secured(
            directory, args.startup_timeout, preexec_fn=_server_preexec()
        )
    except (EmbeddedServerError, OSError) as exc:
        _log(directory, f"start failed: {exc}")
        _answer(answer, error=str(exc))
        return 1
    record = secured_record(
        directory, process, port, password, started_by=args.started_by, idle_s=args.idle_s
    )
    directory.write_record(record)
    _log(directory, f"secantusd-py {process.pid} listening on port {port}")
    _answer(answer, record=asdict(record))
    return Supervisor(directory, process, record, owner, args.startup_timeout).run()


class Supervisor:
    def __init__(
        self,
        directory: ServerDir,
        process: subprocess.Popen[bytes],
        record: Record,
        owner: int,
        startup_timeout: float,
    ) -> None:
        self.directory = directory
        self.process = process
        self.record = record
        self.owner = owner
        self.startup_timeout = startup_timeout
        self.stop_requested = False
        self.workers: set[int] = set()
        self.listener: socket.socket | None = None
        self.stamp = ""
        #: How much of the server's log has been looked at for a panic.
        self.log_seen = 0
        #: When to start the server again (``time.monotonic()``), while its storage has failed.
        self.retry_at: float | None = None

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self._open_worker_socket()
        last_used = time.time()
        selector = selectors.DefaultSelector()
        if self.listener is not None:
            selector.register(self.listener, selectors.EVENT_READ)
        while True:
            for _ in selector.select(POLL_S):
                self._serve_one()
            self._reap_workers()
            if self.retry_at is not None:
                if time.monotonic() >= self.retry_at:
                    self._start_again()
            elif self.process.poll() is not None:
                self._log(f"secantusd-py exited by itself (code {self.process.returncode})")
                self._close_worker_socket()
                self._forget()
                self._release_owner()
                return 1
            elif self._panicked():
                self._replace_failed_server()
            if self.stop_requested:
                return self._stop_when_released()
            if self.workers or not self.directory.unused():
                last_used = time.time()
                continue
            idle_for = time.time() - max(last_used, self.directory.last_release())
            if idle_for < self.record.idle_s:
                continue
            with self.directory.try_lock() as taken:
                # Someone holding server.lock is about to take a lease: not idle after all.
                if taken and self.directory.unused():
                    self._log(f"unused for {idle_for:.1f} s: stopping")
                    self._shut_down()
                    return 0

    def _request_stop(self, signum: int, frame: Any) -> None:
        self.stop_requested = True

    def _stop_when_released(self) -> int:
        """Stopped on request: nobody new joins; the current users get a moment to finish."""
        try:
            with self.directory.lock(STOP_GRACE_S + 30):
                wait_until(self.directory.unused, STOP_GRACE_S)
                users = self.directory.users()
                self._log("stopping on request" + (f" (still used by {users})" if users else ""))
                self._shut_down()
        except LockTimeoutError:  # a stuck client: stop all the same
            self._log("stopping on request without the lock")
            self._shut_down()
        return 0

    def _shut_down(self) -> None:
        # The record goes first: a process that finds none waits for the lock we may hold,
        # then starts a new server once this one has let go of the storage.
        self._close_worker_socket()
        self.directory.remove_record()
        terminate(self.process, SHUTDOWN_TIMEOUT_S)
        self._log(f"secantusd-py {self.process.pid} stopped (code {self.process.returncode})")
        self._release_owner()

    # -- a storage that failed (issue 25, E1) ---------------------------------------------

    def _panicked(self) -> bool:
        """Whether the server's log has said ``WT_PANIC`` since it was last looked at."""
        log = self.directory.file(SERVER_LOG)
        try:
            size = log.stat().st_size
            if size <= self.log_seen:
                return False
            with log.open("rb") as file:
                file.seek(max(self.log_seen - len(PANIC), 0))  # a word cut between two looks
                new = file.read(size - self.log_seen + len(PANIC))
        except OSError:
            return False
        self.log_seen = size
        return PANIC.encode() in new

    def _replace_failed_server(self) -> None:
        log = self.directory.file(SERVER_LOG)
        problem = storage_problem(log.read_text(errors="replace"), log) or PANIC
        self._log(f"secantusd-py {self.process.pid} cannot go on ({problem}): starting it again")
        self.process.kill()  # a panicked WiredTiger can write nothing more: its journal is kept
        self.process.wait()
        self._update(problem=problem)
        self._start_again()

    def _start_again(self) -> None:
        """Start the server again on its storage and port (on a free port if that is taken);
        on failure, try again in ``RETRY_S`` seconds."""
        preexec = _server_preexec()
        port = self.record.port
        try:
            try:
                process, port, password = start_secured(
                    self.directory, self.startup_timeout, port=port, preexec_fn=preexec
                )
            except EmbeddedServerError as exc:
                if "Address already in use" not in str(exc):
                    raise
                process, port, password = start_secured(  # its port was taken meanwhile
                    self.directory, self.startup_timeout, preexec_fn=preexec
                )
        except (EmbeddedServerError, OSError) as exc:
            self._log(f"cannot start secantusd-py again yet: {exc}")
            self.retry_at = time.monotonic() + RETRY_S
            return
        self.process, self.log_seen, self.retry_at = process, 0, None
        self._update(  # the password too: a start that had to provision the user made a new one
            pid=process.pid,
            port=port,
            server_start=start_token(process.pid) or "",
            password=password,
            problem="",
        )
        self._log(f"secantusd-py {process.pid} listening on port {port} again")

    def _update(self, **changes: Any) -> None:
        """Change the record (kept in memory if the disk is too full to write it)."""
        self.record = replace(self.record, **changes)
        try:
            self.directory.write_record(self.record)
        except OSError as exc:
            self._log(f"cannot write the record: {exc}")

    def _release_owner(self) -> None:
        """Let go of ``server.owner`` now, not at the end of a slow interpreter shutdown."""
        owner, self.owner = self.owner, -1
        if owner >= 0:
            os.close(owner)

    def _forget(self) -> None:
        with contextlib.suppress(LockTimeoutError), self.directory.lock(60):
            if self.directory.read_record() == self.record:
                self.directory.remove_record()

    def _log(self, text: str) -> None:
        _log(self.directory, text)

    # -- the warm worker (see agents_core.embedded.launcher) ------------------------------

    def _open_worker_socket(self) -> None:
        """Import the CLI once, then listen on ``cli.sock`` for commands to fork off."""
        path = self.directory.file(SOCKET)
        if len(str(path).encode()) > 100:
            return  # too long for sun_path: every command runs in its own process
        try:
            # What the workers run, imported once here (the point of the worker).
            import agents_core.cli  # noqa: F401
            import agents_core.db  # noqa: F401

            self.stamp = code_stamp()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old_umask = os.umask(0o177)  # the socket is its owner's alone (0600)
            try:
                listener.bind(str(path))
            finally:
                os.umask(old_umask)
            listener.listen(64)
        except Exception as exc:  # no worker: commands still run, only slower
            self._log(f"no warm worker: {type(exc).__name__}: {exc}")
            return
        self.listener = listener

    def _close_worker_socket(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()
            with contextlib.suppress(OSError):
                self.directory.file(SOCKET).unlink()

    def _serve_one(self) -> None:
        assert self.listener is not None
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            if peer_uid(connection) != os.geteuid():
                return  # root, or a socket made reachable: commands are run for us only
            connection.settimeout(5.0)
            request, fds = _receive_request(connection)
            if request is None or request.get("stamp") != self.stamp or len(fds) != 3:
                return  # closing without an answer: the launcher runs the command itself
            worker = os.fork()
            if worker == 0:
                _run_worker(self, connection, request, fds)  # never returns
            self.workers.add(worker)
        except OSError:
            pass
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            connection.close()

    def _reap_workers(self) -> None:
        for worker in list(self.workers):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(worker, os.WNOHANG)[0] == 0:
                    continue
            self.workers.discard(worker)


def _receive_request(connection: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """The launcher's request and its stdin, stdout and stderr (which come with its first bytes)."""
    start, fds, _, _ = socket.recv_fds(connection, 4, 3)
    if not start:
        return None, fds
    try:
        return read_frame(connection, start), fds
    except ValueError:
        return None, fds


def _run_worker(
    supervisor: Supervisor, connection: socket.socket, request: dict[str, Any], fds: list[int]
) -> NoReturn:
    """In the forked worker: become the launcher's command, run it, report its exit code."""
    code = 1
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # Nothing of the supervisor's: a worker must not look like an owner or a listener.
        if supervisor.owner >= 0:
            os.close(supervisor.owner)
        if supervisor.listener is not None:
            supervisor.listener.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        fds.clear()
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False, buffering=-1)  # noqa: SIM115
        sys.stderr = open(  # noqa: SIM115
            2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1
        )
        os.chdir(str(request["cwd"]))
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})
        sys.argv = [str(arg) for arg in request["argv"]]
        connection.settimeout(None)
        connection.sendall(frame({"pid": os.getpid()}))
        from agents_core.cli import main as run_command

        try:
            run_command()
            code = 0
        except SystemExit as exit:
            if isinstance(exit.code, int) or exit.code is None:
                code = exit.code or 0
            else:
                sys.stderr.write(f"{exit.code}\n")
        except BaseException:
            traceback.print_exc()
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        with contextlib.suppress(OSError):
            connection.sendall(frame({"exit": code}))
        os._exit(0)


def _server_preexec() -> Callable[[], None] | None:
    """What the server's process runs before exec: the parent-death signal, on Linux."""
    return _die_with_parent if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """In the server's process before exec: SIGTERM it when its supervisor dies (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _detach_stdout() -> None:
    """Point fd 1 at /dev/null: nobody reads the launcher's pipe once it has its answer."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def _answer(stream: Any, **answer: Any) -> None:
    with contextlib.suppress(OSError):  # the launcher gave up waiting: nothing to tell
        stream.write(json.dumps(answer) + "\n")
        stream.flush()
    with contextlib.suppress(OSError):
        stream.close()


def _trim_log(directory: ServerDir) -> None:
    """Start ``supervisor.log`` afresh once it passes ``LOG_MAX_BYTES`` (it is only a diary)."""
    log = directory.file(SUPERVISOR_LOG)
    with contextlib.suppress(OSError):
        if log.stat().st_size > LOG_MAX_BYTES:
            log.write_text("")


def _log(directory: ServerDir, text: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with contextlib.suppress(OSError), directory.file(SUPERVISOR_LOG).open("a") as log:
        log.write(f"{stamp} {text}\n")


if __name__ == "__main__":
    code = main()
    # Nothing to tear down: skip the interpreter's slow shutdown of the imported CLI.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
