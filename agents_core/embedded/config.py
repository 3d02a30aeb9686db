"""Where the embedded server keeps its data and how long it idles: what the environment says.

``AGENTS_CORE_DATA`` and ``AGENTS_CORE_EMBEDDED_IDLE_S`` are read here and nowhere else. Standard
library only (``os``, ``pathlib``): the launcher reads the data directory through this module.
"""

from __future__ import annotations

import os
from pathlib import Path

from agents_core.embedded.errors import DataDirectoryError, EmbeddedServerError

__all__ = [
    "DATA_ENV",
    "DEFAULT_DATA_DIR",
    "DEFAULT_IDLE_S",
    "IDLE_ENV",
    "data_dir_from_env",
    "idle_s_from_env",
    "resolve_data_dir",
]

#: Where the embedded server keeps its data unless ``AGENTS_CORE_DATA`` says otherwise.
DEFAULT_DATA_DIR = Path(".agents-core")
#: How long a shared server stays up unused unless ``AGENTS_CORE_EMBEDDED_IDLE_S`` says otherwise.
DEFAULT_IDLE_S = 300.0
#: Environment variables read here.
DATA_ENV = "AGENTS_CORE_DATA"
IDLE_ENV = "AGENTS_CORE_EMBEDDED_IDLE_S"


def resolve_data_dir(data_dir: str | os.PathLike[str]) -> Path:
    """``data_dir`` as an absolute path (``~`` expanded, symlinks resolved): done once, here."""
    try:
        return Path(os.fspath(data_dir)).expanduser().resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # NUL bytes, symlink loops, no $HOME
        raise DataDirectoryError(repr(os.fspath(data_dir)), str(exc)) from exc


def data_dir_from_env() -> Path:
    """``AGENTS_CORE_DATA``, else ``./.agents-core``, as an absolute path."""
    raw = os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR
    try:
        return resolve_data_dir(raw)
    except DataDirectoryError as exc:
        raise DataDirectoryError(f"{exc.data_dir} ({DATA_ENV})", exc.reason) from exc


def idle_s_from_env() -> float:
    """``AGENTS_CORE_EMBEDDED_IDLE_S`` (seconds, ``0`` or more), else ``DEFAULT_IDLE_S``."""
    raw = os.environ.get(IDLE_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_IDLE_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise EmbeddedServerError(
            f"{IDLE_ENV} must be a number of seconds (0 or more), not {raw!r}"
        )
    return value
