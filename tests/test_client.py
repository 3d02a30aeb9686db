"""init_db / close_db: configuration, re-targeting, ownership of the client."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import ServerSelectionTimeoutError

from agents_core.db import (
    AlreadyInitializedError,
    Connection,
    DatabaseUnavailableError,
    InvalidInputError,
    NotInitializedError,
    SessionsRepository,
    Settings,
    WrongEventLoopError,
    close_db,
    connect,
    get_database,
    init_db,
)
from agents_core.db.client import close_client
from agents_core.db.config import mask_uri
from agents_core.testing import in_memory_client, in_memory_db


async def test_repositories_refuse_to_work_before_init_db() -> None:
    await close_db()
    with pytest.raises(NotInitializedError):
        await SessionsRepository().create("x")
    with pytest.raises(NotInitializedError):
        get_database()


@pytest.mark.parametrize(
    ("uri", "database", "env_db", "expected"),
    [
        ("mongodb://h:1/fromuri", None, None, "fromuri"),
        ("mongodb://h:1/fromuri", "explicit", "fromenv", "explicit"),
        ("mongodb://h:1/fromuri", None, "fromenv", "fromenv"),
        ("mongodb://h:1/", None, None, "agents_core"),
    ],
)
async def test_database_name_resolution(
    monkeypatch: pytest.MonkeyPatch,
    wire_uri: str,
    uri: str,
    database: str | None,
    env_db: str | None,
    expected: str,
) -> None:
    from agents_core.db import client as client_module

    # The URI given to init_db names the database; the connection goes to the test server.
    def connect(_uri: str, settings: Settings) -> AsyncMongoClient[Any]:
        return AsyncMongoClient(wire_uri, tz_aware=True)

    monkeypatch.setattr(client_module, "_connect", connect)
    if env_db:
        monkeypatch.setenv("MONGODB_DB", env_db)
    else:
        monkeypatch.delenv("MONGODB_DB", raising=False)
    await init_db(uri, database=database)
    try:
        assert get_database().name == expected
    finally:
        await close_db()


async def test_init_db_again_refuses_unless_asked_to_replace() -> None:
    client = in_memory_client()
    await init_db(client=client, database="one")
    try:
        await SessionsRepository().create("in one")
        with pytest.raises(AlreadyInitializedError, match="replace=True"):
            await init_db(client=client, database="two")
        assert get_database().name == "one"
        await init_db(client=client, database="two", replace=True)
        assert await SessionsRepository().list_active() == []
        await init_db(client=client, database="one", replace=True)
        assert [s.title for s in await SessionsRepository().list_active()] == ["in one"]
    finally:
        await close_db()


async def test_two_connections_side_by_side() -> None:
    one = await connect(client=in_memory_client(), database="tenant_one")
    two = await connect(client=in_memory_client(), database="tenant_two")
    await SessionsRepository(one).create("for one")
    await SessionsRepository(two).create("for two")
    assert [s.title for s in await SessionsRepository(one).list_active()] == ["for one"]
    assert [s.title for s in await SessionsRepository(two).list_active()] == ["for two"]
    with pytest.raises(NotInitializedError):  # no default connection was opened
        await SessionsRepository().list_active()
    await one.close()
    await two.close()


async def test_two_in_memory_databases_at_once() -> None:
    async with in_memory_db() as outer:
        await SessionsRepository().create("outer")
        async with in_memory_db() as inner:
            assert await SessionsRepository().list_active() == []  # the default is the inner
            assert [s.title for s in await SessionsRepository(outer).list_active()] == ["outer"]
            await SessionsRepository(inner).create("inner")
        assert [s.title for s in await SessionsRepository().list_active()] == ["outer"]
    with pytest.raises(NotInitializedError):
        await SessionsRepository().list_active()


def test_a_connection_used_from_another_event_loop_raises_a_typed_error() -> None:
    async def open_connection() -> Connection:
        return await connect(client=in_memory_client(), database="loops")

    connection = asyncio.run(open_connection())

    async def use_it() -> None:
        await SessionsRepository(connection).create("elsewhere")

    with pytest.raises(WrongEventLoopError, match="one per loop"):
        asyncio.run(use_it())


def test_a_repository_refuses_what_is_not_a_connection() -> None:
    with pytest.raises(InvalidInputError, match="Connection"):
        SessionsRepository("mongodb://localhost")  # type: ignore[arg-type]


async def test_close_db_never_closes_an_injected_client(wire_client: AsyncMongoClient[Any]) -> None:
    await init_db(client=wire_client, database="agents_core_close_test")
    await close_db()
    await close_db()  # twice is fine
    assert (await wire_client.admin.command("ping"))["ok"] == 1


async def test_init_db_owns_and_closes_the_client_it_creates(wire_uri: str) -> None:
    await init_db(wire_uri, database="agents_core_owned")
    client = get_database().client
    await close_db()
    with pytest.raises(Exception, match=r"closed|Cannot use"):
        await client.admin.command("ping")


async def test_unreachable_server_fails_fast_with_database_unavailable() -> None:
    with pytest.raises(DatabaseUnavailableError) as info:
        await init_db("mongodb://127.0.0.1:9/", settings=Settings(server_selection_timeout_ms=300))
    # Fast because the driver gave up after the configured selection timeout (its error says
    # which it used), not after its default 30 s: the cause, not a stopwatch a loaded machine
    # can break.
    cause = info.value.__cause__
    assert isinstance(cause, ServerSelectionTimeoutError)
    assert "Timeout: 0.3s" in str(cause)


@pytest.mark.parametrize("opened_by", ["init_db", "connect"])
async def test_an_unreachable_server_is_named_masked_and_the_embedded_one_suggested(
    opened_by: str,
) -> None:
    uri = "mongodb://app:s3cret@127.0.0.1:9/shop"
    fast = Settings(server_selection_timeout_ms=300)
    with pytest.raises(DatabaseUnavailableError) as info:
        await (
            init_db(uri, settings=fast) if opened_by == "init_db" else connect(uri, settings=fast)
        )
    text = str(info.value)
    assert "\n" not in text  # one message, one line
    assert "s3cret" not in text
    assert text.startswith(
        "cannot reach MongoDB at mongodb://app:***@127.0.0.1:9/shop: MongoDB connection timed out"
    )
    assert info.value.uri == "mongodb://app:***@127.0.0.1:9/shop"
    assert info.value.reason.startswith("MongoDB connection timed out: 127.0.0.1:9")
    assert text.endswith(f"; {info.value.hint}")
    hint = info.value.hint or ""
    assert 'with EmbeddedServer("./.agents-core") as server: await init_db(server.uri)' in hint
    assert "agents_core.embedded" in hint
    # What it points to exists.
    from agents_core.embedded import EmbeddedServer

    assert callable(EmbeddedServer)
    assert (Path(__file__).parents[1] / "docs" / "embedded.md").is_file()
    assert isinstance(info.value.__cause__, ServerSelectionTimeoutError)


async def test_an_unreachable_injected_client_gets_the_suggestion_but_no_uri() -> None:
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        "mongodb://127.0.0.1:9/", serverSelectionTimeoutMS=300
    )
    try:
        with pytest.raises(DatabaseUnavailableError) as info:
            await connect(client=client)
    finally:
        # As the layer closes a client of its own that never reached its server: a close that
        # cancels the monitor's connect leaks its socket (a ResourceWarning in a later test).
        await close_client(client)
    assert info.value.uri is None
    assert str(info.value).startswith("MongoDB connection timed out: 127.0.0.1:9")
    assert "EmbeddedServer" in str(info.value)


async def test_malformed_uri_raises_invalid_input_without_the_password() -> None:
    with pytest.raises(InvalidInputError) as info:
        await init_db("mongodb://user:s3cret@host:notaport/")
    assert "s3cret" not in str(info.value)


def test_mask_uri_hides_passwords_only() -> None:
    assert (
        mask_uri("mongodb://u:p%40ss@h:27017/db?tls=true") == "mongodb://u:***@h:27017/db?tls=true"
    )
    assert (
        mask_uri("mongodb+srv://u:pw@cluster.example.net/")
        == "mongodb+srv://u:***@cluster.example.net/"
    )
    assert mask_uri("mongodb://h:27017/") == "mongodb://h:27017/"


async def test_a_failed_retarget_leaves_the_layer_where_it_was(
    wire_uri: str, wire_client: AsyncMongoClient[Any]
) -> None:
    from agents_core.db import DatabaseError

    name = f"conflict_{time.monotonic_ns()}"
    # An index of another shape under one of our index names: init_db cannot create ours.
    await wire_client[name]["runs"].create_index([("x", 1)], name="session_id_started_at")
    await init_db(client=in_memory_client(), database="kept")
    try:
        await SessionsRepository().create("still here")
        with pytest.raises(DatabaseError):
            await init_db(wire_uri, database=name, replace=True)
        assert get_database().name == "kept"
        assert [s.title for s in await SessionsRepository().list_active()] == ["still here"]
    finally:
        await close_db()
        await wire_client.drop_database(name)
