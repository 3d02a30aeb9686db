"""Execution runs: one agent's work on one turn, with status, error, token usage and cost."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument

from agents_core.db import _validation as check
from agents_core.db.client import collection
from agents_core.db.documents import Agent, Run, RunStatus, Session, ToolCallStatus
from agents_core.db.documents._common import utcnow
from agents_core.db.errors import (
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    translate_errors,
)
from agents_core.db.repositories import _payloads
from agents_core.db.repositories._base import get, insert, load, require

__all__ = ["RunsRepository"]

#: Longest error text a run keeps, in bytes of UTF-8 (callers should truncate stack traces).
MAX_ERROR_BYTES = 64 * 1024
#: The largest ``older_than`` that ``list_stale`` takes.
MAX_STALE_AGE = timedelta(days=36_500)
#: Largest token total a run can hold (MongoDB's 64-bit integer).
MAX_TOKENS = 2**63 - 1
#: The error recorded by ``mark_abandoned``.
ABANDONED = "abandoned"

_FINAL = frozenset({RunStatus.completed, RunStatus.failed})


class RunsRepository:
    """Record runs: start, finish once, add usage, and find the ones a crash left behind."""

    @translate_errors
    async def create(self, session_id: str | ObjectId, agent_id: str | ObjectId) -> Run:
        """Start a ``running`` run of an existing agent in an existing session. Three commands."""
        sid = check.object_id(session_id, "session")
        aid = check.object_id(agent_id, "agent")
        await require(Session, sid, "session")
        await require(Agent, aid, "agent")
        return await insert(Run, session_id=sid, agent_id=aid)

    @translate_errors
    async def start(self, session: Session, agent: Agent) -> Run:
        """Start a ``running`` run for a session and an agent the caller has just read.

        The documents stand for their existence, so this is the one insert (what
        ``AgentRunner`` uses); ``create`` is the same from bare ids, with the checks.
        """
        if not isinstance(session, Session) or not isinstance(session.id, ObjectId):
            raise InvalidInputError("session", "must be a stored Session")
        if not isinstance(agent, Agent) or not isinstance(agent.id, ObjectId):
            raise InvalidInputError("agent", "must be a stored Agent")
        return await insert(Run, session_id=session.id, agent_id=agent.id)

    @translate_errors
    async def find_by_id(self, run_id: str | ObjectId) -> Run:
        """The run with its tool calls, spilled payloads read back; one command if none are.

        (Runs returned by the other methods keep a spilled payload as its ``PayloadRef``, with
        an empty text: they are results of writes and listings, not reads of payloads.)
        """
        run = load(Run, await get(Run, check.object_id(run_id, "run"), "run"))
        await _payloads.resolve(run.tool_calls)
        return run

    @translate_errors
    async def delete(self, run_id: str | ObjectId) -> None:
        """Delete the run and the payloads stored for its tool calls. Two commands."""
        rid = check.object_id(run_id, "run")
        result = await collection(Run).delete_one({"_id": rid})
        if result.deleted_count == 0:
            raise NotFoundError("run", rid)
        # After the run: a crash in between leaves unreferenced chunks, never a dangling ref.
        await _payloads.delete_for_run(rid)

    @translate_errors
    async def list_by_session(self, session_id: str | ObjectId, *, limit: int = 100) -> list[Run]:
        """The session's latest ``limit`` runs, oldest first. One command."""
        sid = check.object_id(session_id, "session")
        count = check.limit(limit)
        raws = await (
            collection(Run)
            .find({"session_id": sid})
            .sort([("started_at", -1), ("_id", -1)])
            .limit(count)
            .batch_size(count)
            .to_list()
        )
        return [load(Run, raw) for raw in reversed(raws)]

    @translate_errors
    async def complete(
        self, run_id: str | ObjectId, status: RunStatus | str, error: str | None = None
    ) -> Run:
        """Finish a running run as ``completed`` or ``failed``, once. One command.

        A second call raises ``InvalidStateError`` (telling it from ``NotFoundError`` costs one
        more command, on that failure path only).
        """
        rid = check.object_id(run_id, "run")
        final = check.enum(RunStatus, status, "status", allowed=_FINAL)
        message = None if error is None else check.text(error, "error", max_bytes=MAX_ERROR_BYTES)
        return await _finish(rid, final, message)

    @translate_errors
    async def update_usage(self, run_id: str | ObjectId, tokens: int, cost: float) -> Run:
        """Add ``tokens`` and ``cost`` to the run's totals atomically (also after it finished).

        One command; negative, NaN or infinite values raise ``InvalidInputError``.
        """
        rid = check.object_id(run_id, "run")
        add_tokens = check.count(tokens, "tokens")
        add_cost = check.amount(cost, "cost")
        raw = await collection(Run).find_one_and_update(
            {"_id": rid, "tokens": {"$lte": MAX_TOKENS - add_tokens}},
            {"$inc": {"tokens": add_tokens, "cost": add_cost}},
            return_document=ReturnDocument.AFTER,
        )
        if raw is None:
            await require(Run, rid, "run")
            raise InvalidStateError("run", rid, "its token total would overflow")
        return load(Run, raw)

    @translate_errors
    async def list_stale(self, older_than: timedelta, *, limit: int = 100) -> list[Run]:
        """Runs still ``running`` that started at least ``older_than`` ago, oldest first.

        These are what a crashed process leaves behind; close them with ``mark_abandoned``.
        """
        if not isinstance(older_than, timedelta) or older_than < timedelta(0):
            raise InvalidInputError("older_than", "must be a non-negative timedelta")
        if older_than > MAX_STALE_AGE:
            raise InvalidInputError("older_than", f"must be at most {MAX_STALE_AGE.days} days")
        count = check.limit(limit)
        raws = await (
            collection(Run)
            .find(
                {"status": RunStatus.running.value, "started_at": {"$lte": utcnow() - older_than}}
            )
            .sort("started_at", ASCENDING)
            .limit(count)
            .batch_size(count)
            .to_list()
        )
        return [load(Run, raw) for raw in raws]

    @translate_errors
    async def mark_abandoned(self, run_id: str | ObjectId) -> Run:
        """Close a run a crashed process left ``running``: ``failed`` with error ``abandoned``.

        Its tool calls still ``pending`` are closed with it, in the same atomic update: status
        ``error``, output ``abandoned``. One command.
        """
        return await _finish(
            check.object_id(run_id, "run"), RunStatus.failed, ABANDONED, close_calls=True
        )


async def _finish(
    run_id: ObjectId, status: RunStatus, error: str | None, *, close_calls: bool = False
) -> Run:
    now = utcnow()
    fields: dict[str, Any] = {"status": status.value, "error": error, "completed_at": now}
    array_filters = None
    if close_calls:
        # No inline budget is charged for the output: a finished run takes no more text.
        # The status last: the in-memory mock re-applies the array filter field by field.
        call = "tool_calls.$[pending]"
        fields |= {f"{call}.output": error, f"{call}.completed_at": now}
        fields[f"{call}.status"] = ToolCallStatus.error.value
        array_filters = [{"pending.status": ToolCallStatus.pending.value}]
    raw = await collection(Run).find_one_and_update(
        {"_id": run_id, "status": RunStatus.running.value},
        {"$set": fields},
        array_filters=array_filters,
        return_document=ReturnDocument.AFTER,
    )
    if raw is None:
        await require(Run, run_id, "run")
        raise InvalidStateError("run", run_id, "is not running (it was completed already)")
    return load(Run, raw)
