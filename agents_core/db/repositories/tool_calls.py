"""The audit log of tool executions, embedded in their run in call order.

A tool call's id is ``"<run id>-<call id>"``: opaque to callers, but it names the run, so
completing a call is one update of one run document by ``_id`` (with ``arrayFilters`` picking
the call), never a scan of a multikey index that a sharded cluster would broadcast.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from agents_core.db import validation as check
from agents_core.db.client import Connection
from agents_core.db.documents import CallKind, RunDocument, RunStatus, ToolCall, ToolCallStatus
from agents_core.db.documents._common import utcnow
from agents_core.db.errors import (
    DatabaseError,
    InvalidIdError,
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

__all__ = ["ToolCallsRepository", "parse_tool_call_id"]

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
        name = check.name(tool_name, "tool_name")
        settings = db.settings
        body, data = check.encoded_text(input, "input", max_bytes=settings.max_payload_bytes)
        request = check.optional_name(request_id, "request_id")
        size = len(data)
        stored = {
            **stored_defaults(ToolCall),
            "id": f"{rid}{_SEPARATOR}{ObjectId()}",
            "run_id": rid,
            "tool_name": name,
            "input": body,
            "request_id": request,
        }
        call = ToolCall.model_validate(stored)  # what a read of it returns
        inline = size <= settings.payload_inline_max_bytes
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
    async def find_by_run(self, run_id: str | ObjectId) -> list[ToolCall]:
        """The run's tool calls in call order, for audit and replay. One command inline."""
        db = self.db
        rid = check.object_id(run_id, "run")
        raw = await get(db, RunDocument, rid, "run", {"_id": 0, "tool_calls": 1})
        calls = load_many(ToolCall, raw.get("tool_calls", []), _COLLECTION)
        return await _payloads.resolve(db, calls)


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


async def _push(db: Connection, run_id: ObjectId, call: dict[str, Any], inline_bytes: int) -> bool:
    """Append ``call`` (as stored) if the run is running, has room, and (inline) has budget
    left."""
    settings = db.settings
    query: dict[str, Any] = {
        "_id": run_id,
        "status": RunStatus.running.value,
        f"tool_calls.{settings.max_tool_calls_per_run - 1}": {"$exists": False},
    }
    update: dict[str, Any] = {"$push": {"tool_calls": call, "call_order": CallKind.tool.value}}
    if inline_bytes:
        query["inline_bytes"] = {"$lte": settings.run_inline_budget_bytes - inline_bytes}
        update["$inc"] = {"inline_bytes": inline_bytes}
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
    return await update_and_read(
        db,
        RunDocument,
        query,
        update,
        {"_id": 0, "tool_calls": {"$elemMatch": {"id": call_id}}},
        array_filters=[{"call.id": call_id}],
    )


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
