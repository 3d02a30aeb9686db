"""Count (and look at) the commands a client sends: for command-count tests and benchmarks.

Usage::

    counter = CommandCounter()
    client = AsyncMongoClient(uri, event_listeners=[counter])
    with counter.recording() as names:
        await SessionsRepository().find_by_id(session.id)
    assert names == ["find", "find"]

``capturing()`` keeps the command documents too (a copy of each), for tests that check what a
command filters on. The driver's own background commands (handshakes, monitoring, session
clean-up) are never counted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pymongo import monitoring

__all__ = ["BACKGROUND_COMMANDS", "CommandCounter"]

#: Commands the driver sends on its own.
BACKGROUND_COMMANDS = frozenset({"hello", "isMaster", "ismaster", "endSessions"})


class CommandCounter(monitoring.CommandListener):
    """The commands a client sends while ``recording()`` or ``capturing()`` is active."""

    def __init__(self) -> None:
        self._names: list[str] | None = None
        self._commands: list[tuple[str, dict[str, Any]]] | None = None

    @contextmanager
    def recording(self) -> Iterator[list[str]]:
        """The names of the commands sent inside the block, in order."""
        names: list[str] = []
        self._names = names
        try:
            yield names
        finally:
            self._names = None

    @contextmanager
    def capturing(self) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """``(name, command document)`` of each command sent inside the block, in order."""
        commands: list[tuple[str, dict[str, Any]]] = []
        self._commands = commands
        try:
            yield commands
        finally:
            self._commands = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name in BACKGROUND_COMMANDS:
            return
        if self._names is not None:
            self._names.append(name)
        if self._commands is not None:
            self._commands.append((name, _copy(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _copy(command: Mapping[str, Any]) -> dict[str, Any]:
    # The driver reuses and trims its command documents: keep what mattered when it was sent.
    return {
        key: value for key, value in command.items() if key not in {"lsid", "$db", "$clusterTime"}
    }
