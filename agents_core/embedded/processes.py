"""The processes: ``secantusd-py`` started, awaited and stopped, and what a pid is.

Both a private ``EmbeddedServer`` and a directory's supervisor start their server with
``spawn_server`` and ``wait_for_port`` and stop it with ``terminate``. A pid is only ever
signalled after its command line (``/proc/PID/cmdline``, or ``ps`` without ``/proc``) says it is
the process we mean and its start time is the one recorded when we started it (``runs``): a
recycled pid belongs to another process. Standard library only.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents_core.embedded.config import DATA_ENV
from agents_core.embedded.errors import EmbeddedServerError

__all__ = [
    "describe",
    "is_zombie",
    "locking_pids",
    "log_tail",
    "process_command",
    "runs",
    "server_executable",
    "spawn_server",
    "start_token",
    "storage_problem",
    "terminate",
    "wait_for_port",
    "wait_until",
]

_LISTENING = re.compile(r"listening on (?P<host>[\w.:\[\]-]+):(?P<port>\d+)")
_BUSY = "Device or resource busy"
#: What WiredTiger logs when it cannot go on (every later command then fails), and what it logs
#: when a write finds the disk full (a panic follows if that write was the journal's).
PANIC = "WT_PANIC"
_NO_SPACE = "No space left on device"


def server_executable() -> str:
    """The path of ``secantusd-py``: on ``PATH``, or beside this interpreter (a venv)."""
    beside = Path(sys.executable).with_name("secantusd-py")
    found = shutil.which("secantusd-py") or (str(beside) if beside.exists() else None)
    if found is None:
        raise EmbeddedServerError(
            "secantusd-py not found: install the embedded server with "
            "`pip install 'agents-core[embedded]'` (or set MONGODB_URI)"
        )
    return found


def spawn_server(
    storage: str,
    log_path: Path,
    *,
    cwd: Path,
    auth: bool = True,
    port: int = 0,
    preexec_fn: Callable[[], Any] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``secantusd-py`` on loopback (``port``, or a free one), its output in ``log_path``
    (0600), its files made with ``umask 077``.

    ``auth``: it refuses every command from a connection that has not logged in. Without it
    (only to create its first user: ``agents_core.embedded.secure``) it logs every connection
    it accepts (``--log-level DEBUG``).
    """
    command = [server_executable(), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--storage-path", storage, *(["--auth"] if auth else ["--log-level", "DEBUG"])]
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    log = os.open(log_path, flags, 0o600)
    try:
        os.fchmod(log, 0o600)  # an older version's log was 0644
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, not the server
            preexec_fn=preexec_fn,
            umask=0o077,
        )
    finally:
        os.close(log)


def wait_for_port(
    process: subprocess.Popen[bytes], log_path: Path, timeout: float, storage: str
) -> int:
    """The port the server listens on, once it does (``EmbeddedServerError`` if it fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = log_path.read_text(errors="replace")
        match = _LISTENING.search(log)
        if match:
            return int(match["port"])
        if process.poll() is not None:
            if _BUSY in log:
                raise EmbeddedServerError(_busy_message(storage))
            if (problem := storage_problem(log, log_path, failing=True)) is not None:
                raise EmbeddedServerError(problem)
            raise EmbeddedServerError(
                f"secantusd-py exited with code {process.returncode}: {log_tail(log)} "
                f"(full log: {log_path})"
            )
        time.sleep(0.02)
    terminate(process, 5.0)
    raise EmbeddedServerError(
        f"secantusd-py did not start within {timeout:.0f} s (log: {log_path})"
    )


def terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then wait (SIGKILL after ``timeout``)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(done: Callable[[], bool], timeout: float, poll_s: float = 0.05) -> bool:
    """Ask ``done`` every ``poll_s`` seconds until it says yes or ``timeout`` has passed.

    Returns whether it said yes (the last time it is asked is once the time is up).
    """
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


def process_command(pid: int) -> str | None:
    """The command line of process ``pid``, or ``None`` if there is no such process."""
    args = process_args(pid)
    return " ".join(args) or None if args is not None else None


def process_args(pid: int) -> list[str] | None:
    """The arguments of process ``pid`` (``/proc/PID/cmdline`` split on NUL; without ``/proc``,
    ``ps``'s command split on spaces), or ``None`` if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]
    except FileNotFoundError:
        if sys.platform.startswith("linux"):
            return None
    except OSError:
        return None
    command = _ps(pid, "command")
    return None if command is None else command.split()


def _ps(pid: int, column: str) -> str | None:
    """``column`` of process ``pid`` as ``ps`` shows it (no ``/proc``: macOS)."""
    try:
        shown = subprocess.run(
            ["ps", "-o", f"{column}=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return shown.stdout.strip() or None


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits to be reaped (it holds no files or locks)."""
    with contextlib.suppress(OSError):
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    return False


def runs(pid: int, program: str, *args: str, started: str | None = None) -> bool:
    """Whether ``pid`` is a live ``program`` (a part of one of its arguments: the executable or
    the module run) with each of ``args`` as one whole argument, and, unless ``started`` is
    ``None``, the process that started at ``started`` (its ``start_token`` when it was recorded).

    Whole arguments, never substrings: a server on ``<dir>/storage.bak`` is not the one on
    ``<dir>/storage``, and an empty argument (a record without its storage) matches nothing.
    A start token tells a recycled pid from the process recorded, even one running the same
    command; an empty one (a record that has none) matches nothing. Never a zombie (it has
    exited already).
    """
    found = process_args(pid)
    if found is None or not program or any(not arg for arg in args):
        return False
    named = any(program in arg for arg in found)
    if not (named and all(arg in found for arg in args)) or is_zombie(pid):
        return False
    return started is None or (bool(started) and start_token(pid) == started)


def start_token(pid: int) -> str | None:
    """When process ``pid`` started, as a token that no later process with its pid shares, or
    ``None`` if there is no such process.

    Linux: the boot's id and the start time in clock ticks since boot (``/proc/PID/stat``,
    field 22, counted after the command name, which may hold spaces and parentheses). Without
    ``/proc``: the start time ``ps`` shows (to the second).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = _boot_id()
    except FileNotFoundError:
        if sys.platform.startswith("linux"):
            return None
    except OSError:
        return None
    else:
        fields = stat.rsplit(")", 1)[-1].split()
        return f"{boot}:{fields[19]}" if len(fields) > 19 else None
    return _ps(pid, "lstart")


@functools.cache
def _boot_id() -> str:
    """This boot's id (read once: it changes only with a reboot, which no process outlives;
    ``start_token`` is polled while a server comes or goes)."""
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def describe(pid: int | None) -> str:
    """``process PID (its command line)``, for one-line messages."""
    if pid is None:
        return "another process"
    command = process_command(pid)
    if command is None:
        return f"process {pid}"
    return f"process {pid} ({command if len(command) <= 120 else command[:117] + '...'})"


def locking_pids(path: Path) -> list[int]:
    """The pids holding a lock (flock or POSIX) on ``path``, from ``/proc/locks`` (Linux only)."""
    try:
        inode = path.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids: list[int] = []
    for line in lines:
        fields = line.split()
        if "->" in fields:  # a waiter, not a holder
            continue
        try:
            pid, where = int(fields[4]), fields[5]
        except (IndexError, ValueError):
            continue
        if where.rsplit(":", 1)[-1] == str(inode) and pid not in pids:
            pids.append(pid)
    return pids


def storage_problem(log: str, log_path: Path, *, failing: bool = False) -> str | None:
    """What the log of a server (``log_path``, whose text is ``log``) says is wrong with its
    storage, in one line, or ``None``.

    A WiredTiger panic: the server answers every command with an internal error until it is
    restarted (its supervisor does that). ``failing``: a command has just failed, and a full
    disk that the log mentions counts even without a panic (the server recovers from that by
    itself once there is room).
    """
    panicked = PANIC in log
    if _NO_SPACE in log and (panicked or failing):
        data_dir = log_path.parent
        try:
            free = f"{shutil.disk_usage(data_dir).free / 1e6:,.1f} MB free"
        except OSError:
            free = "no room"
        return (
            f"the embedded database's disk is full: {free} on the file system of {data_dir}; "
            "free some space, and it goes on by itself"
        )
    if panicked:
        return (
            "the embedded database's storage failed (WiredTiger panicked; its log is "
            f"{log_path}); its supervisor starts it again"
        )
    return None


def log_tail(log: str, lines: int = 3) -> str:
    """The last ``lines`` of a log, on one line."""
    return " | ".join(log.strip().splitlines()[-lines:]) or "(no output)"


def _busy_message(storage: str) -> str:
    holders = locking_pids(Path(storage) / "WiredTiger.lock")
    who = ", ".join(describe(pid) for pid in holders) or "another process"
    return (
        f"the storage {storage} is in use by {who}: stop it, or set {DATA_ENV} to another directory"
    )
