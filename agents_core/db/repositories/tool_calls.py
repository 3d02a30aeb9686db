"""The audit log of tool executions, embedded in their run in call order.

A tool call's id is ``"<run id>-<call id>"``: opaque to callers, but it names the run, so
completing a call is one update of one run document by ``_id`` (with ``arrayFilters`` picking
the call), never a scan of a multikey index that a sharded cluster would broadcast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne

from agents_core.db import validation as check
from agents_core.db.client import Connection
from agents_core.db.documents import (
    CallKind,
    NewToolCall,
    PayloadRef,
    RunDocument,
    RunStatus,
    ToolCall,
    ToolCallResult,
    ToolCallStatus,
    as_utc,
    utcnow,
)
from agents_core.db.errors import (
    DatabaseError,
    InvalidIdError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    translate_errors,
)
from agents_core.db.repositories import _payloads
from agents_core.db.repositories._base import (
    Repository,
    get,
    load,
    load_many,
    stored_defaults,
    update_and_read,
)

__all__ = ["ToolCallsRepository", "parse_tool_call_id", "pending_calls", "push_change"]

_COLLECTION = "runs"

_SEPARATOR = "-"
_FINAL = frozenset({ToolCallStatus.success, ToolCallStatus.error})


class ToolCallsRepository(Repository):
    """Log tool calls of a running run, complete them once, and read them back.

    Input or output above ``payload_inline_max_bytes`` (or beyond the run's inline budget) is
    stored in ``payload_chunks`` and embedded as a ``PayloadRef``: one more command to write it,
    one to read it back; every ``ToolCall`` returned here carries the full text.
    """

    __slots__ = ()

    @translate_errors
    async def create(
        self,
        run_id: str | ObjectId,
        tool_name: str,
        input: str,
        *,
        request_id: str | None = None,
    ) -> ToolCall:
        """Append a ``pending`` tool call to a ``running`` run, atomically. One command inline.

        ``request_id`` is the model's id of the call (its ``RequestedToolCall``), if a model
        asked for it.
        """
        db = self.db
        rid = check.object_id(run_id, "run")
        stored, call, data = _new_call(db, rid, tool_name, input, request_id)
        size = len(data)
        inline = size <= db.settings.payload_inline_max_bytes
        if inline and await _push(db, rid, stored, size):
            return call
        if inline and (refusal := await _refusal(db, rid)) is not None:
            raise refusal
        # Too large to embed, or the run's inline budget is spent: store it beside the run.
        ref = await _payloads.store(db, rid, data)
        spilled = {**stored, "input": "", "input_payload": ref.model_dump()}
        if not await _push(db, rid, spilled, 0):
            await _payloads.discard(db, ref)
            raise await _refusal(db, rid) or InvalidStateError("run", rid, "refused the tool call")
        return call.model_copy(update={"input_payload": ref})

    @translate_errors
    async def complete(
        self,
        id: str,
        output: str,
        status: ToolCallStatus | str,
        duration_ms: float,
    ) -> ToolCall:
        """Record a pending call's ``output``, final ``status`` and duration, once.

        One command when the output is embedded (two on SecantusDB: update, read back).
        Completing twice raises
        ``InvalidStateError``.
        """
        db = self.db
        call_id, rid = parse_tool_call_id(id)
        settings = db.settings
        body, data = check.encoded_text(output, "output", max_bytes=settings.max_payload_bytes)
        final = check.enum(ToolCallStatus, status, "status", allowed=_FINAL)
        duration = check.amount(duration_ms, "duration_ms")
        size = len(data)
        fields = {"status": final.value, "completed_at": utcnow(), "duration_ms": duration}
        inline = size <= settings.payload_inline_max_bytes
        raw = None
        if inline:
            raw = await _complete(db, rid, call_id, {**fields, "output": body}, size)
        spilled = None
        if raw is None:
            if inline:
                await _require_pending(db, rid, call_id)  # else: the run's budget is spent
            spilled = await _payloads.store(db, rid, data)
            stored = {**fields, "output": "", "output_payload": spilled.model_dump()}
            raw = await _complete(db, rid, call_id, stored, 0)
            if raw is None:
                await _payloads.discard(db, spilled)
                await _require_pending(db, rid, call_id)
                raise InvalidStateError("tool call", call_id, "refused the output")
        call = load(ToolCall, raw["tool_calls"][0], _COLLECTION)
        if spilled is not None:
            call = call.model_copy(update={"output": body})
        return (await _payloads.resolve(db, [call], fields=("input",)))[0]

    @translate_errors
    async def complete_many(self, results: Sequence[ToolCallResult]) -> None:
        """Complete several pending calls (the parallel calls of one model answer) at once.

        Each as ``complete`` records it (once; ``started_at``, if given, replaces the time the
        call was recorded with the time it started executing). One ``update`` command with a
        statement per call, plus an insert per output too large to embed; nothing is read back.
        A call that was not pending, or whose output no longer fits the run's inline budget,
        costs one read of the runs and then ``complete``'s commands for it: ``NotFoundError`` or
        ``InvalidStateError`` as ``complete`` raises them, once every other call is recorded.
        """
        db = self.db
        if isinstance(results, Mapping) or not isinstance(results, Sequence):
            raise InvalidInputError("results", "must be a list of ToolCallResult")
        settings = db.settings
        checked = []
        for result in results:
            if not isinstance(result, ToolCallResult):
                raise InvalidInputError("results", "must hold ToolCallResult tuples")
            call_id, rid = parse_tool_call_id(result.id)
            body, data = check.encoded_text(
                result.output, "output", max_bytes=settings.max_payload_bytes
            )
            final = check.enum(ToolCallStatus, result.status, "status", allowed=_FINAL)
            duration = check.amount(result.duration_ms, "duration_ms")
            started = result.started_at
            if started is not None and not isinstance(started, datetime):
                raise InvalidInputError("started_at", "must be a datetime")
            checked.append((result, call_id, rid, body, data, final, duration, started))
        if not checked:
            return
        now = utcnow()
        statements, spilled = [], {}
        written: dict[str, dict[str, Any]] = {}  # per call, the fields its statement sets
        for _, call_id, rid, body, data, final, duration, started in checked:
            fields: dict[str, Any] = {
                "status": final.value,
                "completed_at": now,
                "duration_ms": duration,
            }
            if started is not None:
                fields["started_at"] = as_utc(started)
            size = len(data)
            if size <= settings.payload_inline_max_bytes:
                fields["output"] = body
            else:
                ref = spilled[call_id] = await _payloads.store(db, rid, data)
                fields |= {"output": "", "output_payload": ref.model_dump()}
                size = 0
            written[call_id] = fields
            query, update = _completion(db, rid, call_id, fields, size)
            statements.append(UpdateOne(query, update, array_filters=[{"call.id": call_id}]))
        landed = await db.collection(RunDocument).bulk_write(statements, ordered=False)
        if landed.matched_count < len(statements):
            await self._complete_the_rest(checked, written, spilled)

    async def _complete_the_rest(
        self,
        checked: list[Any],
        written: dict[str, dict[str, Any]],
        spilled: dict[str, PayloadRef],
    ) -> None:
        """``complete_many``'s failure path: the calls whose statement did not land (their
        stored fields are not the ones it set) go through ``complete``, which records them
        or raises why not."""
        db = self.db
        runs = list({rid for _, _, rid, *_ in checked})
        stored = {
            call["id"]: call
            async for run in db.collection(RunDocument).find(
                {"_id": {"$in": runs}}, {"tool_calls": 1}
            )
            for call in run.get("tool_calls", [])
        }
        refused: DatabaseError | None = None
        for result, call_id, *_ in checked:
            call = stored.get(call_id, {})
            if all(_same(call.get(name), value) for name, value in written[call_id].items()):
                continue  # this statement landed
            if call_id in spilled:
                await _payloads.discard(db, spilled[call_id])
            try:
                await self.complete(result.id, result.output, result.status, result.duration_ms)
            except DatabaseError as exc:
                refused = refused or exc
        if refused is not None:
            raise refused

    @translate_errors
    async def find_by_run(self, run_id: str | ObjectId) -> list[ToolCall]:
        """The run's tool calls in call order, for audit and replay. One command inline."""
        db = self.db
        rid = check.object_id(run_id, "run")
        raw = await get(db, RunDocument, rid, "run", {"_id": 0, "tool_calls": 1})
        calls = load_many(ToolCall, raw.get("tool_calls", []), _COLLECTION)
        return await _payloads.resolve(db, calls)


def _same(stored: object, written: object) -> bool:
    """Whether a field read back is the value written (datetimes are read naive, in UTC)."""
    if isinstance(stored, datetime) and isinstance(written, datetime):
        return as_utc(stored) == as_utc(written)
    return stored == written


def parse_tool_call_id(value: object) -> tuple[str, ObjectId]:
    """The canonical tool-call id and its run's id; ``InvalidIdError`` if malformed."""
    if isinstance(value, str) and len(value) == 49 and value[24] == _SEPARATOR:
        try:
            run_id = check.object_id(value[:24], "tool call")
            call_id = check.object_id(value[25:], "tool call")
        except InvalidIdError:
            pass
        else:
            return f"{run_id}{_SEPARATOR}{call_id}", run_id
    raise InvalidIdError("tool call", value)


def _new_call(
    db: Connection, run_id: ObjectId, tool_name: object, input: object, request_id: object
) -> tuple[dict[str, Any], ToolCall, bytes]:
    """A pending call of the run, checked into its stored form; its record (what a read of it
    returns) and its input's UTF-8."""
    name = check.name(tool_name, "tool_name")
    body, data = check.encoded_text(input, "input", max_bytes=db.settings.max_payload_bytes)
    stored = {
        **stored_defaults(ToolCall),
        "id": f"{run_id}{_SEPARATOR}{ObjectId()}",
        "run_id": run_id,
        "tool_name": name,
        "input": body,
        "request_id": check.optional_name(request_id, "request_id"),
    }
    return stored, ToolCall.model_validate(stored), data


async def pending_calls(
    db: Connection, run_id: ObjectId, requests: Sequence[NewToolCall]
) -> tuple[list[dict[str, Any]], list[ToolCall], int, list[PayloadRef]]:
    """``requests`` as pending calls of the run, for one ``push_change``: the stored calls,
    their records, the inline bytes they charge, and the payloads stored now (one insert
    each) for inputs too large to embed. Every request is checked before anything is stored.
    """
    built = []
    for request in requests:
        if not isinstance(request, NewToolCall):
            raise InvalidInputError("tool_calls", "must hold NewToolCall tuples")
        built.append(_new_call(db, run_id, *request))
    stored_calls, records, refs = [], [], []
    inline = 0
    for stored, call, data in built:
        if len(data) <= db.settings.payload_inline_max_bytes:
            inline += len(data)
            stored_calls.append(stored)
            records.append(call)
            continue
        ref = await _payloads.store(db, run_id, data)
        refs.append(ref)
        stored_calls.append({**stored, "input": "", "input_payload": ref.model_dump()})
        records.append(call.model_copy(update={"input_payload": ref}))
    return stored_calls, records, inline, refs


def push_change(
    db: Connection, run_id: ObjectId, calls: list[dict[str, Any]], inline_bytes: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The filter and update that append ``calls`` (as stored) to the run, each with its
    ``call_order`` entry: only while it is running, has room for them all and (inline) has
    budget left."""
    settings = db.settings
    query: dict[str, Any] = {
        "_id": run_id,
        "status": RunStatus.running.value,
        f"tool_calls.{settings.max_tool_calls_per_run - len(calls)}": {"$exists": False},
    }
    update: dict[str, Any] = {
        "$push": {
            "tool_calls": {"$each": calls},
            "call_order": {"$each": [CallKind.tool.value] * len(calls)},
        }
    }
    if inline_bytes:
        query["inline_bytes"] = {"$lte": settings.run_inline_budget_bytes - inline_bytes}
        update["$inc"] = {"inline_bytes": inline_bytes}
    return query, update


async def _push(db: Connection, run_id: ObjectId, call: dict[str, Any], inline_bytes: int) -> bool:
    """Append ``call`` (as stored) if the run is running, has room, and (inline) has budget
    left."""
    query, update = push_change(db, run_id, [call], inline_bytes)
    result = await db.collection(RunDocument).update_one(query, update)
    return result.matched_count == 1


async def _refusal(db: Connection, run_id: ObjectId) -> DatabaseError | None:
    """Why the run refuses a new tool call (``None``: it would take one, spilled)."""
    raw = await db.collection(RunDocument).find_one(
        {"_id": run_id}, {"status": 1, "tool_calls.id": 1}
    )
    if raw is None:
        return NotFoundError("run", run_id)
    if raw.get("status") != RunStatus.running.value:
        return InvalidStateError("run", run_id, f"is {raw.get('status')}, not running")
    cap = db.settings.max_tool_calls_per_run
    if len(raw.get("tool_calls", [])) >= cap:
        return InvalidStateError("run", run_id, f"has {cap} tool calls, the most allowed")
    return None


async def _complete(
    db: Connection, run_id: ObjectId, call_id: str, fields: dict[str, Any], inline_bytes: int
) -> dict[str, Any] | None:
    """Set ``fields`` on the pending call (and charge the run's budget); the call as stored."""
    query, update = _completion(db, run_id, call_id, fields, inline_bytes)
    return await update_and_read(
        db,
        RunDocument,
        query,
        update,
        {"_id": 0, "tool_calls": {"$elemMatch": {"id": call_id}}},
        array_filters=[{"call.id": call_id}],
    )


def _completion(
    db: Connection, run_id: ObjectId, call_id: str, fields: dict[str, Any], inline_bytes: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The filter and update that set ``fields`` on the pending call (``arrayFilters``:
    ``call.id``) and charge the run's budget."""
    query: dict[str, Any] = {
        "_id": run_id,
        "tool_calls": {"$elemMatch": {"id": call_id, "status": ToolCallStatus.pending.value}},
    }
    update: dict[str, Any] = {
        "$set": {f"tool_calls.$[call].{name}": value for name, value in fields.items()}
    }
    if inline_bytes:
        budget = db.settings.run_inline_budget_bytes
        query["inline_bytes"] = {"$lte": budget - inline_bytes}
        update["$inc"] = {"inline_bytes": inline_bytes}
    return query, update


async def _require_pending(db: Connection, run_id: ObjectId, call_id: str) -> None:
    """Raise ``NotFoundError`` or ``InvalidStateError`` unless the call exists and is pending."""
    raw = await db.collection(RunDocument).find_one(
        {"_id": run_id, "tool_calls.id": call_id},
        {"_id": 0, "tool_calls": {"$elemMatch": {"id": call_id}}},
    )
    if raw is None:
        raise NotFoundError("tool call", call_id)
    if raw["tool_calls"][0].get("status") != ToolCallStatus.pending.value:
        raise InvalidStateError("tool call", call_id, "was completed already")
