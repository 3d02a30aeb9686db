"""Framework runs stored whole once they have finished (``RunsRepository.insert_finished``).

Design notes:

- **One document, one command.** A finished run is built in full on the client (its model
  calls, tool calls and steps in the order given, ``call_order`` saying which is which, the
  totals summed) and a batch of them is one ``insert_many``. Tool-call text that is too large
  to embed, or beyond the run's inline budget, is written to ``payload_chunks`` first.
- **Never twice.** A run's ``_id`` is derived from its ``source`` and ``external_id`` (12 bytes
  of a SHA-256 of both). ``runs`` is sharded by ``_id`` and MongoDB enforces a unique index
  across shards only if it starts with the shard key, so the ``_id`` index is the one that can
  keep a framework's run from being stored twice; a lookup by external id is one targeted
  command. An insert refused as a duplicate is a retry of a write that landed: no error. Tool
  calls and payloads get derived ids too, so a retry writes the same chunks (their unique
  ``(payload_id, n)`` key refuses what landed) and the same records.
- **Parts.** A framework may report a run in parts: the OpenAI Agents SDK resumes an
  interrupted run (a tool call awaiting approval) in the same trace, later, maybe in another
  process. A part names itself (``FinishedRun.part``, unique within its run); the first part
  stored is inserted, each later one appended with one ``update`` guarded by the parts the run
  has (``parts``, on the document only), by the caps on its arrays, its token total and its
  inline budget. A part given again matches nothing and changes nothing. When a guard refuses,
  the run is read once to tell why: the budget spent (the part's text is then spilled and the
  update sent again), or a cap (``InvalidInputError``).
- **Budget.** Error texts and step data cannot be spilled: they are charged to the run's
  inline budget first (``run_inline_budget_bytes``, counted in ``inline_bytes`` with the tool
  text kept inline), and a run or part whose share alone exceeds it is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import bson
from bson import ObjectId
from pymongo.errors import BulkWriteError

from agents_core.db import chunks
from agents_core.db import validation as check
from agents_core.db._items import encode_item
from agents_core.db.client import Connection
from agents_core.db.config import Settings
from agents_core.db.documents import (
    CallKind,
    FinishedRun,
    FinishedToolCall,
    ModelCall,
    Run,
    RunDocument,
    RunStatus,
    RunStep,
    StepStatus,
    ToolCall,
    ToolCallStatus,
    as_utc,
)
from agents_core.db.documents.run import STEP_DATA_ESCAPED
from agents_core.db.errors import InvalidInputError, NotFoundError
from agents_core.db.limits import (
    MAX_ERROR_BYTES,
    MAX_EXTERNAL_ID_LENGTH,
    MAX_MODEL_CALLS_PER_RUN,
    MAX_STEP_DATA_BYTES,
    MAX_STEPS_PER_RUN,
    MAX_TOKENS,
)
from agents_core.db.repositories import _payloads, stats
from agents_core.db.repositories._base import stored_defaults

__all__ = ["insert", "model_call_document", "run_id", "step_document"]

_FINAL = frozenset({RunStatus.completed, RunStatus.failed})
_TOOL_FINAL = frozenset({ToolCallStatus.success, ToolCallStatus.error})
_DUPLICATE_KEY = 11000


def run_id(source: str, external_id: str) -> ObjectId:
    """The ``_id`` of the run ``source`` knows as ``external_id`` (both checked already)."""
    return _derived_id(f"{source}\x00{external_id}")


async def insert(db: Connection, runs: list[object]) -> list[ObjectId]:
    """Store finished runs (see the module's notes); their ids, in the order given."""
    settings = db.settings
    checked = [_checked(run, settings) for run in runs]  # all of them before any write
    if not checked:
        return []
    firsts: dict[ObjectId, _Checked] = {}
    for run in checked:
        firsts.setdefault(run.id, run)
    placed = {
        run.id: _placed(run, settings, settings.run_inline_budget_bytes) for run in firsts.values()
    }
    await _payloads.store_given(
        db, [payload for _, payloads in placed.values() for payload in payloads]
    )
    stored_already: set[ObjectId] = set()
    try:
        await db.collection(RunDocument).insert_many(
            [document for document, _ in placed.values()], ordered=False
        )
    except BulkWriteError as exc:
        errors = exc.details["writeErrors"]
        if any(error.get("code") != _DUPLICATE_KEY for error in errors):
            raise
        documents = list(placed.values())
        stored_already = {documents[error["index"]][0]["_id"] for error in errors}
    # Every other part, in the order given: appended (a part stored already changes nothing).
    changes: stats.Changes = {}
    for document, _ in placed.values():
        if document["_id"] not in stored_already:
            stats.day_changes(document, changes=changes)
    for run in checked:
        inserted = firsts[run.id] is run and run.id not in stored_already
        if not inserted and run.part is not None:
            appended = await _append(db, run, settings)
            if appended is not None:
                stats.day_changes(appended, as_run=False, changes=changes)
    await stats.add_finished(db, changes)
    return [run.id for run in checked]


def model_call_document(call: object) -> tuple[dict[str, Any], int, float]:
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
# Checking a run


@dataclass(slots=True)
class _Tool:
    stored: dict[str, Any]
    input: bytes
    output: bytes | None


@dataclass(slots=True)
class _Checked:
    """A finished run, every value checked, in stored form except the tool calls' text."""

    id: ObjectId
    part: str | None
    fields: dict[str, Any]
    model_calls: list[dict[str, Any]]
    tools: list[_Tool]
    steps: list[dict[str, Any]]
    order: list[str]
    tokens: int
    cost: float
    #: Bytes of error text and step data: embedded whatever the budget (charged to it first).
    fixed: int


def _checked(run: object, settings: Settings) -> _Checked:
    if not isinstance(run, FinishedRun):
        raise InvalidInputError("runs", f"must hold FinishedRun, not {type(run).__name__}")
    source = check.name(getattr(run, "source", None), "source")
    external_id = check.name(
        getattr(run, "external_id", None), "external_id", max_length=MAX_EXTERNAL_ID_LENGTH
    )
    part = getattr(run, "part", None)
    if part is not None:
        part = check.name(part, "part", max_length=MAX_EXTERNAL_ID_LENGTH)
    status = check.enum(RunStatus, getattr(run, "status", None), "status", allowed=_FINAL)
    error = getattr(run, "error", None)
    fixed = 0
    if error is not None:
        error = check.text(error, "error", max_bytes=MAX_ERROR_BYTES)
        fixed += len(error.encode())
    calls = getattr(run, "calls", None)
    if not isinstance(calls, list):
        raise InvalidInputError("calls", "must be a list of ModelCall, FinishedToolCall, RunStep")
    model_calls: list[dict[str, Any]] = []
    tools: list[_Tool] = []
    steps: list[dict[str, Any]] = []
    order: list[str] = []
    tokens, cost = 0, 0.0
    for call in calls:
        if isinstance(call, ModelCall):
            stored, call_tokens, call_cost = model_call_document(call)
            stored["started_at"] = _ms(stored["started_at"], "started_at")
            if stored["error"] is not None:
                fixed += len(stored["error"].encode())
            model_calls.append(stored)
            tokens += call_tokens
            cost += call_cost
            order.append(CallKind.model.value)
        elif isinstance(call, FinishedToolCall):
            tool = _tool(call, settings)
            if tool.stored["error"] is not None:
                fixed += len(tool.stored["error"].encode())
            tools.append(tool)
            order.append(CallKind.tool.value)
        elif isinstance(call, RunStep):
            stored_step, size = step_document(call)
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
    if len(tools) > settings.max_tool_calls_per_run:
        raise InvalidInputError("calls", f"more than {settings.max_tool_calls_per_run} tool calls")
    if len(steps) > MAX_STEPS_PER_RUN:
        raise InvalidInputError("calls", f"more than {MAX_STEPS_PER_RUN} steps")
    if tokens > MAX_TOKENS:
        raise InvalidInputError("calls", "their token total overflows")
    if fixed > settings.run_inline_budget_bytes:
        raise InvalidInputError(
            "run",
            f"its error texts and step data take {fixed} bytes, more than the run's inline "
            f"budget of {settings.run_inline_budget_bytes}",
        )
    return _Checked(
        id=run_id(source, external_id),
        part=part,
        fields={
            "session_id": check.object_id(getattr(run, "session_id", None), "session"),
            "agent_id": check.object_id(getattr(run, "agent_id", None), "agent"),
            "status": status.value,
            "error": error,
            "started_at": _ms(getattr(run, "started_at", None), "started_at"),
            "completed_at": _ms(getattr(run, "completed_at", None), "completed_at"),
            "source": source,
            "external_id": external_id,
        },
        model_calls=model_calls,
        tools=tools,
        steps=steps,
        order=order,
        tokens=tokens,
        cost=check.amount(cost, "cost"),
        fixed=fixed,
    )


def _tool(call: FinishedToolCall, settings: Settings) -> _Tool:
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
    return _Tool(stored, input_data, output_data)


def step_document(step: RunStep) -> tuple[dict[str, Any], int]:
    """A step's stored form, every value checked, and the bytes it embeds (its data and
    error), which the run's inline budget is charged."""
    try:
        stored_data, escaped = encode_item(getattr(step, "data", None))
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
    history_seq = getattr(step, "history_seq", None)
    stored: dict[str, Any] = {
        "kind": check.name(getattr(step, "kind", None), "kind"),
        "name": check.name(getattr(step, "name", None), "name"),
        "started_at": _ms(getattr(step, "started_at", None), "started_at"),
        "duration_ms": None if duration is None else check.amount(duration, "duration_ms"),
        "status": check.enum(StepStatus, getattr(step, "status", None), "status").value,
        "error": error,
        "data": stored_data,
        "history_seq": None if history_seq is None else check.count(history_seq, "history_seq"),
    }
    if escaped:
        stored[STEP_DATA_ESCAPED] = True
    return stored, size


# ---------------------------------------------------------------------------------------------
# Storing it


def _placed(
    run: _Checked, settings: Settings, budget: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's document with its tool calls' text inline while ``budget`` (less its fixed
    bytes) lasts, and the payloads to store for the rest."""
    left = budget - run.fixed
    inline = 0
    payloads: list[dict[str, Any]] = []  # the chunks of the text spilled
    tool_calls: list[dict[str, Any]] = []
    for n, tool in enumerate(run.tools):
        key = f"{run.id}:{run.part or ''}:tool:{n}"
        stored = {**tool.stored, "id": f"{run.id}-{_derived_id(key)}", "run_id": run.id}
        for field, data in (("input", tool.input), ("output", tool.output)):
            if data is None:
                continue
            size = len(data)
            if size <= settings.payload_inline_max_bytes and inline + size <= left:
                inline += size
                continue
            ref, docs = chunks.split(
                data, {"run_id": run.id}, payload_id=_derived_id(f"{key}:{field}")
            )
            payloads += docs
            stored[field] = ""
            stored[f"{field}_payload"] = ref.model_dump()
        tool_calls.append(stored)
    document = {
        **stored_defaults(RunDocument),
        **run.fields,
        "_id": run.id,
        "tokens": run.tokens,
        "cost": run.cost,
        "tool_calls": tool_calls,
        "model_calls": run.model_calls,
        "steps": run.steps,
        "call_order": run.order,
        "inline_bytes": run.fixed + inline,
        "parts": [] if run.part is None else [run.part],
    }
    Run.model_validate(document)  # what is stored reads back as a run
    return document, payloads


async def _append(db: Connection, run: _Checked, settings: Settings) -> dict[str, Any] | None:
    """Append ``run``, a part of a stored run, unless that part is stored already: the part's
    document as appended (``None``: it was stored already)."""
    collection = db.collection(RunDocument)
    budget = settings.run_inline_budget_bytes
    document, payloads = _placed(run, settings, budget)
    for spill in (False, True):
        if spill:  # the run's budget is spent: the part's tool text goes to payload_chunks
            document, payloads = _placed(run, settings, run.fixed)
        await _payloads.store_given(db, payloads)
        query: dict[str, Any] = {
            "_id": run.id,
            "parts": {"$ne": run.part},
            "tokens": {"$lte": MAX_TOKENS - run.tokens},
            "inline_bytes": {"$lte": budget - document["inline_bytes"]},
        }
        for array, count, cap in (
            ("model_calls", len(run.model_calls), MAX_MODEL_CALLS_PER_RUN),
            ("tool_calls", len(run.tools), settings.max_tool_calls_per_run),
            ("steps", len(run.steps), MAX_STEPS_PER_RUN),
        ):
            if count:
                query[f"{array}.{cap - count}"] = {"$exists": False}
        change = {
            "$push": {
                "model_calls": {"$each": document["model_calls"]},
                "tool_calls": {"$each": document["tool_calls"]},
                "steps": {"$each": document["steps"]},
                "call_order": {"$each": document["call_order"]},
                "parts": run.part,
            },
            "$inc": {
                "tokens": run.tokens,
                "cost": run.cost,
                "inline_bytes": document["inline_bytes"],
            },
            "$set": {
                "status": document["status"],
                "error": document["error"],
                "completed_at": document["completed_at"],
            },
        }
        result = await collection.update_one(query, change)
        if result.matched_count:
            return document
        stored = await collection.find_one(
            {"_id": run.id}, {"parts": 1, "tokens": 1, "inline_bytes": 1, "call_order": 1}
        )
        if stored is None:
            raise NotFoundError("run", run.id)  # deleted since the insert found it
        if run.part in stored.get("parts", []):
            return None  # a retry of a part that landed
        order = stored.get("call_order", [])
        for kind, count, cap in (
            (CallKind.model, len(run.model_calls), MAX_MODEL_CALLS_PER_RUN),
            (CallKind.tool, len(run.tools), settings.max_tool_calls_per_run),
            (CallKind.step, len(run.steps), MAX_STEPS_PER_RUN),
        ):
            if count and order.count(kind.value) + count > cap:
                raise InvalidInputError("calls", f"the run would have more than {cap} {kind}s")
        if stored.get("tokens", 0) > MAX_TOKENS - run.tokens:
            raise InvalidInputError("calls", "the run's token total would overflow")
        if stored.get("inline_bytes", 0) + run.fixed > budget:
            raise InvalidInputError(
                "run", "its error texts and step data exceed what is left of the run's budget"
            )
    raise InvalidInputError("run", "its part could not be appended within the run's budget")


def _derived_id(key: str) -> ObjectId:
    return ObjectId(hashlib.sha256(key.encode()).digest()[:12])


def _ms(value: object, field: str) -> datetime:
    """An aware UTC datetime cut to whole milliseconds: what BSON stores is what is returned."""
    if not isinstance(value, datetime):
        raise InvalidInputError(field, f"must be a datetime, not {type(value).__name__}")
    value = as_utc(value)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)
