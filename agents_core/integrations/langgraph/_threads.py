"""Threads as people look at them: ``alist_threads`` and ``aget_thread`` (the CLI's ``threads``
and ``thread``, the trace view's ``/threads`` pages).

A thread is what its heads say: its root namespace's head (``["h", thread, ""]``) keeps the
newest checkpoint, from which the listing shows the thread's latest step; a thread's page adds
its current state (the newest checkpoint's channel values and pending writes, through
``aget_tuple``'s one ``aggregate``) and its checkpoints, newest first, a bounded ``seq`` range
at a time (``_scan``, as ``alist``).

Design notes: the listing is in thread-id order, a keyset on the heads' ``_id`` (``["h", …``,
a range of the ``_id`` index that holds heads only), so a walk over its pages sees every
thread once however threads are written meanwhile (no key of a head ever moves). The values
are shown as JSON (``jsonable``): LangChain messages as their type, text and tool calls,
pydantic models and dataclasses as their fields, anything else as its ``repr``; nothing of
them is ever run or interpreted.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bson.errors import BSONError
from langchain_core.messages import BaseMessage
from pydantic import BaseModel, ConfigDict
from pymongo.errors import PyMongoError

from agents_core.db.documents import Page, as_utc
from agents_core.db.errors import InvalidInputError
from agents_core.db.validation import limit as checked_limit
from agents_core.integrations.langgraph._documents import (
    Head,
    Row,
    head_key,
    identifier,
    thread_heads_key,
)
from agents_core.integrations.langgraph._reads import Reads
from agents_core.integrations.langgraph._store import translated

__all__ = [
    "ChannelValue",
    "CheckpointInfo",
    "PendingWriteInfo",
    "ThreadState",
    "ThreadSummary",
    "Threads",
    "jsonable",
    "readable",
]

#: The ``_id`` range of every head, and no other document: ``["h",`` up to ``["h"-``.
_HEADS_FROM = '["h",'
_HEADS_TO = '["h"-'
#: What a listing reads of a head (its newest checkpoint, not the keys of its values).
_HEAD_FIELDS = {"latest_keys": 0}
#: The channel LangGraph keeps a node's ``interrupt()`` in, among the pending writes.
INTERRUPT = "__interrupt__"
#: Deepest nesting ``jsonable`` follows (deeper: the ``repr``).
_MAX_DEPTH = 32


class ThreadRecord(BaseModel):
    """Base of what this module returns: immutable, JSON through ``json_default``."""

    model_config = ConfigDict(frozen=True)


class CheckpointInfo(ThreadRecord):
    """One checkpoint as a listing shows it (its values are in ``ThreadState``)."""

    checkpoint_id: str
    #: Its place in its namespace, in the order the saver published it (1, 2, …); ``None``
    #: for a thread's newest checkpoint as its listing shows it (read from the head's copy).
    seq: int | None
    parent_id: str | None
    #: LangGraph's metadata: the step (-1 for the input), and where it came from (``input``,
    #: ``loop``, ``update``, ``fork``).
    step: int | None
    source: str | None
    #: When LangGraph made it (its ``ts``).
    created_at: datetime | None


class ThreadSummary(ThreadRecord):
    """A thread in a listing: its id and its newest checkpoint."""

    thread_id: str
    latest: CheckpointInfo | None


class ChannelValue(ThreadRecord):
    """A channel of a thread's state: its value as JSON, and as readable text."""

    channel: str
    value: Any
    #: ``readable(value)``: a message list one message a line, anything else its JSON.
    text: str


class PendingWriteInfo(ThreadRecord):
    """A write of a task that has not become a checkpoint yet (an ``interrupt()``'s value
    among them, on channel ``__interrupt__``)."""

    task_id: str
    channel: str
    value: Any
    text: str


class ThreadState(ThreadRecord):
    """A thread: its current state, and a page of its checkpoints (newest first)."""

    thread_id: str
    #: Its namespaces: ``""`` (the graph) and its subgraphs'.
    namespaces: list[str]
    latest: CheckpointInfo | None
    #: The newest checkpoint's channel values (LangGraph's own channels left out).
    values: list[ChannelValue]
    pending_writes: list[PendingWriteInfo]
    #: Whether a node is waiting in ``interrupt()`` (a pending write on ``__interrupt__``).
    interrupted: bool
    checkpoints: list[CheckpointInfo]
    #: ``before`` of the next (older) page of checkpoints, or ``None`` on the last.
    older_before: str | None
    #: The agents-core session of the same thread id, where ``AgentsCoreCallbackHandler``
    #: records the thread's runs (``ThreadReader`` looks it up; ``None``: no run recorded).
    session_id: str | None = None


class Threads(Reads):
    """The thread listing and a thread's state, read-only."""

    async def alist_threads(
        self, *, limit: int = 50, after: str | None = None
    ) -> Page[ThreadSummary]:
        """A page of threads in thread-id order, each with its newest checkpoint: pass the
        page's ``next_cursor`` as ``after`` for the next. One command (the heads of the page's
        threads: one range of the ``_id`` index), however many threads there are.

        The order is that of the heads' keys, the JSON of the ids: code-point order for ids
        without quotes, backslashes or control characters (which JSON escapes)."""
        count = checked_limit(limit)
        start = _HEADS_FROM if after is None else head_key(_decode_cursor(after), "")
        try:
            coll, _ = await self._ready()
            docs = await (
                coll.find({"_id": {"$gt": start, "$lt": _HEADS_TO}, "ns": ""}, _HEAD_FIELDS)
                .sort("_id", 1)
                .limit(count + 1)
                .batch_size(count + 1)
                .to_list()
            )
        except (PyMongoError, BSONError) as exc:
            raise translated(exc) from exc
        threads = [
            ThreadSummary(thread_id=doc["thread_id"], latest=self._newest(doc))
            for doc in docs[:count]
        ]
        following = _encode_cursor(threads[-1].thread_id) if len(docs) > count else None
        return Page(items=threads, next_cursor=following)

    async def aget_thread(
        self, thread_id: str, *, limit: int = 20, before: str | None = None
    ) -> ThreadState | None:
        """The thread's current state and ``limit`` of its checkpoints (of its graph's
        namespace), newest first, those older than checkpoint ``before`` if given; ``None`` for
        a thread that does not exist. Three commands (its heads, its newest checkpoint with its
        values, a ``seq`` range of checkpoints), one more with ``before``, more only where the
        range holds checkpoints pruned or never published."""
        thread = identifier(thread_id, "thread_id")
        count = checked_limit(limit)
        before_id = None if before is None else identifier(before, "before")
        try:
            coll, chunks = await self._ready()
            heads = await coll.find({"k": thread_heads_key(thread)}, _HEAD_FIELDS).to_list()
            root = next((doc for doc in heads if doc["ns"] == ""), None)
            if root is None:
                return None
            latest = await self._latest_tuple(coll, chunks, thread, "")
            rows: list[Row] = []
            async for row in self._scan(coll, thread, "", Head.of(root), before_id, count + 1):
                rows.append(row)
                if len(rows) > count:
                    break
        except (PyMongoError, BSONError) as exc:
            raise translated(exc) from exc
        values: list[ChannelValue] = []
        pending: list[PendingWriteInfo] = []
        if latest is not None:
            for channel, value in sorted(latest.checkpoint["channel_values"].items()):
                if not _internal(channel):
                    shown = jsonable(value)
                    values.append(ChannelValue(channel=channel, value=shown, text=readable(shown)))
            for task_id, channel, value in latest.pending_writes or ():
                shown = jsonable(value)
                pending.append(
                    PendingWriteInfo(
                        task_id=task_id, channel=channel, value=shown, text=readable(shown)
                    )
                )
        checkpoints = [_info(row.doc, row.checkpoint, row.metadata) for row in rows[:count]]
        return ThreadState(
            thread_id=thread,
            namespaces=sorted(doc["ns"] for doc in heads),
            latest=self._newest(root),
            values=values,
            pending_writes=pending,
            interrupted=any(write.channel == INTERRUPT for write in pending),
            checkpoints=checkpoints,
            older_before=checkpoints[-1].checkpoint_id if len(rows) > count else None,
        )

    def _newest(self, head: Mapping[str, Any]) -> CheckpointInfo | None:
        """The newest checkpoint a head keeps a copy of (``None``: pruned away)."""
        latest = head.get("latest")
        if latest is None:
            return None
        row = self._row(str(head["thread_id"]), str(head["ns"]), latest)
        return _info(latest, row.checkpoint, row.metadata)


def _info(doc: Mapping[str, Any], checkpoint: Mapping[str, Any], metadata: Any) -> CheckpointInfo:
    step = metadata.get("step") if isinstance(metadata, Mapping) else None
    source = metadata.get("source") if isinstance(metadata, Mapping) else None
    return CheckpointInfo(
        checkpoint_id=str(doc["checkpoint_id"]),
        seq=int(doc["seq"]) if "seq" in doc else None,
        parent_id=doc.get("parent_id"),
        step=step if isinstance(step, int) and not isinstance(step, bool) else None,
        source=source if isinstance(source, str) else None,
        created_at=_timestamp(checkpoint.get("ts")),
    )


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def _internal(channel: str) -> bool:
    """LangGraph's own channels (``__start__``, ``branch:to:node``, …), not the graph's
    state."""
    return channel.startswith(("__", "branch:"))


def _encode_cursor(thread: str) -> str:
    return base64.urlsafe_b64encode(thread.encode("utf-8")).decode("ascii").rstrip("=")


def _decode_cursor(cursor: object) -> str:
    if isinstance(cursor, str) and cursor.isascii():
        try:
            decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
        else:
            if _encode_cursor(decoded) == cursor:
                return decoded
    raise InvalidInputError("after", "is not a cursor a thread listing returned")


# ---------------------------------------------------------------------------------------------
# Values as JSON, and as text


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` (a channel value of LangGraph's serializer) as JSON: LangChain messages as
    ``{"type", "content", …}`` (their name, tool calls, tool call id and status when they have
    them), pydantic models and dataclasses as their fields, mappings and sequences item by
    item; a float that JSON cannot hold, bytes, and anything else as text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth >= _MAX_DEPTH:
        return _repr(value)
    if isinstance(value, BaseMessage):
        return _message(value, depth)
    if isinstance(value, BaseModel):
        try:
            return jsonable(value.model_dump(mode="json"), depth + 1)
        except Exception:  # a model whose fields do not dump: its text
            return _repr(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        return jsonable(fields, depth + 1)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item, depth + 1) for item in value]
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, datetime):
        return value.isoformat()
    return _repr(value)


def _message(message: BaseMessage, depth: int) -> dict[str, Any]:
    shown: dict[str, Any] = {"type": message.type, "content": jsonable(message.content, depth)}
    if message.name:
        shown["name"] = message.name
    for field in ("tool_calls", "tool_call_id", "status"):
        found = getattr(message, field, None)
        if found and not (field == "status" and found == "success"):
            shown[field] = jsonable(found, depth + 1)
    return shown


def _repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a repr that raises: its type
        return f"<{type(value).__name__}>"


def readable(value: Any) -> str:
    """A JSON value (``jsonable``'s) as text: a list of messages one message a line (``human:
    Where is my order?``, ``ai: lookup_order({"id": "42"})``), anything else as JSON."""
    if isinstance(value, list) and value and all(_is_message(item) for item in value):
        return "\n".join(_message_line(item) for item in value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2)


def _is_message(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("type"), str) and "content" in value


def _message_line(message: Mapping[str, Any]) -> str:
    text = _content_text(message["content"])
    calls = message.get("tool_calls") or []
    asked = ", ".join(
        f"{call.get('name')}({json.dumps(call.get('args'), ensure_ascii=False)})"
        for call in calls
        if isinstance(call, Mapping)
    )
    said = " ".join(part for part in (text, asked) if part)
    return f"{message['type']}: {said}"


def _content_text(content: Any) -> str:
    """A message's content as text: its text parts joined (a part of another kind by its
    type)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                text = part.get("text")
                parts.append(text if isinstance(text, str) else f"[{part.get('type', 'part')}]")
        return " ".join(parts)
    return json.dumps(content, ensure_ascii=False)
