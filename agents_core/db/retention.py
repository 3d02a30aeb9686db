"""Retention: remove sessions idle for longer than a period, whole (session, messages, runs with
their tool calls, stored payloads), never part of a thread.

A TTL index cannot do this: it removes documents one by one, each by its own date, so it would
delete old messages of a conversation that is still going on. ``sweep`` removes whole sessions
instead, from cron (``agents-core retention --older-than DAYS``) or any scheduler::

    from datetime import timedelta
    from agents_core.db.retention import sweep

    result = await sweep(timedelta(days=30))
    print(result.removed, "sessions removed")

Each idle session is claimed with a compare-and-set on its ``last_seq`` and ``updated_at`` (it
becomes ``deleting`` only if nothing was appended since the sweep read it: every append raises
``last_seq``, also one that records the millisecond the sweep read): a session that becomes
active again while it is being swept survives, and an append that comes after the claim is
refused (``NotFoundError``) rather than written into a session being removed. A sweep that
crashed midway is finished by the next one: it resumes every ``deleting`` session first.

Last, it removes the runs of sessions that no longer exist: a run's writer inserts it and then
checks its session, removing the run itself when the session is gone, so such a run is only
left by a writer that died between the two commands. It is still ``running`` (nobody else
knew its id): the sweep reads the ``running`` runs once (their ids and sessions), looks their
sessions up 100 at a time, and deletes the runs whose session is gone, with their payloads.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bson import ObjectId
from pydantic import BaseModel, ConfigDict

from agents_core.db.client import Connection, default_connection
from agents_core.db.documents import (
    PayloadChunkDocument,
    RunDocument,
    RunStatus,
    SessionDocument,
    SessionStatus,
    as_utc,
    utcnow,
)
from agents_core.db.errors import InvalidInputError, translate_errors
from agents_core.db.limits import MAX_STALE_AGE
from agents_core.db.repositories import lifecycle

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
    #: A dry run (``sweep(..., dry_run=True)``): nothing was changed; ``removed`` and
    #: ``resumed`` are what a sweep would remove and finish now, ``messages`` and ``runs`` what
    #: those sessions hold (``None`` after a real sweep: not counted).
    dry_run: bool = False
    messages: int | None = None
    runs: int | None = None


@translate_errors
async def sweep(
    older_than: timedelta,
    *,
    now: datetime | None = None,
    db: Connection | None = None,
    dry_run: bool = False,
) -> SweepResult:
    """Remove every session whose last activity (``updated_at``) is more than ``older_than``
    before ``now`` (default: the current time; injectable for tests and replays of a schedule).
    With ``dry_run``, change nothing: count what would be removed, with its messages and runs
    (reads only: the sessions 100 at a time, and one count of runs per 100 sessions).

    Commands: one read per 100 candidates, then per session the deletion's (see
    ``SessionsRepository.delete``) with the claim as its first; then one read of the running
    runs, one more per 100 of them, and two deletes where some belong to no session.
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
    if dry_run:
        return await _dry_run(connection, cutoff)
    removed = resumed = 0
    kept: list[ObjectId] = []
    # First the deletions a crash left midway (few: an index range of status "deleting"); each
    # one finished leaves the range.
    while (
        stuck := await sessions.find({"status": SessionStatus.deleting.value}, lifecycle.STATE)
        .limit(_BATCH)
        .to_list()
    ):
        for raw in stuck:
            await lifecycle.finish_deletion(connection, raw["_id"], raw)
            resumed += 1
    # Then the idle ones: each leaves the range, removed, or revived (then kept out of it by id,
    # in case ``now`` is ahead of the appends that revived it).
    while (
        idle := await sessions.find(
            {"status": {"$in": _SWEPT}, "updated_at": {"$lt": cutoff}, "_id": {"$nin": kept}},
            lifecycle.STATE,  # what the deletion needs (an external id's key among it)
        )
        .limit(_BATCH)
        .to_list()
    ):
        for raw in idle:
            if not await lifecycle.claim(connection, raw["_id"], raw):
                kept.append(raw["_id"])  # appended to (or edited) since it was read
                continue
            await lifecycle.finish_deletion(connection, raw["_id"], raw)
            removed += 1
    await _remove_orphaned_runs(connection)
    return SweepResult(removed=removed, resumed=resumed, kept=len(kept))


async def _dry_run(db: Connection, cutoff: datetime) -> SweepResult:
    sessions = db.collection(SessionDocument)
    runs = db.collection(RunDocument)
    counts = {"removed": 0, "resumed": 0, "messages": 0, "runs": 0}
    for key, query in (
        ("resumed", {"status": SessionStatus.deleting.value}),
        ("removed", {"status": {"$in": _SWEPT}, "updated_at": {"$lt": cutoff}}),
    ):
        # One cursor, 100 at a time (as the orphaned runs are read): a page per sorted range
        # would sort every remaining candidate again on SecantusDB.
        cursor = sessions.find(query, {"last_seq": 1, "cleared_through_seq": 1}).batch_size(_BATCH)
        while batch := await cursor.to_list(_BATCH):
            counts[key] += len(batch)
            counts["messages"] += sum(
                max(0, raw.get("last_seq", 0) - raw.get("cleared_through_seq", 0)) for raw in batch
            )
            counts["runs"] += await runs.count_documents(
                {"session_id": {"$in": [raw["_id"] for raw in batch]}}
            )
    return SweepResult(dry_run=True, **counts)


async def _remove_orphaned_runs(db: Connection) -> None:
    """Delete the ``running`` runs whose session no longer exists, with their payload chunks.

    A session that exists in any status keeps its runs (one being deleted loses them to its
    deletion). A run inserted by a live writer is never taken for an orphan while its session
    exists; once the session is gone, that writer's own check removes it too.
    """
    running = db.collection(RunDocument).find(
        {"status": RunStatus.running.value}, {"_id": 1, "session_id": 1}
    )
    batch: list[dict[str, ObjectId]] = []
    async for raw in running.batch_size(_BATCH):
        batch.append(raw)
        if len(batch) == _BATCH:
            await _remove_orphans(db, batch)
            batch = []
    if batch:
        await _remove_orphans(db, batch)


async def _remove_orphans(db: Connection, runs: list[dict[str, ObjectId]]) -> None:
    owners = list({raw["session_id"] for raw in runs})
    existing = {
        raw["_id"]
        for raw in await db.collection(SessionDocument)
        .find({"_id": {"$in": owners}}, {"_id": 1})
        .to_list()
    }
    orphans = [raw["_id"] for raw in runs if raw["session_id"] not in existing]
    if orphans:  # the runs first, then their chunks (as a deletion does)
        await db.collection(RunDocument).delete_many({"_id": {"$in": orphans}})
        await db.collection(PayloadChunkDocument).delete_many({"run_id": {"$in": orphans}})
