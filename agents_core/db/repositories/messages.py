"""Chat history: append messages to a session and read its latest ones.

Design note: a message's place in its conversation is ``seq``, reserved with one atomic
``$inc`` on the session's ``last_seq`` before the insert, so concurrent writers on any number
of machines get 1, 2, 3, … with no duplicates (timestamps and ObjectIds are neither unique nor
monotonic across machines). Reads of the latest ``n`` messages ask for the *range*
``last_seq - n < seq <= last_seq`` rather than sort-and-limit: both are index scans on MongoDB,
but a range also stays flat on servers that sort in memory, whatever the session's length.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from agents_core.db import validation as check
from agents_core.db.client import Connection
from agents_core.db.documents import (
    Message,
    MessageDocument,
    MessageRole,
    RequestedToolCall,
    SessionDocument,
)
from agents_core.db.documents._common import utcnow
from agents_core.db.errors import NotFoundError, translate_errors
from agents_core.db.limits import RECENT_KEYS_KEPT
from agents_core.db.repositories._base import Repository, get, insert, load, load_many
from agents_core.db.repositories.tool_calls import parse_tool_call_id

__all__ = ["MessagesRepository", "latest_messages"]

_COLLECTION = "messages"
#: The session's field that remembers its latest idempotency keys.
_RECENT_KEYS = "recent_idempotency_keys"

_LAST_SEQ = {"last_seq": 1, "_id": 0}
#: How long a repeat waits for the racing first writer of its key to insert the message.
_KEYED_WAIT_S = 2.0


class MessagesRepository(Repository):
    """Append to and read from a session's history, in conversation order."""

    __slots__ = ()

    @translate_errors
    async def create(
        self,
        session_id: str | ObjectId,
        role: MessageRole | str,
        content: str,
        *,
        idempotency_key: str | None = None,
        tool_call_id: str | None = None,
        requested_tool_calls: Sequence[RequestedToolCall] = (),
        request_id: str | None = None,
    ) -> Message:
        """Append a message with the session's next ``seq`` and bump the session's ``updated_at``.

        Two commands: reserve ``seq`` (a compare-and-set on the ``last_seq`` this connection saw
        last), insert; one more (a read) on a session this connection has not seen, and one more
        (an atomic ``$inc``) when another writer appended since. With ``idempotency_key``, a
        repeat of the same key in the same session (also one racing the first) returns the
        message stored the first time, and only one ``seq`` is consumed: one more command the
        first time (look the key up), one command on a repeat.

        An ``assistant`` message records the ``requested_tool_calls`` the model asked for; a
        ``tool`` message links the ``ToolCall`` record whose output it carries (``tool_call_id``)
        and the model's request it answers (``request_id``), so the history converts to a model
        API's messages (see ``agents_core.models.chat``).
        """
        db = self.db
        sid = check.object_id(session_id, "session")
        message_role = check.enum(MessageRole, role, "role")
        body = check.text(content, "content", max_bytes=db.settings.max_message_bytes)
        key = check.optional_name(idempotency_key, "idempotency_key")
        call_id = None if tool_call_id is None else parse_tool_call_id(tool_call_id)[0]
        requested = (
            check.requested_tool_calls(
                requested_tool_calls, max_bytes=db.settings.max_message_bytes
            )
            if requested_tool_calls
            else []
        )
        answered = check.optional_name(request_id, "request_id")
        if key is not None and (existing := await _find_by_key(db, sid, key)) is not None:
            return existing
        now = utcnow()
        seq = await _reserve_seq(db, sid, now, key)
        if seq is None and key is not None:
            existing = await _wait_for_keyed(db, sid, key)
            if existing is not None:
                return existing
            seq = await _reserve_seq(db, sid, now, None)  # its first writer died: take over
        if seq is None:
            raise NotFoundError("session", sid)
        try:
            return await insert(
                db,
                MessageDocument,
                Message,
                session_id=sid,
                seq=seq,
                role=message_role,
                content=body,
                created_at=now,
                idempotency_key=key,
                tool_call_id=call_id,
                requested_tool_calls=requested,
                request_id=answered,
            )
        except DuplicateKeyError:
            # A first writer of this key that we waited for past _KEYED_WAIT_S landed after all.
            existing = None if key is None else await _find_by_key(db, sid, key)
            if existing is None:
                raise
            return existing

    @translate_errors
    async def find_by_session(self, session_id: str | ObjectId, limit: int) -> list[Message]:
        """The latest ``limit`` messages of the session, oldest first. Two commands."""
        db = self.db
        sid = check.object_id(session_id, "session")
        count = check.limit(limit)
        return await latest_messages(db, sid, await _last_seq(db, sid), count)

    @translate_errors
    async def get_last_message(self, session_id: str | ObjectId) -> Message | None:
        """The session's latest message, or ``None`` for an empty session. Two commands."""
        db = self.db
        sid = check.object_id(session_id, "session")
        latest = await latest_messages(db, sid, await _last_seq(db, sid), 1)
        return latest[-1] if latest else None


async def latest_messages(
    db: Connection, session_id: ObjectId, last_seq: int, limit: int
) -> list[Message]:
    """The latest ``limit`` messages at or below ``last_seq``, oldest first (one command).

    A second command runs only where the range has holes: an append that failed after
    reserving its ``seq``, or one still in flight.
    """
    if last_seq <= 0 or limit <= 0:
        return []
    low = max(last_seq - limit, 0)
    raws = await (
        db.collection(MessageDocument)
        .find({"session_id": session_id, "seq": {"$gt": low, "$lte": last_seq}})
        .sort("seq", ASCENDING)
        .limit(limit)
        .batch_size(limit)
        .to_list()
    )
    missing = min(limit, last_seq) - len(raws)
    if missing > 0 and low > 0:
        older = await (
            db.collection(MessageDocument)
            .find({"session_id": session_id, "seq": {"$lte": low}})
            .sort("seq", DESCENDING)
            .limit(missing)
            .batch_size(missing)
            .to_list()
        )
        raws = older[::-1] + raws
    return load_many(Message, raws, _COLLECTION)


async def _last_seq(db: Connection, session_id: ObjectId) -> int:
    raw = await get(db, SessionDocument, session_id, "session", _LAST_SEQ)
    last_seq = int(raw.get("last_seq", 0))
    db.hint_seq(session_id, last_seq)
    return last_seq


async def _reserve_seq(
    db: Connection, session_id: ObjectId, now: datetime, key: str | None
) -> int | None:
    """Take the session's next ``seq`` (``None``: no such session, or ``key`` was seen).

    Design note: a compare-and-set on the ``last_seq`` this process saw last (one ``update``
    by ``_id``), falling back to an atomic ``$inc`` (``findAndModify``) when another writer got
    there first. Both are atomic on the one session document, so concurrent writers on any
    number of machines still get 1, 2, 3, … with no duplicates. The compare-and-set is what
    keeps an append flat on servers whose ``findAndModify`` slows down with the collection's
    size (SecantusDB: 92 ms at 10,000 sessions, against ~1 ms for an ``update`` by ``_id``); on
    MongoDB both are index lookups. With a key, the reservation also remembers it among the
    session's latest keys in the same update, so racing repeats of one key reserve one ``seq``.
    """
    sessions = db.collection(SessionDocument)
    query: dict[str, Any] = {"_id": session_id}
    push: dict[str, Any] = {}
    if key is not None:
        query[_RECENT_KEYS] = {"$ne": key}
        push = {"$push": {_RECENT_KEYS: {"$each": [key], "$slice": -RECENT_KEYS_KEPT}}}
    hint = db.seq_hints.pop(session_id, None)
    if hint is None:  # never seen by this process: read it (flat on every server)
        raw = await sessions.find_one({"_id": session_id}, _LAST_SEQ)
        if raw is None:
            return None
        hint = int(raw.get("last_seq", 0))
    seq = hint + 1
    result = await sessions.update_one(
        {**query, "last_seq": hint}, {"$set": {"last_seq": seq, "updated_at": now}, **push}
    )
    if result.matched_count == 0:  # another writer appended (or the key was seen, or no session)
        reserved = await sessions.find_one_and_update(
            query,
            {"$inc": {"last_seq": 1}, "$set": {"updated_at": now}, **push},
            projection=_LAST_SEQ,
            return_document=ReturnDocument.AFTER,
        )
        if reserved is None:
            return None
        seq = int(reserved["last_seq"])
    db.hint_seq(session_id, seq)
    return seq


async def _wait_for_keyed(db: Connection, session_id: ObjectId, key: str) -> Message | None:
    """The message of a key whose ``seq`` was reserved already, once its insert has landed.

    ``None`` when the session is missing, the key is no longer remembered, or its first writer
    did not insert within ``_KEYED_WAIT_S`` (it failed midway).
    """
    existing = await _find_by_key(db, session_id, key)
    if existing is not None:
        return existing
    if (
        await db.collection(SessionDocument).find_one(
            {"_id": session_id, _RECENT_KEYS: key}, {"_id": 1}
        )
        is None
    ):
        return None
    deadline = time.monotonic() + _KEYED_WAIT_S
    delay = 0.002
    while time.monotonic() < deadline:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)
        existing = await _find_by_key(db, session_id, key)
        if existing is not None:
            return existing
    return None


async def _find_by_key(db: Connection, session_id: ObjectId, key: str) -> Message | None:
    raw = await db.collection(MessageDocument).find_one(
        {"session_id": session_id, "idempotency_key": key}
    )
    return None if raw is None else load(Message, raw, _COLLECTION)
