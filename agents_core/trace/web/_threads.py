"""What the ``/threads`` pages need from a reader of LangGraph threads.

The trace view cannot import the LangGraph integration (the two are packages of one layer:
``pyproject.toml``'s import contracts), so whoever makes the app passes a reader in:
``create_app(..., threads=ThreadReader)`` with ``agents_core.integrations.langgraph.threads.
ThreadReader`` (``agents-core serve`` does, when the ``langgraph`` extra is installed). These
protocols say what the pages use of it; the templates read the rest of each record by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from agents_core.db import Connection

__all__ = ["ThreadReads", "ThreadReadsFactory", "ThreadView", "ThreadsPage"]


class ThreadsPage(Protocol):
    """A page of threads (``Page[ThreadSummary]``)."""

    @property
    def items(self) -> Sequence[object]: ...

    @property
    def next_cursor(self) -> str | None: ...


class ThreadView(Protocol):
    """A thread's state and a page of its checkpoints (``ThreadState``)."""

    @property
    def thread_id(self) -> str: ...

    @property
    def older_before(self) -> str | None: ...


class ThreadReads(Protocol):
    """The reads of the ``/threads`` pages (``ThreadReader``): ``NotFoundError`` for a thread
    that does not exist, ``InvalidInputError`` for a malformed cursor."""

    async def list(self, *, limit: int, after: str | None) -> ThreadsPage: ...

    async def get(self, thread_id: str, *, limit: int, before: str | None) -> ThreadView: ...


#: How the app gets a reader for the connection it serves.
ThreadReadsFactory = Callable[[Connection], ThreadReads]
