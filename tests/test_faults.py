"""Faults: a SecantusDB server that stops, crashes or freezes under the layer and the runner.

Each test starts its own server on a fresh on-disk storage (``tmp_path / "db"``), so it can stop
it, kill it and start it again on the same files; a restarted server listens on a new port, so
the layer is re-initialised on its URI. Every test is bounded: each awaited call that may hang is
wrapped in ``asyncio.wait_for`` (a guard against a hang, far above any configured timeout). That
a failing call fails within the configured timeouts is shown by its cause, not by a stopwatch (a
loaded machine stretches every wait): the driver's own account of what it waited for (PyMongo's
logs) shows at most one wait for a server and one failed exchange per failing layer call, each
bounded by a configured timeout, never a driver default.

Durability: a clean stop (SIGTERM) keeps every acknowledged write. A crash (SIGKILL) keeps those
acknowledged with ``j: true`` (``?journal=true``): SecantusDB, like ``mongod`` with its default
``w: 1, j: false``, acknowledges a plain write before its journal record reaches the disk, so
writes acknowledged in the last moments before a SIGKILL can be lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo.errors import PyMongoError

from agents_core.db import (
    AgentsRepository,
    CreateAgentDTO,
    DatabaseUnavailableError,
    InvalidStateError,
    MessageRole,
    MessagesRepository,
    Price,
    RunsRepository,
    RunStatus,
    SessionsRepository,
    Settings,
    ToolCallsRepository,
    ToolCallStatus,
    close_db,
    get_database,
    init_db,
)
from agents_core.db.repositories.runs import ABANDONED
from agents_core.embedded import EmbeddedServer, EmbeddedServerError, server_executable
from agents_core.runner import (
    AgentRunner,
    ModelResponse,
    ScriptedModel,
    ToolRegistry,
    ToolRequest,
    Usage,
)

try:
    server_executable()
except EmbeddedServerError:  # pragma: no cover - the dev extra installs it
    pytest.skip("secantusd-py is not installed", allow_module_level=True)

DATABASE = "faults"
#: Each fault test starts, stops or freezes a server of its own: seconds each.
pytestmark = pytest.mark.slow

#: The configured bound: how long a call waits for a reachable server (and for a new connection).
SETTINGS = Settings(server_selection_timeout_ms=1_000)
#: A guard that turns a hang into a test failure instead of a stuck suite: only a hang reaches it
#: (a failing call waits a few configured seconds at most), so a loaded machine cannot.
HANG_GUARD_S = 15.0
#: ``j: true`` on every write: acknowledged means journaled, so it survives a SIGKILL.
JOURNALED = "&journal=true"  # after the embedded URI's own "?retryWrites=false"


async def start(data_dir: Path, query: str = "", settings: Settings = SETTINGS) -> EmbeddedServer:
    """A private server on ``data_dir`` (its storage kept between starts), the layer on it."""
    server = EmbeddedServer(data_dir, shared=False)  # ours to stop, kill and freeze
    await asyncio.to_thread(server.start)
    try:
        await asyncio.wait_for(
            init_db(server.uri + query, database=DATABASE, settings=settings), HANG_GUARD_S
        )
    except BaseException:
        await asyncio.to_thread(kill, server)
        raise
    return server


def kill(server: EmbeddedServer) -> None:
    """SIGKILL, as a crash or an OOM kill would do it (no shutdown, no final checkpoint)."""
    process = server._process
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()
    server.stop()


@dataclass
class Waits:
    """What the driver waited for during one call, by its own account (PyMongo's logs)."""

    #: For each server selection that had to wait: the time it was given, in ms.
    selections_ms: list[int] = field(default_factory=list)
    #: Each exchange that failed: a command (its error) or a new connection.
    failures: list[str] = field(default_factory=list)

    def assert_bounded(
        self, *, calls: int, answers: int = 0, settings: Settings = SETTINGS
    ) -> None:
        """At most two attempts per failing layer call (the driver retries a read or a write
        once; the layer never loops), each waiting at most once for a server and failing at
        most once, every wait bounded by ``settings``; at most ``answers`` exchanges waited for
        an answer (until the socket timeout; a server that is gone refuses or closes at once)."""
        assert self.selections_ms or self.failures, "no wait reported: are the driver's logs read?"
        assert len(self.selections_ms) <= 2 * calls, self
        assert all(ms <= settings.server_selection_timeout_ms for ms in self.selections_ms), self
        assert len(self.failures) <= 2 * calls, self
        timed_out = [failure for failure in self.failures if "timed out" in failure]
        assert len(timed_out) <= answers, self
        for failure in timed_out:
            assert f"socketTimeoutMS: {settings.socket_timeout_ms:.1f}ms" in failure, self


class _DriverLog(logging.Handler):
    LOGGERS = ("pymongo.serverSelection", "pymongo.command", "pymongo.connection")

    def __init__(self, waits: Waits) -> None:
        super().__init__(logging.DEBUG)
        self.waits = waits

    def emit(self, record: logging.LogRecord) -> None:
        fields = json.loads(record.getMessage())
        message = fields.get("message")
        if message == "Waiting for suitable server to become available":
            self.waits.selections_ms.append(int(fields["remainingTimeMS"]))
        elif message == "Command failed":
            self.waits.failures.append(str(fields.get("failure")))
        elif message == "Connection checkout failed":
            self.waits.failures.append(f"new connection: {fields.get('reason')}")


async def fails_unavailable(call: Awaitable[Any], label: str) -> Waits:
    """Assert ``call`` raises ``DatabaseUnavailableError`` (from a driver error); what the
    driver waited for meanwhile."""
    waits = Waits()
    handler = _DriverLog(waits)
    loggers = [logging.getLogger(name) for name in _DriverLog.LOGGERS]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        logger.propagate = False  # the driver's debug lines stay out of the test report
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailableError) as raised:
            await asyncio.wait_for(call, HANG_GUARD_S)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)
            logger.propagate = True
    assert isinstance(raised.value.__cause__, PyMongoError), label
    elapsed = time.monotonic() - started  # printed for the reader, never asserted
    print(f"[faults] {label}: DatabaseUnavailableError after {elapsed:.2f} s, {waits}")
    return waits


async def routed_session(tools: list[str]) -> tuple[ObjectId, ObjectId]:
    agent = await AgentsRepository().create(CreateAgentDTO(name="support", tools=tools))
    session = await SessionsRepository().create("outage", user_id="u-1")
    assert agent.id is not None
    assert session.id is not None
    await SessionsRepository().set_active_agent(session.id, agent.id)
    return session.id, agent.id


async def transcript(session_id: ObjectId) -> list[tuple[int, str, str]]:
    session = await SessionsRepository().find_by_id(session_id, message_limit=100)
    return [(m.seq, m.role.value, m.content) for m in session.messages]


# --- 1 and 2: the server stops in the middle of a turn; nothing acknowledged is lost ----------


@pytest.mark.parametrize(
    ("how", "query"), [("sigterm", ""), ("sigkill", JOURNALED)], ids=["stopped", "crashed"]
)
async def test_a_server_lost_mid_turn_fails_the_turn_in_bounded_time_and_loses_nothing(
    tmp_path: Path, how: str, query: str
) -> None:
    data_dir = tmp_path / "db"
    server = await start(data_dir, query)

    async def lookup(order: str) -> str:
        """The tool during which the database goes away."""
        if how == "sigterm":
            await asyncio.to_thread(server.stop)
        else:
            kill(server)
        return f"order {order}: shipped"

    tools = ToolRegistry({"add": lambda a, b: a + b, "lookup": lookup})
    model = ScriptedModel(
        [
            # Turn 1 completes.
            ModelResponse(
                tool_calls=[ToolRequest("add", '{"a": 2, "b": 3}')], usage=Usage(input_tokens=10)
            ),
            ModelResponse(
                text="2 + 3 = 5",
                usage=Usage(input_tokens=5),
                price=Price(input_per_million=100_000, output_per_million=0),
            ),
            # Turn 2 loses the database while its tool runs.
            ModelResponse(
                text="Let me look that up.",
                tool_calls=[ToolRequest("lookup", '{"order": "A-1"}')],
                usage=Usage(input_tokens=5),
                price=Price(input_per_million=50_000, output_per_million=0),
            ),
            ModelResponse(text="never reached"),
        ]
    )
    try:
        session_id, agent_id = await routed_session(["add", "lookup"])
        runner = AgentRunner(model, tools)
        first = await runner.run(session_id, "what is 2 + 3?", turn_id="turn-1")
        assert first.status is RunStatus.completed

        waits = await fails_unavailable(
            runner.run(session_id, "where is order A-1?", turn_id="turn-2"),
            f"runner.run, server {how} mid-turn (whole turn)",
        )
        # The turn's two failing calls: completing the tool call, then marking the run failed.
        waits.assert_bounded(calls=2)
        assert model.remaining == 1  # the model was not called after the loss
    finally:
        await close_db()
        await asyncio.to_thread(kill, server)

    server = await start(data_dir, query)
    try:
        assert await transcript(session_id) == [
            (1, "user", "what is 2 + 3?"),
            (2, "assistant", ""),
            (3, "tool", "5"),
            (4, "assistant", "2 + 3 = 5"),
            (5, "user", "where is order A-1?"),
            (6, "assistant", "Let me look that up."),
        ]
        agent = await AgentsRepository().find_by_id(agent_id)
        assert (agent.name, agent.tools) == ("support", ["add", "lookup"])

        completed, lost = await RunsRepository().list_by_session(session_id)
        assert completed.id == first.id
        assert lost.id is not None
        assert (completed.status, completed.tokens, completed.cost) == (
            RunStatus.completed,
            15,
            0.5,
        )
        # Failing the run needed the database too: it is left running, with its usage so far.
        assert (lost.status, lost.error, lost.tokens, lost.cost) == (
            RunStatus.running,
            None,
            5,
            0.25,
        )
        [pending] = await ToolCallsRepository().find_by_run(lost.id)
        assert (pending.tool_name, pending.input, pending.status, pending.output) == (
            "lookup",
            '{"order": "A-1"}',
            ToolCallStatus.pending,
            None,
        )

        runs = RunsRepository()
        assert [run.id for run in await runs.list_stale(timedelta(0))] == [lost.id]
        assert await runs.list_stale(timedelta(hours=1)) == []
        abandoned = await runs.mark_abandoned(lost.id)
        assert (abandoned.status, abandoned.error) == (RunStatus.failed, ABANDONED)
        assert abandoned.completed_at is not None
        assert await runs.list_stale(timedelta(0)) == []
        with pytest.raises(InvalidStateError):
            await runs.mark_abandoned(lost.id)
    finally:
        await close_db()
        await asyncio.to_thread(kill, server)


# --- a server that freezes (SIGSTOP: connections stay open, nothing answers) ---------------------


async def test_a_frozen_server_fails_a_turn_within_the_socket_timeout(tmp_path: Path) -> None:
    """Its port still accepts connections, so only ``socket_timeout_ms`` bounds the wait."""
    settings = SETTINGS.model_copy(update={"socket_timeout_ms": 1_000})
    server = await start(tmp_path / "db", settings=settings)
    # The layer's client waits as configured: for an answer, and for a new connection's handshake.
    options = get_database().client.options
    assert options.pool_options.socket_timeout == 1.0
    assert options.pool_options.connect_timeout == 1.0
    assert server._process is not None
    pid = server._process.pid

    def freeze() -> str:
        os.kill(pid, signal.SIGSTOP)
        return "frozen"

    model = ScriptedModel([ModelResponse(tool_calls=[ToolRequest("freeze")]), ModelResponse()])
    try:
        session_id, _ = await routed_session(["freeze"])
        waits = await fails_unavailable(
            AgentRunner(model, ToolRegistry({"freeze": freeze})).run(session_id, "freeze"),
            "runner.run, server frozen mid-turn",
        )
        # Two failing calls (completing the tool call, marking the run failed), each with its
        # retry: a command that waited for an answer until the socket timeout, where without one
        # only the driver's monitor (heartbeat 10 s + connect timeout) would end the wait; new
        # connections whose handshake the connect timeout checked above ends.
        waits.assert_bounded(calls=2, answers=4, settings=settings)
        assert any("timed out" in failure for failure in waits.failures), waits
    finally:
        await close_db()
        await asyncio.to_thread(kill, server)


# --- 3: calls while the server is down fail fast; the layer recovers after a restart ------------


async def test_calls_while_the_server_is_down_fail_fast_and_work_again_after_a_restart(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "db"
    server = await start(data_dir)
    try:
        session_id, agent_id = await routed_session(["add"])
        run = await RunsRepository().create(session_id, agent_id)
        assert run.id is not None
        run_id = run.id
        await MessagesRepository().create(session_id, "user", "before the stop")
        await asyncio.to_thread(server.stop)

        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "messages.create": lambda: MessagesRepository().create(session_id, "user", "lost"),
            "runs.update_usage": lambda: RunsRepository().update_usage(run_id, 3, 0.1),
            "sessions.list_active": lambda: SessionsRepository().list_active(),
            "tool_calls.create": lambda: ToolCallsRepository().create(run_id, "add", "{}"),
            "runs.complete": lambda: RunsRepository().complete(run_id, RunStatus.completed),
        }
        for name, call in calls.items():
            (await fails_unavailable(call(), f"{name}, server down")).assert_bounded(calls=1)
        await close_db()
        # Initialising on a server that is gone fails the same way (and closes its client),
        # within the configured time, whatever it is.
        nowhere = f"mongodb://127.0.0.1:{_free_port()}/"
        waits = await fails_unavailable(init_db(nowhere, settings=SETTINGS), "init_db")
        waits.assert_bounded(calls=1)
        quicker = Settings(server_selection_timeout_ms=200)
        waits = await fails_unavailable(init_db(nowhere, settings=quicker), "init_db, 200 ms")
        waits.assert_bounded(calls=1, settings=quicker)  # 200 ms for a server, at most
    finally:
        await close_db()
        await asyncio.to_thread(kill, server)

    server = await start(data_dir)
    try:
        for call in calls.values():
            await asyncio.wait_for(call(), HANG_GUARD_S)  # each works again
        assert await transcript(session_id) == [
            (1, "user", "before the stop"),
            (2, "user", "lost"),  # the failed append consumed no seq
        ]
        after = await RunsRepository().find_by_id(run_id)
        assert (after.status, after.tokens, len(after.tool_calls)) == (RunStatus.completed, 3, 1)
        assert [s.id for s in await SessionsRepository().list_active()] == [session_id]
    finally:
        await close_db()
        await asyncio.to_thread(kill, server)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- 4: a turn retried after network errors does not store its messages twice --------------------


async def test_a_turn_retried_after_network_errors_stores_each_message_once(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "db"
    server = await start(data_dir, JOURNALED)
    crash_during_tool = [False]

    def add(a: int, b: int) -> int:
        if crash_during_tool[0]:
            kill(server)
        return a + b

    tools = ToolRegistry({"add": add})
    asks_for_the_tool = ModelResponse(
        text="Adding.",
        tool_calls=[ToolRequest("add", '{"a": 2, "b": 3}')],
        usage=Usage(input_tokens=4),
    )
    answers = ModelResponse(text="2 + 3 = 5", usage=Usage(input_tokens=3))
    try:
        session_id, _ = await routed_session(["add"])
        # Attempt 1: the model's API drops the connection after the tool call.
        with pytest.raises(ConnectionError):
            await AgentRunner(
                ScriptedModel([asks_for_the_tool, ConnectionError("model API unreachable")]), tools
            ).run(session_id, "what is 2 + 3?", turn_id="t1")
        # Attempt 2: the database crashes while the tool runs.
        crash_during_tool[0] = True
        waits = await fails_unavailable(
            AgentRunner(ScriptedModel([asks_for_the_tool, answers]), tools).run(
                session_id, "what is 2 + 3?", turn_id="t1"
            ),
            "runner.run retried, server crashed mid-turn",
        )
        waits.assert_bounded(calls=2)
        crash_during_tool[0] = False
    finally:
        await close_db()
        await asyncio.to_thread(kill, server)

    server = await start(data_dir, JOURNALED)
    try:
        # Attempt 3, after the restart: the whole turn again, with the same turn id.
        run = await AgentRunner(ScriptedModel([asks_for_the_tool, answers]), tools).run(
            session_id, "what is 2 + 3?", turn_id="t1"
        )
        assert run.status is RunStatus.completed
        assert await transcript(session_id) == [
            (1, "user", "what is 2 + 3?"),
            (2, "assistant", "Adding."),
            (3, "tool", "5"),
            (4, "assistant", "2 + 3 = 5"),
        ]
        first, crashed, retried = await RunsRepository().list_by_session(session_id)
        assert (first.status, first.error) == (
            RunStatus.failed,
            "ConnectionError: model API unreachable",
        )
        assert (crashed.status, crashed.tokens) == (RunStatus.running, 4)
        assert (retried.id, retried.tokens) == (run.id, 7)
        assert [r.id for r in await RunsRepository().list_stale(timedelta(0))] == [crashed.id]
        # Another repeat of the finished turn still adds nothing.
        again = await AgentRunner(ScriptedModel([asks_for_the_tool, answers]), tools).run(
            session_id, "what is 2 + 3?", turn_id="t1"
        )
        assert again.status is RunStatus.completed
        assert len(await transcript(session_id)) == 4
        roles = [m.role for m in (await SessionsRepository().find_by_id(session_id)).messages]
        assert roles.count(MessageRole.user) == 1
    finally:
        await close_db()
        await asyncio.to_thread(kill, server)
