"""Fixtures: every contract test runs on both backends, each test on a fresh database.

- ``mock``: the in-memory database of ``agents_core.testing`` (what users get for unit tests).
- ``wire``: a real MongoDB-wire server: SecantusDB started once for the session as a child
  process, or the server of ``MONGODB_URI`` when that is set (e.g. MongoDB from docker compose).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient

from agents_core.db import close_db, init_db
from agents_core.embedded import EmbeddedServer
from agents_core.testing import in_memory_db
from agents_core.testing.commands import CommandCounter

BACKENDS = ["mock", "wire"]


@pytest.fixture(scope="session")
def wire_uri() -> Iterator[str]:
    if uri := os.environ.get("MONGODB_URI"):
        yield uri
        return
    with EmbeddedServer() as server:
        # SecantusDB slows down as it keeps a record per retryable write (NOTES-wire-server.md).
        yield server.uri + "?retryWrites=false"


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
async def mock_db() -> AsyncIterator[str]:
    """The layer initialised on a fresh in-memory database."""
    async with in_memory_db():
        yield "mock"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The layer initialised on a fresh database of each backend in turn; its name."""
    name: str = request.getfixturevalue(f"{request.param}_db")
    return name
