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
import contextlib
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, PyMongoError

from agents_core.db import validation as check
from agents_core.db._items import ESCAPED, decode_item
from agents_core.db.client import Connection
from agents_core.db.documents import (
    Message,
    MessageDocument,
    MessageRole,
    NewMessage,
    RequestedToolCall,
    SessionDocument,
    utcnow,
)
from agents_core.db.errors import InvalidInputError, NotFoundError, translate_errors
from agents_core.db.limits import RECENT_KEYS_KEPT
from agents_core.db.repositories._base import (
    Repository,
    by_id,
    get,
    insert,
    load,
    load_many,
    stored_defaults,
)
from agents_core.db.repositories.batches import whole_batches
from agents_core.db.repositories.search import SearchResult, search_messages
from agents_core.db.repositories.tool_calls import parse_tool_call_id

__all__ = ["MessagesRepository", "latest_messages"]


_COLLECTION = "messages"
#: The session's field that remembers its latest idempotency keys.
_RECENT_KEYS = "recent_idempotency_keys"

_LAST_SEQ = {"last_seq": 1, "_id": 0}
#: What a reader needs of a session: the newest ``seq`` reserved and the cleared floor.
_BOUNDS = {"last_seq": 1, "cleared_through_seq": 1, "_id": 0}
#: What ``find_items`` reads of a message.
_ITEM_FIELDS = {
    "_id": 0,
    "seq": 1,
    "batch_end_seq": 1,
    "popped_at": 1,
    "item": 1,
    ESCAPED: 1,
    "role": 1,
    "content": 1,
}
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

        Two commands: reserve ``seq`` (an atomic ``$inc``), insert. On SecantusDB the
        reservation is a compare-and-set on the ``last_seq`` this connection saw last, with one
        more command (a read) on a session this connection has not seen, and one more (the
        ``$inc``) when another writer appended since. With ``idempotency_key``, a
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
    async def create_batch(
        self, session_id: str | ObjectId, messages: Sequence[NewMessage]
    ) -> list[Message]:
        """Append ``messages`` in order, as ``create`` appends each, as one batch.

        Two commands whatever their number: one reservation of a contiguous ``seq`` range for
        them all (as ``create``'s reservation: on SecantusDB a compare-and-set, with its extra
        commands), then one ordered insert, the batch's last message last. Readers show the
        batch only once its last message exists, as ``append_items``'s batches (a batch of one
        is a plain message). Every message is checked before anything is written. No
        idempotency keys: a caller that may retry appends with ``create`` and a key.
        """
        db = self.db
        sid = check.object_id(session_id, "session")
        if isinstance(messages, Mapping) or not isinstance(messages, Sequence):
            raise InvalidInputError("messages", "must be a list of NewMessage")
        max_bytes = db.settings.max_message_bytes
        fields: list[dict[str, Any]] = []
        for message in messages:
            if not isinstance(message, NewMessage):
                raise InvalidInputError("messages", "must hold NewMessage tuples")
            requested = message.requested_tool_calls
            fields.append(
                {
                    "role": check.enum(MessageRole, message.role, "role").value,
                    "content": check.text(message.content, "content", max_bytes=max_bytes),
                    "tool_call_id": None
                    if message.tool_call_id is None
                    else parse_tool_call_id(message.tool_call_id)[0],
                    "requested_tool_calls": check.requested_tool_calls(
                        requested, max_bytes=max_bytes
                    )
                    if requested
                    else [],
                    "request_id": check.optional_name(message.request_id, "request_id"),
                }
            )
        if not fields:
            return []
        now = utcnow()
        end = await _reserve_seq(db, sid, now, None, count=len(fields))
        if end is None:
            raise NotFoundError("session", sid)
        first = end - len(fields) + 1
        batch_end = end if len(fields) > 1 else None
        defaults = stored_defaults(MessageDocument)
        documents = [
            {
                **defaults,
                "_id": ObjectId(),
                "session_id": sid,
                "seq": first + offset,
                "created_at": now,
                "batch_end_seq": batch_end,
                **checked,
            }
            for offset, checked in enumerate(fields)
        ]
        created = [Message.model_validate(document) for document in documents]
        await _insert_batch(db.collection(MessageDocument), sid, documents)
        return created

    @translate_errors
    async def find_by_session(self, session_id: str | ObjectId, limit: int) -> list[Message]:
        """The latest ``limit`` messages of the session, oldest first. Two commands."""
        db = self.db
        sid = check.object_id(session_id, "session")
        count = check.limit(limit)
        top, floor = await _bounds(db, sid)
        return await latest_messages(db, sid, top, count, floor=floor)

    @translate_errors
    async def get_last_message(self, session_id: str | ObjectId) -> Message | None:
        """The session's latest message, or ``None`` for an empty session. Two commands."""
        db = self.db
        sid = check.object_id(session_id, "session")
        top, floor = await _bounds(db, sid)
        latest = await latest_messages(db, sid, top, 1, floor=floor)
        return latest[-1] if latest else None

    # -----------------------------------------------------------------------------------------
    # Framework items: batches, exact items, pop and clear (what framework adapters use)

    @translate_errors
    async def append_items(
        self,
        session_id: str | ObjectId,
        items: Sequence[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> list[Message]:
        """Append ``items`` (JSON objects, kept exactly) as one batch of messages.

        Two commands: reserve a contiguous ``seq`` range for the whole batch (one atomic
        ``$inc`` of the session's ``last_seq`` by ``len(items)``), so concurrent batches never
        interleave; then one ordered insert writes the batch, its last message last. On
        SecantusDB the reservation is a compare-and-set as in ``create``, with the same extra
        commands on a session this connection has not seen or another writer appended to.
        Readers show a batch only once its
        last message exists: never part of a batch, and nothing of a batch whose insert failed
        (its reserved ``seq`` range stays a hole). An insert cut off by a network error is
        completed once (the missing messages of the same range), so a retry inside the call
        never duplicates. Each message also carries the item's role, type, call id and
        readable text (``content``) for our own views. Items are checked before anything is
        written (``InvalidInputError``: not a JSON object, not storable exactly, a lone
        surrogate, or more than ``MAX_ITEM_BYTES`` stored).

        A ``DatabaseUnavailableError`` does not say whether the batch was stored: the server may
        have written it and then failed to answer. ``idempotency_key`` makes the retry safe: a
        repeat of the same key in the same session (also one racing the first) returns the
        batch stored the first time and stores nothing more. The key is stored on the batch's
        last message, so it is found only once the whole batch is there. One more command the
        first time (look the key up), two on a repeat (the key, then the batch); a repeat with a
        batch of another length is refused (``InvalidInputError``, field ``idempotency_key``).
        Keys are shared with ``create``: a key names one message or one batch in a session.
        """
        db = self.db
        sid = check.object_id(session_id, "session")
        fields = check.items(items)
        key = check.optional_name(idempotency_key, "idempotency_key")
        if not fields:
            return []
        count = len(fields)
        if key is not None and (existing := await _keyed_batch(db, sid, key, count)) is not None:
            return existing
        now = utcnow()
        end = await _reserve_seq(db, sid, now, key, count=count)
        if end is None and key is not None:
            landed = await _wait_for_keyed(db, sid, key)
            if landed is not None:
                return await _batch_ending(db, sid, landed.seq, count)
            end = await _reserve_seq(db, sid, now, None, count=count)  # its writer died: take over
        if end is None:
            raise NotFoundError("session", sid)
        first = end - count + 1
        defaults = stored_defaults(MessageDocument)
        documents = [
            {
                **defaults,
                **item,
                "_id": ObjectId(),
                "session_id": sid,
                "seq": first + offset,
                "created_at": now,
                "batch_end_seq": end,
            }
            for offset, item in enumerate(fields)
        ]
        documents[-1]["idempotency_key"] = key
        try:
            await _insert_batch(db.collection(MessageDocument), sid, documents)
        except BulkWriteError as exc:
            # The first writer of this key, which we took over from, landed after all.
            existing = (
                None
                if key is None or not _duplicate(exc)
                else (await _keyed_batch(db, sid, key, count))
            )
            if existing is None:
                raise
            return existing
        shown = [
            {**document, "item": dict(item)} if document[ESCAPED] else document
            for document, item in zip(documents, items, strict=True)
        ]
        return load_many(Message, shown, _COLLECTION)

    @translate_errors
    async def find_items(
        self, session_id: str | ObjectId, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The items of the latest ``limit`` visible messages (``None``: all), oldest first,
        exactly as appended; a message appended without an item reads as
        ``{"role": ..., "content": ...}``.

        Two commands (the session's bounds, one ``seq`` range), more where the range holds
        messages no reader may see (see ``visible_range``). ``NotFoundError`` for no session.
        """
        db = self.db
        sid = check.object_id(session_id, "session")
        if limit is not None:
            limit = check.count(limit, "limit")
            if limit == 0:
                return []
        top, floor = await _bounds(db, sid)
        raws = await visible_range(db, sid, top, floor, limit, _ITEM_FIELDS)
        return [_item_of(raw) for raw in raws]

    @translate_errors
    async def pop_last(self, session_id: str | ObjectId) -> Message | None:
        """Remove and return the newest visible message (``None``: nothing to pop).

        Three commands: the session's bounds, the newest visible message, and a
        compare-and-set that marks it popped only if nobody did (``popped_at`` unset). Two
        concurrent pops never return the same message (the loser reads again and takes the
        next one), and an append racing a pop is never lost: a pop only ever marks the one
        message it read. A popped message stays stored (a batch's last message is what makes
        the rest of its batch visible) and is never shown again; ``clear`` removes it.
        """
        db = self.db
        sid = check.object_id(session_id, "session")
        messages = db.collection(MessageDocument)
        while True:
            top, floor = await _bounds(db, sid)
            newest = await visible_range(db, sid, top, floor, 1)
            if not newest:
                return None
            raw = newest[0]
            now = utcnow()
            claimed = await messages.update_one(
                {"_id": raw["_id"], "session_id": sid, "popped_at": None},
                {"$set": {"popped_at": now}},
            )
            if claimed.modified_count == 1:
                raw["popped_at"] = now
                return load(Message, raw, _COLLECTION)

    @translate_errors
    async def clear(self, session_id: str | ObjectId) -> int:
        """Empty the session's history; returns the floor (the ``seq`` cleared through).

        The history is empty for every reader once the session's ``cleared_through_seq``
        (raised with ``$max`` to the ``last_seq`` just read) is set: readers never look at or
        below it. Later appends continue above it, so no ``seq`` is ever reused. The messages
        at or below the floor are then deleted (one bounded range); that clean-up is best
        effort: if it is interrupted, nothing shows, and the next ``clear`` removes them.
        Three commands (read, raise the floor, delete); two on an empty history.
        """
        db = self.db
        sid = check.object_id(session_id, "session")
        top, floor = await _bounds(db, sid)
        if top > floor:
            await db.collection(SessionDocument).update_one(
                by_id(SessionDocument, sid),
                {"$max": {"cleared_through_seq": top, "updated_at": utcnow()}},
            )
        # Best effort: the floor hides these already, and the next clear retries the clean-up.
        with contextlib.suppress(PyMongoError):
            await db.collection(MessageDocument).delete_many(
                {"session_id": sid, "seq": {"$lte": top}}
            )
        return max(top, floor)

    @translate_errors
    async def search(
        self,
        phrase: str,
        *,
        user_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 20,
    ) -> SearchResult:
        """The newest messages (at most ``limit``) that contain ``phrase``, with their sessions.

        The phrase is text, matched case-insensitively as whole words, any whitespace between
        its words; ``user_id`` keeps the sessions of that user (the 1,000 most recently
        active), ``since``/``until`` the messages created in that range (both included). With
        a text index (MongoDB) a ``$text`` query for its words, each match confirmed; without
        one (SecantusDB, the in-memory mock) a scan of the newest messages, in windows of
        ``created_at`` (for a user: the messages of their most recently active sessions). Either
        way it looks at most at ``MAX_SCANNED`` messages: ``SearchResult.method`` says which
        way, ``searched_since`` since when everything was searched when that bound stopped it
        (``agents_core/db/repositories/search.py``). Only what every reader shows is returned
        (visible sessions, nothing cleared or popped, no part of an unfinished batch).
        """
        return await search_messages(
            self.db, phrase, user_id=user_id, since=since, until=until, limit=limit
        )

    @translate_errors
    async def find_page(
        self,
        session_id: str | ObjectId,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """A page of the session's history, oldest first, strictly between ``after`` and ``before``.

        With ``after``, the oldest ``limit`` messages after it (the next page forward is
        ``after=page[-1].seq``); otherwise the newest ``limit`` before ``before`` (or the latest
        ones; the previous page is ``before=page[0].seq``). Two commands (the session's
        bounds, then one bounded ``seq`` range), whatever the session's length: the range
        is widened (one command each time, doubling) only across holes that failed appends left.
        Shows what every reader shows (``visible_range``): nothing cleared or popped, no part of
        an unfinished batch (one more command when a page holds a batch whose last message is
        beyond it).
        """
        db = self.db
        sid = check.object_id(session_id, "session")
        low = None if after is None else check.count(after, "after")
        high = None if before is None else check.count(before, "before")
        count = check.limit(limit)
        if low is not None and high is not None and low >= high:
            raise InvalidInputError("after", "must be below before")
        last, floor = await _bounds(db, sid)
        top = last if high is None else min(last, high - 1)  # inclusive
        bottom = floor if low is None else max(low, floor)  # exclusive
        if top <= bottom:
            return []
        return await _page(db, sid, bottom, top, count, forward=low is not None)


async def _page(
    db: Connection, session_id: ObjectId, bottom: int, top: int, limit: int, *, forward: bool
) -> list[Message]:
    """Up to ``limit`` messages with ``bottom < seq <= top``: the oldest if ``forward``, else
    the newest; oldest first. Each command reads a window of ``seq`` at most twice as wide as
    the last, so the server never examines more than about twice what holes hide."""
    collection = db.collection(MessageDocument)
    found: list[dict[str, Any]] = []
    width = limit
    low, high = (bottom, min(bottom + width, top)) if forward else (max(top - width, bottom), top)
    while True:
        need = limit - len(found)
        raws = await (
            collection.find(
                {"session_id": session_id, "seq": {"$gt": low, "$lte": high}, "popped_at": None}
            )
            .sort("seq", ASCENDING if forward else DESCENDING)
            .limit(need)
            .batch_size(need)
            .to_list()
        )
        found.extend(await whole_batches(collection, session_id, raws))
        if len(found) >= limit:
            break
        if raws and len(raws) == need:  # some were hidden and the window holds more: read on
            if forward:
                low = raws[-1]["seq"]
            else:
                high = raws[-1]["seq"] - 1
            continue
        if high >= top if forward else low <= bottom:
            break
        width *= 2
        low, high = (high, min(high + width, top)) if forward else (max(low - width, bottom), low)
    if not forward:
        found.reverse()
    return load_many(Message, [_readable(raw) for raw in found], _COLLECTION)


async def latest_messages(
    db: Connection, session_id: ObjectId, last_seq: int, limit: int, *, floor: int = 0
) -> list[Message]:
    """The latest ``limit`` visible messages in ``(floor, last_seq]``, oldest first.

    One command (a range of ``limit`` seqs); more only where that range holds messages no
    reader may see (see ``visible_range``).
    """
    raws = await visible_range(db, session_id, last_seq, floor, limit)
    return load_many(Message, raws, _COLLECTION)


async def visible_range(
    db: Connection,
    session_id: ObjectId,
    top: int,
    floor: int,
    limit: int | None,
    projection: Mapping[str, Any] | None = None,
    *,
    first: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The latest ``limit`` (``None``: all) visible messages with ``floor < seq <= top``,
    oldest first, as stored but with items as appended (field names unescaped).

    Visible: not popped, and, for a message of a batch, the batch's last message exists (it
    is written last, so a batch is all there or not shown; a batch whose writer failed midway
    is never shown). Every read is a bounded ``seq`` range, widened (doubled) until ``limit``
    visible messages are found or the floor is reached: flat on servers that sort in memory,
    however long the session is. Holes (appends that failed after reserving their ``seq``, or
    still in flight), popped messages and unfinished batches cost a wider or a further range.
    ``first``: the messages of the first range, ``(max(top - limit, floor), top]``, read
    already (``SessionsRepository.find_with_agent`` reads them with the session).
    """
    if top <= floor or (limit is not None and limit <= 0):
        return []
    messages = db.collection(MessageDocument)
    present: set[int] = set()
    newest_first: list[dict[str, Any]] = []
    window = top - floor if limit is None else limit
    high = top
    while high > floor:
        low = max(high - window, floor)
        if first is not None:
            raws, first = first, None
        else:
            raws = await (
                messages.find(
                    {"session_id": session_id, "seq": {"$gt": low, "$lte": high}}, projection
                )
                .limit(high - low)  # all the range can hold: one reply, the cursor closed
                .batch_size(high - low)
                .to_list()
            )
        raws.sort(key=_seq, reverse=True)
        present.update(raw["seq"] for raw in raws)
        for raw in raws:
            end = raw.get("batch_end_seq")
            if raw.get("popped_at") is None and (end is None or end in present):
                if raw.get(ESCAPED):  # the item as appended, once
                    raw["item"] = decode_item(raw["item"], True)
                    raw[ESCAPED] = False
                newest_first.append(raw)
                if limit is not None and len(newest_first) == limit:
                    return newest_first[::-1]
        high, window = low, window * 2
    return newest_first[::-1]


def _seq(raw: Mapping[str, Any]) -> int:
    seq: int = raw["seq"]
    return seq


def _readable(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with its item as appended (field names unescaped)."""
    if raw.get(ESCAPED):
        raw["item"] = decode_item(raw["item"], True)
    return raw


def _item_of(raw: dict[str, Any]) -> dict[str, Any]:
    stored = raw.get("item")
    if stored is None:
        return {"role": raw.get("role"), "content": raw.get("content")}
    return decode_item(stored, bool(raw.get(ESCAPED)))


async def _bounds(db: Connection, session_id: ObjectId) -> tuple[int, int]:
    """The session's ``last_seq`` and ``cleared_through_seq`` (``NotFoundError``). One command.

    Every reader's view of a session starts here: what it may show is ``(floor, last_seq]``.
    """
    raw = await get(db, SessionDocument, session_id, "session", _BOUNDS)
    last_seq = int(raw.get("last_seq", 0))
    db.hint_seq(session_id, last_seq)
    return last_seq, int(raw.get("cleared_through_seq", 0))


async def _insert_batch(
    messages: AsyncCollection[Any], session_id: ObjectId, documents: list[dict[str, Any]]
) -> None:
    """Insert a batch in order; after a network error, insert once more what is missing.

    An ordered insert stops at its first failure, so what landed is a prefix of the batch,
    and what is missing a suffix ending with the batch's last message (the one that makes it
    visible). Their ``_id`` and ``seq`` were fixed before the first attempt.
    """
    try:
        await messages.insert_many(documents, ordered=True)
    except ConnectionFailure:
        seqs = {"$gte": documents[0]["seq"], "$lte": documents[-1]["seq"]}
        landed = {
            raw["seq"]
            for raw in await messages.find(
                {"session_id": session_id, "seq": seqs}, {"seq": 1, "_id": 0}
            ).to_list()
        }
        missing = [document for document in documents if document["seq"] not in landed]
        if missing:
            await messages.insert_many(missing, ordered=True)


async def _reserve_seq(
    db: Connection, session_id: ObjectId, now: datetime, key: str | None, *, count: int = 1
) -> int | None:
    """Take the session's next ``count`` seqs; returns the last one (``None``: no such
    session, or ``key`` was seen). The range is contiguous and no other writer gets any of it.

    Design note: one atomic ``$inc`` (``findAndModify``) on the session document, so
    concurrent writers on any number of machines get 1, 2, 3, … with no duplicates. On a
    server whose profile says so (SecantusDB, ``agents_core.db.server``), a compare-and-set on
    the ``last_seq`` this process saw last (one ``update`` by ``_id``) comes first and the
    ``$inc`` only when another writer got there first: just as atomic, and flat where
    ``findAndModify`` slows down with the collection's size. With a key, the reservation also
    remembers it among the session's latest keys in the same update, so racing repeats of one
    key reserve one ``seq``. ``updated_at`` only moves forward (``$max``): a writer whose clock
    read came before another's may reserve after it, and a session's last activity is never
    older than its newest message (what a user's search relies on).
    """
    sessions = db.collection(SessionDocument)
    # by_id: a session being deleted (or forked) takes no more messages.
    query = by_id(SessionDocument, session_id)
    push: dict[str, Any] = {}
    if key is not None:
        query[_RECENT_KEYS] = {"$ne": key}
        push = {"$push": {_RECENT_KEYS: {"$each": [key], "$slice": -RECENT_KEYS_KEPT}}}
    if not db.profile.seq_compare_and_set:
        return await _inc_seq(sessions, query, now, push, count)
    hint = db.seq_hints.pop(session_id, None)
    if hint is None:  # never seen by this process: read it (flat on every server)
        raw = await sessions.find_one(by_id(SessionDocument, session_id), _LAST_SEQ)
        if raw is None:
            return None
        hint = int(raw.get("last_seq", 0))
    seq = hint + count
    result = await sessions.update_one(
        {**query, "last_seq": hint},
        {"$set": {"last_seq": seq}, "$max": {"updated_at": now}, **push},
    )
    if result.matched_count == 0:  # another writer appended (or the key was seen, or no session)
        reserved = await _inc_seq(sessions, query, now, push, count)
        if reserved is None:
            return None
        seq = reserved
    db.hint_seq(session_id, seq)
    return seq


async def _inc_seq(
    sessions: AsyncCollection[Any],
    query: Mapping[str, Any],
    now: datetime,
    push: Mapping[str, Any],
    count: int,
) -> int | None:
    """``$inc`` the session's ``last_seq`` by ``count``; the new value (``None``: no match)."""
    reserved = await sessions.find_one_and_update(
        query,
        {"$inc": {"last_seq": count}, "$max": {"updated_at": now}, **push},
        projection=_LAST_SEQ,
        return_document=ReturnDocument.AFTER,
    )
    return None if reserved is None else int(reserved["last_seq"])


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
    return None if raw is None else load(Message, _readable(raw), _COLLECTION)


async def _keyed_batch(
    db: Connection, session_id: ObjectId, key: str, count: int
) -> list[Message] | None:
    """The batch of ``count`` messages whose last message carries ``key`` (``None``: no such
    message yet). Two commands when there is one."""
    raw = await db.collection(MessageDocument).find_one(
        {"session_id": session_id, "idempotency_key": key}, {"seq": 1, "_id": 0}
    )
    return None if raw is None else await _batch_ending(db, session_id, int(raw["seq"]), count)


async def _batch_ending(
    db: Connection, session_id: ObjectId, end: int, count: int
) -> list[Message]:
    """The ``count`` messages of the batch whose last message is ``end`` (a message appended
    alone is a batch of one), oldest first; ``InvalidInputError`` if that batch has another
    length. One command: the range holds the batch and the message before it."""
    raws = await (
        db.collection(MessageDocument)
        .find({"session_id": session_id, "seq": {"$gte": end - count, "$lte": end}})
        .limit(count + 1)
        .batch_size(count + 1)
        .to_list()
    )
    members = sorted(
        (raw for raw in raws if raw.get("batch_end_seq") == end or raw["seq"] == end),
        key=_seq,
    )
    if [raw["seq"] for raw in members] != list(range(end - count + 1, end + 1)):
        raise InvalidInputError("idempotency_key", "was used for a batch of another length")
    return load_many(Message, [_readable(raw) for raw in members], _COLLECTION)


def _duplicate(exc: BulkWriteError) -> bool:
    """Whether a write of the batch was refused by a unique index (its key is taken)."""
    return any(error.get("code") == 11000 for error in exc.details.get("writeErrors", []))
