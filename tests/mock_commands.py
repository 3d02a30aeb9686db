"""The commands the in-memory mock would have sent: command counts on the mock.

The mock has no command monitoring, so this records, while ``mock_commands()`` is active, the
wire command each driver call on one of its collections stands for (``find_one`` is a
``find``, ``bulk_write`` of updates an ``update``, ``find_one_and_update`` a
``findAndModify``). Calls the mock makes inside another (its ``find_one`` calls ``find``) are
not counted twice. Cursors are read in one batch here; the repositories size theirs so that
the wire's are too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mongomock_ng.collection import Collection

__all__ = ["mock_commands"]

#: Each collection method the repositories call, and the wire command it is.
_COMMANDS = {
    "aggregate": "aggregate",
    "bulk_write": "update",  # the repositories' bulk writes are updates only
    "count_documents": "aggregate",
    "delete_many": "delete",
    "delete_one": "delete",
    "distinct": "distinct",
    "find": "find",
    "find_one": "find",
    "find_one_and_update": "findAndModify",
    "insert_many": "insert",
    "insert_one": "insert",
    "update_many": "update",
    "update_one": "update",
}


@contextmanager
def mock_commands() -> Iterator[list[str]]:
    """The names of the commands the mock's collections are asked for inside the block."""
    names: list[str] = []
    depth = 0
    originals = {name: Collection.__dict__[name] for name in _COMMANDS}

    def counted(method: Callable[..., Any], command: str) -> Callable[..., Any]:
        def call(self: Collection, *args: Any, **kwargs: Any) -> Any:
            nonlocal depth
            if depth == 0:
                names.append(command)
            depth += 1
            try:
                return method(self, *args, **kwargs)
            finally:
                depth -= 1

        return call

    for name, command in _COMMANDS.items():
        setattr(Collection, name, counted(originals[name], command))
    try:
        yield names
    finally:
        for name, method in originals.items():
            setattr(Collection, name, method)
