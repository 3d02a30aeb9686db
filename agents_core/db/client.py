"""Connections: the handle every repository works on, and the layer's default one.

Usage::

    from agents_core.db import init_db, close_db, SessionsRepository

    await init_db("mongodb://localhost:27017/agents")   # or MONGODB_URI / MONGODB_DB
    session = await SessionsRepository().create("Support chat")
    ...
    await close_db()

``init_db`` opens the default connection, which repositories built without one use. For several
databases in one process (one per tenant, say), open more with ``connect`` and hand them to
the repositories::

    tenant = await connect(uri, database="tenant_42")
    await SessionsRepository(tenant).create("Support chat")
    await tenant.close()

Whoever creates the client closes it: ``close`` (and ``close_db``) closes a client that
``connect`` created and never one that was injected with ``client=``. A connection belongs to
the event loop it was opened on (PyMongo's async client does); using it from another loop raises
``WrongEventLoopError``. Code that runs on other loops too (``AgentsCoreSession`` under the
OpenAI Agents SDK's ``Runner.run_sync``) opens a connection of its own there with
``connect(connection.uri, database=connection.database.name)`` and closes it afterwards.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC
from typing import Any

import pymongo
from beanie import Document, init_beanie
from bson import ObjectId
from bson.codec_options import CodecOptions
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError, InvalidURI, OperationFailure, PyMongoError
from pymongo.uri_parser import parse_uri

from agents_core.db.config import DEFAULT_URI, Settings, mask_uri
from agents_core.db.documents import DOCUMENT_MODELS, MESSAGE_TEXT_INDEXES, MessageDocument
from agents_core.db.errors import (
    AlreadyInitializedError,
    DatabaseUnavailableError,
    InvalidInputError,
    NotInitializedError,
    WrongEventLoopError,
    translate,
)
from agents_core.db.server import ServerProfile, detect_profile

__all__ = [
    "DEFAULT_DATABASE",
    "UNREACHABLE_HINT",
    "Connection",
    "close_client",
    "close_db",
    "connect",
    "default_connection",
    "get_database",
    "get_settings",
    "init_db",
    "swap_default",
]

logger = logging.getLogger(__name__)

DEFAULT_DATABASE = "agents_core"
#: What an unreachable server's error (``connect``, ``init_db``) suggests.
UNREACHABLE_HINT = (
    "start that server, or use the embedded one (no MongoDB needed): `with "
    'EmbeddedServer("./.agents-core") as server: await init_db(server.uri)`, EmbeddedServer '
    "from agents_core.embedded (pip install 'agents-core[embedded]'; docs/embedded.md)"
)


#: Sessions whose latest ``seq`` a connection remembers.
_MAX_SEQ_HINTS = 10_000
#: How long ``close`` lets a monitor's connect in flight finish when no server is reachable.
_CLOSE_SETTLE_S = 0.05
#: A deadline that has passed by the time a command checks it (``0`` would mean "none").
_NO_WAIT_S = 1e-6


class Connection:
    """One database on one client, with the settings the repositories apply to it."""

    __slots__ = (
        "_collections",
        "_loop",
        "client",
        "database",
        "owns_client",
        "profile",
        "seq_hints",
        "settings",
        "text_search",
        "uri",
    )

    def __init__(
        self,
        client: AsyncMongoClient[Any],
        database: AsyncDatabase[Any],
        settings: Settings,
        *,
        owns_client: bool,
        uri: str | None = None,
        profile: ServerProfile,
    ) -> None:
        self.client = client
        self.database = database
        self.settings = settings
        self.owns_client = owns_client
        #: The URI ``connect`` made the client from (``None`` for an injected client): what
        #: reaches the same database from another event loop.
        self.uri = uri
        #: What the server is, and so how the repositories write on it (``db/server.py``).
        self.profile = profile
        #: Whether ``MessagesRepository.search`` uses the text index (the profile's
        #: ``text_index``, until the server refuses one).
        self.text_search = profile.text_index
        self._loop = asyncio.get_running_loop()
        #: The latest ``last_seq`` this process saw per session: appends try it first (see
        #: ``repositories/messages.py``); a stale hint costs a command, never correctness.
        self.seq_hints: dict[ObjectId, int] = {}
        # The repositories read datetimes naive: they are UTC (BSON's convention) and records
        # make them aware (``UtcDatetime``) for a fraction of the driver's aware decoding.
        naive = database.codec_options.with_options(tz_aware=False, tzinfo=None)
        self._collections: dict[type[Document], AsyncCollection[Any]] = {
            document: database.get_collection(document.Settings.name, codec_options=naive)
            for document in DOCUMENT_MODELS
        }

    def collection(self, document: type[Document]) -> AsyncCollection[Any]:
        """The driver's collection that stores ``document``, for the repositories: it reads
        datetimes naive, in UTC (``database`` reads them aware)."""
        if asyncio.get_running_loop() is not self._loop:
            raise WrongEventLoopError()
        return self._collections[document]

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this connection belongs to (the one it was opened on)."""
        return self._loop

    def hint_seq(self, session_id: ObjectId, last_seq: int) -> None:
        """Remember ``last_seq`` as the latest seen for ``session_id`` (bounded memory)."""
        hints = self.seq_hints
        if len(hints) >= _MAX_SEQ_HINTS and session_id not in hints:
            del hints[next(iter(hints))]  # the oldest entry
        hints[session_id] = last_seq

    async def close(self) -> None:
        """Close the client if this connection created it. Safe to call twice."""
        if self.owns_client:
            await close_client(self.client)

    def __repr__(self) -> str:
        return f"<Connection database={self.database.name!r}>"


async def connect(
    uri: str | None = None,
    *,
    database: str | None = None,
    client: AsyncMongoClient[Any] | None = None,
    settings: Settings | None = None,
    create_indexes: bool = True,
    profile: ServerProfile | None = None,
) -> Connection:
    """Open a connection, find out what server it talks to, and create the indexes
    (idempotently).

    URI: ``uri``, else ``MONGODB_URI``, else ``mongodb://localhost:27017``. Database:
    ``database``, else ``MONGODB_DB``, else the URI's path, else ``agents_core``. With
    ``client``, that client (an application's own, or the in-memory mock) is used as it is and
    is never closed by this layer. ``create_indexes=False`` skips the ``createIndexes``
    commands, for a further connection to a database whose indexes a first one created.
    ``profile`` says what the server is (a further connection takes its first one's); without
    it one ``buildInfo`` finds out (``agents_core.db.server``).
    """
    settings = settings or Settings()
    uri = uri or settings.mongodb_uri or DEFAULT_URI
    owns_client = client is None
    if client is None:
        client = _connect(uri, settings)
        uri_database = _uri_database(uri)
    else:
        uri_database = None
    name = database or settings.mongodb_db or uri_database or DEFAULT_DATABASE
    try:
        database_handle = client.get_database(name, codec_options=_utc_codec_options(client))
        connection = Connection(
            client,
            database_handle,
            settings,
            owns_client=owns_client,
            uri=uri if owns_client else None,
            profile=profile or await detect_profile(database_handle),
        )
        for document in DOCUMENT_MODELS if create_indexes else ():
            indexes = document.Settings.indexes
            await connection.collection(document).create_indexes(indexes)
        if create_indexes and connection.text_search:
            try:
                await connection.collection(MessageDocument).create_indexes(MESSAGE_TEXT_INDEXES)
            except OperationFailure as exc:  # a server without text indexes: search scans
                logger.info("agents-core: no text index on messages (%s); search scans", exc)
                connection.text_search = False
    except (PyMongoError, ValueError) as exc:
        if owns_client:
            await close_client(client)
        translated = translate(exc) or InvalidInputError("database", str(exc))
        if isinstance(translated, DatabaseUnavailableError):
            # Said where it was tried, and what works without a MongoDB (issue 23).
            translated = DatabaseUnavailableError(
                _masked_reason(translated, uri) if owns_client else translated.reason,
                uri=mask_uri(uri) if owns_client else None,  # a client's own: not known
                hint=UNREACHABLE_HINT,
            )
        raise translated from exc
    return connection


_default: Connection | None = None


async def init_db(
    uri: str | None = None,
    *,
    database: str | None = None,
    client: AsyncMongoClient[Any] | None = None,
    settings: Settings | None = None,
    replace: bool = False,
    profile: ServerProfile | None = None,
) -> Connection:
    """Open the default connection (``connect``'s arguments) and bind the Beanie documents to it.

    Called again while initialised it raises ``AlreadyInitializedError``, unless ``replace=True``:
    then the new connection takes over and the previous one is closed (if it owned its client).
    """
    if _default is not None and not replace:
        raise AlreadyInitializedError()
    connection = await connect(
        uri, database=database, client=client, settings=settings, profile=profile
    )
    await _set_default(connection)
    return connection


async def _set_default(connection: Connection | None) -> Connection | None:
    """Make ``connection`` the default (Beanie's documents included); returns the previous one.

    The previous connection is closed unless it shares the new one's client: callers that want
    to restore it (``agents_core.testing``) use ``swap_default`` instead.
    """
    previous = await swap_default(connection)
    if previous is not None and (connection is None or previous.client is not connection.client):
        await previous.close()
    return previous


async def swap_default(connection: Connection | None) -> Connection | None:
    """Make ``connection`` the default without closing the previous one; returns it."""
    global _default
    if connection is not None:
        # Binds the classes for users' own Beanie queries; no command is sent.
        await init_beanie(
            database=connection.database, document_models=list(DOCUMENT_MODELS), skip_indexes=True
        )
    previous, _default = _default, connection
    return previous


async def close_db() -> None:
    """Forget the default connection; close its client if it created it. Safe to call twice."""
    await _set_default(None)


def default_connection() -> Connection:
    """The connection ``init_db`` opened (``NotInitializedError`` before ``init_db``)."""
    if _default is None:
        raise NotInitializedError()
    return _default


def get_database() -> AsyncDatabase[Any]:
    """The driver's database of the default connection."""
    return default_connection().database


def get_settings() -> Settings:
    """The settings of the default connection."""
    return default_connection().settings


def _utc_codec_options(client: AsyncMongoClient[Any]) -> CodecOptions[Any]:
    """The client's codec options, with datetimes read back aware, in ``datetime.UTC``: those
    of ``Connection.database``, the handle users and Beanie read through, whatever client is
    injected. (The repositories' own collections read them naive; records attach UTC.)
    """
    base = getattr(client, "codec_options", None)
    if isinstance(base, CodecOptions):
        return base.with_options(tz_aware=True, tzinfo=UTC)
    return CodecOptions(tz_aware=True, tzinfo=UTC)


def _connect(uri: str, settings: Settings) -> AsyncMongoClient[Any]:
    try:
        return AsyncMongoClient(
            uri,
            tz_aware=True,
            tzinfo=UTC,
            serverSelectionTimeoutMS=settings.server_selection_timeout_ms,
            connectTimeoutMS=settings.server_selection_timeout_ms,
            socketTimeoutMS=settings.socket_timeout_ms,
            appname="agents_core",
        )
    except (ConfigurationError, InvalidURI, ValueError, TypeError) as exc:
        raise InvalidInputError("uri", _masked_reason(exc, uri)) from exc


async def close_client(client: AsyncMongoClient[Any]) -> None:
    """Close ``client``, without waiting for or leaking anything when its server is unreachable
    (what the layer does with a client of its own; use it for a client given to ``connect``
    that raised ``DatabaseUnavailableError``).

    Then the client's monitor reconnects every 500 ms for as long as a command waits for a
    server, and a close that cancels one of those connects leaks its socket (a
    ``ResourceWarning``, seen with PyMongo 4.20.1). So let a connect in flight finish, and keep
    ``close`` from waiting for a server (for ``endSessions``, which it would only skip after the
    whole server selection timeout).
    """
    if client.topology_description.has_known_servers:
        await client.close()
        return
    await asyncio.sleep(_CLOSE_SETTLE_S)
    with pymongo.timeout(_NO_WAIT_S):
        await client.close()


def _uri_database(uri: str) -> str | None:
    try:
        database = parse_uri(uri).get("database")
    except (ConfigurationError, InvalidURI, ValueError) as exc:  # pragma: no cover - checked above
        raise InvalidInputError("uri", _masked_reason(exc, uri)) from exc
    return database if isinstance(database, str) and database else None


def _masked_reason(exc: BaseException, uri: str) -> str:
    return str(exc).replace(uri, mask_uri(uri))
