"""The connection the whole layer shares (the blueprint's ``prisma.ts``).

Usage::

    from agents_core.db import init_db, close_db, SessionsRepository

    await init_db("mongodb://localhost:27017/agents")   # or MONGODB_URI / MONGODB_DB
    session = await SessionsRepository().create("Support chat")
    ...
    await close_db()

``init_db`` may be called again to re-target the layer (another URI, database or client).
Whoever creates the client closes it: ``close_db`` closes a client that ``init_db`` created and
never one that was injected with ``client=``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import pymongo
from beanie import Document, init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError, InvalidURI, PyMongoError
from pymongo.uri_parser import parse_uri

from agents_core.db.config import DEFAULT_URI, Settings, mask_uri
from agents_core.db.documents import DOCUMENT_MODELS
from agents_core.db.errors import InvalidInputError, NotInitializedError, translate

__all__ = ["DEFAULT_DATABASE", "close_db", "get_database", "get_settings", "init_db"]

DEFAULT_DATABASE = "agents_core"


#: How long ``close`` lets a monitor's connect in flight finish when no server is reachable.
_CLOSE_SETTLE_S = 0.05
#: A deadline that has passed by the time a command checks it (``0`` would mean "none").
_NO_WAIT_S = 1e-6


@dataclass(frozen=True, slots=True)
class _State:
    client: AsyncMongoClient[Any]
    database: AsyncDatabase[Any]
    owns_client: bool
    settings: Settings


_state: _State | None = None


async def init_db(
    uri: str | None = None,
    *,
    database: str | None = None,
    client: AsyncMongoClient[Any] | None = None,
    settings: Settings | None = None,
) -> None:
    """Connect, register every document and create the indexes (idempotently).

    URI: ``uri``, else ``MONGODB_URI``, else ``mongodb://localhost:27017``. Database:
    ``database``, else ``MONGODB_DB``, else the URI's path, else ``agents_core``. With
    ``client``, that client (an application's own, or the in-memory mock) is used as it is and
    is never closed by this layer.
    """
    global _state
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
        db = client.get_database(name)
        await init_beanie(database=db, document_models=list(DOCUMENT_MODELS))
    except (PyMongoError, ValueError) as exc:
        if owns_client:
            await _close(client)
        await _rebind_previous()
        translated = translate(exc) or InvalidInputError("database", str(exc))
        raise translated from exc
    previous, _state = _state, _State(client, db, owns_client, settings)
    if previous is not None and previous.owns_client and previous.client is not client:
        await _close(previous.client)


async def _rebind_previous() -> None:
    """After a failed re-target, point the documents back at the database still in use.

    ``init_beanie`` binds the document classes before it creates the indexes, so a failure
    there would otherwise leave them on the new (and maybe closed) client.
    """
    global _state
    if _state is None:
        return
    try:
        await init_beanie(
            database=_state.database, document_models=list(DOCUMENT_MODELS), skip_indexes=True
        )
    except (PyMongoError, ValueError):
        _state = None  # neither target works: NotInitializedError beats a closed client


async def close_db() -> None:
    """Forget the connection; close the client if ``init_db`` created it. Safe to call twice."""
    global _state
    previous, _state = _state, None
    if previous is not None and previous.owns_client:
        await _close(previous.client)


def get_database() -> AsyncDatabase[Any]:
    """The database the layer uses (``NotInitializedError`` before ``init_db``)."""
    return _current().database


def get_settings() -> Settings:
    """The settings ``init_db`` was given (or read from the environment)."""
    return _current().settings


def collection(document: type[Document]) -> AsyncCollection[Any]:
    """The driver's collection behind ``document``, for the repositories' direct commands."""
    _current()
    return document.get_pymongo_collection()


def _current() -> _State:
    if _state is None:
        raise NotInitializedError()
    return _state


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


async def _close(client: AsyncMongoClient[Any]) -> None:
    """Close ``client``, without waiting for or leaking anything when its server is unreachable.

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
