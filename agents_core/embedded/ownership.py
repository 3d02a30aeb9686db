"""Whose files these are: a data directory is used only if it is ours, as git's ``safe.directory``.

A directory or a file is *ours* when our effective uid owns it and neither its group nor anyone
else can write to it. Root is held to the same rule: a directory that another user owns is
theirs, whoever reads it. The launcher checks the data directory and the warm worker's socket
before it connects, and the process on the other end (``peer_uid``) before it sends anything;
``data_dir`` checks the directory and every file it opens or reads in it (the record, the
locks, the credentials). A refusal is one line (``DataDirectoryError``) that names the
directory, its owner and ``AGENTS_CORE_DATA``.

Standard library only (``os``, ``pwd``, ``socket``, ``stat``, ``struct``): the launcher imports it.
"""

from __future__ import annotations

import os
import pwd
import socket
import stat
import struct
import sys
from pathlib import Path

from agents_core.embedded.config import DATA_ENV
from agents_core.embedded.errors import DataDirectoryError

__all__ = ["check_directory", "check_opened", "foreign", "ours", "peer_uid", "refusal"]

#: macOS and FreeBSD: ``getsockopt(SOL_LOCAL, LOCAL_PEERCRED)`` fills a ``struct xucred``
#: (76 bytes) whose second field is the peer's uid.
_SOL_LOCAL = 0
_LOCAL_PEERCRED = 1
_XUCRED_SIZE = 76


def foreign(status: os.stat_result) -> str | None:
    """Why a directory or file with this ``status`` is not ours, or ``None`` if it is."""
    me = os.geteuid()
    if status.st_uid != me:
        return f"belongs to {_user(status.st_uid)}, not to you (uid {me})"
    if status.st_mode & 0o022:
        return f"can be written by others (mode {stat.S_IMODE(status.st_mode):04o})"
    return None


def ours(path: Path) -> bool:
    """Whether ``path`` exists and is ours (a symbolic link is not looked through)."""
    try:
        return foreign(path.lstat()) is None
    except OSError:
        return False


def refusal(data_dir: Path, what: str, reason: str) -> DataDirectoryError:
    """The one-line refusal of ``data_dir`` because ``what`` in it (``"it"``: itself) ``reason``."""
    subject = "it" if what == "it" else f"its {what}"
    return DataDirectoryError(
        data_dir, f"{subject} {reason}; set {DATA_ENV} to a directory of your own"
    )


def check_directory(data_dir: Path) -> None:
    """Refuse ``data_dir`` unless it is ours (``DataDirectoryError``); a missing one is fine."""
    try:
        status = data_dir.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DataDirectoryError(data_dir, exc.strerror or str(exc)) from exc
    if stat.S_ISLNK(status.st_mode):  # resolved paths only: a link here came after resolving
        raise refusal(data_dir, "it", "is a symbolic link")
    reason = foreign(status)
    if reason is not None:
        raise refusal(data_dir, "it", reason)


def check_opened(fd: int, path: Path) -> None:
    """Refuse the file open on ``fd`` (``path`` in a data directory) unless it is ours."""
    reason = foreign(os.fstat(fd))
    if reason is not None:
        raise refusal(path.parent, path.name, reason)


def peer_uid(connection: socket.socket) -> int | None:
    """The uid of the process at the other end of a connected unix socket (``SO_PEERCRED`` on
    Linux, ``LOCAL_PEERCRED`` on macOS and FreeBSD), or ``None`` where neither exists (then
    nothing is sent: the command runs in its own process)."""
    if hasattr(socket, "SO_PEERCRED"):
        size = struct.calcsize("3i")
        credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size)
        return int(struct.unpack("3i", credentials)[1])  # pid, uid, gid
    if sys.platform == "darwin" or sys.platform.startswith("freebsd"):
        credentials = connection.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, _XUCRED_SIZE)
        return int(struct.unpack_from("=II", credentials)[1])  # cr_version, cr_uid
    return None


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
