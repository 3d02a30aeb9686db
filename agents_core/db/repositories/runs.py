"""Execution runs: one agent's work on one turn, with status, error, token usage and cost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING

from agents_core.db import validation as check
from agents_core.db.client import Connection
from agents_core.db.documents import (
    Agent,
    AgentDocument,
    CallKind,
    FinishedRun,
    ModelCall,
    NewToolCall,
    PayloadRef,
    Run,
    RunDocument,
    RunStatus,
    RunStep,
    Score,
    Session,
    SessionDocument,
    ToolCall,
    ToolCallStatus,
    utcnow,
)
from agents_core.db.errors import (
    CorruptDocumentError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    translate_errors,
)
from agents_core.db.limits import (
    MAX_ERROR_BYTES,
    MAX_EXTERNAL_ID_LENGTH,
    MAX_MODEL_CALLS_PER_RUN,
    MAX_SCORE_COMMENT_BYTES,
    MAX_SCORES_PER_RUN,
    MAX_STALE_AGE,
    MAX_STEPS_PER_RUN,
    MAX_TOKENS,
    RECENT_IDS,
)
from agents_core.db.repositories import _finished, _payloads, stats
from agents_core.db.repositories._base import (
    Repository,
    by_id,
    get,
    ids_by_prefix,
    insert,
    load,
    load_many,
    newest_ids,
    require,
    update_and_read,
)
from agents_core.db.repositories.tool_calls import (
    ToolCallsRepository,
    pending_calls,
    push_change,
)

__all__ = ["ABANDONED", "RunsRepository"]

#: The error recorded by ``mark_abandoned``.
ABANDONED = "abandoned"
_COLLECTION = "runs"

_FINAL = frozenset({RunStatus.completed, RunStatus.failed})
_ID_ONLY = {"_id": 1}


class RunsRepository(Repository):
    """Record runs: start, finish once, add usage, and find the ones a crash left behind."""

    __slots__ = ()

    @translate_errors
    async def create(self, session_id: str | ObjectId, agent_id: str | ObjectId) -> Run:
        """Start a ``running`` run of an existing agent in an existing session. Three commands
        (the agent, the insert, the session: see ``start``)."""
        db = self.db
        sid = check.object_id(session_id, "session")
        aid = check.object_id(agent_id, "agent")
        await require(db, AgentDocument, aid, "agent")
        return await _insert_run(db, session_id=sid, agent_id=aid)

    @translate_errors
    async def start(
        self,
        session: Session,
        agent: Agent,
        *,
        input_seq: int | None = None,
        replay_of: str | ObjectId | None = None,
        steps: Sequence[RunStep] = (),
    ) -> Run:
        """Start a ``running`` run for a session and an agent the caller has just read.

        The agent record stands for its existence; the session is checked after the insert
        (what ``AgentRunner`` uses: two commands). A session deleted (or being deleted) since
        the caller read it raises ``NotFoundError`` and the run is removed again, so a run
        never outlives its session's deletion, however late its writer. ``create`` is the
        same from bare ids. ``input_seq`` is the ``seq`` of the user message that started the
        turn; ``replay_of`` the run a replay replays; ``steps`` what the run did before its
        first call (``AgentRunner``: a warning), stored with the insert, first in its order.
        """
        seq = None if input_seq is None else check.count(input_seq, "input_seq")
        replayed = None if replay_of is None else check.object_id(replay_of, "run")
        fields = _first_steps(steps, self.db.settings.run_inline_budget_bytes)
        # getattr: a record built with model_construct may lack its id.
        if not isinstance(session, Session) or not isinstance(
            getattr(session, "id", None), ObjectId
        ):
            raise InvalidInputError("session", "must be a Session record")
        if not isinstance(agent, Agent) or not isinstance(getattr(agent, "id", None), ObjectId):
            raise InvalidInputError("agent", "must be an Agent record")
        return await _insert_run(
            self.db,
            session_id=session.id,
            agent_id=agent.id,
            input_seq=seq,
            replay_of=replayed,
            **fields,
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
        """The session's latest ``limit`` runs, oldest first. One command.

        The order is by ``started_at`` (stored to the millisecond), then by id: runs started in
        the same millisecond by one process come in the order they were started.
        """
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
        self,
        run_id: str | ObjectId,
        status: RunStatus | str,
        error: str | None = None,
        *,
        model_call: ModelCall | None = None,
    ) -> Run:
        """Finish a running run as ``completed`` or ``failed``, once. One command (two on
        SecantusDB: update, read back; ``agents_core.db.server``).

        ``model_call``, the run's last, is recorded in the same update, as
        ``record_model_call`` records one. A second call raises ``InvalidStateError`` (telling
        it from ``NotFoundError`` costs one more command, on that failure path only).
        """
        rid = check.object_id(run_id, "run")
        final = check.enum(RunStatus, status, "status", allowed=_FINAL)
        message = None if error is None else check.text(error, "error", max_bytes=MAX_ERROR_BYTES)
        last = None if model_call is None else _finished.model_call_document(model_call)
        return await _finish(self.db, rid, final, message, model_call=last)

    @translate_errors
    async def update_usage(self, run_id: str | ObjectId, tokens: int, cost: float) -> Run:
        """Add ``tokens`` and ``cost`` to the run's totals atomically (also after it finished).

        One command (two on SecantusDB); negative, NaN or infinite values raise
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
        if raw.get("status") != RunStatus.running.value:  # finished: counted in its day
            await stats.add_finished(db, stats.usage_changes(raw, add_tokens, add_cost))
        return load(Run, raw, _COLLECTION)

    @translate_errors
    async def add_score(
        self,
        run_id: str | ObjectId,
        name: str,
        value: float | str,
        *,
        comment: str | None = None,
        by: str | None = None,
        score_id: str | None = None,
    ) -> Score:
        """Score the run (running or finished): ``name`` with a number ``value`` or, given a
        string, a label; optionally why (``comment``) and who gave it (``by``: a user, an
        evaluator). Returns the score as stored, last of the run's ``scores``.

        One command: an ``update`` that ``$push``es the score, guarded by the run's room for
        it (``MAX_SCORES_PER_RUN``) and by its id. ``score_id`` (default: a new one) names it
        within the run, so an add sent again with the same id (a retry after a network error,
        whose first try may have landed) adds nothing and returns the score stored; the same
        id with another score is refused. When the guard refuses, the run is read once to tell
        why: ``NotFoundError``, or ``InvalidInputError`` for a run that has its most scores.
        """
        rid = check.object_id(run_id, "run")
        stored = _score_document(name, value, comment, by, score_id)
        score = Score.model_validate(stored)  # what is stored reads back as this score
        result = await self.db.collection(RunDocument).update_one(
            {
                "_id": rid,
                "scores.id": {"$ne": stored["id"]},
                f"scores.{MAX_SCORES_PER_RUN - 1}": {"$exists": False},
            },
            {"$push": {"scores": stored}},
        )
        if result.matched_count == 1:
            return score
        raw = await get(self.db, RunDocument, rid, "run", {"scores": 1})
        scores = load_many(Score, raw.get("scores", []), _COLLECTION)
        for existing in scores:
            if existing.id == stored["id"]:
                if any(getattr(existing, field) != stored[field] for field in _SCORE_CONTENT):
                    raise InvalidInputError("score_id", "names another score of this run")
                return existing
        if len(scores) >= MAX_SCORES_PER_RUN:
            raise InvalidInputError(
                "scores", f"the run has {MAX_SCORES_PER_RUN} scores, the most allowed"
            )
        # Scores are never removed: a guard that refused the update refuses on this read too.
        raise CorruptDocumentError(_COLLECTION, rid, "scores: refused a score they have room for")

    @translate_errors
    async def record_model_call(
        self,
        run_id: str | ObjectId,
        call: ModelCall,
        *,
        tool_calls: Sequence[NewToolCall] = (),
    ) -> list[ToolCall]:
        """Append one model call to the run and add its tokens and cost to the run's totals;
        with ``tool_calls`` (what the model asked for), append them as ``pending`` tool calls
        in the same update. Returns those tool calls (complete them with
        ``ToolCallsRepository.complete_many`` or ``complete``).

        One command (an atomic ``$push`` with ``$inc``, returning nothing), plus an insert per
        tool-call input too large to embed: the run's ``tokens`` stay input + output tokens of
        all its calls, ``cost`` their sum, and its ``call_order`` records the calls' places
        (the model call, then its tool calls in the model's order). Tool calls need a
        ``running`` run with room for them all (``InvalidStateError``); when the run's inline
        budget is spent, they are appended one by one after the model call, spilled as
        ``ToolCallsRepository.create`` spills them.
        """
        db = self.db
        rid = check.object_id(run_id, "run")
        stored, tokens, cost = _finished.model_call_document(call)
        if isinstance(tool_calls, Mapping) or not isinstance(tool_calls, Sequence):
            raise InvalidInputError("tool_calls", "must be a list of NewToolCall")
        cap = db.settings.max_tool_calls_per_run
        if len(tool_calls) > cap:
            raise InvalidStateError("run", rid, f"has {cap} tool calls, the most allowed")
        query: dict[str, Any] = {"_id": rid}
        update: dict[str, Any] = {"$push": {}, "$inc": {}}
        calls: list[ToolCall] = []
        refs: list[PayloadRef] = []
        if tool_calls:
            stored_calls, calls, inline, refs = await pending_calls(db, rid, tool_calls)
            query, update = push_change(db, rid, stored_calls, inline)
            update.setdefault("$inc", {})
        query |= {
            "tokens": {"$lte": MAX_TOKENS - tokens},
            f"model_calls.{MAX_MODEL_CALLS_PER_RUN - 1}": {"$exists": False},
        }
        order = update["$push"].get("call_order", {"$each": []})["$each"]
        update["$push"] |= {
            "model_calls": stored,
            "call_order": {"$each": [CallKind.model.value, *order]},
        }
        update["$inc"] |= {"tokens": tokens, "cost": cost}
        result = await db.collection(RunDocument).update_one(query, update)
        if result.matched_count == 1:
            return calls
        for ref in refs:
            await _payloads.discard(db, ref)
        raw = await get(
            db,
            RunDocument,
            rid,
            "run",
            {"status": 1, "tokens": 1, "model_calls.model": 1, "tool_calls.id": 1},
        )
        if (
            not tool_calls
            or len(raw.get("model_calls", [])) >= MAX_MODEL_CALLS_PER_RUN
            or raw.get("tokens", 0) > MAX_TOKENS - tokens
        ):
            raise InvalidStateError(
                "run", rid, f"has {MAX_MODEL_CALLS_PER_RUN} model calls or its tokens overflow"
            )
        if raw.get("status") != RunStatus.running.value:
            raise InvalidStateError("run", rid, f"is {raw.get('status')}, not running")
        if len(raw.get("tool_calls", [])) + len(tool_calls) > cap:
            raise InvalidStateError("run", rid, f"has {cap} tool calls, the most allowed")
        # The run's inline budget is spent: the calls go one by one, spilled where needed.
        await self.record_model_call(rid, call)
        tool_call_log = ToolCallsRepository(db)
        return [
            await tool_call_log.create(
                rid, request.tool_name, request.input, request_id=request.request_id
            )
            for request in tool_calls
        ]

    @translate_errors
    async def insert_finished(self, runs: Sequence[FinishedRun]) -> list[ObjectId]:
        """Store framework runs that have finished, each whole; their ids, in the order given.

        One ``insert`` for the batch: each run is one document with its calls and steps in the
        order given (``call_order``), ``tokens`` and ``cost`` the sums of its model calls'.
        Its ``_id`` is derived from ``source`` and ``external_id``, so the same run is never
        stored twice: giving it again (a retry after a network error, whose first insert may
        have landed) writes nothing and is no error. A run given with a ``part`` whose run is
        stored already is appended to it instead (one ``update`` per part; see
        ``FinishedRun.part``). Every run is checked before anything is written
        (``InvalidInputError``: names, sizes and counts within the layer's limits, statuses
        final); the session and the agent are taken as existing, as ``start`` takes its
        records (no command checks them).

        Tool-call text above ``payload_inline_max_bytes``, or beyond the run's inline budget
        (which its error texts and step data are charged first), is stored in
        ``payload_chunks`` before the runs: one more command for the batch, idempotent too.
        """
        if not isinstance(runs, Sequence) or isinstance(runs, str | bytes):
            raise InvalidInputError("runs", "must be a list of FinishedRun")
        return await _finished.insert(self.db, list(runs))

    @translate_errors
    async def find_by_external_id(self, external_id: str, *, source: str) -> Run | None:
        """The framework run ``source`` knows as ``external_id`` (``None``: not stored). One
        command by ``_id`` (derived from the two), spilled payloads read back as
        ``find_by_id`` does."""
        origin = check.name(source, "source")
        external = check.name(external_id, "external_id", max_length=MAX_EXTERNAL_ID_LENGTH)
        db = self.db
        raw = await db.collection(RunDocument).find_one(
            {"_id": _finished.run_id(origin, external), "source": origin, "external_id": external}
        )
        if raw is None:
            return None
        run = load(Run, raw, _COLLECTION)
        calls = await _payloads.resolve(db, run.tool_calls)
        return run if calls is run.tool_calls else run.model_copy(update={"tool_calls": calls})

    @translate_errors
    async def list_ids_by_prefix(self, prefix: str, *, limit: int = 10) -> list[ObjectId]:
        """The ids of up to ``limit`` runs that start with ``prefix`` (1 to 24 hexadecimal
        digits, any case): what a person typed resolved to the run it names. One command."""
        start = check.id_prefix(prefix, "run")
        return await ids_by_prefix(self.db, RunDocument, start, check.limit(limit))

    @translate_errors
    async def list_recent_ids(self, *, limit: int = RECENT_IDS) -> list[ObjectId]:
        """The ids of the ``limit`` runs started last, newest first: what the end of an id a
        person typed is matched among. A bounded read of the ``started_at`` index
        (``newest_ids``: in windows of time on SecantusDB), ids only."""
        return await newest_ids(self.db, RunDocument, "started_at", check.limit(limit))

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
        ``error``, output ``abandoned``. One command (two on SecantusDB).
        """
        rid = check.object_id(run_id, "run")
        return await _finish(self.db, rid, RunStatus.failed, ABANDONED, close_calls=True)


#: What makes a score the one given (all but when it was stored): an add sent again with the
#: same id must carry the same.
_SCORE_CONTENT = ("name", "value", "label", "comment", "by")


def _score_document(
    name: object, value: object, comment: object, by: object, score_id: object
) -> dict[str, Any]:
    """The stored form of a score (every field checked): a string ``value`` is a label."""
    label = check.name(value, "value") if isinstance(value, str) else None
    return {
        "id": str(ObjectId()) if score_id is None else check.name(score_id, "score_id"),
        "name": check.name(name, "name"),
        "value": None if label is not None else check.number(value, "value"),
        "label": label,
        "comment": (
            None
            if comment is None
            else check.text(comment, "comment", max_bytes=MAX_SCORE_COMMENT_BYTES)
        ),
        "by": check.optional_name(by, "by"),
        "created_at": utcnow(),
    }


def _first_steps(steps: object, budget: int) -> dict[str, Any]:
    """The stored fields of a new run's ``steps`` (none: no fields), their data charged to the
    run's inline budget as a finished run's are."""
    if isinstance(steps, Mapping | str) or not isinstance(steps, Sequence):
        raise InvalidInputError("steps", "must be a list of RunStep")
    if not steps:
        return {}
    if len(steps) > MAX_STEPS_PER_RUN:
        raise InvalidInputError("steps", f"more than {MAX_STEPS_PER_RUN} steps")
    stored, size = [], 0
    for step in steps:
        if not isinstance(step, RunStep):
            raise InvalidInputError("steps", f"must hold RunStep, not {type(step).__name__}")
        document, step_size = _finished.step_document(step)
        stored.append(document)
        size += step_size
    if size > budget:
        raise InvalidInputError(
            "steps", f"their data take {size} bytes, more than the run's inline budget of {budget}"
        )
    return {
        "steps": stored,
        "call_order": [CallKind.step.value] * len(stored),
        "inline_bytes": size,
    }


async def _insert_run(db: Connection, *, session_id: ObjectId, **fields: Any) -> Run:
    """Insert a run of ``session_id``, then check that the session is still there.

    Design note: a deletion (``SessionsRepository.delete``, retention) marks its session
    ``deleting`` first and looks for its runs only after that. A run inserted before that mark
    is found and deleted with the rest; the check after the insert sees the mark (or no
    session) for any run inserted later, and the run is deleted here. Checking first instead
    would leave a gap between the check and the insert, in which a whole deletion can pass.
    Both commands target one shard (the run by its ``_id``, the session by its ``_id``), and
    no lock or transaction is needed across writers on any number of machines.
    """
    run = await insert(db, RunDocument, Run, session_id=session_id, **fields)
    sessions = db.collection(SessionDocument)
    if await sessions.find_one(by_id(SessionDocument, session_id), _ID_ONLY) is None:
        await db.collection(RunDocument).delete_one({"_id": run.id})
        raise NotFoundError("session", session_id)
    return run


async def _finish(
    db: Connection,
    run_id: ObjectId,
    status: RunStatus,
    error: str | None,
    *,
    close_calls: bool = False,
    model_call: tuple[dict[str, Any], int, float] | None = None,
) -> Run:
    now = utcnow()
    fields: dict[str, Any] = {"status": status.value, "error": error, "completed_at": now}
    query: dict[str, Any] = {"_id": run_id, "status": RunStatus.running.value}
    change: dict[str, Any] = {"$set": fields}
    if model_call is not None:
        stored, tokens, cost = model_call
        query |= {
            "tokens": {"$lte": MAX_TOKENS - tokens},
            f"model_calls.{MAX_MODEL_CALLS_PER_RUN - 1}": {"$exists": False},
        }
        change |= {
            "$push": {"model_calls": stored, "call_order": CallKind.model.value},
            "$inc": {"tokens": tokens, "cost": cost},
        }
    array_filters: list[Mapping[str, Any]] | None = None
    if close_calls:
        # No inline budget is charged for the output: a finished run takes no more text.
        # The status last: the in-memory mock re-applies the array filter field by field.
        call = "tool_calls.$[pending]"
        fields |= {f"{call}.output": error, f"{call}.completed_at": now}
        fields[f"{call}.status"] = ToolCallStatus.error.value
        array_filters = [{"pending.status": ToolCallStatus.pending.value}]
    raw = await update_and_read(db, RunDocument, query, change, array_filters=array_filters)
    if raw is None:
        state = await get(db, RunDocument, run_id, "run", {"status": 1})
        if model_call is None or state.get("status") != RunStatus.running.value:
            raise InvalidStateError("run", run_id, "is not running (it was completed already)")
        raise InvalidStateError(
            "run", run_id, f"has {MAX_MODEL_CALLS_PER_RUN} model calls or its tokens overflow"
        )
    await stats.add_finished(db, stats.day_changes(raw))
    return load(Run, raw, _COLLECTION)
