"""The raw side of every benchmark: the leanest ``pymongo.AsyncMongoClient`` code doing the
repositories' work.

Each method sends exactly the commands of the matching repository method (same filters,
updates, projections, cursor options and server-side guards, such as a run's inline-payload
budget), keeps the same not-found checks, and returns the server's dicts instead of models.
Only the inline case is mirrored: the benchmarks never store a payload outside its run. It
trusts its arguments (typed ``ObjectId``s, valid enums): the repositories' argument validation
is part of the cost being measured.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from bson import ObjectId
from pydantic import BaseModel
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from agents_core.db import MessageDocument, ModelCall, RunDocument, SessionDocument, ToolCall
from agents_core.db.limits import MAX_MODEL_CALLS_PER_RUN
from agents_core.runner import ModelResponse, ToolRegistry, ToolRequest

__all__ = ["Doc", "Missing", "RawLayer", "RawModel", "latest_filter"]

Doc = dict[str, Any]

#: The layer's default limits (``agents_core.db.Settings``), as a raw program would hard-code them.
MAX_TOOLS_PER_AGENT = 256
MAX_TOOL_CALLS_PER_RUN = 1_000
PAYLOAD_INLINE_MAX_BYTES = 64 * 1024
RUN_INLINE_BUDGET_BYTES = 8 * 1024 * 1024
MAX_TOKENS = 2**63 - 1
MAX_MESSAGE_BYTES = 1024 * 1024

#: Sessions keep their latest idempotency keys in this field, which reads leave on the server.
_SESSION = {"recent_idempotency_keys": 0}

_LAST_SEQ = {"last_seq": 1, "_id": 0}
_BOUNDS = {"last_seq": 1, "cleared_through_seq": 1, "_id": 0}
_ID_ONLY = {"_id": 1}
#: Sessions being deleted or forked do not exist for readers and writers (a plain field clause).
_VISIBLE = SessionDocument.visible


def _template(model: type[BaseModel]) -> Doc:
    """The stored defaults of ``model``'s optional fields, taken once from its declaration.

    Raw code would write these out by hand; reading them from the one declaration keeps this
    side storing exactly what the layer stores when a field is added, at no per-call cost.
    """
    template: Doc = {}
    for name, info in model.model_fields.items():
        if name in {"id", "revision_id"} or info.is_required():
            continue
        value = info.get_default(call_default_factory=True)
        template[name] = value.value if isinstance(value, Enum) else value
    return template


_SESSION_TEMPLATE = _template(SessionDocument)
_MESSAGE_TEMPLATE = _template(MessageDocument)
_RUN_TEMPLATE = _template(RunDocument)
_CALL_TEMPLATE = _template(ToolCall)
_MODEL_CALL_TEMPLATE = _template(ModelCall)


#: The model of a raw turn: the agent and the conversation so far in, its reply out.
RawModel = Callable[[Doc, Sequence[Doc]], Awaitable[ModelResponse]]


class Missing(LookupError):
    """Raised where a repository raises ``NotFoundError`` or ``InvalidStateError``."""


def latest_filter(session_id: ObjectId, last_seq: int, limit: int) -> Doc:
    """The range of the latest ``limit`` messages: ``last_seq - limit < seq <= last_seq``."""
    return {"session_id": session_id, "seq": {"$gt": max(last_seq - limit, 0), "$lte": last_seq}}


def _now() -> datetime:
    return datetime.now(UTC)


class RawLayer:
    """The five repositories' hot paths on one database, dicts in and dicts out."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.agents = db["agents"]
        self.sessions = db["sessions"]
        self.messages = db["messages"]
        self.runs = db["runs"]
        #: The latest ``last_seq`` seen per session (what a lean program would cache too).
        self.seq_hints: dict[ObjectId, int] = {}

    # Documents, as the repositories store them (also used to seed the fixtures).

    @staticmethod
    def session_document(title: str | None, user_id: str | None, *, last_seq: int = 0) -> Doc:
        now = _now()
        return {
            **_SESSION_TEMPLATE,
            "_id": ObjectId(),
            "title": title,
            "user_id": user_id,
            "last_seq": last_seq,
            "created_at": now,
            "updated_at": now,
        }

    @staticmethod
    def message_document(
        session_id: ObjectId,
        seq: int,
        role: str,
        content: str,
        created_at: datetime,
        tool_call_id: str | None = None,
    ) -> Doc:
        return {
            **_MESSAGE_TEMPLATE,
            "_id": ObjectId(),
            "session_id": session_id,
            "seq": seq,
            "role": role,
            "content": content,
            "created_at": created_at,
            "tool_call_id": tool_call_id,
        }

    @staticmethod
    def run_document(
        session_id: ObjectId, agent_id: ObjectId, tool_calls: Sequence[Doc] = ()
    ) -> Doc:
        return {
            **_RUN_TEMPLATE,
            "_id": ObjectId(),
            "session_id": session_id,
            "agent_id": agent_id,
            "tool_calls": list(tool_calls),
            "started_at": _now(),
        }

    @staticmethod
    def tool_call_document(run_id: ObjectId, tool_name: str, input: str) -> Doc:
        return {
            **_CALL_TEMPLATE,
            "id": f"{run_id}-{ObjectId()}",
            "run_id": run_id,
            "tool_name": tool_name,
            "input": input,
            "started_at": _now(),
        }

    # Messages: findAndModify (reserve seq) + insert; find (last_seq) + range find.

    async def create_message(
        self,
        session_id: ObjectId,
        role: str,
        content: str,
        *,
        tool_call_id: str | None = None,
        request_id: str | None = None,
        requested: list[Doc] | None = None,
    ) -> Doc:
        now = _now()
        seq = await self._reserve_seq(session_id, now)
        message = self.message_document(session_id, seq, role, content, now, tool_call_id)
        if requested:
            message["requested_tool_calls"] = requested
        message["request_id"] = request_id
        await self.messages.insert_one(message)
        return message

    async def _reserve_seq(self, session_id: ObjectId, now: datetime) -> int:
        """Compare-and-set on the last seen ``last_seq``, else ``$inc`` (as the layer does)."""
        hint = self.seq_hints.pop(session_id, None)
        if hint is None:
            raw = await self.sessions.find_one({"_id": session_id, **_VISIBLE}, _LAST_SEQ)
            if raw is None:
                raise Missing(session_id)
            hint = int(raw.get("last_seq", 0))
        result = await self.sessions.update_one(
            {"_id": session_id, **_VISIBLE, "last_seq": hint},
            {"$set": {"last_seq": hint + 1, "updated_at": now}},
        )
        seq = hint + 1
        if result.matched_count == 0:
            reserved = await self.sessions.find_one_and_update(
                {"_id": session_id, **_VISIBLE},
                {"$inc": {"last_seq": 1}, "$set": {"updated_at": now}},
                projection=_LAST_SEQ,
                return_document=ReturnDocument.AFTER,
            )
            if reserved is None:
                raise Missing(session_id)
            seq = int(reserved["last_seq"])
        self.seq_hints[session_id] = seq
        return seq

    async def find_by_session(self, session_id: ObjectId, limit: int) -> list[Doc]:
        return await self.latest_messages(session_id, *await self._bounds(session_id), limit)

    async def get_last_message(self, session_id: ObjectId) -> Doc | None:
        latest = await self.latest_messages(session_id, *await self._bounds(session_id), 1)
        return latest[-1] if latest else None

    async def latest_messages(
        self, session_id: ObjectId, last_seq: int, floor: int, limit: int
    ) -> list[Doc]:
        """Bounded ranges newest first, sorted here; skips popped messages and unfinished
        batches, and widens the range over them (as ``visible_range``)."""
        present: set[int] = set()
        shown: list[Doc] = []
        high, window = last_seq, limit
        while high > floor and len(shown) < limit:
            low = max(high - window, floor)
            raws = await (
                self.messages.find({"session_id": session_id, "seq": {"$gt": low, "$lte": high}})
                .limit(high - low)
                .batch_size(high - low)
                .to_list()
            )
            raws.sort(key=lambda raw: raw["seq"], reverse=True)
            present.update(raw["seq"] for raw in raws)
            for raw in raws:
                end = raw.get("batch_end_seq")
                if raw.get("popped_at") is None and (end is None or end in present):
                    shown.append(raw)
                    if len(shown) == limit:
                        break
            high, window = low, window * 2
        return shown[::-1]

    async def _bounds(self, session_id: ObjectId) -> tuple[int, int]:
        raw = await self.sessions.find_one({"_id": session_id, **_VISIBLE}, _BOUNDS)
        if raw is None:
            raise Missing(session_id)
        self.seq_hints[session_id] = int(raw.get("last_seq", 0))
        return int(raw.get("last_seq", 0)), int(raw.get("cleared_through_seq", 0))

    # Sessions.

    async def create_session(self, title: str | None, user_id: str | None) -> Doc:
        session = self.session_document(title, user_id)
        await self.sessions.insert_one(session)
        self.seq_hints[session["_id"]] = 0
        return session

    async def find_session(self, session_id: ObjectId, message_limit: int = 100) -> Doc:
        session = await self.sessions.find_one({"_id": session_id, **_VISIBLE}, _SESSION)
        if session is None:
            raise Missing(session_id)
        self.seq_hints[session_id] = session["last_seq"]
        session["messages"] = await self.latest_messages(
            session_id, session["last_seq"], session.get("cleared_through_seq", 0), message_limit
        )
        return session

    # Agents.

    async def enable_tool(self, agent_id: ObjectId, tool: str) -> None:
        result = await self.agents.update_one(
            {
                "_id": agent_id,
                "$or": [{"tools": tool}, {f"tools.{MAX_TOOLS_PER_AGENT - 1}": {"$exists": False}}],
            },
            {"$addToSet": {"tools": tool}, "$set": {"updated_at": _now()}},
        )
        if result.matched_count == 0:
            raise Missing(agent_id)

    async def get_tools(self, agent_id: ObjectId) -> list[str]:
        raw = await self.agents.find_one({"_id": agent_id}, {"tools": 1, "_id": 0})
        if raw is None:
            raise Missing(agent_id)
        return list(raw.get("tools", []))

    # Runs: find (the agent exists) + insert + find (the session still exists after the insert,
    # else the run is removed again); one findAndModify each.

    async def create_run(self, session_id: ObjectId, agent_id: ObjectId) -> Doc:
        if await self.agents.find_one({"_id": agent_id}, _ID_ONLY) is None:
            raise Missing(agent_id)
        return await self._insert_run(self.run_document(session_id, agent_id))

    async def _insert_run(self, run: Doc) -> Doc:
        await self.runs.insert_one(run)
        session_id = run["session_id"]
        if await self.sessions.find_one({"_id": session_id, **_VISIBLE}, _ID_ONLY) is None:
            await self.runs.delete_one({"_id": run["_id"]})
            raise Missing(session_id)
        return run

    async def update_usage(self, run_id: ObjectId, tokens: int, cost: float) -> Doc:
        result = await self.runs.update_one(
            {"_id": run_id, "tokens": {"$lte": MAX_TOKENS - tokens}},
            {"$inc": {"tokens": tokens, "cost": cost}},
        )
        return await self._read_back(self.runs, run_id, result.matched_count)

    async def complete_run(self, run_id: ObjectId, status: str, error: str | None = None) -> Doc:
        result = await self.runs.update_one(
            {"_id": run_id, "status": "running"},
            {"$set": {"status": status, "error": error, "completed_at": _now()}},
        )
        return await self._read_back(self.runs, run_id, result.matched_count)

    @staticmethod
    async def _read_back(
        collection: AsyncCollection[Doc],
        id: ObjectId,
        matched: int,
        projection: Doc | None = None,
    ) -> Doc:
        """What a write matched, read back by ``_id`` (flat where ``findAndModify`` is not)."""
        raw = await collection.find_one({"_id": id}, projection) if matched else None
        if raw is None:
            raise Missing(id)
        return raw

    # Tool calls, embedded in their run: update ($push), findAndModify (arrayFilters), find.

    async def create_tool_call(
        self, run_id: ObjectId, tool_name: str, input: str, request_id: str | None = None
    ) -> Doc:
        size = _inline_size(input)
        call = self.tool_call_document(run_id, tool_name, input)
        call["request_id"] = request_id
        query: Doc = {
            "_id": run_id,
            "status": "running",
            f"tool_calls.{MAX_TOOL_CALLS_PER_RUN - 1}": {"$exists": False},
        }
        update: Doc = {"$push": {"tool_calls": call}}
        if size:
            query["inline_bytes"] = {"$lte": RUN_INLINE_BUDGET_BYTES - size}
            update["$inc"] = {"inline_bytes": size}
        result = await self.runs.update_one(query, update)
        if result.matched_count == 0:
            raise Missing(run_id)
        return call

    async def complete_tool_call(
        self, call_id: str, output: str, status: str, duration_ms: float
    ) -> Doc:
        size = _inline_size(output)
        run_id = ObjectId(call_id[:24])
        query: Doc = {
            "_id": run_id,
            "tool_calls": {"$elemMatch": {"id": call_id, "status": "pending"}},
        }
        update: Doc = {
            "$set": {
                "tool_calls.$[call].status": status,
                "tool_calls.$[call].completed_at": _now(),
                "tool_calls.$[call].duration_ms": duration_ms,
                "tool_calls.$[call].output": output,
            }
        }
        if size:
            query["inline_bytes"] = {"$lte": RUN_INLINE_BUDGET_BYTES - size}
            update["$inc"] = {"inline_bytes": size}
        result = await self.runs.update_one(query, update, array_filters=[{"call.id": call_id}])
        projection = {"_id": 0, "tool_calls": {"$elemMatch": {"id": call_id}}}
        raw = await self._read_back(self.runs, run_id, result.matched_count, projection)
        call: Doc = raw["tool_calls"][0]
        _inline_only([call], ("input_payload",))
        return call

    async def find_by_run(self, run_id: ObjectId) -> list[Doc]:
        raw = await self.runs.find_one({"_id": run_id}, {"_id": 0, "tool_calls": 1})
        if raw is None:
            raise Missing(run_id)
        calls: list[Doc] = raw.get("tool_calls", [])
        _inline_only(calls, ("input_payload", "output_payload"))
        return calls

    # One agent turn, as ``AgentRunner.run`` does it (without ``turn_id``): the same commands.

    async def turn(
        self,
        session_id: ObjectId,
        user_input: str,
        model: RawModel,
        tools: ToolRegistry,
        *,
        history_limit: int = 50,
        max_steps: int = 8,
    ) -> Doc:
        session = await self.find_session(session_id, history_limit)
        agent = await self.agents.find_one({"_id": session["active_agent_id"]})
        if agent is None:
            raise Missing(session["active_agent_id"])
        history = _turn_window(session["messages"])
        history.append(await self.create_message(session_id, "user", user_input))
        run = self.run_document(session_id, agent["_id"])
        run["input_seq"] = history[-1]["seq"]
        await self._insert_run(run)
        try:
            for step in range(max_steps):
                started_at, started = _now(), time.perf_counter()
                response = await model(agent, history)
                await self.record_model_call(run["_id"], response, started_at, started)
                requests = [
                    request.id or f"call_{run['_id']}_{step}_{n}"
                    for n, request in enumerate(response.tool_calls)
                ]
                if response.text or requests:
                    reply = await self.create_message(
                        session_id,
                        "assistant",
                        response.text or "",
                        requested=[
                            {"id": rid, "name": request.name, "arguments": request.arguments}
                            for rid, request in zip(requests, response.tool_calls, strict=True)
                        ],
                    )
                    history.append(reply)
                if not requests:
                    return await self.complete_run(run["_id"], "completed")
                for rid, request in zip(requests, response.tool_calls, strict=True):
                    history.append(
                        await self._call_tool(session_id, run["_id"], agent, request, rid, tools)
                    )
            return await self.complete_run(run["_id"], "failed", f"step limit: {max_steps}")
        except Exception as exc:
            await self.complete_run(run["_id"], "failed", f"{type(exc).__name__}: {exc}")
            raise

    async def record_model_call(
        self, run_id: ObjectId, response: ModelResponse, started_at: datetime, started: float
    ) -> None:
        usage = response.usage
        tokens = usage.input_tokens + usage.output_tokens
        call = {
            **_MODEL_CALL_TEMPLATE,
            "model": response.model or "unknown",
            "started_at": started_at,
            "duration_ms": (time.perf_counter() - started) * 1000,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "cost": response.cost,
            "price": None if response.price is None else response.price.model_dump(),
            "finish_reason": response.finish_reason,
        }
        result = await self.runs.update_one(
            {
                "_id": run_id,
                "tokens": {"$lte": MAX_TOKENS - tokens},
                f"model_calls.{MAX_MODEL_CALLS_PER_RUN - 1}": {"$exists": False},
            },
            {"$push": {"model_calls": call}, "$inc": {"tokens": tokens, "cost": response.cost}},
        )
        if result.matched_count == 0:
            raise Missing(run_id)

    async def _call_tool(
        self,
        session_id: ObjectId,
        run_id: ObjectId,
        agent: Doc,
        request: ToolRequest,
        request_id: str,
        tools: ToolRegistry,
    ) -> Doc:
        call = await self.create_tool_call(run_id, request.name, request.arguments, request_id)
        started = time.perf_counter()
        if request.name in agent["tools"]:
            try:
                output, status = await tools.execute(request.name, request.arguments), "success"
            except Exception as exc:
                output, status = f"{type(exc).__name__}: {exc}", "error"
        else:
            output, status = f"tool {request.name!r} is not enabled", "error"
        elapsed_ms = (time.perf_counter() - started) * 1000
        await self.complete_tool_call(call["id"], output, status, elapsed_ms)
        if len(output.encode("utf-8")) > MAX_MESSAGE_BYTES:
            raise NotImplementedError("tool outputs too large for a message are not benchmarked")
        return await self.create_message(
            session_id, "tool", output, tool_call_id=call["id"], request_id=request_id
        )


def _turn_window(messages: list[Doc]) -> list[Doc]:
    """From the first user message on (the runner's turn-safe history window)."""
    for index, message in enumerate(messages):
        if message["role"] == "user":
            return messages[index:]
    return []


def _inline_size(text: str) -> int:
    """Bytes of UTF-8 charged to the run's inline budget (the benchmarks embed every payload)."""
    size = len(text.encode("utf-8"))
    if size > PAYLOAD_INLINE_MAX_BYTES:
        raise NotImplementedError("payloads stored outside the run are not benchmarked")
    return size


def _inline_only(calls: list[Doc], refs: tuple[str, ...]) -> None:
    """The check a reader makes for payloads stored outside the run (none here)."""
    if any(call.get(ref) is not None for call in calls for ref in refs):
        raise NotImplementedError("payloads stored outside the run are not benchmarked")
