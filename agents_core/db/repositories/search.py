"""Which sessions and messages contain a phrase (``MessagesRepository.search``).

Design notes:

- **A phrase is text.** It is matched as written, case-insensitively: never a regular
  expression (it is escaped) and never an operator (it is a value, and a ``$text`` phrase is
  quoted with its own quotes removed).
- **A text index where the server has one.** On MongoDB (``ServerProfile.text_index``)
  ``connect`` creates ``content_text`` on ``messages`` (no language: no stemming, no stop
  words) and a search is one ``$text`` query for the quoted phrase, newest first; the phrase
  is then confirmed on each message, since ``$text`` ignores case, diacritics and punctuation.
- **A bounded scan where it has none.** SecantusDB refuses text indexes, the in-memory mock
  cannot run ``$text``: there the newest messages are read in slices of time going back (the
  last hour, then back to 4 h, 16 h, … ago, on the ``created_at`` index), each a
  case-insensitive match of the escaped phrase, until enough are found, the range given is
  covered, or ``MAX_SCANNED`` messages were looked at (each slice is counted first, so the
  bound holds before a slice is read; SecantusDB reads about 25 µs a message in each). The
  result says how it was searched and, when the bound stopped it, from when on
  (``searched_since``).
- **What every reader shows.** Hits in sessions that are not visible (being deleted or
  forked), at or below a session's cleared point, or popped are not returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from bson import ObjectId
from pymongo import DESCENDING
from pymongo.errors import OperationFailure

from agents_core.db import validation as check
from agents_core.db.client import Connection
from agents_core.db.documents import MessageDocument, MessageRole, SessionDocument, as_utc
from agents_core.db.documents.session import VISIBLE_STATUSES
from agents_core.db.errors import InvalidInputError

__all__ = [
    "EXCERPT_CHARS",
    "MAX_PHRASE_CHARS",
    "MAX_SCANNED",
    "SearchHit",
    "SearchResult",
    "search_messages",
]

#: Longest phrase searched, in characters.
MAX_PHRASE_CHARS = 200
#: Most messages a search without a text index looks at.
MAX_SCANNED = 20_000
#: Characters of context on each side of the match in an excerpt.
EXCERPT_CHARS = 80
#: Most sessions of one user a search scoped by user looks in (the newest).
MAX_USER_SESSIONS = 1_000
#: Candidates read per hit wanted (some are not visible, or match $text but not the phrase).
_OVERREAD = 3
_WINDOWS: tuple[timedelta | None, ...] = (*(timedelta(hours=4**n) for n in range(9)), None)
#: What a server answers for ``$text`` it cannot run: BadValue (unknown operator),
#: IndexNotFound (no text index).
_NO_TEXT = frozenset({2, 27})
_WORD = re.compile(r"\w")
_FIELDS = {"session_id": 1, "seq": 1, "role": 1, "content": 1, "created_at": 1}

Method = Literal["text-index", "scan"]


@dataclass(frozen=True, slots=True)
class SearchHit:
    session_id: ObjectId
    session_title: str | None
    user_id: str | None
    seq: int
    role: MessageRole
    created_at: datetime
    #: Up to ``EXCERPT_CHARS`` characters each side of the first match (``…`` where cut).
    excerpt: str
    #: Where the match is in ``excerpt``: ``excerpt[start:end]``.
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class SearchResult:
    phrase: str
    #: Newest first.
    hits: list[SearchHit]
    #: ``text-index`` or ``scan``.
    method: Method
    #: Messages looked at (a scan; ``None`` with the text index).
    scanned: int | None
    #: A scan stopped by ``MAX_SCANNED``: only messages created since then were searched.
    searched_since: datetime | None


def _phrase(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInputError("phrase", f"must be a string, not {type(value).__name__}")
    phrase = " ".join(value.split())
    if not phrase:
        raise InvalidInputError("phrase", "must not be empty")
    if len(phrase) > MAX_PHRASE_CHARS:
        raise InvalidInputError("phrase", f"longer than {MAX_PHRASE_CHARS} characters")
    check.valid_unicode(phrase, "phrase")
    return phrase


def _moment(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInputError(field, "must be a datetime")
    return as_utc(value)


async def search_messages(
    db: Connection,
    phrase: str,
    *,
    user_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 20,
) -> SearchResult:
    """See ``MessagesRepository.search``."""
    text = _phrase(phrase)
    count = check.limit(limit)
    first, last = _moment(since, "since"), _moment(until, "until")
    if first is not None and last is not None and last < first:
        raise InvalidInputError("until", "must not be before since")
    query: dict[str, Any] = {"popped_at": None}
    if user_id is not None:
        user = check.name(user_id, "user_id")
        sessions = await (
            db.collection(SessionDocument)
            .find({"user_id": user}, {"_id": 1})
            .sort([("updated_at", DESCENDING), ("_id", DESCENDING)])
            .limit(MAX_USER_SESSIONS)
            .batch_size(MAX_USER_SESSIONS)
            .to_list()
        )
        query["session_id"] = {"$in": [raw["_id"] for raw in sessions]}
    method: Method = "scan"
    scanned: int | None = None
    searched_since: datetime | None = None
    raws: list[dict[str, Any]] | None = None
    if db.text_search:
        raws = await _indexed(db, query, text, first, last, count)
        method = "text-index" if raws is not None else "scan"
    if raws is None:
        raws, scanned, searched_since = await _scanned(db, query, text, first, last, count)
    hits = await _visible(db, raws, text, count)
    return SearchResult(text, hits, method, scanned, searched_since)


def _range(first: datetime | None, last: datetime | None) -> dict[str, datetime]:
    bounds: dict[str, datetime] = {}
    if first is not None:
        bounds["$gte"] = first
    if last is not None:
        bounds["$lte"] = last
    return bounds


async def _indexed(
    db: Connection,
    query: dict[str, Any],
    text: str,
    first: datetime | None,
    last: datetime | None,
    count: int,
) -> list[dict[str, Any]] | None:
    """One ``$text`` query; ``None`` when the server cannot run it for this phrase (then the
    scan): a phrase without a word to index (``(.*)``), or a server without a text index."""
    if not _WORD.search(text):
        return None  # $text finds words only: "must contain at least one searchable token"
    quoted = '"' + text.replace('"', " ").strip() + '"'
    found = {**query, "$text": {"$search": quoted}}
    if bounds := _range(first, last):
        found["created_at"] = bounds
    wanted = count * _OVERREAD
    messages = db.collection(MessageDocument)
    try:
        raws = await (
            messages.find(found, _FIELDS)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(wanted)
            .batch_size(wanted)
            .to_list()
        )
    except OperationFailure as exc:
        # This phrase, or this server, cannot be searched by the index: the scan answers. A
        # server that says it has no text index is not asked again.
        if exc.code in _NO_TEXT or "text index" in str(exc):
            db.text_search = False
        return None
    except NotImplementedError:  # an in-memory mock given a server's profile
        db.text_search = False
        return None
    if any("content" not in raw for raw in raws):
        # mongoeco 4.11 drops a projection's fields beside $text: read them by id.
        ids = [raw["_id"] for raw in raws]
        whole = {
            raw["_id"]: raw for raw in await messages.find({"_id": {"$in": ids}}, _FIELDS).to_list()
        }
        raws = [whole[ident] for ident in ids if ident in whole]
    return raws


async def _scanned(
    db: Connection,
    query: dict[str, Any],
    text: str,
    first: datetime | None,
    last: datetime | None,
    count: int,
) -> tuple[list[dict[str, Any]], int, datetime | None]:
    """The newest messages matching, read slice by slice back in time: each slice of the
    ``created_at`` index is counted, then matched; no message is read twice."""
    messages = db.collection(MessageDocument)
    # Any run of whitespace between the words, as the phrase's words were joined.
    pattern = r"\s+".join(re.escape(word) for word in text.split(" "))
    matching = {**query, "content": {"$regex": pattern, "$options": "i"}}
    top = last or datetime.now(UTC)
    wanted = count + count // 2 + 1  # some may be in sessions no reader shows
    raws: list[dict[str, Any]] = []
    edge: datetime | None = None  # the slice read last began here
    scanned = 0
    for window in _WINDOWS:
        low = None if window is None else top - window
        if low is not None and first is not None and low <= first:
            low = None
        lower = low if low is not None else first
        bounds: dict[str, datetime] = {}
        if edge is not None:
            bounds["$lt"] = edge
        elif last is not None:
            bounds["$lte"] = last
        if lower is not None:
            bounds["$gte"] = lower
        size = await messages.count_documents({**query, "created_at": bounds} if bounds else query)
        if scanned + size > MAX_SCANNED:
            return raws, scanned, edge or top  # the bound: searched from ``edge`` on
        if size:
            raws += await (
                messages.find({**matching, "created_at": bounds} if bounds else matching, _FIELDS)
                .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
                .limit(wanted - len(raws))
                .batch_size(wanted - len(raws))
                .to_list()
            )
        scanned, edge = scanned + size, lower
        if len(raws) >= wanted or low is None:
            return raws, scanned, None
    return raws, scanned, None  # pragma: no cover - the last window has no lower bound


async def _visible(
    db: Connection, raws: list[dict[str, Any]], text: str, count: int
) -> list[SearchHit]:
    folded = text.casefold()
    candidates = [raw for raw in raws if folded in " ".join(str(raw["content"]).split()).casefold()]
    ids = sorted({raw["session_id"] for raw in candidates})
    sessions: dict[ObjectId, dict[str, Any]] = {}
    if ids:
        found = await (
            db.collection(SessionDocument)
            .find(
                {"_id": {"$in": ids}, "status": {"$in": list(VISIBLE_STATUSES)}},
                {"title": 1, "user_id": 1, "cleared_through_seq": 1},
            )
            .to_list()
        )
        sessions = {raw["_id"]: raw for raw in found}
    hits: list[SearchHit] = []
    for raw in candidates:
        session = sessions.get(raw["session_id"])
        if session is None or raw["seq"] <= session.get("cleared_through_seq", 0):
            continue
        excerpt, start, end = _excerpt(str(raw["content"]), folded)
        hits.append(
            SearchHit(
                session_id=raw["session_id"],
                session_title=session.get("title"),
                user_id=session.get("user_id"),
                seq=raw["seq"],
                role=MessageRole(raw["role"]),
                created_at=as_utc(raw["created_at"]),
                excerpt=excerpt,
                start=start,
                end=end,
            )
        )
        if len(hits) == count:
            break
    return hits


def _excerpt(content: str, folded: str) -> tuple[str, int, int]:
    """The match with up to ``EXCERPT_CHARS`` of context each side, on one line."""
    flat = " ".join(content.split())
    at = flat.casefold().find(folded)
    if at < 0:  # casefold changed lengths (ß → ss): show the start
        return flat[: 2 * EXCERPT_CHARS], 0, 0
    begin, stop = max(0, at - EXCERPT_CHARS), min(len(flat), at + len(folded) + EXCERPT_CHARS)
    prefix = "…" if begin > 0 else ""
    suffix = "…" if stop < len(flat) else ""
    excerpt = prefix + flat[begin:stop] + suffix
    start = len(prefix) + at - begin
    return excerpt, start, start + len(folded)
