"""LangGraph threads for the views: the CLI's ``threads`` and ``thread``, the trace view's
``/threads`` pages.

Usage::

    from agents_core.integrations.langgraph.threads import ThreadReader

    reader = ThreadReader()                      # on init_db's connection, or ThreadReader(conn)
    page = await reader.list(limit=50)           # Page[ThreadSummary], in thread-id order
    more = await reader.list(after=page.next_cursor)
    state = await reader.get("t-1", limit=20)    # ThreadState (NotFoundError: no such thread)

A reader is an ``AgentsCoreSaver`` on the connection's database (``alist_threads``,
``aget_thread``), plus the session where ``AgentsCoreCallbackHandler`` records the thread's runs
(the session of external id ``thread_id`` in namespace ``langgraph``): the thread's state is in
its checkpoints, what the agent did in that session's runs.
"""

from __future__ import annotations

from agents_core.db import Connection, InvalidInputError, NotFoundError, Page, SessionsRepository
from agents_core.db.client import default_connection
from agents_core.integrations.langchain.handler import NAMESPACE as RUNS_NAMESPACE
from agents_core.integrations.langgraph._threads import ThreadState, ThreadSummary
from agents_core.integrations.langgraph.saver import AgentsCoreSaver

__all__ = ["ThreadReader"]


class ThreadReader:
    """Read-only: the threads an ``AgentsCoreSaver`` keeps on a connection (default: the
    layer's, ``init_db``), in pages, and one thread's state with its checkpoints."""

    def __init__(self, connection: Connection | None = None, *, collection_prefix: str = "lg_"):
        self._connection = connection
        self._prefix = collection_prefix
        self._saver: tuple[Connection, AgentsCoreSaver] | None = None

    def _on(self) -> tuple[Connection, AgentsCoreSaver]:
        """The connection and a saver on its database (one per connection: it creates the
        saver's indexes once)."""
        connection = self._connection or default_connection()
        if self._saver is None or self._saver[0] is not connection:
            saver = AgentsCoreSaver(connection.database, collection_prefix=self._prefix)
            self._saver = (connection, saver)
        return self._saver

    async def list(self, *, limit: int = 50, after: str | None = None) -> Page[ThreadSummary]:
        """``AgentsCoreSaver.alist_threads``: a page in thread-id order. One command."""
        return await self._on()[1].alist_threads(limit=limit, after=after)

    async def get(
        self, thread_id: str, *, limit: int = 20, before: str | None = None
    ) -> ThreadState:
        """``AgentsCoreSaver.aget_thread``, with the session of the thread's runs
        (``NotFoundError`` for a thread that does not exist). Four commands (five with
        ``before``)."""
        connection, saver = self._on()
        state = await saver.aget_thread(thread_id, limit=limit, before=before)
        if state is None:
            raise NotFoundError("thread", thread_id)
        try:
            session = await SessionsRepository(connection).find_by_external_id(
                state.thread_id, namespace=RUNS_NAMESPACE
            )
        except InvalidInputError:  # a thread id no session can carry (the handler's rule)
            session = None
        if session is None:
            return state
        return state.model_copy(update={"session_id": str(session.id)})
