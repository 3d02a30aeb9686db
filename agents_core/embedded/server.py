"""The server of a data directory, from the processes that use it: ``EmbeddedServer`` and friends.

``EmbeddedServer(data_dir)`` takes a lease on the directory's shared server, starting its
supervisor (``agents_core.embedded.supervisor``) first when none runs; ``EmbeddedServer()`` and
``shared=False`` start a private server instead. ``database_target`` is the one place that
decides "``MONGODB_URI``, else the embedded server"; ``server_status``, ``start_server`` and
``stop_server`` act on a directory's server from outside (``agents-core server ...``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from agents_core.embedded.config import data_dir_from_env, idle_s_from_env, resolve_data_dir
from agents_core.embedded.data_dir import (
    SERVER_LOG,
    SHUTDOWN_TIMEOUT_S,
    STOP_GRACE_S,
    SUPERVISOR_LOG,
    LockTimeoutError,
    Record,
    ServerDir,
)
from agents_core.embedded.errors import DataDirectoryError, EmbeddedServerError
from agents_core.embedded.processes import (
    describe,
    is_zombie,
    locking_pids,
    log_tail,
    process_command,
    runs,
    server_executable,
    storage_problem,
    terminate,
    wait_until,
)
from agents_core.embedded.secure import secured_record, start_secured

if TYPE_CHECKING:
    from agents_core.db.config import Settings

__all__ = [
    "DatabaseTarget",
    "EmbeddedServer",
    "database_target",
    "server_status",
    "start_server",
    "stop_server",
]

#: The supervisor's module, as ``python -m`` runs it (and as its command line shows it).
_SUPERVISOR = "agents_core.embedded.supervisor"


class EmbeddedServer:
    """The server of a data directory (shared: see ``agents_core.embedded``), or a private one.

    ``data_dir`` holds the WiredTiger files (``storage/``) and the server's log; ``None`` keeps
    the data in a temporary directory of a private server, which ``stop()`` shuts down and
    removes (as SecantusDB's own ``:memory:`` would, which cannot keep a user across the
    restart that ``--auth`` needs: ``agents_core.embedded.secure``). ``shared=False`` makes
    a data directory's server private too (the fault tests kill theirs). ``idle_s`` (default
    ``AGENTS_CORE_EMBEDDED_IDLE_S``) applies to a shared server this process starts; ``on_start``
    is entered while this process starts one (e.g. a spinner); ``lock_timeout`` bounds the wait
    for another process that holds the directory's lock (starting or stopping its server).

    A record whose supervisor died (it was killed) is stale: its server, if it still runs, is
    stopped (SIGTERM, SIGKILL after ``shutdown_timeout``, default ``SHUTDOWN_TIMEOUT_S``) and a
    new supervisor started. ``stop_stale=False`` never signals a process: it waits up to
    ``shutdown_timeout`` for that server to go (its parent-death signal stops it, on Linux), and
    raises ``EmbeddedServerError`` if it still runs (what a command that only reads opens).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        shared: bool | None = None,
        idle_s: float | None = None,
        startup_timeout: float = 30.0,
        shutdown_timeout: float | None = None,
        lock_timeout: float | None = None,
        on_start: Callable[[], AbstractContextManager[object]] | None = None,
        stop_stale: bool = True,
    ) -> None:
        self.data_dir = None if data_dir is None else resolve_data_dir(data_dir)
        self.shared = self.data_dir is not None if shared is None else shared
        if self.shared and self.data_dir is None:
            raise ValueError("an in-memory server cannot be shared: give it a data directory")
        self.idle_s = idle_s
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = SHUTDOWN_TIMEOUT_S if shutdown_timeout is None else shutdown_timeout
        # Long enough for a supervisor to stop its server and for this process to start one.
        self.lock_timeout = lock_timeout or (
            startup_timeout + 2 * self.shutdown_timeout + STOP_GRACE_S
        )
        self.on_start = on_start
        self.stop_stale = stop_stale
        #: Whether this process started the server (rather than using a running one).
        self.started = False
        self._record: Record | None = None
        self._lease: tuple[ServerDir, int] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._temporary: Path | None = None
        self._directory: ServerDir | None = None

    @property
    def uri(self) -> str:
        """``mongodb://agents-core:PASSWORD@127.0.0.1:PORT/?retryWrites=false&authSource=admin``
        of the running server (its credentials included: it refuses every command without)."""
        return self.record.uri

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.record.pid

    @property
    def record(self) -> Record:
        if self._record is None:
            raise EmbeddedServerError("the embedded server is not running")
        return self._record

    @property
    def storage_path(self) -> str:
        """The running server's WiredTiger directory."""
        return self.record.storage

    def problem(self) -> str | None:
        """What is wrong with the server's storage (a full disk, a WiredTiger panic), in one
        line, or ``None``: for a command against it that has just failed. Its supervisor's
        record says so while it starts the server again; the server's log says so before."""
        directory = self._directory
        if directory is None:
            return None
        with contextlib.suppress(EmbeddedServerError, OSError):
            record = directory.read_record() if self.shared else None
            if record is not None and record.problem:
                return record.problem
            return _logged_problem(directory, failing=True)
        return None

    def start(self) -> str:
        """Use (shared) or start the server and wait until it listens; returns its URI."""
        if self._record is not None:
            return self.uri
        if self.shared:
            self._attach()
        else:
            self._start_private()
        return self.uri

    def stop(self) -> None:
        """Stop using the server. Safe to call twice.

        A shared server is only left (its supervisor stops it once idle); a private one gets
        SIGTERM, then a wait (SIGKILL after ``shutdown_timeout``).
        """
        self._record = None
        lease, self._lease = self._lease, None
        if lease is not None:
            lease[0].release(lease[1])
        process, self._process = self._process, None
        if process is not None:
            terminate(process, self.shutdown_timeout)
        temporary, self._temporary = self._temporary, None
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- shared -----------------------------------------------------------------------------

    def _attach(self) -> None:
        assert self.data_dir is not None
        self._directory = directory = _prepared(self.data_dir)
        wait = self.lock_timeout
        try:
            with directory.lock(wait):
                record = directory.read_record()
                if record is None or not directory.owner_alive():
                    _clear_stale(directory, record, self.shutdown_timeout, stop=self.stop_stale)
                    _wait_for_owner_exit(directory, self.shutdown_timeout)
                    idle_s = idle_s_from_env() if self.idle_s is None else self.idle_s
                    with self.on_start() if self.on_start else contextlib.nullcontext():
                        record = _launch_supervisor(directory, idle_s, self.startup_timeout)
                    self.started = True
                self._lease = (directory, directory.lease())
        except LockTimeoutError as exc:
            raise EmbeddedServerError(
                f"the embedded server of {self.data_dir} is busy: {describe(exc.holder)} held "
                f"its lock for {wait:.0f} s; try again, or stop that process"
            ) from exc
        except OSError as exc:
            raise DataDirectoryError(self.data_dir, _reason(exc)) from exc
        self._record = record

    # -- private ----------------------------------------------------------------------------

    def _start_private(self) -> None:
        if self.data_dir is None:
            self._temporary = Path(tempfile.mkdtemp(prefix="agents-core-"))  # 0700
            directory = ServerDir(self._temporary)
        else:
            directory = _prepared(self.data_dir)
        self._directory = directory
        try:
            process, port, password = start_secured(directory, self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        self._process = process
        self._record = secured_record(
            directory, process, port, password, started_by=os.getpid(), idle_s=0
        )
        self.started = True


# ---------------------------------------------------------------------------------------------
# One place for "MONGODB_URI, else the embedded server"


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """The server a program should use, and how to describe it to a person."""

    uri: str
    description: str
    #: The embedded server in use, or ``None`` for ``MONGODB_URI``.
    server: EmbeddedServer | None


@contextlib.contextmanager
def database_target(
    settings: Settings | None = None,
    *,
    in_memory: bool = False,
    on_start: Callable[[], AbstractContextManager[object]] | None = None,
    stop_stale: bool = True,
) -> Iterator[DatabaseTarget]:
    """``MONGODB_URI`` if it is set; otherwise the embedded server, for the ``with`` block.

    The embedded server is the shared one of ``AGENTS_CORE_DATA`` (default ``./.agents-core``),
    or with ``in_memory=True`` a private in-memory one (tests, benchmarks). ``settings``
    (default: read from the environment) is where ``MONGODB_URI`` is read. ``stop_stale=False``:
    never signal the server a dead supervisor left (``EmbeddedServer``).
    """
    if settings is None:
        from agents_core.db.config import Settings

        settings = Settings()
    if settings.mongodb_uri:
        from agents_core.db.config import mask_uri

        yield DatabaseTarget(
            settings.mongodb_uri, f"MongoDB at {mask_uri(settings.mongodb_uri)}", None
        )
        return
    if in_memory:
        server = EmbeddedServer(on_start=on_start)
        description = "embedded SecantusDB (in memory)"
    else:
        server = EmbeddedServer(data_dir_from_env(), on_start=on_start, stop_stale=stop_stale)
        description = f"embedded SecantusDB at {server.data_dir}"
    with server:
        yield DatabaseTarget(server.uri, description, server)


# ---------------------------------------------------------------------------------------------
# The shared server of a data directory, from outside


def server_status(data_dir: str | os.PathLike[str]) -> tuple[Record, list[int]] | None:
    """The running server of ``data_dir`` and the pids using it, or ``None``.

    Read-only as far as processes go: it never signals one. A record left by a dead supervisor
    is removed on the way when its server is gone; if that server still runs, the record stays
    for whoever starts or stops the directory's server next (``stop_server`` stops it). The
    record's ``problem`` says what is wrong with the server's storage, if anything (from its
    log, if its supervisor has not said so yet).
    """

    def forget_if_gone(directory: ServerDir, record: Record) -> None:
        if not _runs_recorded_server(record):
            directory.remove_record()

    found = _supervised_record(data_dir, forget_if_gone)
    if found is None:
        return None
    directory, record = found
    if not record.problem:
        with contextlib.suppress(OSError):
            record = replace(record, problem=_logged_problem(directory) or "")
    return record, directory.users()


def start_server(
    data_dir: str | os.PathLike[str],
    *,
    idle_s: float | None = None,
    on_start: Callable[[], AbstractContextManager[object]] | None = None,
) -> tuple[Record, bool]:
    """Make sure the server of ``data_dir`` runs; the record and whether it was started now."""
    with EmbeddedServer(data_dir, idle_s=idle_s, on_start=on_start) as server:
        return server.record, server.started


def stop_server(data_dir: str | os.PathLike[str], *, timeout: float = 60.0) -> Record | None:
    """Stop the server of ``data_dir`` and wait until it is gone; the record it had, or ``None``.

    Its supervisor lets the processes using it finish for up to ``STOP_GRACE_S`` seconds. A
    record left by a dead supervisor is removed, and its server stopped if it still runs.
    """
    found = _supervised_record(
        data_dir, lambda directory, record: _clear_stale(directory, record, SHUTDOWN_TIMEOUT_S)
    )
    if found is None:
        return None
    directory, record = found
    path = directory.path
    # A record of an older version has no start token: its supervisor is known by its command
    # line (and by holding server.owner).
    if runs(record.owner, _SUPERVISOR, str(path), started=record.owner_start or None):
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.owner, signal.SIGTERM)
    elif directory.owner_alive():  # held, but not by the supervisor recorded: not ours to stop
        raise EmbeddedServerError(
            f"the supervisor of {path} is not the one recorded ({describe(record.owner)}); "
            "stop it yourself"
        )

    def gone() -> bool:
        # The supervisor lets go of server.owner once its server is stopped, then exits.
        return not (directory.owner_alive() or _supervisor_exiting(record.owner, path))

    if not wait_until(gone, timeout):
        raise EmbeddedServerError(
            f"the embedded server of {path} did not stop within {timeout:.0f} s "
            f"(supervisor {describe(record.owner)})"
        )
    return record


def _logged_problem(directory: ServerDir, *, failing: bool = False) -> str | None:
    """What the server's log says is wrong with its storage (``storage_problem``), or ``None``;
    read through the directory's checked reader."""
    return storage_problem(
        directory.read_text(SERVER_LOG), directory.file(SERVER_LOG), failing=failing
    )


def _supervised_record(
    data_dir: str | os.PathLike[str], when_stale: Callable[[ServerDir, Record], None]
) -> tuple[ServerDir, Record] | None:
    """The directory of ``data_dir`` and the record of its server while that server's
    supervisor lives, or ``None``: no server, or a record a dead supervisor left, which
    ``when_stale`` deals with under the directory's lock (``server_status``, ``stop_server``)."""
    directory = ServerDir(resolve_data_dir(data_dir))
    directory.check()
    if not directory.file("server.lock").exists():
        return None
    with _locked(directory):
        record = directory.read_record()
        if record is not None and not directory.owner_alive():
            when_stale(directory, record)
            return None
    return None if record is None else (directory, record)


@contextlib.contextmanager
def _locked(directory: ServerDir) -> Iterator[None]:
    """``server.lock`` for a look at the record (a one-line error if it cannot be had)."""
    try:
        with directory.lock(STOP_GRACE_S + 30):
            yield
    except LockTimeoutError as exc:
        raise EmbeddedServerError(
            f"{describe(exc.holder)} holds the lock of {directory.path}"
        ) from exc
    except OSError as exc:
        raise DataDirectoryError(directory.path, _reason(exc)) from exc


# ---------------------------------------------------------------------------------------------
# Starting and clearing a directory's supervisor


def _prepared(data_dir: Path) -> ServerDir:
    directory = ServerDir(data_dir)
    try:
        directory.create()
    except OSError as exc:
        reason = _reason(exc)
        if exc.errno == errno.ENAMETOOLONG:  # even asking whether it exists fails then
            reason = "its path is longer than the file system allows"
        elif data_dir.exists() and not data_dir.is_dir():
            reason = "it is a file, not a directory"
        elif exc.errno in (errno.EACCES, errno.EPERM):
            reason = f"it is not writable ({reason})"
        elif exc.errno == errno.EROFS:
            reason = "it is on a read-only file system"
        raise DataDirectoryError(data_dir, reason) from exc
    return directory


def _launch_supervisor(directory: ServerDir, idle_s: float, startup_timeout: float) -> Record:
    """Start the directory's supervisor (detached) and wait for its server; the record."""
    server_executable()  # not installed: say so here rather than from the supervisor
    package_root = str(Path(__file__).resolve().parents[2])  # where `agents_core` is found
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", _SUPERVISOR, str(directory.path)]
    command += ["--idle-s", repr(idle_s), "--startup-timeout", repr(startup_timeout)]
    command += ["--started-by", str(os.getpid())]
    log = directory.open_file(SUPERVISOR_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=directory.path,
            env=env,
            start_new_session=True,  # out of the terminal's process group: Ctrl-C spares it
        )
    except OSError as exc:
        raise EmbeddedServerError(f"cannot start {sys.executable}: {_reason(exc)}") from exc
    finally:
        os.close(log)
    assert process.stdout is not None
    try:
        line = _read_line(process.stdout, startup_timeout + 15)
    finally:
        process.stdout.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)  # the first fork exits at once; the supervisor is its child
    if not line:
        supervisor_log = directory.read_text(SUPERVISOR_LOG)
        raise EmbeddedServerError(
            f"the embedded server's supervisor failed: {log_tail(supervisor_log)}"
        )
    answer = json.loads(line)
    if "error" in answer:
        raise EmbeddedServerError(str(answer["error"]))
    return Record(**answer["record"])


def _read_line(stream: Any, timeout: float) -> bytes:
    """One line from a pipe, or what came before EOF or the timeout."""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in data and (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                continue
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            data += chunk
    finally:
        selector.close()
    return data.split(b"\n", 1)[0]


def _clear_stale(
    directory: ServerDir, record: Record | None, timeout: float, *, stop: bool = True
) -> None:
    """Remove what a dead supervisor left: its record, and its server if that still runs.

    ``stop=False`` signals nothing: the server is waited for (its parent-death signal has told
    it to stop, on Linux), and if it still runs after ``timeout`` the record stays and
    ``EmbeddedServerError`` names it.
    """
    if record is not None:

        def gone() -> bool:
            return not _runs_recorded_server(record)

        if not stop:
            if not wait_until(gone, timeout):
                raise EmbeddedServerError(
                    f"the embedded server of {directory.path} (pid {record.pid}) still runs "
                    f"after its supervisor died; `agents-core server stop` stops it"
                )
        elif not gone():
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGTERM)  # it was told already if it was our child
            if not wait_until(gone, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(record.pid, signal.SIGKILL)
                wait_until(gone, 5.0)
    directory.remove_record()


def _runs_recorded_server(record: Record) -> bool:
    """Whether the server that ``record`` names still runs: its pid, its command line on its
    storage, and its start time (a record without one names nothing that may be signalled)."""
    return runs(record.pid, "secantusd", record.storage, started=record.server_start)


def _wait_for_owner_exit(directory: ServerDir, timeout: float) -> None:
    """A supervisor that has removed its record may still be exiting: let it finish."""
    if not wait_until(lambda: not directory.owner_alive(), timeout, 0.02):
        holders = ", ".join(describe(pid) for pid in locking_pids(directory.file("server.owner")))
        raise EmbeddedServerError(
            f"a supervisor of {directory.path} ({holders or 'unknown process'}) still holds "
            f"server.owner after {timeout:.0f} s without a record; stop it"
        )


def _supervisor_exiting(pid: int, data_dir: Path) -> bool:
    """``pid`` is still our supervisor, or a process on its way out (its command line already
    gone, not yet a zombie): a pid taken by another program since does not count."""
    if runs(pid, _SUPERVISOR, str(data_dir)):
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return not process_command(pid) and not is_zombie(pid)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
