"""OpenAI Agents SDK sessions stored in agents-core (``pip install 'agents-core[openai-agents]'``).

Usage::

    from agents import Agent, Runner
    from agents_core.db import init_db
    from agents_core.integrations.openai_agents import AgentsCoreSession

    await init_db()                                    # the layer's connection ...
    session = AgentsCoreSession("conversation-42", user_id="u-42")
    result = await Runner.run(agent, "Hello", session=session)

    session = AgentsCoreSession.from_uri("conversation-42", "mongodb://localhost:27017/app")
    ...                                                # ... or one the session owns
    await session.close()

Design notes:

- **One SDK item, one message.** The SDK's string ``session_id`` is the *external id* of one of
  our sessions (namespace ``openai-agents``, and the ``user_id`` if given), created on the first
  write. Each item is one message with the next ``seq``, kept exactly as a BSON document (not a
  JSON string: it stays queryable), with its role, type, call id and readable text beside it so
  that ``agents-core show`` and every other view of the layer show these conversations.
- **Batches.** ``add_items`` is one batch (``MessagesRepository.append_items``): a contiguous
  ``seq`` range reserved with one ``$inc``, written in order, shown only once complete. Its
  items are checked before the first write creates the session, and ``idempotency_key=``
  makes a retry after an ambiguous ``DatabaseUnavailableError`` store the batch at most once.
  ``pop_item`` and ``clear_session`` are ``pop_last`` and ``clear``: no item is returned twice, a
  racing append is never lost, a cleared history is empty at once for every reader.
- **A title at no cost.** The session's title is its first user message (one line, cut to a
  title's length), given to the insert that creates it; a session found without one (created by
  another writer, or whose first items held no user message) gets one compare-and-set
  (``set_title_if_untitled``), once per object. A title is never replaced.
- **Runs find their conversation.** ``add_items`` runs inside the SDK's trace of the run: once
  an ``AgentsCoreTracingProcessor`` exists, it notes in memory which session the current trace
  stored items in (``session_of_trace``, bounded), so the processor records a trace without a
  ``group_id`` in this session rather than in one of its own.
- **Reads are bounded ranges.** ``get_items(limit=n)`` reads the range of the latest ``n``
  ``seq`` values, never sort-and-limit: flat however long the conversation.
- **Event loops.** A ``Connection`` belongs to the loop it was opened on, and the SDK calls
  sessions from other loops (``Runner.run_sync``; threads with their own loops). A session uses
  its connection on that connection's loop; on any other loop it opens a connection of the same
  URI, database and settings (``connect``) for the duration of the call and closes it before
  returning, so no client outlives its loop (a call from another loop costs a connection
  set-up). The layer's connection can do that only when ``init_db`` made its client from a URI
  (``Connection.uri``; an injected client, such as the in-memory mock's: ``InvalidStateError``
  on another loop). A ``from_uri`` session connects on the loop that uses it first.
- **Mutations settle.** A cancelled ``add_items``, ``pop_item`` or ``clear_session`` waits for
  the outcome of its commands before the cancellation propagates, as the SDK's own sessions do.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from bson import ObjectId

try:
    from agents.items import TResponseInputItem
    from agents.memory.session_settings import SessionSettings, coerce_session_settings
    from agents.tracing import get_current_trace
    from agents.tracing.traces import NoOpTrace
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "agents_core.integrations.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'agents-core[openai-agents]'"
    ) from exc

from agents_core.db import validation as check
from agents_core.db.client import DEFAULT_DATABASE, Connection, connect, default_connection
from agents_core.db.config import Settings
from agents_core.db.documents import Session
from agents_core.db.errors import InvalidInputError, InvalidStateError, NotFoundError
from agents_core.db.repositories import MessagesRepository, SessionsRepository
from agents_core.db.server import ServerProfile
from agents_core.integrations.recording import uri_database

__all__ = [
    "MAX_LINKED_TRACES",
    "NAMESPACE",
    "AgentsCoreSession",
    "SessionLink",
    "follow_trace_links",
    "session_of_trace",
]

#: The external-id namespace of the sessions this adapter maps.
NAMESPACE = "openai-agents"
#: Traces remembered with the session they stored items in, for the tracing processor.
MAX_LINKED_TRACES = 10_000

T = TypeVar("T")


class AgentsCoreSession:
    """A session of the OpenAI Agents SDK (its ``Session`` protocol, 0.24) in agents-core.

    ``AgentsCoreSession(session_id)`` uses the layer's connection (``init_db``);
    ``AgentsCoreSession.from_uri(...)`` owns a client, closed by ``await session.close()``.
    ``user_id`` owns the session (``agents-core sessions --user``) and scopes ``session_id``:
    two users' sessions of the same id are two conversations. ``session_settings`` as in the
    SDK's sessions: its ``limit`` is what ``get_items()`` returns without a ``limit``.
    """

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(session_id, str):
            raise TypeError("session_id must be a string")
        self.session_id = session_id
        self.session_settings = (
            SessionSettings()
            if session_settings is None
            else coerce_session_settings(session_settings)
        )
        self.user_id = user_id
        self._connection: _Connection = _LayerConnection()
        self._core_id: ObjectId | None = None
        #: Whether our session is known to have a title (then items are not looked at for one).
        self._titled = False

    @classmethod
    def from_uri(
        cls,
        session_id: str,
        uri: str,
        *,
        database: str | None = None,
        user_id: str | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> AgentsCoreSession:
        """A session with a connection of its own, opened (``connect``) on first use.

        The URI is checked now (``InvalidInputError``). ``database``: else the URI's path, else
        ``agents_core``. The connection creates the layer's indexes when it opens, so the session
        works on a database ``init_db`` never saw.
        """
        session = cls(session_id, user_id=user_id, session_settings=session_settings)
        session._connection = _OwnedConnection(uri, database)
        return session

    async def close(self) -> None:
        """Close the client a ``from_uri`` session owns; no-op on the layer's connection.

        A closed ``from_uri`` session refuses further calls (``InvalidStateError``). Close it
        on the loop that used it (from another, its client is closed on that loop if it is
        running, else released).
        """
        await self._connection.close()

    # -----------------------------------------------------------------------------------------
    # The SDK's Session protocol

    async def get_items(
        self, limit: int | None = None, *, wrapper: Any = None
    ) -> list[TResponseInputItem]:
        """The latest ``limit`` items (``None``: the settings' limit, else all), oldest first."""
        count = limit if limit is not None else (self.session_settings or SessionSettings()).limit
        if count is not None and count <= 0:
            return []
        async with self._connection.database() as repositories:
            core_id = await self._find(repositories)
            if core_id is None:
                return []
            try:
                items = await repositories.messages.find_items(core_id, limit=count)
            except NotFoundError:  # deleted, or the layer re-targeted: look it up again
                self._core_id = None
                core_id = await self._find(repositories)
                if core_id is None:
                    return []
                items = await repositories.messages.find_items(core_id, limit=count)
        return cast("list[TResponseInputItem]", items)  # JSON objects, as appended

    async def add_items(
        self,
        items: list[TResponseInputItem],
        *,
        wrapper: Any = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Append ``items`` as one batch: all of them become visible at once, or none.

        Items that cannot be stored exactly (not JSON, a lone surrogate, too large for a
        document) raise ``InvalidInputError`` before anything is written, the session included.
        ``idempotency_key`` (an agents-core addition, not in the SDK's protocol): a
        ``DatabaseUnavailableError`` leaves unknown whether the batch was stored, and a retry
        with the same key stores it at most once (``MessagesRepository.append_items``).
        """
        self._connection.check_open()
        if not isinstance(items, Sequence) or isinstance(items, str | bytes | dict):
            raise InvalidInputError("items", "must be a list of items")
        if not items:
            return
        _link_trace(SessionLink(self.session_id, self.user_id))
        batch = list(items)
        key = check.optional_name(idempotency_key, "idempotency_key")
        await _settle(self._add(batch, key))

    async def pop_item(self, *, wrapper: Any = None) -> TResponseInputItem | None:
        """Remove and return the newest item (``None``: empty); never the same item twice."""
        return await _settle(self._pop())

    async def clear_session(self, *, wrapper: Any = None) -> None:
        """Empty the conversation for every reader; later items continue the same session."""
        await _settle(self._clear())

    # -----------------------------------------------------------------------------------------
    # agents-core

    async def core_session(self) -> Session | None:
        """The agents-core session behind this one (``None`` before its first item)."""
        async with self._connection.database() as repositories:
            return await repositories.sessions.find_by_external_id(
                self.session_id, namespace=NAMESPACE, user_id=self.user_id
            )

    async def _add(self, batch: list[TResponseInputItem], key: str | None) -> None:
        async with self._connection.database() as repositories:
            messages = repositories.messages
            title = None
            if self._core_id is None or not self._titled:
                # The session may not exist yet: refuse bad items before it is created. Its
                # first user message is its title.
                title = _title(check.items(batch))
            core_id = await self._get_or_create(repositories, title)
            try:
                await messages.append_items(core_id, batch, idempotency_key=key)
            except NotFoundError:  # deleted under us: start a new conversation of this id
                self._core_id = None
                core_id = await self._get_or_create(repositories, title)
                await messages.append_items(core_id, batch, idempotency_key=key)
            if title is not None and not self._titled:
                # Found without a title (its first items held no user message, or another
                # writer created it): titled now, unless someone else titled it meanwhile.
                await repositories.sessions.set_title_if_untitled(core_id, title)
                self._titled = True

    async def _pop(self) -> TResponseInputItem | None:
        async with self._connection.database() as repositories:
            core_id = await self._find(repositories)
            if core_id is None:
                return None
            try:
                message = await repositories.messages.pop_last(core_id)
            except NotFoundError:  # deleted, or the layer re-targeted: look it up again
                self._core_id = None
                core_id = await self._find(repositories)
                if core_id is None:
                    return None
                message = await repositories.messages.pop_last(core_id)
        if message is None:
            return None
        item = message.item or {"role": message.role.value, "content": message.content}
        return cast("TResponseInputItem", item)

    async def _clear(self) -> None:
        async with self._connection.database() as repositories:
            core_id = await self._find(repositories)
            if core_id is not None:
                try:
                    await repositories.messages.clear(core_id)
                except NotFoundError:  # deleted, or the layer re-targeted: look it up again
                    self._core_id = None
                    core_id = await self._find(repositories)
                    if core_id is not None:
                        await repositories.messages.clear(core_id)

    async def _find(self, repositories: _Repositories) -> ObjectId | None:
        """Our session's id: remembered, else looked up (one command); not created."""
        if self._core_id is None:
            found = await repositories.sessions.find_by_external_id(
                self.session_id, namespace=NAMESPACE, user_id=self.user_id
            )
            self._core_id = None if found is None else found.id
            self._titled = found is not None and found.title is not None
        return self._core_id

    async def _get_or_create(self, repositories: _Repositories, title: str | None) -> ObjectId:
        """Our session's id: remembered, else found or created (titled ``title``)."""
        if self._core_id is None:
            session = await repositories.sessions.get_or_create_by_external_id(
                self.session_id, namespace=NAMESPACE, user_id=self.user_id, title=title
            )
            self._core_id = session.id
            self._titled = session.title is not None
        assert self._core_id is not None
        return self._core_id


def _title(fields: Sequence[Mapping[str, Any]]) -> str | None:
    """The title of a conversation whose first items are these (``check.items``' fields): the
    text of its first user message, on one line and cut to a title's length."""
    for item in fields:
        if item["role"] == "user" and item["item_type"] == "message":
            title = check.title_from(item["content"])
            if title is not None:
                return title
    return None


# ---------------------------------------------------------------------------------------------
# Which session a trace's run belongs to


@dataclass(frozen=True, slots=True)
class SessionLink:
    """The conversation a traced run stored its items in: an ``AgentsCoreSession``'s id and
    user."""

    session_id: str
    user_id: str | None


_links: OrderedDict[str, SessionLink] = OrderedDict()
_links_lock = threading.Lock()
#: Set once a tracing processor exists in this process (nobody asks for links before).
_linking = threading.Event()


def follow_trace_links() -> None:
    """Remember from now on which session each trace stored items in (``session_of_trace``):
    what an ``AgentsCoreTracingProcessor`` calls when it is made."""
    _linking.set()


def _link_trace(link: SessionLink) -> None:
    """Remember the session of the trace running now (``Runner.run`` keeps its session's items
    inside its trace), so that its run is recorded in this conversation even without a
    ``RunConfig(group_id=...)``. Memory only: no command. The first session of a trace is kept
    (a nested run with a session of its own is part of the outer run's trace)."""
    if not _linking.is_set():
        return
    trace = get_current_trace()
    if trace is None or isinstance(trace, NoOpTrace):
        return
    with _links_lock:
        if trace.trace_id in _links:
            return
        if len(_links) >= MAX_LINKED_TRACES:  # traces no processor ended: the oldest go
            _links.popitem(last=False)
        _links[trace.trace_id] = link


def session_of_trace(trace_id: str) -> SessionLink | None:
    """The session whose items the run of ``trace_id`` stored (forgotten once asked: the
    tracing processor asks when the trace ends)."""
    with _links_lock:
        return _links.pop(trace_id, None)


async def _settle(mutation: Awaitable[T]) -> T:
    """Await ``mutation`` to its outcome even if the caller is cancelled meanwhile; then
    re-raise the cancellation (so a caller never retries a write whose outcome it lost)."""
    task = asyncio.ensure_future(mutation)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            cancelled = cancelled or exc
    if cancelled is not None:
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what the caller gets
        raise cancelled
    return task.result()


# ---------------------------------------------------------------------------------------------
# Connections: which client serves the running loop


@dataclass(frozen=True, slots=True)
class _Repositories:
    """The repositories of one connection."""

    sessions: SessionsRepository
    messages: MessagesRepository

    @classmethod
    def on(cls, connection: Connection) -> _Repositories:
        return cls(SessionsRepository(connection), MessagesRepository(connection))


class _Connection:
    """Which connection serves a call on the running loop.

    ``database()`` is used as ``async with connection.database() as repositories`` and is a
    class, not an ``asynccontextmanager``: ``Runner.run_sync`` shuts a loop's async generators
    down after each run and keeps using the loop, and one started there afterwards is reported.
    """

    def database(self) -> _Call:
        return _Call(self)

    def check_open(self) -> None:
        pass

    async def acquire(self) -> tuple[_Repositories, Connection | None]:
        """The repositories for a call, and a connection to close after it (or ``None``)."""
        raise NotImplementedError

    async def close(self) -> None:
        pass


class _Call:
    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self._opened: Connection | None = None

    async def __aenter__(self) -> _Repositories:
        repositories, self._opened = await self._connection.acquire()
        return repositories

    async def __aexit__(self, *exc_info: object) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            await opened.close()


class _LayerConnection(_Connection):
    """The layer's connection (``init_db``) on its loop; one for the call elsewhere."""

    def __init__(self) -> None:
        self._repositories: tuple[Connection, _Repositories] | None = None

    async def acquire(self) -> tuple[_Repositories, Connection | None]:
        layer = default_connection()
        if layer.loop is asyncio.get_running_loop():
            if self._repositories is None or self._repositories[0] is not layer:
                self._repositories = (layer, _Repositories.on(layer))
            return self._repositories[1], None
        if layer.uri is None:
            raise InvalidStateError(
                "connection",
                layer.database.name,
                "the client given to init_db is bound to another event loop; give init_db a "
                "URI (or use AgentsCoreSession.from_uri) to use sessions from other loops",
            )
        # A connection for this call only: the layer's own created the indexes already.
        opened = await connect(
            layer.uri,
            database=layer.database.name,
            settings=layer.settings,
            create_indexes=False,
            profile=layer.profile,
        )
        return _Repositories.on(opened), opened


class _OwnedConnection(_Connection):
    """A ``from_uri`` session's connection, on the loop that used it first."""

    def __init__(self, uri: str, database: str | None) -> None:
        self._settings = Settings()
        self._uri = uri
        self._name = database or uri_database(uri) or DEFAULT_DATABASE
        self._connection: Connection | None = None
        self._repositories: _Repositories | None = None
        self._closed = False

    def check_open(self) -> None:
        if self._closed:
            raise InvalidStateError("session", self._name, "closed")

    async def acquire(self) -> tuple[_Repositories, Connection | None]:
        self.check_open()
        loop = asyncio.get_running_loop()
        connection = self._connection
        if connection is not None and connection.loop is not loop and connection.loop.is_closed():
            # Its loop is gone (and its client with it): this loop's connection takes over.
            connection = self._connection = self._repositories = None
        if connection is None:
            connection = self._connection = await self._connect()
            self._repositories = _Repositories.on(connection)
        if connection.loop is loop:
            assert self._repositories is not None
            return self._repositories, None
        # The first one created the indexes and found out what the server is.
        opened = await self._connect(create_indexes=False, profile=connection.profile)
        return _Repositories.on(opened), opened

    async def _connect(
        self, *, create_indexes: bool = True, profile: ServerProfile | None = None
    ) -> Connection:
        return await connect(
            self._uri,
            database=self._name,
            settings=self._settings,
            create_indexes=create_indexes,
            profile=profile,
        )

    async def close(self) -> None:
        self._closed = True
        connection, self._connection, self._repositories = self._connection, None, None
        if connection is None:
            return
        if connection.loop is asyncio.get_running_loop():
            await connection.close()
        elif connection.loop.is_running():  # serving another thread: close it there
            closing = asyncio.run_coroutine_threadsafe(connection.close(), connection.loop)
            await asyncio.wrap_future(closing)
