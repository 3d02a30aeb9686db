"""Retention: remove sessions idle for longer than a period, whole (session, messages, runs with
their tool calls, stored payloads), never part of a thread.

A TTL index cannot do this: it removes documents one by one, each by its own date, so it would
delete old messages of a conversation that is still going on. ``sweep`` removes whole sessions
instead, from cron (``agents-core retention --older-than DAYS``) or any scheduler::

    from datetime import timedelta
    from agents_core.db.retention import sweep

    result = await sweep(timedelta(days=30))
    print(result.removed, "sessions removed")

Each idle session is claimed with a compare-and-set on its ``updated_at`` (it becomes
``deleting`` only if nothing was appended since the sweep read it): a session that becomes
active again while it is being swept survives, and an append that comes after the claim is
refused (``NotFoundError``) rather than written into a session being removed. A sweep that
crashed midway is finished by the next one: it resumes every ``deleting`` session first.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bson import ObjectId
from pydantic import BaseModel, ConfigDict

from agents_core.db.client import Connection, default_connection
from agents_core.db.documents import SessionDocument, SessionStatus
from agents_core.db.documents._common import as_utc, utcnow
from agents_core.db.errors import InvalidInputError, translate_errors
from agents_core.db.limits import MAX_STALE_AGE
from agents_core.db.repositories import _lifecycle

__all__ = ["SweepResult", "sweep"]

#: Candidates read per command.
_BATCH = 100
#: Statuses whose idle sessions are removed (a ``forking`` one is an abandoned fork).
_SWEPT = [SessionStatus.active.value, SessionStatus.archived.value, SessionStatus.forking.value]


class SweepResult(BaseModel):
    """What one sweep did."""

    model_config = ConfigDict(frozen=True)

    #: Idle sessions removed whole.
    removed: int = 0
    #: Deletions a crash had left midway, finished.
    resumed: int = 0
    #: Idle sessions that became active again before they could be claimed, kept.
    kept: int = 0


@translate_errors
async def sweep(
    older_than: timedelta, *, now: datetime | None = None, db: Connection | None = None
) -> SweepResult:
    """Remove every session whose last activity (``updated_at``) is more than ``older_than``
    before ``now`` (default: the current time; injectable for tests and replays of a schedule).

    Commands: one read per 100 candidates, then per session the deletion's (see
    ``SessionsRepository.delete``) with the claim as its first.
    """
    if not isinstance(older_than, timedelta) or older_than < timedelta(0):
        raise InvalidInputError("older_than", "must be a non-negative timedelta")
    if older_than > MAX_STALE_AGE:
        raise InvalidInputError("older_than", f"must be at most {MAX_STALE_AGE.days} days")
    if now is not None and not isinstance(now, datetime):
        raise InvalidInputError("now", "must be a datetime")
    if now is not None and now.tzinfo is None:
        raise InvalidInputError("now", "must be timezone-aware")
    connection = db or default_connection()
    clock = utcnow() if now is None else as_utc(now)
    cutoff = clock - older_than
    sessions = connection.collection(SessionDocument)
    removed = resumed = 0
    kept: list[ObjectId] = []
    # First the deletions a crash left midway (few: an index range of status "deleting"); each
    # one finished leaves the range.
    while (
        stuck := await sessions.find({"status": SessionStatus.deleting.value}, _lifecycle.STATE)
        .limit(_BATCH)
        .to_list()
    ):
        for raw in stuck:
            await _lifecycle.finish_deletion(connection, raw["_id"], raw)
            resumed += 1
    # Then the idle ones: each leaves the range, removed, or revived (then kept out of it by id,
    # in case ``now`` is ahead of the appends that revived it).
    while (
        idle := await sessions.find(
            {"status": {"$in": _SWEPT}, "updated_at": {"$lt": cutoff}, "_id": {"$nin": kept}},
            _lifecycle.STATE,  # what the deletion needs (an external id's key among it)
        )
        .limit(_BATCH)
        .to_list()
    ):
        for raw in idle:
            if not await _lifecycle.claim(connection, raw["_id"], raw["status"], raw["updated_at"]):
                kept.append(raw["_id"])  # appended to (or edited) since it was read
                continue
            await _lifecycle.finish_deletion(connection, raw["_id"], raw)
            removed += 1
    return SweepResult(removed=removed, resumed=resumed, kept=len(kept))
