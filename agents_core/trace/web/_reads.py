"""The reads the trace view makes: bounded pages, never a whole collection or a whole session.

Design notes: sessions are paged by key (``updated_at``, ``_id``), newest first, so a page costs
the same wherever it is. A session's transcript is paged by ``seq``
(``SessionsRepository.find_transcript_page``, which ``agents-core show`` pages with too): a
range of ``seq`` (flat on every server whatever the session's length) that starts at a turn
boundary whenever it can, so that the runs of its turns are exactly the runs that started
between its first user message and the first message of the next page: one more range read,
on ``(session_id, started_at)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from bson import ObjectId
from pymongo import DESCENDING

from agents_core.db import (
    InvalidInputError,
    Message,
    MessageRole,
    MessagesRepository,
    NotFoundError,
    Run,
    RunsRepository,
    RunStatus,
    Session,
    SessionsRepository,
    SessionStatus,
    ToolCall,
    ToolCallsRepository,
)
from agents_core.db import validation as check
from agents_core.db.documents import (
    SESSION_PROJECTION,
    AgentDocument,
    RunDocument,
    SessionDocument,
)
from agents_core.db.documents.session import VISIBLE_STATUSES
from agents_core.db.errors import translate_errors
from agents_core.db.repositories import NEWEST_WINDOWS, Repository, load_many
from agents_core.db.repositories.messages import latest_messages

__all__ = [
    "MAX_RANKED_RUNS",
    "RUN_SORTS",
    "RunFilter",
    "RunRow",
    "RunSort",
    "RunsPage",
    "ScoreFilter",
    "SessionPage",
    "SessionsPage",
    "StatusFilter",
    "TraceReads",
]

StatusFilter = Literal["all", "active", "archived"]
RunSort = Literal["newest", "cost", "tokens", "duration"]
RUN_SORTS: tuple[RunSort, ...] = ("newest", "cost", "tokens", "duration")
#: A listing sorted by cost, tokens or duration ranks at most this many of the newest runs
#: that match its filters (the page says when there were more).
MAX_RANKED_RUNS = 2_000
#: Most sessions of one user a run listing filtered by user looks at (the newest).
MAX_USER_SESSIONS = 1_000
#: The fields of a run a listing row shows: never its texts.
_ROW_FIELDS = {
    "session_id": 1,
    "agent_id": 1,
    "status": 1,
    "error": 1,
    "tokens": 1,
    "cost": 1,
    "started_at": 1,
    "completed_at": 1,
    "source": 1,
    "replay_of": 1,
    "model_calls.model": 1,
    "tool_calls.status": 1,
    "scores.name": 1,
    "scores.value": 1,
    "scores.label": 1,
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCORE_OPS = {">=": "$gte", "<=": "$lte", ">": "$gt", "<": "$lt", "=": "$eq"}
#: The windows a listing is read in on a server that sorts every match
#: (``ServerProfile.windowed_listings``): the repositories' ``NEWEST_WINDOWS`` (the last hour,
#: 4 h, 16 h, 64 h, ~11 days, ~6 weeks, ~6 months, ~2 years), then the rest. Each reads at
#: most 4 times the runs it needs.
_WINDOWS: tuple[timedelta | None, ...] = (*NEWEST_WINDOWS, None)
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


@dataclass(frozen=True, slots=True)
class RunFilter:
    """What a run listing keeps: each given field must match (all of them)."""

    agent_id: ObjectId | None = None
    model: str | None = None
    status: RunStatus | None = None
    user_id: str | None = None
    #: UTC days of the run's start, both included.
    since: date | None = None
    until: date | None = None
    #: A score the run must have: its name, and a label it must carry or a comparison its
    #: value must pass (``ScoreFilter``).
    score: ScoreFilter | None = None


@dataclass(frozen=True, slots=True)
class ScoreFilter:
    """``name`` (any score so named), ``name:label``, or ``name OP number`` (OP one of ``>=``,
    ``<=``, ``>``, ``<``, ``=``)."""

    name: str
    label: str | None = None
    op: str | None = None
    value: float | None = None

    def query(self) -> dict[str, Any]:
        match: dict[str, Any] = {"name": self.name}
        if self.label is not None:
            match["label"] = self.label
        if self.op is not None:
            match["value"] = {_SCORE_OPS[self.op]: self.value}
        return {"$elemMatch": match}


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as a listing shows it (no texts: its calls are counted, not read)."""

    id: ObjectId
    session_id: ObjectId
    session_title: str | None
    agent_id: ObjectId
    agent_name: str
    status: RunStatus
    error: str | None
    started_at: datetime
    duration_ms: float | None
    tokens: int
    cost: float
    models: list[str]
    tool_calls: int
    failed_tool_calls: int
    source: str | None
    replay_of: ObjectId | None
    #: Its scores as shown: (name, value or label), in the order added.
    scores: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class RunsPage:
    runs: list[RunRow]
    #: The key of the next page, or ``None`` on the last page.
    next_cursor: str | None
    #: Sorted by cost, tokens or duration: more than ``MAX_RANKED_RUNS`` runs matched, and only
    #: the newest of them were ranked.
    ranked_of_newest: int | None = None


def encode_cursor(session: Session) -> str:
    """The key of ``session`` in the listing's order: microseconds since the epoch, and id."""
    return _encode_key(session.updated_at, session.id)


def decode_cursor(value: str) -> tuple[datetime, ObjectId]:
    """``InvalidInputError`` for anything but what ``encode_cursor`` makes."""
    return _decode_key(value, "session")


def _encode_key(at: datetime, ident: ObjectId) -> str:
    return f"{(at.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND}_{ident}"


def _decode_key(value: str, entity: str) -> tuple[datetime, ObjectId]:
    stamp, _, ident = value.partition("_")
    # isascii: "²".isdigit() is true, and int() refuses it.
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 18:
        raise InvalidInputError("before", "is not a page cursor")
    try:
        at = _EPOCH + int(stamp) * _MICROSECOND
    except OverflowError:  # beyond the year 9999
        raise InvalidInputError("before", "is not a page cursor") from None
    return at, check.object_id(ident, entity)


def _score_text(score: dict[str, Any]) -> tuple[str, str]:
    value = score.get("value")
    shown = score.get("label") if value is None else f"{value:g}"
    return str(score.get("name", "")), str(shown)


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    digits = cursor[1:]
    if not cursor.startswith("@") or not (digits.isascii() and digits.isdigit()):
        raise InvalidInputError("before", "is not a page cursor")
    if len(digits) > 6 or int(digits) >= MAX_RANKED_RUNS:
        raise InvalidInputError("before", "is beyond the ranking")
    return int(digits)


def _duration(raw: dict[str, Any]) -> float | None:
    completed = raw.get("completed_at")
    if not isinstance(completed, datetime):
        return None
    return float((completed - raw["started_at"]).total_seconds() * 1000)


def _rank(raw: dict[str, Any], sort: RunSort) -> tuple[float, datetime, ObjectId]:
    if sort == "cost":
        value = float(raw.get("cost") or 0.0)
    elif sort == "tokens":
        value = float(raw.get("tokens") or 0)
    else:
        value = _duration(raw) or -1.0  # still running: last
    return value, raw["started_at"], raw["_id"]


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
        """Up to ``limit`` messages with ``seq <= before`` (default: the latest), and their runs:
        ``SessionsRepository.find_transcript_page`` (three to five commands), with the ``before``
        of the pages beside it."""
        count = check.limit(limit)
        end = None if before is None else _seq(before, "before", minimum=0)
        found = await SessionsRepository(self.db).find_transcript_page(
            session_id, before=None if end is None else end + 1, limit=count
        )
        messages, last_seq = found.messages, found.session.last_seq
        end = last_seq if end is None else min(end, last_seq)
        older = messages[0].seq - 1 if messages and messages[0].seq > 1 else None
        newer = None
        if end < last_seq:
            newer = 0 if end + count >= last_seq else end + count
        return SessionPage(found.session, messages, found.runs, older, newer)

    @translate_errors
    async def runs(
        self,
        where: RunFilter,
        *,
        sort: RunSort = "newest",
        cursor: str | None = None,
        limit: int = 50,
    ) -> RunsPage:
        """A page of runs of every session, newest first or ranked by ``sort`` (highest first).

        Newest first, pages are keyed by (``started_at``, ``_id``), like the sessions'. Ranked
        by cost, tokens or duration, the newest ``MAX_RANKED_RUNS`` runs that match are read
        (their numbers only) and ranked here, and pages are offsets into that ranking: a
        duration is not stored, it is ``completed_at - started_at``. Two to four commands: the
        user's sessions (with ``user_id``), the runs, their agents' names, their sessions'
        titles.
        """
        if sort not in RUN_SORTS:
            raise InvalidInputError("sort", f"must be one of {', '.join(RUN_SORTS)}")
        count = check.limit(limit)
        query = await self._run_query(where)
        ranked_of: int | None = None
        if sort == "newest":
            after = None if cursor is None else _decode_key(cursor, "run")
            raws = await self._newest(query, count + 1, after)
            more = len(raws) > count
            raws = raws[:count]
            next_cursor = _encode_key(raws[-1]["started_at"], raws[-1]["_id"]) if more else None
        else:
            offset = _offset(cursor)
            candidates = await self._newest(query, MAX_RANKED_RUNS + 1, None)
            if len(candidates) > MAX_RANKED_RUNS:
                candidates, ranked_of = candidates[:MAX_RANKED_RUNS], MAX_RANKED_RUNS
            candidates.sort(key=lambda raw: _rank(raw, sort), reverse=True)
            raws = candidates[offset : offset + count]
            more = offset + count < len(candidates)
            next_cursor = f"@{offset + count}" if more else None
        rows = await self._rows(raws)
        return RunsPage(rows, next_cursor, ranked_of)

    async def _newest(
        self, query: dict[str, Any], count: int, after: tuple[datetime, ObjectId] | None
    ) -> list[dict[str, Any]]:
        """The newest ``count`` runs matching ``query`` (after ``after``, a listing's key, in
        the listing's order), newest first.

        One sorted read; after a key, one more for the runs of the key's very millisecond
        (their ``_id`` below the key's: two writers often start runs in one millisecond).
        On a server whose sorts decode every match (``windowed_listings``), the read is one
        per window of time, each 4 times longer than the one before, until ``count`` runs are
        found or the query's range is covered."""
        runs = self.db.collection(RunDocument)
        order = [("started_at", DESCENDING), ("_id", DESCENDING)]
        started = dict(query.get("started_at", {}))
        floor: datetime | None = started.get("$gte")
        ceiling: datetime | None = started.get("$lt")
        found: list[dict[str, Any]] = []
        if after is not None:
            at, ident = after
            if (floor is None or at >= floor) and (ceiling is None or at < ceiling):
                found = await (
                    runs.find({**query, "started_at": at, "_id": {"$lt": ident}}, _ROW_FIELDS)
                    .sort(order)
                    .limit(count)
                    .batch_size(count)
                    .to_list()
                )
            ceiling = at if ceiling is None else min(ceiling, at)
        windows: tuple[timedelta | None, ...] = (
            _WINDOWS if self.db.profile.windowed_listings else (None,)
        )
        top = ceiling or datetime.now(UTC)
        wanted = count - len(found)
        for window in windows:
            if wanted <= 0:
                break
            low = None if window is None else top - window
            if low is not None and floor is not None and low <= floor:
                low = None
            bounds: dict[str, datetime] = {}
            if ceiling is not None:  # none on the first page: a run whose clock runs ahead
                bounds["$lt"] = ceiling
            lower = low if low is not None else floor
            if lower is not None:
                bounds["$gte"] = lower
            window_query = {**query, "started_at": bounds} if bounds else dict(query)
            raws = await (
                runs.find(window_query, _ROW_FIELDS)
                .sort(order)
                .limit(wanted)
                .batch_size(wanted)
                .to_list()
            )
            if len(raws) >= wanted or low is None:
                return found + raws
        return found

    async def _run_query(self, where: RunFilter) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if where.agent_id is not None:
            query["agent_id"] = check.object_id(where.agent_id, "agent")
        if where.model is not None:
            query["model_calls.model"] = check.name(where.model, "model")
        if where.status is not None:
            query["status"] = check.enum(RunStatus, where.status, "status").value
        started: dict[str, datetime] = {}
        if where.since is not None:
            started["$gte"] = datetime.combine(where.since, datetime.min.time(), UTC)
        if where.until is not None:
            started["$lt"] = datetime.combine(where.until, datetime.min.time(), UTC) + timedelta(
                days=1
            )
        if started:
            query["started_at"] = started
        if where.score is not None:
            query["scores"] = where.score.query()
        if where.user_id is not None:
            user = check.name(where.user_id, "user_id")
            sessions = await (
                self.db.collection(SessionDocument)
                .find({"user_id": user}, {"_id": 1})
                .sort([("updated_at", DESCENDING), ("_id", DESCENDING)])
                .limit(MAX_USER_SESSIONS)
                .batch_size(MAX_USER_SESSIONS)
                .to_list()
            )
            query["session_id"] = {"$in": [raw["_id"] for raw in sessions]}
        return query

    async def _rows(self, raws: list[dict[str, Any]]) -> list[RunRow]:
        db = self.db
        agent_ids = sorted({raw["agent_id"] for raw in raws})
        session_ids = sorted({raw["session_id"] for raw in raws})
        agents: dict[Any, str] = {}
        titles: dict[Any, str | None] = {}
        if agent_ids:
            found = await (
                db.collection(AgentDocument)
                .find({"_id": {"$in": agent_ids}}, {"name": 1})
                .to_list()
            )
            agents = {raw["_id"]: str(raw.get("name", "")) for raw in found}
            found = await (
                db.collection(SessionDocument)
                .find({"_id": {"$in": session_ids}}, {"title": 1})
                .to_list()
            )
            titles = {raw["_id"]: raw.get("title") for raw in found}
        rows = []
        for raw in raws:
            calls = raw.get("tool_calls") or []
            models: list[str] = []
            for call in raw.get("model_calls") or []:
                model = str(call.get("model", ""))
                if model and model not in models:
                    models.append(model)
            started = raw["started_at"].replace(tzinfo=UTC)
            rows.append(
                RunRow(
                    id=raw["_id"],
                    session_id=raw["session_id"],
                    session_title=titles.get(raw["session_id"]),
                    agent_id=raw["agent_id"],
                    agent_name=agents.get(raw["agent_id"], str(raw["agent_id"])),
                    status=RunStatus(raw.get("status", RunStatus.running.value)),
                    error=raw.get("error"),
                    started_at=started,
                    duration_ms=_duration(raw),
                    tokens=int(raw.get("tokens") or 0),
                    cost=float(raw.get("cost") or 0.0),
                    models=models,
                    tool_calls=len(calls),
                    failed_tool_calls=sum(1 for c in calls if c.get("status") == "error"),
                    source=raw.get("source"),
                    replay_of=raw.get("replay_of"),
                    scores=[_score_text(score) for score in raw.get("scores") or []],
                )
            )
        return rows

    @translate_errors
    async def turn_answer(self, run: Run, *, limit: int = 200) -> list[Message]:
        """What the run's turn stored after its user message (answers, tool results), up to the
        next user message: at most ``limit`` messages, one command. Empty for a run without a
        recorded turn (``input_seq``: a framework's run)."""
        if run.input_seq is None:
            return []
        page = await MessagesRepository(self.db).find_page(
            run.session_id, after=run.input_seq, limit=check.limit(limit)
        )
        answer: list[Message] = []
        for message in page:
            if message.role == MessageRole.user:
                break
            answer.append(message)
        return answer

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
