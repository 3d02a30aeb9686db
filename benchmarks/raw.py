"""The raw side of every benchmark: the leanest ``pymongo.AsyncMongoClient`` code doing the
repositories' work.

Each method sends exactly the commands of the matching repository method (same filters,
updates, projections, cursor options and server-side guards, such as a run's inline-payload
budget), keeps the same not-found checks, and returns the server's dicts instead of models.
It knows its server as the layer does (``agents_core.db.server``): on MongoDB a write that
returns its document is one ``findAndModify``; on SecantusDB, ``update`` and ``find``.
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
from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from agents_core.db import MessageDocument, ModelCall, RunDocument, SessionDocument, ToolCall
from agents_core.db.documents import SESSION_PROJECTION, bucket_of
from agents_core.db.limits import MAX_MODEL_CALLS_PER_RUN
from agents_core.db.server import MONGODB, ServerProfile
from agents_core.runner import ModelResponse, ToolRegistry

__all__ = ["Doc", "Missing", "RawLayer", "RawModel", "latest_filter"]

Doc = dict[str, Any]

#: The layer's default limits (``agents_core.db.Settings``), as a raw program would hard-code them.
MAX_TOOLS_PER_AGENT = 256
MAX_TOOL_CALLS_PER_RUN = 1_000
PAYLOAD_INLINE_MAX_BYTES = 64 * 1024
RUN_INLINE_BUDGET_BYTES = 8 * 1024 * 1024
MAX_TOKENS = 2**63 - 1
MAX_MESSAGE_BYTES = 1024 * 1024

#: Sessions keep fields only the layer uses (their latest idempotency keys, a deletion's
#: progress), which reads leave on the server: the layer's one projection of a session.
_SESSION = SESSION_PROJECTION

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

    def __init__(self, db: AsyncDatabase[Doc], *, profile: ServerProfile = MONGODB) -> None:
        self.db = db
        self.profile = profile
        self.agents = db["agents"]
        self.sessions = db["sessions"]
        self.messages = db["messages"]
        self.runs = db["runs"]
        self.run_days = db["run_days"]
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

    async def _reserve_seq(self, session_id: ObjectId, now: datetime, count: int = 1) -> int:
        """``$inc`` (SecantusDB: a compare-and-set on the last seen ``last_seq``, else
        ``$inc``), as the layer does; the last seq of the ``count`` reserved."""
        if not self.profile.seq_compare_and_set:
            return await self._inc_seq(session_id, now, count)
        hint = self.seq_hints.pop(session_id, None)
        if hint is None:
            raw = await self.sessions.find_one({"_id": session_id, **_VISIBLE}, _LAST_SEQ)
            if raw is None:
                raise Missing(session_id)
            hint = int(raw.get("last_seq", 0))
        result = await self.sessions.update_one(
            {"_id": session_id, **_VISIBLE, "last_seq": hint},
            {"$set": {"last_seq": hint + count}, "$max": {"updated_at": now}},
        )
        seq = hint + count
        if result.matched_count == 0:
            seq = await self._inc_seq(session_id, now, count)
        self.seq_hints[session_id] = seq
        return seq

    async def _inc_seq(self, session_id: ObjectId, now: datetime, count: int) -> int:
        reserved = await self.sessions.find_one_and_update(
            {"_id": session_id, **_VISIBLE},
            {"$inc": {"last_seq": count}, "$max": {"updated_at": now}},
            projection=_LAST_SEQ,
            return_document=ReturnDocument.AFTER,
        )
        if reserved is None:
            raise Missing(session_id)
        return int(reserved["last_seq"])

    async def find_by_session(self, session_id: ObjectId, limit: int) -> list[Doc]:
        return await self.latest_messages(session_id, *await self._bounds(session_id), limit)

    async def get_last_message(self, session_id: ObjectId) -> Doc | None:
        latest = await self.latest_messages(session_id, *await self._bounds(session_id), 1)
        return latest[-1] if latest else None

    async def latest_messages(
        self,
        session_id: ObjectId,
        last_seq: int,
        floor: int,
        limit: int,
        first: list[Doc] | None = None,
    ) -> list[Doc]:
        """Bounded ranges newest first, sorted here; skips popped messages and unfinished
        batches, and widens the range over them (as ``visible_range``). ``first``: the first
        range's messages, read already."""
        present: set[int] = set()
        shown: list[Doc] = []
        high, window = last_seq, limit
        while high > floor and len(shown) < limit:
            low = max(high - window, floor)
            if first is not None:
                raws, first = first, None
            else:
                raws = await (
                    self.messages.find(
                        {"session_id": session_id, "seq": {"$gt": low, "$lte": high}}
                    )
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
        return await self._update_and_read(
            self.runs,
            {"_id": run_id, "tokens": {"$lte": MAX_TOKENS - tokens}},
            {"$inc": {"tokens": tokens, "cost": cost}},
        )

    async def complete_run(
        self,
        run_id: ObjectId,
        status: str,
        error: str | None = None,
        model_call: Doc | None = None,
    ) -> Doc:
        query: Doc = {"_id": run_id, "status": "running"}
        update: Doc = {"$set": {"status": status, "error": error, "completed_at": _now()}}
        if model_call is not None:
            tokens = model_call["input_tokens"] + model_call["output_tokens"]
            query |= {
                "tokens": {"$lte": MAX_TOKENS - tokens},
                f"model_calls.{MAX_MODEL_CALLS_PER_RUN - 1}": {"$exists": False},
            }
            update |= {
                "$push": {"model_calls": model_call, "call_order": "model"},
                "$inc": {"tokens": tokens, "cost": model_call["cost"]},
            }
        run = await self._update_and_read(self.runs, query, update)
        await self.run_days.bulk_write(_day_totals(run), ordered=False)
        return run

    async def _update_and_read(
        self,
        collection: AsyncCollection[Doc],
        query: Doc,
        update: Doc,
        projection: Doc | None = None,
        array_filters: list[Doc] | None = None,
    ) -> Doc:
        """One ``findAndModify`` (SecantusDB: ``update``, then ``find`` by ``_id``)."""
        if self.profile.read_back_writes:
            result = await collection.update_one(query, update, array_filters=array_filters)
            found = None
            if result.matched_count:
                found = await collection.find_one({"_id": query["_id"]}, projection)
        else:
            found = await collection.find_one_and_update(
                query,
                update,
                projection,
                array_filters=array_filters,
                return_document=ReturnDocument.AFTER,
            )
        if found is None:
            raise Missing(query["_id"])
        return found

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
        update: Doc = {
            "$push": {"tool_calls": {"$each": [call]}, "call_order": {"$each": ["tool"]}}
        }
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
        query, update = _completion(call_id, output, status, duration_ms, _now())
        projection = {"_id": 0, "tool_calls": {"$elemMatch": {"id": call_id}}}
        raw = await self._update_and_read(
            self.runs, query, update, projection, array_filters=[{"call.id": call_id}]
        )
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
        session, agent = await self.find_session_and_agent(session_id, history_limit)
        if agent is None:
            raise Missing(session["active_agent_id"])
        history = _turn_window(session["messages"])
        history.append(await self.create_message(session_id, "user", user_input))
        user_seq = history[-1]["seq"]
        run = self.run_document(session_id, agent["_id"])
        run["input_seq"] = user_seq
        await self._insert_run(run)
        try:
            for step in range(max_steps):
                started_at, started = _now(), time.perf_counter()
                response = await model(agent, history)
                call = _model_call(response, started_at, started, history[-1]["seq"])
                requests = [
                    request.id or f"call_{user_seq}_{step}_{n}"
                    for n, request in enumerate(response.tool_calls)
                ]
                if not requests:
                    if response.text:
                        history.append(
                            await self.create_message(session_id, "assistant", response.text)
                        )
                    return await self.complete_run(run["_id"], "completed", model_call=call)
                history += await self._tool_step(
                    session_id, run["_id"], agent, call, response, requests, tools
                )
            return await self.complete_run(run["_id"], "failed", f"step limit: {max_steps}")
        except Exception as exc:
            await self.complete_run(run["_id"], "failed", f"{type(exc).__name__}: {exc}")
            raise

    async def find_session_and_agent(
        self, session_id: ObjectId, limit: int
    ) -> tuple[Doc, Doc | None]:
        """The session with its latest messages and its agent: one aggregate (SecantusDB:
        three finds)."""
        if self.profile.separate_reads:
            session = await self.find_session(session_id, limit)
            agent = await self.agents.find_one({"_id": session["active_agent_id"]})
            return session, agent
        low = {"$max": ["$cleared_through_seq", {"$subtract": ["$last_seq", limit]}]}
        in_range = {"$and": [{"$gt": ["$seq", "$$low"]}, {"$lte": ["$seq", "$$top"]}]}
        pipeline: list[Doc] = [
            {"$match": {"_id": session_id, **_VISIBLE}},
            {"$project": _SESSION},
            {
                "$lookup": {
                    "from": "agents",
                    "localField": "active_agent_id",
                    "foreignField": "_id",
                    "as": "agent",
                }
            },
            {
                "$lookup": {
                    "from": "messages",
                    "let": {"top": "$last_seq", "low": low},
                    "pipeline": [{"$match": {"session_id": session_id, "$expr": in_range}}],
                    "as": "messages",
                }
            },
        ]
        found = await (await self.sessions.aggregate(pipeline)).to_list()
        if not found:
            raise Missing(session_id)
        session = found[0]
        agents = session.pop("agent")
        session["messages"] = await self.latest_messages(
            session_id,
            session["last_seq"],
            session.get("cleared_through_seq", 0),
            limit,
            first=session["messages"],
        )
        return session, agents[0] if agents else None

    async def _tool_step(
        self,
        session_id: ObjectId,
        run_id: ObjectId,
        agent: Doc,
        model_call: Doc,
        response: ModelResponse,
        request_ids: list[str],
        tools: ToolRegistry,
    ) -> list[Doc]:
        """The answer (reserve, insert), the model call with its pending tool calls (one
        update), the tools, their ends (one update with a statement each), the results (one
        batch)."""
        requests = response.tool_calls
        answer = await self.create_message(
            session_id,
            "assistant",
            response.text or "",
            requested=[
                {"id": request_id, "name": request.name, "arguments": request.arguments}
                for request, request_id in zip(requests, request_ids, strict=True)
            ],
        )
        calls = [
            self.tool_call_document(run_id, request.name, request.arguments)
            | {"request_id": request_id}
            for request, request_id in zip(requests, request_ids, strict=True)
        ]
        size = sum(_inline_size(call["input"]) for call in calls)
        tokens = model_call["input_tokens"] + model_call["output_tokens"]
        result = await self.runs.update_one(
            {
                "_id": run_id,
                "status": "running",
                f"tool_calls.{MAX_TOOL_CALLS_PER_RUN - len(calls)}": {"$exists": False},
                "inline_bytes": {"$lte": RUN_INLINE_BUDGET_BYTES - size},
                "tokens": {"$lte": MAX_TOKENS - tokens},
                f"model_calls.{MAX_MODEL_CALLS_PER_RUN - 1}": {"$exists": False},
            },
            {
                "$push": {
                    "tool_calls": {"$each": calls},
                    "call_order": {"$each": ["model", *["tool"] * len(calls)]},
                    "model_calls": model_call,
                },
                "$inc": {"inline_bytes": size, "tokens": tokens, "cost": model_call["cost"]},
            },
        )
        if result.matched_count == 0:
            raise Missing(run_id)
        statements = []
        messages: list[Doc] = []
        for call, request, request_id in zip(calls, requests, request_ids, strict=True):
            began, started = _now(), time.perf_counter()
            if request.name in agent["tools"]:
                try:
                    output = await tools.execute(request.name, request.arguments)
                    status = "success"
                except Exception as exc:
                    output, status = f"{type(exc).__name__}: {exc}", "error"
            else:
                output, status = f"tool {request.name!r} is not enabled", "error"
            elapsed_ms = (time.perf_counter() - started) * 1000
            if len(output.encode("utf-8")) > MAX_MESSAGE_BYTES:
                raise NotImplementedError(
                    "tool outputs too large for a message are not benchmarked"
                )
            query, update = _completion(call["id"], output, status, elapsed_ms, _now(), began)
            statements.append(UpdateOne(query, update, array_filters=[{"call.id": call["id"]}]))
            messages.append(
                {"role": "tool", "content": output, "tool_call_id": call["id"]}
                | {"request_id": request_id}
            )
        await self.runs.bulk_write(statements, ordered=False)
        return [answer, *await self.create_messages(session_id, messages)]

    async def create_messages(self, session_id: ObjectId, messages: list[Doc]) -> list[Doc]:
        """``messages`` (role, content and links) as one batch: one reservation, one insert."""
        now = _now()
        end = await self._reserve_seq(session_id, now, len(messages))
        first = end - len(messages) + 1
        documents = [
            self.message_document(session_id, first + n, m["role"], m["content"], now)
            | m
            | {"batch_end_seq": end if len(messages) > 1 else None}
            for n, m in enumerate(messages)
        ]
        await self.messages.insert_many(documents, ordered=True)
        return documents


def _day_totals(run: Doc) -> list[UpdateOne]:
    """What the finished ``run`` adds to ``run_days``, as ``StatsRepository`` keeps it: ``$inc``
    upserts of its day (all runs, its agent, each model, each tool; a duration histogram)."""
    day = run["started_at"].date().isoformat()
    changes: dict[str, Doc] = {}

    def add(dimension: str, key: str, **inc: float) -> None:
        entry = changes.setdefault(f"{day}/{dimension}/{key}", {})
        for name, amount in inc.items():
            if amount:
                entry[name] = entry.get(name, 0) + amount

    def timed(dimension: str, key: str, ms: float | None) -> None:
        if ms is not None and ms >= 0:
            add(dimension, key, timed=1, ms=float(ms), **{f"hist.{bucket_of(ms)}": 1})

    took = (run["completed_at"] - run["started_at"]).total_seconds() * 1000
    for dimension, key in (("all", ""), ("agent", str(run["agent_id"]))):
        failed = int(run["status"] == "failed")
        add(dimension, key, runs=1, failed=failed, tokens=run["tokens"], cost=run["cost"])
        timed(dimension, key, took)
    for call in run["model_calls"]:
        add(
            "model",
            call["model"],
            calls=1,
            errors=int(call["status"] == "error"),
            tokens=call["input_tokens"] + call["output_tokens"],
            cost=call["cost"],
        )
        timed("model", call["model"], call["duration_ms"])
    for call in run["tool_calls"]:
        add("tool", call["tool_name"], calls=1, errors=int(call["status"] == "error"))
        timed("tool", call["tool_name"], call["duration_ms"])
    operations = []
    for key, inc in changes.items():
        day_, dimension, name = key.split("/", 2)
        on_insert = {"day": day_, "dimension": dimension, "key": name}
        operations.append(
            UpdateOne({"_id": key}, {"$inc": inc, "$setOnInsert": on_insert}, upsert=True)
        )
    return operations


def _model_call(
    response: ModelResponse, started_at: datetime, started: float, history_seq: int
) -> Doc:
    usage = response.usage
    return {
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
        "history_seq": history_seq,
    }


def _completion(
    call_id: str,
    output: str,
    status: str,
    duration_ms: float,
    now: datetime,
    started_at: datetime | None = None,
) -> tuple[Doc, Doc]:
    """The filter and update that complete a pending call (``arrayFilters``: ``call.id``)."""
    size = _inline_size(output)
    fields: Doc = {"status": status, "completed_at": now, "duration_ms": duration_ms}
    if started_at is not None:
        fields["started_at"] = started_at
    fields["output"] = output
    query: Doc = {
        "_id": ObjectId(call_id[:24]),
        "tool_calls": {"$elemMatch": {"id": call_id, "status": "pending"}},
    }
    update: Doc = {"$set": {f"tool_calls.$[call].{name}": value for name, value in fields.items()}}
    if size:
        query["inline_bytes"] = {"$lte": RUN_INLINE_BUDGET_BYTES - size}
        update["$inc"] = {"inline_bytes": size}
    return query, update


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
