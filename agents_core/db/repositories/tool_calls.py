"""The audit log of tool executions, embedded in their run in call order.

A tool call's id is ``"<run id>-<call id>"``: opaque to callers, but it names the run, so
completing a call is one update of one run document by ``_id`` (with ``arrayFilters`` picking
the call), never a scan of a multikey index that a sharded cluster would broadcast.
"""

from __future__ import annotations

from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument

from agents_core.db import _validation as check
from agents_core.db.client import collection, get_settings
from agents_core.db.documents import Run, RunStatus, ToolCall, ToolCallStatus
from agents_core.db.documents._common import utcnow
from agents_core.db.errors import (
    InvalidIdError,
    InvalidStateError,
    NotFoundError,
    translate_errors,
)

__all__ = ["ToolCallsRepository", "parse_tool_call_id"]

_SEPARATOR = "-"
_FINAL = frozenset({ToolCallStatus.success, ToolCallStatus.error})


class ToolCallsRepository:
    """Log tool calls of a running run, complete them once, and read them back."""

    @translate_errors
    async def create(self, run_id: str | ObjectId, tool_name: str, input: str) -> ToolCall:
        """Append a ``pending`` tool call to a ``running`` run, atomically. One command."""
        rid = check.object_id(run_id, "run")
        name = check.name(tool_name, "tool_name")
        settings = get_settings()
        body = check.text(input, "input", max_bytes=settings.payload_inline_max_bytes)
        call = ToolCall.model_construct(
            id=f"{rid}{_SEPARATOR}{ObjectId()}",
            run_id=PydanticObjectId(rid),
            tool_name=name,
            input=body,
            output=None,
            status=ToolCallStatus.pending,
            started_at=utcnow(),
            completed_at=None,
            duration_ms=None,
        )
        cap = settings.max_tool_calls_per_run
        result = await collection(Run).update_one(
            {
                "_id": rid,
                "status": RunStatus.running.value,
                f"tool_calls.{cap - 1}": {"$exists": False},
            },
            {"$push": {"tool_calls": _call_document(call)}},
        )
        if result.matched_count == 0:
            raise await _why_not_running(rid, cap)
        return call

    @translate_errors
    async def complete(
        self,
        id: str,
        output: str,
        status: ToolCallStatus | str,
        duration_ms: float,
    ) -> ToolCall:
        """Record a pending call's ``output``, final ``status`` and duration, once. One command."""
        call_id, rid = parse_tool_call_id(id)
        body = check.text(output, "output", max_bytes=get_settings().payload_inline_max_bytes)
        final = check.enum(ToolCallStatus, status, "status", allowed=_FINAL)
        duration = check.amount(duration_ms, "duration_ms")
        raw = await collection(Run).find_one_and_update(
            {
                "_id": rid,
                "tool_calls": {
                    "$elemMatch": {"id": call_id, "status": ToolCallStatus.pending.value}
                },
            },
            {
                "$set": {
                    "tool_calls.$[call].output": body,
                    "tool_calls.$[call].status": final.value,
                    "tool_calls.$[call].completed_at": utcnow(),
                    "tool_calls.$[call].duration_ms": duration,
                }
            },
            array_filters=[{"call.id": call_id}],
            projection={"_id": 0, "tool_calls": {"$elemMatch": {"id": call_id}}},
            return_document=ReturnDocument.AFTER,
        )
        if raw is None:
            found = await collection(Run).find_one(
                {"_id": rid, "tool_calls.id": call_id}, {"_id": 1}
            )
            if found is None:
                raise NotFoundError("tool call", call_id)
            raise InvalidStateError("tool call", call_id, "was completed already")
        return ToolCall.model_validate(raw["tool_calls"][0])

    @translate_errors
    async def find_by_run(self, run_id: str | ObjectId) -> list[ToolCall]:
        """The run's tool calls in call order, for audit and replay. One command."""
        rid = check.object_id(run_id, "run")
        raw = await collection(Run).find_one({"_id": rid}, {"_id": 0, "tool_calls": 1})
        if raw is None:
            raise NotFoundError("run", rid)
        return [ToolCall.model_validate(call) for call in raw.get("tool_calls", [])]


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


async def _why_not_running(run_id: ObjectId, cap: int) -> Exception:
    raw = await collection(Run).find_one({"_id": run_id}, {"status": 1, "tool_calls.id": 1})
    if raw is None:
        return NotFoundError("run", run_id)
    if raw.get("status") != RunStatus.running.value:
        return InvalidStateError("run", run_id, f"is {raw.get('status')}, not running")
    if len(raw.get("tool_calls", [])) >= cap:
        return InvalidStateError("run", run_id, f"has {cap} tool calls, the most allowed")
    # Unreachable in practice: a run never returns to running, and calls are never removed.
    return InvalidStateError("run", run_id, "refused the tool call")


def _call_document(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "run_id": call.run_id,
        "tool_name": call.tool_name,
        "input": call.input,
        "output": None,
        "status": call.status.value,
        "started_at": call.started_at,
        "completed_at": None,
        "duration_ms": None,
    }
