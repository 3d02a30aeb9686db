"""The files of a data directory's shared embedded server: its locks, its record, its processes.

Standard library only: the supervisor (``agents_core.embedded.supervisor``) imports this module
and must start in a few milliseconds.

Design note (``docs/embedded.md`` has the long form). A data directory holds::

    storage/            WiredTiger files of the one server allowed on them (0700)
    secantusd.log       that server's output
    supervisor.log      what its supervisor did (started, stopped after idle, ...)
    server.lock         flock: held by whoever inspects, starts, replaces or stops the server
    server.json         the record: server pid, port and login, supervisor (owner) pid, idle time
    server.owner        flock: held by the supervisor for as long as it lives
    server.users        flock: shared, by every process that uses the server
    server.credentials  the password of the storage's one user (``secure``), kept across starts
    server.provisioning while that user is first created (``secure``)
    cli.sock            the warm worker's socket (``launcher``, ``supervisor``)

Liveness is read from locks rather than pids: the kernel drops a process's ``flock``s when the
process dies however it dies (SIGKILL included), and a recycled pid cannot hold them.

Every file here is opened through ``open_file``: never through a symbolic link, created 0600, and
refused (``DataDirectoryError``, in one line) unless it is ours (``ownership``): a record, lock
or credential that another user could have written is never trusted (issue 25, S2). The
directory itself is created 0700 and checked the same way.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from agents_core.embedded.ownership import check_directory, check_opened, foreign, refusal
from agents_core.embedded.processes import locking_pids, wait_until

__all__ = [
    "SERVER_LOG",
    "SHUTDOWN_TIMEOUT_S",
    "STOP_GRACE_S",
    "SUPERVISOR_LOG",
    "LockTimeoutError",
    "Record",
    "ServerDir",
]

STORAGE = "storage"
SERVER_LOG = "secantusd.log"
SUPERVISOR_LOG = "supervisor.log"
LOCK = "server.lock"
RECORD = "server.json"
OWNER = "server.owner"
USERS = "server.users"

#: How often a waiting lock is tried again.
_POLL_S = 0.01
#: How long a stopping supervisor lets the processes still using its server finish (holding
#: ``server.lock`` meanwhile: whoever waits for the lock must wait longer than this).
STOP_GRACE_S = 10.0
#: How long a stopping server may take before SIGKILL (``supervisor``, ``server``); also how long
#: a process that may not signal waits for the server of a stale record to go.
SHUTDOWN_TIMEOUT_S = 15.0


class LockTimeoutError(TimeoutError):
    """``server.lock`` stayed taken for the whole timeout; ``holder`` is the pid that has it."""

    def __init__(self, holder: int | None) -> None:
        self.holder = holder
        super().__init__(f"server.lock held by {holder}")


@dataclass(frozen=True, slots=True)
class Record:
    """What ``server.json`` says about the running server."""

    pid: int  # the secantusd-py process
    port: int
    owner: int  # the supervisor, which holds server.owner while it lives
    started_by: int  # the process that needed the server first
    started_at: float  # time.time()
    idle_s: float  # the supervisor stops the server after this long unused
    storage: str
    # When the server and the supervisor started (processes.start_token): a pid is theirs only
    # while its token is this one. Empty in a record of an older version.
    server_start: str = ""
    owner_start: str = ""
    # Its one user (agents_core.embedded.secure): empty for a server of an older version.
    user: str = ""
    password: str = ""
    # What is wrong with its storage, while its supervisor starts it again (empty: nothing).
    problem: str = ""

    @property
    def uri(self) -> str:
        """The URI to connect with, credentials included (``user:password@``)."""
        if not self.user:
            return f"mongodb://127.0.0.1:{self.port}/?retryWrites=false"
        login = f"{self.user}:{self.password}"
        return f"mongodb://{login}@127.0.0.1:{self.port}/?retryWrites=false&authSource=admin"


class ServerDir:
    """The server files of one data directory (an absolute path, resolved once by the caller)."""

    def __init__(self, path: Path) -> None:
        assert path.is_absolute(), path
        self.path = path
        self.storage = path / STORAGE

    def file(self, name: str) -> Path:
        return self.path / name

    def create(self) -> None:
        """Make the directory, 0700 (``OSError`` if it cannot be made or written to;
        ``DataDirectoryError`` if it is not ours)."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.check()
        # Opening the lock file for writing is the check that matters (a read-only directory,
        # a read-only file system); it is the first file every process opens anyway.
        os.close(self.open_file(LOCK))

    def prepare_storage(self) -> None:
        """Make ``storage/`` 0700 (WiredTiger's files in it hold the conversations): created so,
        or narrowed if an older version left it readable by others; refused if not ours."""
        self.storage.mkdir(mode=0o700, exist_ok=True)
        status = self.storage.lstat()
        reason = foreign(status)
        if reason is not None or stat.S_ISLNK(status.st_mode):
            raise refusal(self.path, STORAGE, reason or "is a symbolic link")
        if status.st_mode & 0o077:
            self.storage.chmod(0o700)

    def check(self) -> None:
        """Refuse the directory unless it is ours (``DataDirectoryError``); a missing one is
        fine (nothing in it can be read)."""
        check_directory(self.path)

    def open_file(self, name: str, flags: int = os.O_RDWR | os.O_CREAT) -> int:
        """``name`` opened, if it is ours; created 0600, and made 0600 if others can read it."""
        path = self.file(name)
        try:
            fd = os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise refusal(self.path, name, "is a symbolic link") from exc
            raise
        try:
            check_opened(fd, path)
            if os.fstat(fd).st_mode & 0o077:  # written by an older version, 0644
                os.fchmod(fd, 0o600)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _lockable(self, name: str, kind: int) -> bool:
        """Whether ``name`` can be locked ``kind`` right now (the lock is let go at once)."""
        fd = self.open_file(name)
        try:
            return _try_flock(fd, kind)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        """Hold ``server.lock`` (``LockTimeoutError`` naming the holder after ``timeout``)."""
        fd = self.open_file(LOCK)
        try:
            if not wait_until(lambda: _try_flock(fd, fcntl.LOCK_EX), timeout, _POLL_S):
                raise LockTimeoutError(_read_pid(fd))
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock

    @contextlib.contextmanager
    def try_lock(self) -> Iterator[bool]:
        """``server.lock`` if it is free right now (yields whether it was taken)."""
        fd = self.open_file(LOCK)
        try:
            yield _try_flock(fd, fcntl.LOCK_EX)
        finally:
            os.close(fd)

    # -- the record -------------------------------------------------------------------------

    def read_record(self) -> Record | None:
        """The record, or ``None`` if there is none (or it is torn); ``DataDirectoryError`` if it
        is not ours."""
        try:
            text = self.read_text(RECORD)
        except FileNotFoundError:
            return None
        try:
            return Record(**json.loads(text))
        except (ValueError, TypeError):  # torn, or of another shape: as good as none
            return None

    def write_record(self, record: Record) -> None:
        """Replace the record atomically (a reader sees the old one or the new one)."""
        self.write_text(RECORD, json.dumps(asdict(record), indent=2) + "\n")

    def read_text(self, name: str) -> str:
        """The text of file ``name``, if it is ours (``FileNotFoundError`` if it is missing)."""
        fd = self.open_file(name, os.O_RDONLY)
        with os.fdopen(fd, encoding="utf-8", errors="replace") as file:
            return file.read()

    def write_text(self, name: str, text: str) -> None:
        """Replace file ``name`` with ``text`` atomically, 0600."""
        temporary = f"{name}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            self.file(temporary).unlink()  # left by a process that had this pid
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        with os.fdopen(self.open_file(temporary, flags), "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(self.file(temporary), self.file(name))

    def remove_record(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.file(RECORD).unlink()

    # -- liveness ---------------------------------------------------------------------------

    def hold_owner(self) -> int | None:
        """Take ``server.owner`` for this process's life (its fd), or ``None`` if it is held."""
        fd = self.open_file(OWNER)
        if _try_flock(fd, fcntl.LOCK_EX):
            return fd
        os.close(fd)
        return None

    def owner_alive(self) -> bool:
        """Whether a supervisor holds ``server.owner`` (a dead one holds nothing)."""
        return not self._lockable(OWNER, fcntl.LOCK_SH)

    def lease(self) -> int:
        """Use the server: a shared lock on ``server.users`` until the fd is closed."""
        fd = self.open_file(USERS)
        fcntl.flock(fd, fcntl.LOCK_SH)
        return fd

    def release(self, fd: int) -> None:
        """End a lease, noting when (the supervisor counts idle time from the last one)."""
        with contextlib.suppress(OSError):
            os.utime(self.file(USERS))
        os.close(fd)

    def unused(self) -> bool:
        """Whether no process holds a lease right now."""
        return self._lockable(USERS, fcntl.LOCK_EX)

    def last_release(self) -> float:
        """``time.time()`` of the latest ended lease (0 if none)."""
        try:
            return self.file(USERS).stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def users(self) -> list[int]:
        """The pids holding a lease now (Linux; empty elsewhere)."""
        return locking_pids(self.file(USERS))


def _try_flock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None
