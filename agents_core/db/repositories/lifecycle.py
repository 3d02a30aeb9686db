"""Removing a session whole (delete, retention) and copying its history (fork): the steps
``SessionsRepository`` and ``agents_core.db.retention`` share (not an API for users).

Design note, deletion: ``delete`` marks the session ``deleting`` whatever its state;
retention claims it with a compare-and-set on the ``status``, ``last_seq`` and ``updated_at`` it
read (``claim``), so an append that reserved a ``seq`` in between makes the claim fail and the
session is left alone (it is active again). From the mark on, the session does not exist for any
reader or writer (every by-id command filters on the visible statuses), so nothing can be
appended to it. Then its runs go, batch by batch: their ids are recorded on the session first,
then the runs are deleted, then their payload chunks (a crash between the two leaves chunks that
no run references, and the re-run finds them through the recorded ids). Then the messages, then
the session itself. Each step is idempotent, and a re-run (``delete`` again, or the retention
sweep, which resumes every ``deleting`` session) picks up where a crash stopped. What a crash
leaves is invisible through the session; only a not-yet-deleted run stays readable by its own id
until the re-run.

An append whose ``seq`` was reserved just before the mark may still be inserting its message.
When the messages deleted are fewer than the ``seq`` values reserved and the last append is
less than ``APPEND_GRACE`` old, the deletion waits until it is that old and deletes the
messages a second time, so such a straggler is removed too.

Design note, fork: the fork is inserted ``forking`` (hidden like ``deleting``), its history is
copied in windows of ``FORK_WINDOW`` ``seq`` values (one bounded range read, then inserts of at
most ``FORK_INSERT_BATCH`` messages and ``FORK_BATCH_BYTES`` of content each: bounded memory
whatever the length), and only then is it made ``active``. (An aggregation with ``$merge``
would copy on the server, but the mock has none, and SecantusDB runs it no faster: 4.3 s for
2,000 messages against 2.3 s for one ``insert_many``.) A crash midway leaves a hidden fork,
which retention removes once it is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from bson import ObjectId
from pymongo.errors import PyMongoError

from agents_core.db.client import Connection
from agents_core.db.documents import (
    ExternalIdDocument,
    MessageDocument,
    PayloadChunkDocument,
    RunDocument,
    Session,
    SessionDocument,
    SessionStatus,
    as_utc,
    utcnow,
)
from agents_core.db.errors import InvalidInputError, NotFoundError
from agents_core.db.limits import (
    APPEND_GRACE,
    FORK_BATCH_BYTES,
    FORK_INSERT_BATCH,
    FORK_WINDOW,
    RUN_BATCH,
)
from agents_core.db.repositories._base import by_id, insert

__all__ = [
    "NOT_COPIED",
    "STATE",
    "after_step",
    "claim",
    "copy_session",
    "finish_deletion",
]

_DELETING = SessionStatus.deleting.value
#: What a deletion needs to know of its session.
STATE = {
    "status": 1,
    "updated_at": 1,
    "last_seq": 1,
    "deleting_runs": 1,
    "external_namespace": 1,
    "user_id": 1,
    "external_id": 1,
}

#: Session fields a fork does not copy from its source (every other field of the record is
#: copied as it is). A field that must stay unique (an external id) belongs here too.
NOT_COPIED = frozenset(
    {
        "id",
        "status",
        "last_seq",
        "created_at",
        "updated_at",
        "title",
        # An external id is unique (per namespace and user): it stays with its session.
        "external_id",
        "external_namespace",
    }
)

#: Called with the name of each step a deletion completes: crash tests set it to exit there.
after_step: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if after_step is not None:
        after_step(name)


async def claim(db: Connection, session_id: ObjectId, state: dict[str, Any]) -> bool:
    """Mark the session ``deleting`` if it is still as read in ``state`` (``STATE``'s fields):
    same ``status``, ``last_seq`` and ``updated_at`` (one command); ``False`` if anything
    changed it meanwhile.

    ``last_seq`` is what tells an append: every append raises it, while its ``updated_at`` may
    be the very millisecond the sweep read (a fast machine, or a sweep's clock ahead of the
    writers'). ``updated_at`` tells the other edits (routing, clearing).
    """
    result = await db.collection(SessionDocument).update_one(
        {
            "_id": session_id,
            "status": state["status"],
            "last_seq": state.get("last_seq"),
            "updated_at": state["updated_at"],
        },
        {"$set": {"status": _DELETING, "deleting_at": utcnow()}},
    )
    return result.matched_count == 1


async def finish_deletion(
    db: Connection,
    session_id: ObjectId,
    state: dict[str, Any],
) -> None:
    """Delete what remains of a session marked ``deleting``: runs, chunks, messages, itself.

    ``state`` is the session as read before (or when) it was marked (``STATE``'s fields).
    """
    pending_runs: list[ObjectId] = list(state.get("deleting_runs", []))
    sessions = db.collection(SessionDocument)
    runs = db.collection(RunDocument)
    chunks = db.collection(PayloadChunkDocument)
    messages = db.collection(MessageDocument)
    if pending_runs:  # a batch a previous attempt recorded: the runs first, then their chunks
        await runs.delete_many({"_id": {"$in": pending_runs}})
        await chunks.delete_many({"run_id": {"$in": pending_runs}})
    while True:
        batch = await (
            runs.find({"session_id": session_id}, {"_id": 1})
            .limit(RUN_BATCH)
            .batch_size(RUN_BATCH)
            .to_list()
        )
        ids = [raw["_id"] for raw in batch]
        if not ids:
            break
        await sessions.update_one({"_id": session_id}, {"$set": {"deleting_runs": ids}})
        _step("runs-recorded")
        await runs.delete_many({"_id": {"$in": ids}})
        _step("runs-deleted")
        await chunks.delete_many({"run_id": {"$in": ids}})
        _step("chunks-deleted")
        if len(ids) < RUN_BATCH:
            break
    deleted = await messages.delete_many({"session_id": session_id})
    _step("messages-deleted")
    # Fewer messages than reserved seqs: holes of failed appends, or an append reserved just
    # before the mark that is still inserting. Only a recent one can be the latter: wait it out.
    # (Nothing is ever appended to a fork being copied: its missing messages were not copied.)
    wait = (as_utc(state["updated_at"]) + APPEND_GRACE - utcnow()).total_seconds()
    appendable = state.get("status") != SessionStatus.forking.value
    if appendable and deleted.deleted_count < state.get("last_seq", 0) and wait > 0:
        await asyncio.sleep(wait)
        await messages.delete_many({"session_id": session_id})
    if isinstance(state.get("external_id"), str):
        # Its external id's mapping before the session: a session with an external id never
        # exists without its mapping (documents/external_id.py). One shard: the key is whole.
        await db.collection(ExternalIdDocument).delete_one(
            {
                "external_namespace": state.get("external_namespace"),
                "user_id": state.get("user_id"),
                "external_id": state["external_id"],
                "session_id": session_id,
            }
        )
    await sessions.delete_one({"_id": session_id, "status": _DELETING})
    _step("session-deleted")


async def copy_session(db: Connection, source: Session, at_seq: int, title: str | None) -> Session:
    """A new session with ``source``'s fields and its visible history up to ``at_seq``."""
    # Nothing at or below the source's floor is shown: the fork's floor is the same, or
    # ``at_seq`` when that is lower (its own appends then land above it, and show).
    floor = min(source.cleared_through_seq, at_seq)
    fields: dict[str, Any] = source.model_dump(exclude=set(NOT_COPIED))
    fields.update(
        title=source.title if title is None else title,
        status=SessionStatus.forking,
        last_seq=at_seq,
        cleared_through_seq=floor,
        forked_from=source.id,
        forked_at_seq=at_seq,
    )
    fork = await insert(db, SessionDocument, Session, **fields)
    target = db.collection(MessageDocument)
    cut: int | None = None  # the last seq of a batch that ``at_seq`` cuts, once met
    low = floor
    while low < at_seq:
        high = min(low + FORK_WINDOW, at_seq)
        cursor = (
            db.collection(MessageDocument)
            .find({"session_id": source.id, "seq": {"$gt": low, "$lte": high}})
            .sort("seq", 1)
            .limit(high - low)  # all of the window in one batch (unless beyond 16 MB)
            .batch_size(high - low)
        )
        batch: list[dict[str, Any]] = []
        size = 0
        async for raw in cursor:
            end = raw.get("batch_end_seq")
            if end is not None and end > at_seq:
                if cut is None:
                    cut = end
                    await _refuse_a_cut_batch(db, source.id, fork.id, raw["seq"], end)
                continue  # a batch the source never showed (failed or still in flight)
            raw["_id"] = ObjectId()
            raw["session_id"] = fork.id
            batch.append(raw)
            size += len(raw.get("content", ""))
            if size >= FORK_BATCH_BYTES or len(batch) >= FORK_INSERT_BATCH:
                await target.insert_many(batch, ordered=False)
                batch, size = [], 0
        if batch:
            await target.insert_many(batch, ordered=False)
        low = high
    sessions = db.collection(SessionDocument)
    # The source as of after every window was read. Deleted meanwhile: it may have lost
    # messages before their window was read, so the fork is removed, never shown half-copied.
    # (A deletion that starts after this read came after every window was read.)
    now_source = await sessions.find_one(
        by_id(SessionDocument, source.id), {"cleared_through_seq": 1, "_id": 0}
    )
    if now_source is None:
        await _discard(db, fork.id)
        raise NotFoundError("session", source.id)
    # Cleared meanwhile: a clear raises the floor before it deletes anything, and deletes
    # nothing above it, so what was copied above the floor read now is whole, and what lies at
    # or below it is hidden in the fork as it is in the source (the clear came first).
    cleared = min(max(floor, int(now_source.get("cleared_through_seq", 0))), at_seq)
    now = utcnow()
    result = await sessions.update_one(
        {"_id": fork.id, "status": SessionStatus.forking.value},
        {
            "$set": {
                "status": SessionStatus.active.value,
                "updated_at": now,
                "cleared_through_seq": cleared,
            }
        },
    )
    if result.matched_count == 0:  # removed meanwhile (retention took it for abandoned)
        raise NotFoundError("session", fork.id)
    if cleared > floor:  # best effort, as ``clear``'s own clean-up: the floor hides them
        with contextlib.suppress(PyMongoError):
            await target.delete_many({"session_id": fork.id, "seq": {"$lte": cleared}})
    return fork.model_copy(
        update={"status": SessionStatus.active, "updated_at": now, "cleared_through_seq": cleared}
    )


async def _refuse_a_cut_batch(
    db: Connection, source_id: ObjectId, fork_id: ObjectId, first: int, end: int
) -> None:
    """``at_seq`` falls inside the batch ``first``..``end`` of the source: refuse it if the
    source shows that batch (its last message exists), removing the fork. Otherwise the batch
    is not copied: the source never showed it, and a later append to the fork must not either
    (it would give the fork the batch's last ``seq``, and make the copied part visible)."""
    landed = await db.collection(MessageDocument).find_one(
        {"session_id": source_id, "seq": end}, {"_id": 1}
    )
    if landed is None:
        return
    await _discard(db, fork_id)
    raise InvalidInputError(
        "at_seq", f"is inside a batch of messages (seq {first}-{end}): fork at {first - 1} or {end}"
    )


async def _discard(db: Connection, fork_id: ObjectId) -> None:
    """Remove a fork that never became visible (no runs, no appends: its messages, then it).

    A crash in between leaves a hidden ``forking`` session, which retention removes."""
    await db.collection(MessageDocument).delete_many({"session_id": fork_id})
    await db.collection(SessionDocument).delete_one(
        {"_id": fork_id, "status": SessionStatus.forking.value}
    )
