"""RunWriter: framework runs written from a bounded queue by a thread of its own, on both
backends; what happens when the server is unreachable, refuses a run, or the queue is full."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from agents_core.db import (
    AgentsRepository,
    Connection,
    FinishedToolCall,
    InvalidInputError,
    InvalidStateError,
    ModelCall,
    Price,
    RunsRepository,
    RunStatus,
    RunStep,
    SessionsRepository,
    Settings,
    connect,
    default_connection,
)
from agents_core.integrations.recording import (
    AgentRef,
    FrameworkRun,
    RunWriter,
    SessionRef,
    WriterStats,
    price_of,
)

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SOURCE = "test-framework"


def framework_run(
    external_id: str,
    *,
    conversation: str = "conversation-1",
    agent: str = "triage",
    tools: tuple[str, ...] = ("lookup",),
) -> FrameworkRun:
    return FrameworkRun(
        source=SOURCE,
        external_id=external_id,
        session=SessionRef(external_id=conversation, namespace="test", user_id="u-1"),
        agents=(AgentRef(agent, tools), AgentRef("billing", ("refund",))),
        started_at=T0,
        completed_at=T0 + timedelta(seconds=1),
        calls=[
            ModelCall(model="m", started_at=T0, duration_ms=5, input_tokens=3, output_tokens=2),
            FinishedToolCall(tool_name="lookup", input="{}", output="ok", started_at=T0),
            RunStep(kind="handoff", name=f"{agent} → billing", started_at=T0),
        ],
    )


@pytest.fixture
def writer(backend: str, request: pytest.FixtureRequest) -> Iterator[RunWriter]:
    """A writer on the backend's database: the mock's injected client is used from the
    writer's thread as it is; the wire backend's client is bound to the tests' loop, so the
    writer opens its own from the server's URI."""
    connection = default_connection()
    if backend == "mock":
        made = RunWriter(connection)
    else:
        uri = request.getfixturevalue("wire_uri")
        made = RunWriter.from_uri(uri, database=connection.database.name)
    yield made
    assert made.shutdown(timeout=30)


@pytest.mark.usefixtures("backend")
async def test_runs_are_written_with_their_session_and_agents(writer: RunWriter) -> None:
    assert writer.submit(framework_run("trace-1"))
    assert writer.submit(framework_run("trace-2", tools=("lookup", "search")))
    assert writer.force_flush(timeout=30)
    assert writer.stats() == WriterStats(submitted=2, written=2)
    runs = RunsRepository()
    first = await runs.find_by_external_id("trace-1", source=SOURCE)
    second = await runs.find_by_external_id("trace-2", source=SOURCE)
    assert first is not None
    assert second is not None
    session = await SessionsRepository().find_by_external_id(
        "conversation-1", namespace="test", user_id="u-1"
    )
    assert session is not None
    assert first.session_id == second.session_id == session.id
    listed = await runs.list_by_session(session.id)
    assert sorted(listed, key=lambda run: str(run.external_id)) == [first, second]
    triage = await AgentsRepository().find_by_name("triage")
    billing = await AgentsRepository().find_by_name("billing")
    assert triage is not None
    assert billing is not None
    assert first.agent_id == triage.id
    assert triage.tools == ["lookup", "search"]  # the second run's new tool enabled
    assert billing.tools == ["refund"]
    assert [type(call).__name__ for call in first.calls()] == ["ModelCall", "ToolCall", "RunStep"]


@pytest.mark.usefixtures("backend")
async def test_a_run_given_twice_is_stored_once(writer: RunWriter) -> None:
    writer.submit(framework_run("trace-1"))
    assert writer.force_flush(timeout=30)
    writer.submit(framework_run("trace-1"))
    assert writer.force_flush(timeout=30)
    assert writer.stats().written == 2  # the second found it stored: a retry's success
    assert await default_connection().database["runs"].count_documents({}) == 1


@pytest.mark.usefixtures("backend")
async def test_an_existing_session_by_id(writer: RunWriter) -> None:
    session = await SessionsRepository().create("mine")
    run = framework_run("trace-1")
    writer.submit(
        FrameworkRun(
            source=run.source,
            external_id=run.external_id,
            session=SessionRef(id=session.id),
            agents=run.agents,
            started_at=run.started_at,
            completed_at=run.completed_at,
            status=RunStatus.failed,
            error="Max turns exceeded",
        )
    )
    assert writer.force_flush(timeout=30)
    [stored] = await RunsRepository().list_by_session(session.id)
    assert (stored.status, stored.error, stored.calls()) == (
        RunStatus.failed,
        "Max turns exceeded",
        [],
    )


@pytest.mark.usefixtures("backend")
async def test_a_run_the_layer_refuses_fails_alone(
    writer: RunWriter, caplog: pytest.LogCaptureFixture
) -> None:
    bad = [framework_run(f"bad-{n}", agent="x" * 300) for n in range(2)]  # names too long
    for run in [framework_run("good-1"), *bad, framework_run("good-2")]:
        writer.submit(run)
    with caplog.at_level(logging.WARNING, logger="agents_core.integrations"):
        assert writer.force_flush(timeout=30)
    assert writer.stats() == WriterStats(submitted=4, written=2, failed=2)
    [record] = caplog.records  # logged once for both
    assert "not written" in record.getMessage()
    assert "test-framework run bad-0" in record.getMessage()
    runs = RunsRepository()
    assert await runs.find_by_external_id("good-2", source=SOURCE) is not None
    assert await runs.find_by_external_id("bad-1", source=SOURCE) is None


@pytest.mark.usefixtures("backend")
async def test_after_shutdown_runs_are_dropped(
    writer: RunWriter, caplog: pytest.LogCaptureFixture
) -> None:
    writer.submit(framework_run("trace-1"))
    assert writer.shutdown(timeout=30)
    assert writer.shutdown(timeout=30)  # twice is fine
    with caplog.at_level(logging.WARNING, logger="agents_core.integrations"):
        assert not writer.submit(framework_run("trace-2"))
        assert not writer.submit(framework_run("trace-3"))
    assert writer.stats() == WriterStats(submitted=1, written=1, dropped=2)
    assert len(caplog.records) == 1
    assert "shut down" in caplog.records[0].getMessage()
    assert writer.force_flush(timeout=1)  # nothing pending


async def test_an_injected_pymongo_client_is_refused(wire_db: str) -> None:
    """PyMongo's async client is bound to the loop it was made on; the writer's thread has
    its own loop, and an injected client has no URI to open another from."""
    with pytest.raises(InvalidStateError, match="from_uri"):
        RunWriter(default_connection())


async def test_a_connection_with_a_uri_is_opened_again_on_the_writer_loop(wire_uri: str) -> None:
    name = f"test_{ObjectId()}"
    connection: Connection = await connect(wire_uri, database=name)
    writer = RunWriter(connection)
    try:
        writer.submit(framework_run("trace-1"))
        assert writer.force_flush(timeout=30)
        assert writer.stats().written == 1
        runs = RunsRepository(connection)
        assert await runs.find_by_external_id("trace-1", source=SOURCE) is not None
    finally:
        assert writer.shutdown(timeout=30)
        await connection.client.drop_database(name)
        await connection.close()


def test_a_model_call_is_priced_as_answered_then_as_asked_then_as_its_snapshots_model() -> None:
    mini, big = (
        Price(input_per_million=1, output_per_million=2),
        Price(input_per_million=3, output_per_million=4),
    )
    prices = {"gpt-4.1-mini": mini, "gpt-4.1": big}
    assert price_of(prices, "gpt-4.1-mini", "gpt-4.1") is mini  # the answering model's first
    assert price_of(prices, "custom-deployment", "gpt-4.1") is big  # then the one asked for
    assert price_of(prices, "gpt-4.1-2025-04-14") is big  # then a snapshot's model
    assert price_of(prices, "gpt-4.1-mini-2025-04-14", None) is mini
    assert price_of(prices, "gpt-5", None) is None  # unknown: no price, never another's
    assert price_of(prices, "gpt-4.1-preview") is None


def test_bad_references_and_options_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        SessionRef()
    with pytest.raises(InvalidInputError):
        SessionRef(id=ObjectId(), external_id="x", namespace="n")
    with pytest.raises(InvalidInputError):
        SessionRef(external_id="x")
    with pytest.raises(InvalidInputError):
        RunWriter.from_uri("not a uri")
    with pytest.raises(InvalidInputError):
        RunWriter(max_queue_size=0)
    with pytest.raises(InvalidInputError):
        RunWriter("mongodb://localhost")  # type: ignore[arg-type]


# --- the server unreachable ---------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_an_unreachable_server_fails_runs_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fast = Settings(server_selection_timeout_ms=200)
    writer = RunWriter.from_uri(f"mongodb://127.0.0.1:{closed_port()}/x", settings=fast, retries=1)
    with caplog.at_level(logging.WARNING, logger="agents_core.integrations"):
        for n in range(3):
            assert writer.submit(framework_run(f"trace-{n}"))
            assert writer.force_flush(timeout=30)
        assert writer.shutdown(timeout=30)
    assert writer.stats() == WriterStats(submitted=3, failed=3)
    assert len(caplog.records) == 1
    assert "DatabaseUnavailableError" in caplog.records[0].getMessage()


def test_a_full_queue_drops_runs_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that accepts connections and never answers holds the writer's first batch;
    the queue (2 runs) fills and every further run is dropped, at once, never waited for."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        writer = RunWriter.from_uri(
            f"mongodb://127.0.0.1:{port}/x", max_queue_size=2, max_batch_size=1, retries=0
        )
        with caplog.at_level(logging.WARNING, logger="agents_core.integrations"):
            accepted = [writer.submit(framework_run(f"trace-{n}")) for n in range(10)]
        stats = writer.stats()
        # The writer holds at most one run (its batch of 1); the queue two more.
        assert stats.submitted in (2, 3)
        assert sum(accepted) == stats.submitted
        assert stats.dropped == 10 - stats.submitted
        assert (stats.written, stats.failed, stats.pending) == (0, 0, stats.submitted)
        assert len(caplog.records) == 1
        assert "queue of runs to write is full (2)" in caplog.records[0].getMessage()
        writer.shutdown(timeout=0)
    # The silent server is gone: the writer's connection attempt fails and it stops.
    assert writer.shutdown(timeout=30)
    assert writer.stats().pending == 0
