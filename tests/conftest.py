"""Fixtures: every contract test runs on both backends, each test on a fresh database.

- ``mock``: the in-memory database of ``agents_core.testing`` (what users get for unit tests).
- ``wire``: a real MongoDB-wire server: SecantusDB started once for the session as a child
  process, or the server of ``MONGODB_URI`` when that is set (e.g. MongoDB from docker compose).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient, monitoring

from agents_core.db import close_db, init_db
from agents_core.embedded import database_target
from agents_core.testing import in_memory_db

BACKENDS = ["mock", "wire"]


class CommandLog(monitoring.CommandListener):
    """The names of the commands the wire client sends while ``recording()`` is active."""

    def __init__(self) -> None:
        self.names: list[str] | None = None

    @contextmanager
    def recording(self) -> Iterator[list[str]]:
        self.names = names = []
        try:
            yield names
        finally:
            self.names = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.names is not None and event.command_name not in {"endSessions", "hello"}:
            self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture(scope="session")
def wire_uri() -> Iterator[str]:
    """``MONGODB_URI``, else a private in-memory SecantusDB for the session."""
    with database_target(in_memory=True) as target:
        yield target.uri


@pytest.fixture(scope="session")
def command_log() -> CommandLog:
    return CommandLog()


@pytest_asyncio.fixture(scope="session")
async def wire_client(
    wire_uri: str, command_log: CommandLog
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
