"""Execution runs: one agent's work on one turn, with status, error, token usage and cost."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import bson
from bson import ObjectId
from pymongo import ASCENDING
from pymongo.errors import BulkWriteError

from agents_core.db import validation as check
from agents_core.db._items import encode_item
from agents_core.db.client import Connection
from agents_core.db.config import Settings
from agents_core.db.documents import (
    Agent,
    AgentDocument,
    CallKind,
    FinishedRun,
    FinishedToolCall,
    ModelCall,
    Run,
    RunDocument,
    RunStatus,
    RunStep,
    Session,
    SessionDocument,
    StepStatus,
    ToolCall,
    ToolCallStatus,
)
from agents_core.db.documents._common import as_utc, utcnow
from agents_core.db.documents.run import STEP_DATA_ESCAPED
from agents_core.db.errors import (
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    translate_errors,
)
from agents_core.db.limits import (
    MAX_ERROR_BYTES,
    MAX_EXTERNAL_ID_LENGTH,
    MAX_MODEL_CALLS_PER_RUN,
    MAX_STALE_AGE,
    MAX_STEP_DATA_BYTES,
    MAX_STEPS_PER_RUN,
    MAX_TOKENS,
)
from agents_core.db.repositories import _payloads
from agents_core.db.repositories._base import (
    Repository,
    get,
    insert,
    load,
    load_many,
    require,
    stored_defaults,
    update_and_read,
)

__all__ = ["ABANDONED", "RunsRepository"]

#: The error recorded by ``mark_abandoned``.
ABANDONED = "abandoned"
_COLLECTION = "runs"

_FINAL = frozenset({RunStatus.completed, RunStatus.failed})
_TOOL_FINAL = frozenset({ToolCallStatus.success, ToolCallStatus.error})
_DUPLICATE_KEY = 11000


class RunsRepository(Repository):
    """Record runs: start, finish once, add usage, and find the ones a crash left behind."""

    __slots__ = ()

    @translate_errors
    async def create(self, session_id: str | ObjectId, agent_id: str | ObjectId) -> Run:
        """Start a ``running`` run of an existing agent in an existing session. Three commands."""
        db = self.db
        sid = check.object_id(session_id, "session")
        aid = check.object_id(agent_id, "agent")
        await require(db, SessionDocument, sid, "session")
        await require(db, AgentDocument, aid, "agent")
        return await insert(db, RunDocument, Run, session_id=sid, agent_id=aid)

    @translate_errors
    async def start(
        self,
        session: Session,
        agent: Agent,
        *,
        input_seq: int | None = None,
        replay_of: str | ObjectId | None = None,
    ) -> Run:
        """Start a ``running`` run for a session and an agent the caller has just read.

        The records stand for their existence, so this is the one insert (what
        ``AgentRunner`` uses); ``create`` is the same from bare ids, with the checks.
        ``input_seq`` is the ``seq`` of the user message that started the turn; ``replay_of``
        the run a replay replays.
        """
        seq = None if input_seq is None else check.count(input_seq, "input_seq")
        replayed = None if replay_of is None else check.object_id(replay_of, "run")
        # getattr: a record built with model_construct may lack its id.
        if not isinstance(session, Session) or not isinstance(
            getattr(session, "id", None), ObjectId
        ):
            raise InvalidInputError("session", "must be a Session record")
        if not isinstance(agent, Agent) or not isinstance(getattr(agent, "id", None), ObjectId):
            raise InvalidInputError("agent", "must be an Agent record")
        return await insert(
            self.db,
            RunDocument,
            Run,
            session_id=session.id,
            agent_id=agent.id,
            input_seq=seq,
            replay_of=replayed,
        )

    @translate_errors
    async def find_by_id(self, run_id: str | ObjectId) -> Run:
        """The run with its tool calls, spilled payloads read back; one command if none are.

        (Runs returned by the other methods keep a spilled payload as its ``PayloadRef``, with
        an empty text: they are results of writes and listings, not reads of payloads.)
        """
        db = self.db
        run = load(
            Run, await get(db, RunDocument, check.object_id(run_id, "run"), "run"), _COLLECTION
        )
        calls = await _payloads.resolve(db, run.tool_calls)
        return run if calls is run.tool_calls else run.model_copy(update={"tool_calls": calls})

    @translate_errors
    async def delete(self, run_id: str | ObjectId) -> None:
        """Delete the run and the payloads stored for its tool calls. Two commands."""
        db = self.db
        rid = check.object_id(run_id, "run")
        result = await db.collection(RunDocument).delete_one({"_id": rid})
        if result.deleted_count == 0:
            raise NotFoundError("run", rid)
        # After the run: a crash in between leaves unreferenced chunks, never a dangling ref.
        await _payloads.delete_for_run(db, rid)

    @translate_errors
    async def list_by_session(self, session_id: str | ObjectId, *, limit: int = 100) -> list[Run]:
        """The session's latest ``limit`` runs, oldest first. One command."""
        sid = check.object_id(session_id, "session")
        count = check.limit(limit)
        raws = await (
            self.db.collection(RunDocument)
            .find({"session_id": sid})
            .sort([("started_at", -1), ("_id", -1)])
            .limit(count)
            .batch_size(count)
            .to_list()
        )
        return load_many(Run, raws[::-1], _COLLECTION)

    @translate_errors
    async def complete(
        self, run_id: str | ObjectId, status: RunStatus | str, error: str | None = None
    ) -> Run:
        """Finish a running run as ``completed`` or ``failed``, once. Two commands (update,
        read back).

        A second call raises ``InvalidStateError`` (telling it from ``NotFoundError`` costs one
        more command, on that failure path only).
        """
        rid = check.object_id(run_id, "run")
        final = check.enum(RunStatus, status, "status", allowed=_FINAL)
        message = None if error is None else check.text(error, "error", max_bytes=MAX_ERROR_BYTES)
        return await _finish(self.db, rid, final, message)

    @translate_errors
    async def update_usage(self, run_id: str | ObjectId, tokens: int, cost: float) -> Run:
        """Add ``tokens`` and ``cost`` to the run's totals atomically (also after it finished).

        Two commands (update, read back); negative, NaN or infinite values raise
        ``InvalidInputError``.
        """
        db = self.db
        rid = check.object_id(run_id, "run")
        add_tokens = check.count(tokens, "tokens")
        add_cost = check.amount(cost, "cost")
        raw = await update_and_read(
            db,
            RunDocument,
            {"_id": rid, "tokens": {"$lte": MAX_TOKENS - add_tokens}},
            {"$inc": {"tokens": add_tokens, "cost": add_cost}},
        )
        if raw is None:
            await require(db, RunDocument, rid, "run")
            raise InvalidStateError("run", rid, "its token total would overflow")
        return load(Run, raw, _COLLECTION)

    @translate_errors
    async def record_model_call(self, run_id: str | ObjectId, call: ModelCall) -> None:
        """Append one model call to the run and add its tokens and cost to the run's totals.

        One command (an atomic ``$push`` with ``$inc``, returning nothing): the run's
        ``tokens`` stay input + output tokens of all its calls, ``cost`` their sum, and its
        ``call_order`` records the call's place among the run's calls.
        """
        db = self.db
        rid = check.object_id(run_id, "run")
        stored, tokens, cost = _model_call_document(call)
        result = await db.collection(RunDocument).update_one(
            {
                "_id": rid,
                "tokens": {"$lte": MAX_TOKENS - tokens},
                f"model_calls.{MAX_MODEL_CALLS_PER_RUN - 1}": {"$exists": False},
            },
            {
                "$push": {"model_calls": stored, "call_order": CallKind.model.value},
                "$inc": {"tokens": tokens, "cost": cost},
            },
        )
        if result.matched_count == 0:
            await require(db, RunDocument, rid, "run")
            raise InvalidStateError(
                "run", rid, f"has {MAX_MODEL_CALLS_PER_RUN} model calls or its tokens overflow"
            )

    @translate_errors
    async def insert_finished(self, runs: Sequence[FinishedRun]) -> list[Run]:
        """Store framework runs that have finished, each whole: one ``insert`` for the batch.

        Each run is one document, written at once with its calls and steps in the order given
        (``call_order``), its ``tokens`` and ``cost`` the sums of its model calls'. Its ``_id``
        is derived from ``source`` and ``external_id``, so the same run is never stored twice:
        inserting it again (a retry after a network error, whose first insert may have landed)
        writes nothing and is no error. Every run is checked before anything is written
        (``InvalidInputError``: names, sizes, counts within the layer's limits, statuses
        final); the session and the agent are taken as existing, as ``start`` takes its
        records (no command checks them).

        Tool-call text above ``payload_inline_max_bytes``, or beyond the run's inline budget
        (which the run's error texts and step data are charged first), is stored in
        ``payload_chunks`` before the runs: one more command for the batch, idempotent too.
        Returns the runs as stored (spilled text as its ``PayloadRef``, like ``complete``).
        """
        if not isinstance(runs, Sequence) or isinstance(runs, str | bytes):
            raise InvalidInputError("runs", "must be a list of FinishedRun")
        db = self.db
        built = [_finished_document(run, db.settings) for run in runs]
        if not built:
            return []
        await _payloads.store_given(
            db, [payload for _, _, payloads in built for payload in payloads]
        )
        try:
            await db.collection(RunDocument).insert_many(
                [document for document, _, _ in built], ordered=False
            )
        except BulkWriteError as exc:
            # A run stored already (its derived _id) is a retry of a write that landed.
            if any(error.get("code") != _DUPLICATE_KEY for error in exc.details["writeErrors"]):
                raise
        return [record for _, record, _ in built]

    @translate_errors
    async def find_by_external_id(self, external_id: str, *, source: str) -> Run | None:
        """The framework run ``source`` knows as ``external_id`` (``None``: not stored). One
        command by ``_id`` (derived from the two), spilled payloads read back as
        ``find_by_id`` does."""
        origin = check.name(source, "source")
        external = check.name(external_id, "external_id", max_length=MAX_EXTERNAL_ID_LENGTH)
        db = self.db
        raw = await db.collection(RunDocument).find_one(
            {"_id": _finished_run_id(origin, external), "source": origin, "external_id": external}
        )
        if raw is None:
            return None
        run = load(Run, raw, _COLLECTION)
        calls = await _payloads.resolve(db, run.tool_calls)
        return run if calls is run.tool_calls else run.model_copy(update={"tool_calls": calls})

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
            self.db.collection(RunDocument)
            .find(
                {"status": RunStatus.running.value, "started_at": {"$lte": utcnow() - older_than}}
            )
            .sort("started_at", ASCENDING)
            .limit(count)
            .batch_size(count)
            .to_list()
        )
        return load_many(Run, raws, _COLLECTION)

    @translate_errors
    async def mark_abandoned(self, run_id: str | ObjectId) -> Run:
        """Close a run a crashed process left ``running``: ``failed`` with error ``abandoned``.

        Its tool calls still ``pending`` are closed with it, in the same atomic update: status
        ``error``, output ``abandoned``. Two commands (update, read back).
        """
        rid = check.object_id(run_id, "run")
        return await _finish(self.db, rid, RunStatus.failed, ABANDONED, close_calls=True)


async def _finish(
    db: Connection,
    run_id: ObjectId,
    status: RunStatus,
    error: str | None,
    *,
    close_calls: bool = False,
) -> Run:
    now = utcnow()
    fields: dict[str, Any] = {"status": status.value, "error": error, "completed_at": now}
    array_filters: list[Mapping[str, Any]] | None = None
    if close_calls:
        # No inline budget is charged for the output: a finished run takes no more text.
        # The status last: the in-memory mock re-applies the array filter field by field.
        call = "tool_calls.$[pending]"
        fields |= {f"{call}.output": error, f"{call}.completed_at": now}
        fields[f"{call}.status"] = ToolCallStatus.error.value
        array_filters = [{"pending.status": ToolCallStatus.pending.value}]
    raw = await update_and_read(
        db,
        RunDocument,
        {"_id": run_id, "status": RunStatus.running.value},
        {"$set": fields},
        array_filters=array_filters,
    )
    if raw is None:
        await require(db, RunDocument, run_id, "run")
        raise InvalidStateError("run", run_id, "is not running (it was completed already)")
    return load(Run, raw, _COLLECTION)


def _model_call_document(call: object) -> tuple[dict[str, Any], int, float]:
    """The stored form of a model call (checked), its tokens and its cost."""
    if not isinstance(call, ModelCall):
        raise InvalidInputError("call", f"must be a ModelCall, not {type(call).__name__}")
    # Re-checked: a record built with model_construct may hold anything.
    stored = ModelCall.model_validate(dict(call)).model_dump()
    tokens = check.count(stored["input_tokens"], "input_tokens") + check.count(
        stored["output_tokens"], "output_tokens"
    )
    cost = check.amount(stored["cost"], "cost")
    check.amount(stored["duration_ms"], "duration_ms")
    check.name(stored["model"], "model")
    if stored["history_seq"] is not None:
        check.count(stored["history_seq"], "history_seq")
    if stored["error"] is not None:
        stored["error"] = check.text(stored["error"], "error", max_bytes=MAX_ERROR_BYTES)
    return stored, tokens, cost


# ---------------------------------------------------------------------------------------------
# Finished runs (``insert_finished``)


def _finished_run_id(source: str, external_id: str) -> ObjectId:
    """The ``_id`` of the run ``source`` knows as ``external_id``: 12 bytes of a SHA-256 of both.

    Derived rather than stored in a unique index of its own: ``runs`` is sharded by ``_id``
    (``SHARD_KEYS``) and a unique index must start with the shard key, so the ``_id`` index is
    the one that can keep a run from being stored twice (a collision takes 2**48 runs of a
    source to become likely); a lookup by external id is one targeted command.
    """
    return _derived_id(f"{source}\x00{external_id}")


def _derived_id(key: str) -> ObjectId:
    return ObjectId(hashlib.sha256(key.encode()).digest()[:12])


def _ms(value: object, field: str) -> datetime:
    """An aware UTC datetime cut to whole milliseconds: what BSON stores is what is returned."""
    if not isinstance(value, datetime):
        raise InvalidInputError(field, f"must be a datetime, not {type(value).__name__}")
    value = as_utc(value)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _finished_document(
    run: object, settings: Settings
) -> tuple[dict[str, Any], Run, list[tuple[ObjectId, ObjectId, bytes]]]:
    """The stored document of a finished run, its record, and the payloads to store first."""
    if not isinstance(run, FinishedRun):
        raise InvalidInputError("runs", f"must hold FinishedRun, not {type(run).__name__}")
    source = check.name(getattr(run, "source", None), "source")
    external_id = check.name(
        getattr(run, "external_id", None), "external_id", max_length=MAX_EXTERNAL_ID_LENGTH
    )
    rid = _finished_run_id(source, external_id)
    status = check.enum(RunStatus, getattr(run, "status", None), "status", allowed=_FINAL)
    error = getattr(run, "error", None)
    fixed = 0  # bytes of error text and step data: embedded whatever the budget says
    if error is not None:
        error = check.text(error, "error", max_bytes=MAX_ERROR_BYTES)
        fixed += len(error.encode())
    calls = getattr(run, "calls", None)
    if not isinstance(calls, list):
        raise InvalidInputError("calls", "must be a list of ModelCall, FinishedToolCall, RunStep")
    model_calls: list[dict[str, Any]] = []
    tool_calls: list[tuple[dict[str, Any], bytes, bytes | None]] = []
    steps: list[dict[str, Any]] = []
    order: list[str] = []
    tokens, cost = 0, 0.0
    for call in calls:
        if isinstance(call, ModelCall):
            stored, call_tokens, call_cost = _model_call_document(call)
            stored["started_at"] = _ms(stored["started_at"], "started_at")
            if stored["error"] is not None:
                fixed += len(stored["error"].encode())
            model_calls.append(stored)
            tokens += call_tokens
            cost += call_cost
            order.append(CallKind.model.value)
        elif isinstance(call, FinishedToolCall):
            stored_call, input_data, output_data = _tool_call_document(call, settings)
            if stored_call["error"] is not None:
                fixed += len(stored_call["error"].encode())
            tool_calls.append((stored_call, input_data, output_data))
            order.append(CallKind.tool.value)
        elif isinstance(call, RunStep):
            stored_step, size = _step_document(call)
            fixed += size
            steps.append(stored_step)
            order.append(CallKind.step.value)
        else:
            raise InvalidInputError(
                "calls",
                f"must hold ModelCall, FinishedToolCall or RunStep, not {type(call).__name__}",
            )
    if len(model_calls) > MAX_MODEL_CALLS_PER_RUN:
        raise InvalidInputError("calls", f"more than {MAX_MODEL_CALLS_PER_RUN} model calls")
    if len(tool_calls) > settings.max_tool_calls_per_run:
        raise InvalidInputError("calls", f"more than {settings.max_tool_calls_per_run} tool calls")
    if len(steps) > MAX_STEPS_PER_RUN:
        raise InvalidInputError("calls", f"more than {MAX_STEPS_PER_RUN} steps")
    if tokens > MAX_TOKENS:
        raise InvalidInputError("calls", "their token total overflows")
    cost = check.amount(cost, "cost")
    budget = settings.run_inline_budget_bytes - fixed
    if budget < 0:
        raise InvalidInputError(
            "run",
            f"its error texts and step data take {fixed} bytes, more than the run's inline "
            f"budget of {settings.run_inline_budget_bytes}",
        )
    inline = 0
    payloads: list[tuple[ObjectId, ObjectId, bytes]] = []
    stored_tools: list[dict[str, Any]] = []
    for n, (stored_call, input_data, output_data) in enumerate(tool_calls):
        stored_call["id"] = f"{rid}-{_derived_id(f'{rid}:tool:{n}')}"
        stored_call["run_id"] = rid
        for field, data in (("input", input_data), ("output", output_data)):
            if data is None:
                continue
            size = len(data)
            if size <= settings.payload_inline_max_bytes and inline + size <= budget:
                inline += size
                continue
            payload_id = _derived_id(f"{rid}:tool:{n}:{field}")
            payloads.append((rid, payload_id, data))
            stored_call[field] = ""
            stored_call[f"{field}_payload"] = _payloads.ref(payload_id, data).model_dump()
        stored_tools.append(stored_call)
    document = {
        **stored_defaults(RunDocument),
        "_id": rid,
        "session_id": check.object_id(getattr(run, "session_id", None), "session"),
        "agent_id": check.object_id(getattr(run, "agent_id", None), "agent"),
        "status": status.value,
        "error": error,
        "tokens": tokens,
        "cost": cost,
        "tool_calls": stored_tools,
        "model_calls": model_calls,
        "call_order": order,
        "started_at": _ms(getattr(run, "started_at", None), "started_at"),
        "completed_at": _ms(getattr(run, "completed_at", None), "completed_at"),
        "source": source,
        "external_id": external_id,
        "steps": steps,
        "inline_bytes": inline,
    }
    return document, Run.model_validate(document), payloads


def _tool_call_document(
    call: FinishedToolCall, settings: Settings
) -> tuple[dict[str, Any], bytes, bytes | None]:
    """A finished tool call's stored form (without its ids) and its text as UTF-8."""
    limit = settings.max_payload_bytes
    name = check.name(getattr(call, "tool_name", None), "tool_name")
    body, input_data = check.encoded_text(getattr(call, "input", None), "input", max_bytes=limit)
    output = getattr(call, "output", None)
    output_data = None
    if output is not None:
        output, output_data = check.encoded_text(output, "output", max_bytes=limit)
    status = check.enum(
        ToolCallStatus, getattr(call, "status", None), "status", allowed=_TOOL_FINAL
    )
    error = getattr(call, "error", None)
    if error is not None:
        error = check.text(error, "error", max_bytes=MAX_ERROR_BYTES)
    started = _ms(getattr(call, "started_at", None), "started_at")
    duration = getattr(call, "duration_ms", None)
    completed = None
    if duration is not None:
        duration = check.amount(duration, "duration_ms")
        completed = _ms(started + timedelta(milliseconds=duration), "completed_at")
    stored = {
        **stored_defaults(ToolCall),
        "tool_name": name,
        "input": body,
        "output": output,
        "status": status.value,
        "error": error,
        "request_id": check.optional_name(getattr(call, "request_id", None), "request_id"),
        "started_at": started,
        "completed_at": completed,
        "duration_ms": duration,
    }
    return stored, input_data, output_data


def _step_document(step: RunStep) -> tuple[dict[str, Any], int]:
    """A step's stored form and the bytes it embeds (its data and error)."""
    data = getattr(step, "data", None)
    try:
        stored_data, escaped = encode_item(data)
    except InvalidInputError as exc:
        raise InvalidInputError("data", exc.reason) from exc
    size = len(bson.encode(stored_data))
    if size > MAX_STEP_DATA_BYTES:
        raise InvalidInputError("data", f"larger than {MAX_STEP_DATA_BYTES} bytes of BSON")
    error = getattr(step, "error", None)
    if error is not None:
        error = check.text(error, "error", max_bytes=MAX_ERROR_BYTES)
        size += len(error.encode())
    duration = getattr(step, "duration_ms", None)
    stored: dict[str, Any] = {
        "kind": check.name(getattr(step, "kind", None), "kind"),
        "name": check.name(getattr(step, "name", None), "name"),
        "started_at": _ms(getattr(step, "started_at", None), "started_at"),
        "duration_ms": None if duration is None else check.amount(duration, "duration_ms"),
        "status": check.enum(StepStatus, getattr(step, "status", None), "status").value,
        "error": error,
        "data": stored_data,
    }
    if escaped:
        stored[STEP_DATA_ESCAPED] = True
    return stored, size
