"""The hot paths measured, as a table of ``Op``s over fixtures seeded once.

Adding a hot path is one entry in ``hot_paths``: a name, the repository call, the raw-PyMongo
call doing the same work (a ``RawLayer`` method), and, if each call needs a fresh target, a
``prepare`` that makes one per call outside the timing.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from agents_core.db import (
    AgentsRepository,
    CreateAgentDTO,
    MessagesRepository,
    RunsRepository,
    SessionsRepository,
    ToolCallsRepository,
)
from agents_core.runner import (
    AgentRunner,
    ModelRequest,
    ModelResponse,
    ToolRegistry,
    ToolRequest,
    Usage,
)
from benchmarks.harness import Op
from benchmarks.raw import Doc, RawLayer, latest_filter

__all__ = ["Fixtures", "growth_ops", "hot_paths", "seed", "seed_session"]

#: A chat message of a typical length (about 250 bytes).
CONTENT = (
    "Could you check where my refund for order 4411-9082 is? It was approved last Tuesday "
    "but nothing has arrived on my card yet, and the confirmation e-mail only said it would "
    "take three to five business days. Thanks!"
)
TOOL = "search_orders"
TOOL_INPUT = '{"user_id": "u-42", "order": "4411-9082"}'
TOOL_OUTPUT = '{"status": "refund_sent", "amount": 129.9, "currency": "EUR", "eta_days": 2}'
TOOLS = ("search_orders", "get_order", "issue_refund", "send_email", "escalate", TOOL)
NEW_USER = "u-new"  # owner of the sessions that sessions.create makes
SHORT_SESSION = 50  # messages in the session read by SessionsRepository.find_by_id
AUDITED_CALLS = 20  # tool calls in the run read by ToolCallsRepository.find_by_run
TURN_CALLS = 5  # tool calls in the runs written by runs.* and tool_calls.complete (one turn's)
_INSERT_BATCH = 5_000


class TurnScript:
    """A scripted model for runner turns: it asks for TURN_CALLS tools, then answers; forever."""

    STEPS = (
        ModelResponse(
            tool_calls=[ToolRequest(TOOLS[n % len(TOOLS)], TOOL_INPUT) for n in range(TURN_CALLS)],
            usage=Usage(input_tokens=700, output_tokens=112),
        ),
        ModelResponse(
            text="Your refund was sent on Monday.", usage=Usage(input_tokens=80, output_tokens=15)
        ),
    )

    def __init__(self) -> None:
        self._step = itertools.cycle(self.STEPS)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """The ``ModelClient`` of ``AgentRunner``."""
        return next(self._step)

    async def reply(self, agent: Doc, history: Sequence[Doc]) -> ModelResponse:
        """The same, for the raw turn."""
        return next(self._step)


#: No-op tools: every tool of the agent answers TOOL_OUTPUT.
TOOL_REGISTRY = ToolRegistry({name: lambda **_: TOOL_OUTPUT for name in TOOLS})


@dataclass(frozen=True, slots=True)
class Fixtures:
    agent: ObjectId  # with TOOLS enabled
    chat: ObjectId  # the session messages.create appends to
    raw_chat: ObjectId  # the raw side's: each side's last-seen seq stays its own
    history: ObjectId  # a session of ``history_size`` messages
    history_size: int
    short: ObjectId  # a session of SHORT_SESSION messages
    spawn: ObjectId  # the session of the runs that runs.create makes
    run: ObjectId  # a running run with TURN_CALLS tool calls
    open_run: ObjectId  # the running run tool_calls.create appends to
    pool: tuple[ObjectId, ...]  # runs with TURN_CALLS tool calls, reset before each batch
    pending: tuple[str, ...]  # the id of the last tool call of each run of the pool
    audited_run: ObjectId  # a completed run with AUDITED_CALLS completed tool calls
    turns: ObjectId  # a session of SHORT_SESSION messages routed to the agent, for runner turns
    raw_turns: ObjectId  # the same for the raw side


async def seed(raw: RawLayer, history_size: int, pool_size: int) -> Fixtures:
    """The documents the hot paths read and write (the repositories create the small ones).

    Writes that use up their target (completing a run) get a pool of targets that ``prepare``
    resets before each batch, rather than new ones: every collection keeps its size, which
    matters to SecantusDB, whose ``findAndModify`` slows down with the size of the collection.
    """
    agent = await AgentsRepository().create(CreateAgentDTO(name="support", tools=list(TOOLS)))
    chat = await SessionsRepository().create("Refund question", user_id="u-42")
    raw_chat = await raw.create_session("Refund question", "u-42")
    spawn = await SessionsRepository().create("Runs", user_id="u-42")
    short = await seed_session(raw, SHORT_SESSION)
    run = await RunsRepository().create(short, agent.id)
    open_run = await RunsRepository().create(short, agent.id)
    turn = [_completed_call(run.id) for _ in range(TURN_CALLS)]
    await raw.runs.update_one({"_id": run.id}, {"$set": {"tool_calls": turn}})
    pool = [_turn_run(raw, short, agent.id) for _ in range(pool_size)]
    audited = raw.run_document(short, agent.id)
    audited["tool_calls"] = [_completed_call(audited["_id"]) for _ in range(AUDITED_CALLS)]
    audited |= {"status": "completed", "completed_at": _now()}
    await raw.runs.insert_many([*pool, audited])
    return Fixtures(
        agent=agent.id,
        chat=chat.id,
        raw_chat=raw_chat["_id"],
        history=await seed_session(raw, history_size),
        history_size=history_size,
        short=short,
        spawn=spawn.id,
        run=run.id,
        open_run=open_run.id,
        pool=tuple(run["_id"] for run in pool),
        pending=tuple(run["tool_calls"][-1]["id"] for run in pool),
        audited_run=audited["_id"],
        turns=await _routed_session(raw, agent.id),
        raw_turns=await _routed_session(raw, agent.id),
    )


async def seed_session(raw: RawLayer, messages: int) -> ObjectId:
    """A session of ``messages`` messages, bulk-inserted (as ``MessagesRepository`` stores them)."""
    session = raw.session_document("History", "u-42", last_seq=messages)
    await raw.sessions.insert_one(session)
    now, roles = _now(), ("user", "assistant")
    for start in range(1, messages + 1, _INSERT_BATCH):
        stop = min(start + _INSERT_BATCH, messages + 1)
        await raw.messages.insert_many(
            [
                raw.message_document(session["_id"], seq, roles[seq % 2], CONTENT, now)
                for seq in range(start, stop)
            ]
        )
    session_id: ObjectId = session["_id"]
    return session_id


def hot_paths(f: Fixtures) -> list[Op]:
    agents, sessions, runs = AgentsRepository(), SessionsRepository(), RunsRepository()
    messages, tool_calls = MessagesRepository(), ToolCallsRepository()
    runner, raw_script = AgentRunner(TurnScript(), TOOL_REGISTRY), TurnScript()
    return [
        Op(
            "messages.create",
            lambda _: messages.create(f.chat, "user", CONTENT),
            lambda raw, _: raw.create_message(f.raw_chat, "user", CONTENT),
        ),
        *growth_ops(f.history, f.history_size),
        Op(
            "sessions.find_by_id",
            lambda _: sessions.find_by_id(f.short),
            lambda raw, _: raw.find_session(f.short),
            check="equal",
            detail=f"{SHORT_SESSION} msgs",
        ),
        Op(
            "sessions.create",
            lambda _: sessions.create("Refund question", user_id=NEW_USER),
            lambda raw, _: raw.create_session("Refund question", NEW_USER),
            prepare=lambda raw, calls: _delete(raw.sessions, {"user_id": NEW_USER}, calls),
        ),
        Op(
            "agents.enable_tool",
            lambda _: agents.enable_tool(f.agent, TOOL),
            lambda raw, _: raw.enable_tool(f.agent, TOOL),
            check="equal",
        ),
        Op(
            "agents.get_tools",
            lambda _: agents.get_tools(f.agent),
            lambda raw, _: raw.get_tools(f.agent),
            check="equal",
            detail=f"{len(TOOLS)} tools",
        ),
        Op(
            "runs.create",
            lambda _: runs.create(f.spawn, f.agent),
            lambda raw, _: raw.create_run(f.spawn, f.agent),
            prepare=lambda raw, calls: _delete(raw.runs, {"session_id": f.spawn}, calls),
        ),
        Op(
            "runs.update_usage",
            lambda _: runs.update_usage(f.run, 812, 0.0021),
            lambda raw, _: raw.update_usage(f.run, 812, 0.0021),
            detail=f"{TURN_CALLS} calls",
        ),
        Op(
            "runs.complete",
            lambda run: runs.complete(run, "completed"),
            lambda raw, run: raw.complete_run(run, "completed"),
            prepare=lambda raw, calls: _reset_pool(raw, f, calls),
            detail=f"{TURN_CALLS} calls",
        ),
        Op(
            "tool_calls.create",
            lambda run: tool_calls.create(run, TOOL, TOOL_INPUT),
            lambda raw, run: raw.create_tool_call(run, TOOL, TOOL_INPUT),
            prepare=lambda raw, calls: _reset_open_run(raw, f, calls),
        ),
        Op(
            "tool_calls.complete",
            lambda call: tool_calls.complete(call, TOOL_OUTPUT, "success", 41.0),
            lambda raw, call: raw.complete_tool_call(call, TOOL_OUTPUT, "success", 41.0),
            prepare=lambda raw, calls: _pending_calls(raw, f, calls),
            detail=f"{TURN_CALLS} calls",
        ),
        Op(
            "runner.run",
            lambda _: runner.run(f.turns, CONTENT),
            lambda raw, _: raw.turn(f.raw_turns, CONTENT, raw_script.reply, TOOL_REGISTRY),
            prepare=lambda raw, calls: _delete(
                raw.runs, {"session_id": {"$in": [f.turns, f.raw_turns]}}, calls
            ),
            detail=f"{TURN_CALLS} tool calls",
            batch=0.1,  # a turn is 31 round trips
        ),
        Op(
            "tool_calls.find_by_run",
            lambda _: tool_calls.find_by_run(f.audited_run),
            lambda raw, _: raw.find_by_run(f.audited_run),
            check="equal",
            detail=f"{AUDITED_CALLS} calls",
        ),
    ]


def growth_ops(session: ObjectId, size: int) -> list[Op]:
    """The reads whose cost must not grow with the session: on a session of ``size`` messages."""
    messages, detail = MessagesRepository(), f"{size:,} msgs"
    return [
        Op(
            "messages.find_by_session(limit=50)",
            lambda _: messages.find_by_session(session, 50),
            lambda raw, _: raw.find_by_session(session, 50),
            check="equal",
            detail=detail,
            explain=_latest_find(session, size, 50),
        ),
        Op(
            "messages.get_last_message",
            lambda _: messages.get_last_message(session),
            lambda raw, _: raw.get_last_message(session),
            check="equal",
            detail=detail,
            explain=_latest_find(session, size, 1),
        ),
    ]


def _latest_find(session: ObjectId, last_seq: int, limit: int) -> dict[str, object]:
    """The messages ``find`` command that ``latest_messages`` sends (for ``explain``)."""
    return {
        "find": "messages",
        "filter": latest_filter(session, last_seq, limit),
        "limit": limit,
        "batchSize": limit,
    }


async def _delete(collection: AsyncCollection[Doc], query: Doc, calls: int) -> Sequence[None]:
    """Remove what the previous batch created."""
    await collection.delete_many(query)
    return [None] * calls


async def _reset_pool(raw: RawLayer, f: Fixtures, calls: int) -> Sequence[ObjectId]:
    """``calls`` runs of the pool, running again, with their last tool call pending again."""
    last = f"tool_calls.{TURN_CALLS - 1}"
    reset: Doc = {"status": "running", "error": None, "completed_at": None}
    reset |= {f"{last}.status": "pending", f"{last}.output": None}
    reset |= {f"{last}.completed_at": None, f"{last}.duration_ms": None}
    await raw.runs.update_many({"_id": {"$in": f.pool[:calls]}}, {"$set": reset})
    return f.pool[:calls]


async def _pending_calls(raw: RawLayer, f: Fixtures, calls: int) -> Sequence[str]:
    """The pending tool call of each of ``calls`` reset runs of the pool."""
    await _reset_pool(raw, f, calls)
    return f.pending[:calls]


async def _reset_open_run(raw: RawLayer, f: Fixtures, calls: int) -> Sequence[ObjectId]:
    """The open run, running and without tool calls again."""
    await raw.runs.update_one({"_id": f.open_run}, {"$set": {"tool_calls": []}})
    return [f.open_run] * calls


async def _routed_session(raw: RawLayer, agent: ObjectId) -> ObjectId:
    session = await seed_session(raw, SHORT_SESSION)
    await raw.sessions.update_one({"_id": session}, {"$set": {"active_agent_id": agent}})
    return session


def _turn_run(raw: RawLayer, session: ObjectId, agent: ObjectId) -> Doc:
    run = raw.run_document(session, agent)
    run["tool_calls"] = [_completed_call(run["_id"]) for _ in range(TURN_CALLS)]
    return run


def _completed_call(run_id: ObjectId) -> Doc:
    call = RawLayer.tool_call_document(run_id, TOOL, TOOL_INPUT)
    return call | {
        "output": TOOL_OUTPUT,
        "status": "success",
        "completed_at": _now(),
        "duration_ms": 41.0,
    }


def _now() -> datetime:
    return datetime.now(UTC)
