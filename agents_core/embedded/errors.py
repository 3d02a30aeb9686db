"""What goes wrong with the embedded server, each said in one line::

    EmbeddedServerError        the server could not be found, started or stopped
    └── DataDirectoryError     the data directory cannot be used

Standard library only (nothing at all): the launcher imports it.
"""

from __future__ import annotations

__all__ = ["DataDirectoryError", "EmbeddedServerError"]


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be found, started or stopped (a one-line message)."""


class DataDirectoryError(EmbeddedServerError):
    """The data directory cannot be used (not creatable, not a directory, not writable)."""

    def __init__(self, data_dir: object, reason: str) -> None:
        self.data_dir = data_dir
        self.reason = reason
        super().__init__(f"cannot use the data directory {data_dir}: {reason}")
