"""Fixtures: every contract test runs on both backends, each test on a fresh database.

- ``mock``: the in-memory database of ``agents_core.testing`` (what users get for unit tests).
- ``wire``: a real MongoDB-wire server: SecantusDB started once for the session as a child
  process, or the server of ``MONGODB_URI`` when that is set (e.g. MongoDB from docker compose,
  or mongoeco's wire server: ``make test-mongoeco``).

``--wire-only`` keeps the tests that reach the wire server through these fixtures (the ``[wire]``
case of ``backend``, or ``wire_uri`` among their fixtures) and deselects the rest: how another
server is checked without re-running the mock suite. ``tests/test_faults.py`` is deselected too:
it starts, kills and freezes SecantusDB processes of its own, whatever ``MONGODB_URI`` says.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient

from agents_core.db import close_db, init_db
from agents_core.db.config import mask_uri
from agents_core.db.documents import _common
from agents_core.db.server import MONGODB
from agents_core.embedded import database_target
from agents_core.testing import in_memory_db
from agents_core.testing.commands import CommandCounter
from tests.helpers import Clock

BACKENDS = ["mock", "wire"]
#: The backends and the wire server on the MongoDB profile (``wire-mongodb``), for what the
#: server profile changes (``agents_core.db.server``): on SecantusDB, ``wire`` takes its own
#: path and ``wire-mongodb`` the MongoDB one; the mock always takes the MongoDB one.
PROFILED_BACKENDS = [*BACKENDS, "wire-mongodb"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--wire-only",
        action="store_true",
        help="run only the tests that use the wire server (SecantusDB, or MONGODB_URI)",
    )


def pytest_report_header(config: pytest.Config) -> str:
    if uri := os.environ.get("MONGODB_URI"):
        return f"wire backend: {mask_uri(uri)} (MONGODB_URI)"
    return "wire backend: SecantusDB, started for the session"


def uses_wire_server(item: pytest.Item) -> bool:
    if "wire_uri" in getattr(item, "fixturenames", ()):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and any(
        str(callspec.params.get(name, "")).startswith("wire")
        for name in ("backend", "profiled_backend")
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--wire-only"):
        return
    keep = [item for item in items if uses_wire_server(item)]
    if deselected := [item for item in items if not uses_wire_server(item)]:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep


@pytest.fixture(scope="session")
def wire_uri() -> Iterator[str]:
    """``MONGODB_URI``, else a private in-memory SecantusDB for the session."""
    with database_target(in_memory=True) as target:
        yield target.uri


@pytest.fixture
def layer_by_uri(wire_uri: str) -> Iterator[str]:
    """A database name of the wire server, dropped afterwards: for tests that connect with
    ``init_db(wire_uri, database=name)`` themselves, or run the CLI on it (``MONGODB_DB``)."""
    name = f"test_uri_{uuid.uuid4().hex[:10]}"
    yield name

    async def drop() -> None:
        client: AsyncMongoClient[Any] = AsyncMongoClient(wire_uri)
        try:
            await client.drop_database(name)
        finally:
            await client.close()

    asyncio.run(drop())


@pytest.fixture(scope="session")
def command_log() -> CommandCounter:
    return CommandCounter()


@pytest_asyncio.fixture(scope="session")
async def wire_client(
    wire_uri: str, command_log: CommandCounter
) -> AsyncIterator[AsyncMongoClient[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        wire_uri, tz_aware=True, event_listeners=[command_log], serverSelectionTimeoutMS=10_000
    )
    yield client
    await client.close()


@pytest_asyncio.fixture
async def wire_db(wire_client: AsyncMongoClient[Any]) -> AsyncIterator[str]:
    """The layer initialised on a fresh database of the wire server (dropped afterwards)."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    await init_db(client=wire_client, database=name)
    try:
        yield "wire"
    finally:
        await close_db()
        await wire_client.drop_database(name)


@pytest_asyncio.fixture
async def wire_mongodb_db(wire_client: AsyncMongoClient[Any]) -> AsyncIterator[str]:
    """``wire_db`` with the MongoDB profile whatever the server is: the fewest-commands path
    (``agents_core.db.server``) on a real wire server, SecantusDB included."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    await init_db(client=wire_client, database=name, profile=MONGODB)
    try:
        yield "wire-mongodb"
    finally:
        await close_db()
        await wire_client.drop_database(name)


@pytest_asyncio.fixture
async def mock_db() -> AsyncIterator[str]:
    """The layer initialised on a fresh in-memory database."""
    async with in_memory_db():
        yield "mock"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The layer initialised on a fresh database of each backend in turn; its name."""
    name: str = request.getfixturevalue(f"{request.param}_db")
    return name


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A ``Clock`` standing still at the current millisecond until the test moves it."""
    frozen = Clock(_common.utcnow())
    # Only utcnow's module reads this clock; the driver and the event loop keep the real one.
    monkeypatch.setattr(_common, "time", SimpleNamespace(time_ns=frozen.time_ns))
    return frozen


@pytest.fixture(params=PROFILED_BACKENDS)
def profiled_backend(request: pytest.FixtureRequest) -> str:
    """``backend``, and the wire server on the MongoDB profile too; its name."""
    name: str = request.getfixturevalue(f"{request.param.replace('-', '_')}_db")
    return name
