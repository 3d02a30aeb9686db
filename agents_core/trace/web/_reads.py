"""The reads the trace view makes: bounded pages, never a whole collection or a whole session.

Design notes: sessions are paged by key (``updated_at``, ``_id``), newest first, so a page costs
the same wherever it is. A session's transcript is paged by ``seq`` with the messages
repository's range read (``latest_messages``: ``last_seq - n < seq <= last_seq``, flat on every
server whatever the session's length), and a page starts at a turn boundary whenever it can, so
that the runs of its turns are exactly the runs that started between its first user message
and the first message of the next page: one more range read, on ``(session_id, started_at)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING

from agents_core.db import (
    InvalidInputError,
    Message,
    MessageRole,
    NotFoundError,
    Run,
    RunsRepository,
    Session,
    SessionsRepository,
    SessionStatus,
    ToolCall,
    ToolCallsRepository,
)
from agents_core.db import validation as check
from agents_core.db.documents import SESSION_PROJECTION, RunDocument, SessionDocument
from agents_core.db.documents.session import VISIBLE_STATUSES
from agents_core.db.errors import translate_errors
from agents_core.db.repositories import Repository, load_many
from agents_core.db.repositories.messages import latest_messages

__all__ = ["SessionPage", "SessionsPage", "StatusFilter", "TraceReads"]

StatusFilter = Literal["all", "active", "archived"]

#: Most runs one transcript page shows (its turns are bounded by its messages anyway).
MAX_RUNS_PER_PAGE = 1_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class SessionsPage:
    sessions: list[Session]
    #: The key of the next (older) page, or ``None`` on the last page.
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class SessionPage:
    session: Session
    #: Oldest first; the page begins at a user message unless one turn outgrows a page.
    messages: list[Message]
    #: The runs of this page's turns, oldest first.
    runs: list[Run]
    #: ``before`` of the previous (older) page, or ``None`` on the first.
    older_before: int | None
    #: ``before`` of the next (newer) page (``0``: the newest), or ``None`` on the newest.
    newer_before: int | None


def encode_cursor(session: Session) -> str:
    """The key of ``session`` in the listing's order: microseconds since the epoch, and id."""
    return f"{(session.updated_at - _EPOCH) // _MICROSECOND}_{session.id}"


def decode_cursor(value: str) -> tuple[datetime, ObjectId]:
    """``InvalidInputError`` for anything but what ``encode_cursor`` makes."""
    stamp, _, ident = value.partition("_")
    # isascii: "²".isdigit() is true, and int() refuses it.
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 18:
        raise InvalidInputError("before", "is not a page cursor")
    try:
        at = _EPOCH + int(stamp) * _MICROSECOND
    except OverflowError:  # beyond the year 9999
        raise InvalidInputError("before", "is not a page cursor") from None
    return at, check.object_id(ident, "session")


class TraceReads(Repository):
    """Read-only queries of the trace view, on a connection (default: ``init_db``'s)."""

    __slots__ = ()

    @translate_errors
    async def sessions(
        self,
        *,
        user_id: str | None = None,
        title: str | None = None,
        status: StatusFilter = "all",
        before: str | None = None,
        limit: int = 50,
    ) -> SessionsPage:
        """A page of sessions, most recently updated first. One command.

        ``title`` matches anywhere in the title, case-insensitively, as literal text.
        """
        count = check.limit(limit)
        query: dict[str, Any] = {}
        if user_id is not None:
            query["user_id"] = check.name(user_id, "user_id")
        if status == "all":
            query["status"] = {"$in": list(VISIBLE_STATUSES)}
        else:
            query["status"] = check.enum(SessionStatus, status, "status").value
        if title:
            query["title"] = {"$regex": re.escape(title), "$options": "i"}
        if before is not None:
            at, ident = decode_cursor(before)
            query["$or"] = [
                {"updated_at": {"$lt": at}},
                {"updated_at": at, "_id": {"$lt": ident}},
            ]
        raws = await (
            self.db.collection(SessionDocument)
            .find(query, SESSION_PROJECTION)
            .sort([("updated_at", DESCENDING), ("_id", DESCENDING)])
            .limit(count + 1)
            .batch_size(count + 1)
            .to_list()
        )
        sessions = load_many(Session, raws[:count], "sessions")
        more = len(raws) > count
        return SessionsPage(sessions, encode_cursor(sessions[-1]) if more else None)

    @translate_errors
    async def session_page(
        self, session_id: str | ObjectId, *, before: int | None = None, limit: int = 200
    ) -> SessionPage:
        """Up to ``limit`` messages with ``seq <= before`` (default: the latest), and their runs.

        Three to five commands: the session, its messages (a ``seq`` range), the message before
        the page and the first message of the next page when there are (they bound the runs),
        the runs (a ``started_at`` range).
        """
        db = self.db
        sid = check.object_id(session_id, "session")
        count = check.limit(limit)
        session = await SessionsRepository(db).find_by_id(sid, message_limit=0)
        last_seq, floor = session.last_seq, session.cleared_through_seq
        end = last_seq if before is None else min(_seq(before, "before", minimum=0), last_seq)
        # What every reader shows: nothing at or below the cleared point (a crash between
        # raising it and deleting leaves those messages stored), nothing popped.
        messages = await latest_messages(db, sid, end, count, floor=floor)
        if messages and messages[0].seq > 1:
            # Begin at a turn boundary; the turn cut off here is whole on the older page.
            first_user = next(
                (i for i, m in enumerate(messages) if m.role == MessageRole.user), None
            )
            if first_user:
                messages = messages[first_user:]
        older = messages[0].seq - 1 if messages and messages[0].seq > 1 else None
        newer = None
        upper: datetime | None = None
        if end < last_seq:
            newer = 0 if end + count >= last_seq else end + count
            following = await latest_messages(db, sid, end + 1, 1, floor=floor)
            if following and following[0].seq == end + 1:
                upper = following[0].created_at
        runs: list[Run] = []
        if messages or last_seq == 0:
            # A session without messages can still have runs (started by the repositories).
            query: dict[str, Any] = {"session_id": sid}
            if messages:
                # A framework's run starts just before its user message is stored
                # (trace.group_turns): the runs after the previous page's last message.
                started: dict[str, Any] = {}
                if messages[0].seq > 1:
                    previous = await latest_messages(db, sid, messages[0].seq - 1, 1, floor=floor)
                    started = (
                        {"$gt": previous[0].created_at}
                        if previous
                        else {"$gte": messages[0].created_at}
                    )
                if upper is not None:
                    started["$lt"] = upper
                if started:
                    query["started_at"] = started
            raws = await (
                db.collection(RunDocument)
                .find(query)
                .sort([("started_at", ASCENDING), ("_id", ASCENDING)])
                .limit(MAX_RUNS_PER_PAGE)
                .batch_size(MAX_RUNS_PER_PAGE)
                .to_list()
            )
            runs = load_many(Run, raws, "runs")
            if upper is not None:  # a framework's run of the next page's first turn
                runs = [run for run in runs if not _ends_after(run, upper)]
        return SessionPage(session, messages, runs, older, newer)

    @translate_errors
    async def message(self, session_id: str | ObjectId, seq: int) -> Message:
        """The message ``seq`` of the session, as every reader shows it (``NotFoundError`` if there
        is none, or it was cleared or popped). Two commands: the session's cleared point, then the
        message."""
        sid = check.object_id(session_id, "session")
        wanted = _seq(seq, "seq", minimum=1)
        session = await SessionsRepository(self.db).find_by_id(sid, message_limit=0)
        floor = session.cleared_through_seq
        found = await latest_messages(self.db, sid, wanted, 1, floor=floor)
        if not found or found[0].seq != wanted:
            raise NotFoundError("message", f"{sid}#{wanted}")
        return found[0]

    @translate_errors
    async def run(self, run_id: str | ObjectId) -> Run:
        """The run with its calls, spilled tool-call payloads read back."""
        return await RunsRepository(self.db).find_by_id(run_id)

    @translate_errors
    async def tool_call(self, run_id: str | ObjectId, call_id: str) -> ToolCall:
        """One tool call of a run, with its whole input and output."""
        rid = check.object_id(run_id, "run")
        for call in await ToolCallsRepository(self.db).find_by_run(rid):
            if call.id == call_id:
                return call
        raise NotFoundError("tool call", call_id)


def _seq(value: object, field: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(field, f"must be an integer of at least {minimum}")
    return value


def _ends_after(run: Run, at: datetime) -> bool:
    """A framework's run that ended at or after ``at`` (its turn begins there)."""
    return run.source is not None and run.completed_at is not None and run.completed_at >= at
