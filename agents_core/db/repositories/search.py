"""Which sessions and messages contain a phrase (``MessagesRepository.search``).

Design notes:

- **A phrase is text.** It is matched as written, case-insensitively, as whole words (``fund``
  does not find ``refund``, as a text index would not; in a script written without spaces,
  Chinese or Japanese, a word is found inside its sentence), accents composed (NFC) on both
  sides, any run of whitespace between its words matching any other: never a regular
  expression (each piece is escaped) and never an operator (it is a value; ``$text`` gets only
  its words). Every message found, whichever way,
  is confirmed with that one pattern on its own text, so every way agrees on what a hit is.
- **A text index where the server has one.** On MongoDB (``ServerProfile.text_index``)
  ``connect`` creates ``content_text`` on ``messages`` (no language: no stemming, no stop
  words) and a search is a ``$text`` query newest first, read until enough hits are confirmed
  (one command for the first ``_CANDIDATES``). The query quotes each word of the phrase on its
  own: quoted phrases must all match, and each is matched as a substring of the raw text, so
  the phrase quoted whole would miss ``refund\\n  for order`` for ``refund for order``. A word
  of a script written without spaces is not asked (the index holds its sentence as one token):
  a phrase of only those is scanned.
- **A bounded scan where it has none.** SecantusDB refuses text indexes, the in-memory mock
  cannot run ``$text``: there the newest messages of the time range are read and matched
  here, at most ``MAX_SCANNED`` of them, each command bounded by a range on an index, never
  by sort + limit alone (SecantusDB reads every document a filter matches before it sorts,
  ``../shared/NOTES-wire-server.md``):

  - without a user, in windows of ``created_at`` back in time, each sized from the last one's
    density to hold about ``_WINDOW_TARGET`` messages, newest first; a window that holds more
    than the bound leaves is cut to its newest (messages stored in one millisecond are read
    in one window);
  - for a user, the messages of the user's sessions most recently active first, each session's
    size known from its ``last_seq`` and cleared point, so the sessions read hold at most the
    bound (the last one only its newest messages, a ``seq`` range): one or two commands.

  When the bound stops it, the result says since when every message was searched
  (``searched_since``: after the millisecond the bound cut inside, a batch's). Messages at or
  below a session's cleared point that a clear's clean-up left are not counted.
- **What every reader shows.** Hits in sessions that are not visible (being deleted or
  forked, or gone), at or below a session's cleared point, popped, or of a batch whose last
  message does not exist (``messages.visible_range``) are not returned.
- Across sessions there is no shared sequence: hits come newest first by ``created_at``, then
  (messages of one millisecond) by session and, in a session, newest ``seq`` first: the order
  its writes recorded, never ``_id`` (ObjectIds of two processes do not follow ``seq``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from bson import ObjectId
from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import OperationFailure

from agents_core.db import validation as check
from agents_core.db.client import Connection
from agents_core.db.documents import (
    MessageDocument,
    MessageRole,
    SessionDocument,
    as_utc,
    utcnow,
)
from agents_core.db.documents.session import VISIBLE_STATUSES
from agents_core.db.errors import InvalidInputError
from agents_core.db.repositories.batches import whole_batches

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
#: Most messages one search reads: those a scan matches, or the text index's matches checked.
MAX_SCANNED = 20_000
#: Characters of context on each side of the match in an excerpt.
EXCERPT_CHARS = 80
#: Most sessions of one user a search scoped by user looks in (the most recently active).
MAX_USER_SESSIONS = 1_000
#: Messages one window of the scan aims to hold.
_WINDOW_TARGET = 2_000
#: The scan's first window, back from the range's end.
_FIRST_WINDOW = timedelta(minutes=1)
#: Where the scan stops without ``since``: no message is older.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NARROWEST_WINDOW = timedelta(milliseconds=1)
#: Messages read per reply (a scan's window, the text index's matches): bounds the memory a
#: search holds, whatever the messages' size.
_CANDIDATES = 500
#: What a server answers for ``$text`` it cannot run: BadValue (unknown operator),
#: IndexNotFound (no text index).
_NO_TEXT = frozenset({2, 27})
_WORD = re.compile(r"\w+")
#: Scripts written without spaces between words (Thai, Lao, Myanmar, Khmer, kana, Han): a
#: phrase that begins or ends with one of their characters has no word boundary there (a word
#: of theirs is found inside its sentence). A text index holds such a sentence as one token:
#: their words are not asked of it.
_UNSPACED = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]"
)
_FIELDS = {
    "session_id": 1,
    "seq": 1,
    "role": 1,
    "content": 1,
    "created_at": 1,
    "popped_at": 1,
    "batch_end_seq": 1,
}
_SESSION_FIELDS = {
    "title": 1,
    "user_id": 1,
    "status": 1,
    "last_seq": 1,
    "cleared_through_seq": 1,
    "created_at": 1,
    "updated_at": 1,
    "forked_from": 1,
}
#: Ties of one millisecond in the order the writes recorded: a session's ``seq``.
_NEWEST_FIRST = [("created_at", DESCENDING), ("session_id", DESCENDING), ("seq", DESCENDING)]

Method = Literal["text-index", "scan"]


@dataclass(frozen=True, slots=True)
class SearchHit:
    session_id: ObjectId
    session_title: str | None
    user_id: str | None
    seq: int
    role: MessageRole
    created_at: datetime
    #: Up to ``EXCERPT_CHARS`` characters each side of the first match (``…`` where cut), on
    #: one line.
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
    #: The search stopped at ``MAX_SCANNED``: every message created since then was searched,
    #: older ones not (``None``: the whole range was searched, or enough hits were found).
    searched_since: datetime | None


@dataclass(frozen=True, slots=True)
class _Phrase:
    #: As searched: its words joined by one space.
    text: str
    #: What every hit is confirmed with (see the module's notes).
    pattern: re.Pattern[str]
    #: Its words as written, each once (the first spelling): what ``$text`` is asked for (none:
    #: it cannot be).
    words: tuple[str, ...]

    @property
    def text_query(self) -> str:
        """``$text``'s search string: every word quoted (all required, none stemmed or
        negated); a word (``\\w+``) holds no quote or backslash."""
        return " ".join(f'"{word}"' for word in self.words)


def _phrase(value: object) -> _Phrase:
    if not isinstance(value, str):
        raise InvalidInputError("phrase", f"must be a string, not {type(value).__name__}")
    # Composed (NFC), as the messages are matched: "é" typed or stored as e + U+0301 is one.
    pieces = unicodedata.normalize("NFC", value).split()
    text = " ".join(pieces)
    if not text:
        raise InvalidInputError("phrase", "must not be empty")
    if len(text) > MAX_PHRASE_CHARS:
        raise InvalidInputError("phrase", f"longer than {MAX_PHRASE_CHARS} characters")
    check.valid_unicode(text, "phrase")
    # Whole words: no word character may touch a match where the phrase begins or ends with one.
    start = r"(?<!\w)" if _spaced_word(text[0]) else ""
    end = r"(?!\w)" if _spaced_word(text[-1]) else ""
    body = r"\s+".join(re.escape(piece) for piece in pieces)
    # As written, each once whatever its case: the server folds case its own way (Python's
    # casefold turns "Straße" into "strasse" and "ΣΟΦΟΣ" into "σοφοσ", which it never finds).
    once: dict[str, str] = {}
    for word in _WORD.findall(text):
        if not _UNSPACED.search(word):
            once.setdefault(word.casefold(), word)
    words = tuple(once.values())
    return _Phrase(text, re.compile(start + body + end, re.IGNORECASE), words)


def _spaced_word(char: str) -> bool:
    """Whether ``char`` is of a word that spaces (or punctuation) delimit."""
    return _WORD.match(char) is not None and _UNSPACED.match(char) is None


def _moment(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInputError(field, "must be a datetime")
    return as_utc(value)


@dataclass(slots=True)
class _Found:
    """One search's state: its hits so far, the sessions it read, what it looked at."""

    db: Connection
    phrase: _Phrase
    #: Hits wanted: the search stops once it has them.
    want: int
    hits: list[SearchHit] = field(default_factory=list)
    #: Messages looked at.
    read: int = 0
    #: Set when the bound stopped the search (see ``SearchResult.searched_since``).
    searched_since: datetime | None = None
    #: When the last message looked at was created (they are read newest first).
    oldest: datetime | None = None
    #: Sessions read, by id (``None``: no such session).
    sessions: dict[ObjectId, Mapping[str, Any] | None] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return len(self.hits) >= self.want

    def cleared(self, raw: Mapping[str, Any]) -> bool:
        """Whether ``raw`` is at or below its session's cleared point (what a clear's
        interrupted clean-up leaves behind), its session read already."""
        session = self.sessions.get(raw["session_id"])
        return session is not None and raw["seq"] <= session.get("cleared_through_seq", 0)

    def stopped_before(self, unread: Mapping[str, Any]) -> None:
        """The bound stopped the search before ``unread``, the newest message not looked at:
        everything since the last one looked at was searched, or, when ``unread`` was created
        in that same millisecond, everything after it."""
        if self.oldest is None:
            return
        tie = as_utc(unread["created_at"]) >= self.oldest
        self.searched_since = self.oldest + _NARROWEST_WINDOW if tie else self.oldest

    async def take(self, raws: Sequence[Mapping[str, Any]]) -> None:
        """Add the hits among ``raws``: messages that contain the phrase and that readers see.
        One command for the sessions not read yet; one per session with a hit of a batch
        whose last message is not among ``raws``."""
        self.read += len(raws)
        if raws:
            self.oldest = as_utc(raws[-1]["created_at"])
        matched = [
            raw
            for raw in raws
            if raw.get("popped_at") is None
            and isinstance(raw.get("content"), str)
            and self.phrase.pattern.search(_composed(raw["content"])) is not None
        ]
        if not matched:
            return
        await self._read_sessions({raw["session_id"] for raw in matched})
        shown = [raw for raw in matched if self._visible(raw)]
        by_session: dict[ObjectId, list[Mapping[str, Any]]] = {}
        for raw in shown:
            by_session.setdefault(raw["session_id"], []).append(raw)
        read: dict[ObjectId, list[int]] = {}
        for raw in raws:
            read.setdefault(raw["session_id"], []).append(raw["seq"])
        whole: set[tuple[ObjectId, int]] = set()
        messages = self.db.collection(MessageDocument)
        for session_id, part in by_session.items():
            kept = await whole_batches(messages, session_id, part, present=read[session_id])
            whole.update((session_id, raw["seq"]) for raw in kept)
        self.hits += [self._hit(raw) for raw in shown if (raw["session_id"], raw["seq"]) in whole]

    def newest(self) -> list[SearchHit]:
        """The ``want`` newest hits, newest first (as ``_NEWEST_FIRST``)."""
        hits = sorted(
            self.hits, key=lambda hit: (hit.created_at, hit.session_id, hit.seq), reverse=True
        )
        return hits[: self.want]

    async def _read_sessions(self, ids: set[ObjectId]) -> None:
        missing = sorted(ident for ident in ids if ident not in self.sessions)
        if not missing:
            return
        raws = await (
            self.db.collection(SessionDocument)
            .find({"_id": {"$in": missing}}, _SESSION_FIELDS)
            .batch_size(len(missing))
            .to_list()
        )
        found = {raw["_id"]: raw for raw in raws}
        for ident in missing:
            self.sessions[ident] = found.get(ident)

    def _visible(self, raw: Mapping[str, Any]) -> bool:
        session = self.sessions.get(raw["session_id"])
        return (
            session is not None
            and session.get("status") in VISIBLE_STATUSES
            and raw["seq"] > session.get("cleared_through_seq", 0)
        )

    def _hit(self, raw: Mapping[str, Any]) -> SearchHit:
        session = self.sessions[raw["session_id"]] or {}
        excerpt, start, end = _excerpt(raw["content"], self.phrase.pattern)
        return SearchHit(
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
    checked = _phrase(phrase)
    count = check.limit(limit)
    first, last = _moment(since, "since"), _moment(until, "until")
    if first is not None and last is not None and last < first:
        raise InvalidInputError("until", "must not be before since")
    user = None if user_id is None else check.name(user_id, "user_id")
    found = _Found(db, checked, count)
    sessions = None if user is None else await _user_sessions(db, user)
    if sessions is not None:  # every message read is of these: their sessions are read here
        found.sessions.update((raw["_id"], raw) for raw in sessions[:MAX_USER_SESSIONS])
    if db.text_search and checked.words and await _indexed(found, sessions, first, last):
        return SearchResult(checked.text, found.newest(), "text-index", None, found.searched_since)
    # No text index, or a phrase without a word to look up (``(.*)``; MongoDB answers "must
    # contain at least one searchable token"): the scan.
    if sessions is None:
        await _scan_windows(found, first, last)
    else:
        await _scan_sessions(found, sessions, first, last)
    return SearchResult(checked.text, found.newest(), "scan", found.read, found.searched_since)


async def _user_sessions(db: Connection, user: str) -> list[dict[str, Any]]:
    """The user's sessions, most recently active first: ``MAX_USER_SESSIONS`` and one more
    (whether there are more)."""
    return await (
        db.collection(SessionDocument)
        .find({"user_id": user}, _SESSION_FIELDS)
        .sort([("updated_at", DESCENDING), ("_id", DESCENDING)])
        .limit(MAX_USER_SESSIONS + 1)
        .batch_size(MAX_USER_SESSIONS + 1)
        .to_list()
    )


def _range(first: datetime | None, last: datetime | None) -> dict[str, datetime]:
    bounds: dict[str, datetime] = {}
    if first is not None:
        bounds["$gte"] = first
    if last is not None:
        bounds["$lte"] = last
    return bounds


async def _indexed(
    found: _Found,
    sessions: list[dict[str, Any]] | None,
    first: datetime | None,
    last: datetime | None,
) -> bool:
    """The text index's matches, newest first, confirmed one by one until enough hits or
    ``MAX_SCANNED`` matches; ``False`` when the server cannot run ``$text`` (then the scan)."""
    db = found.db
    query: dict[str, Any] = {"$text": {"$search": found.phrase.text_query}}
    if sessions is not None:
        query["session_id"] = {"$in": [raw["_id"] for raw in sessions[:MAX_USER_SESSIONS]]}
    if bounds := _range(first, last):
        query["created_at"] = bounds
    messages = db.collection(MessageDocument)
    cursor = messages.find(query, _FIELDS).sort(_NEWEST_FIRST).batch_size(_CANDIDATES)
    try:
        while not found.done:
            left = MAX_SCANNED - found.read
            if left <= 0:
                if more := await _whole(messages, await cursor.to_list(1)):
                    found.stopped_before(more[0])  # more matches than one search reads
                break
            raws = await cursor.to_list(min(_CANDIDATES, left))
            if not raws:
                break
            await found.take(await _whole(messages, raws))
    except OperationFailure as exc:
        if found.read:
            raise  # it ran, then failed: no answer of half a search
        # This server cannot search by the index: the scan answers. A server that says it has
        # no text index is not asked again.
        if exc.code in _NO_TEXT or "text index" in str(exc):
            db.text_search = False
        return False
    except NotImplementedError:  # an in-memory mock given a server's profile
        db.text_search = False
        return False
    finally:
        await cursor.close()
    if sessions is not None and len(sessions) > MAX_USER_SESSIONS and not found.done:
        # The user's older sessions were not searched: none was active after this one.
        older = as_utc(sessions[MAX_USER_SESSIONS]["updated_at"])
        found.searched_since = max(found.searched_since or older, older)
    return True


async def _whole(
    messages: AsyncCollection[Any], raws: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``raws`` with every field read: mongoeco 4.11 drops a projection's fields beside
    ``$text`` (it returns ``_id`` alone), so those are read again by id."""
    if all("content" in raw for raw in raws):
        return raws
    ids = [raw["_id"] for raw in raws]
    whole = {
        raw["_id"]: raw for raw in await messages.find({"_id": {"$in": ids}}, _FIELDS).to_list()
    }
    return [whole[ident] for ident in ids if ident in whole]


async def _scan_windows(found: _Found, first: datetime | None, last: datetime | None) -> None:
    """The newest messages of the range, window by window of ``created_at`` back in time,
    until enough hits, ``MAX_SCANNED`` messages, or the range's start."""
    messages = found.db.collection(MessageDocument)
    floor = first or _EPOCH
    top = last or utcnow()
    upper: dict[str, datetime] = {} if last is None else {"$lte": last}  # the first window's
    width = _FIRST_WINDOW
    while not found.done:
        low = max(top - width, floor)
        left = MAX_SCANNED - found.read
        held = await _read(
            found,
            messages.find({"created_at": {"$gte": low, **upper}}, _FIELDS)
            .sort(_NEWEST_FIRST)
            .limit(left + 1),  # one more tells that the bound cut this window
            left,
        )
        if held > left or low <= floor:
            return
        top, upper = low, {"$lt": low}
        # Aim the next window at _WINDOW_TARGET messages, from this one's density.
        width = max(width * min(max(_WINDOW_TARGET / max(held, 1), 0.25), 4.0), _NARROWEST_WINDOW)


async def _scan_sessions(
    found: _Found,
    sessions: list[dict[str, Any]],
    first: datetime | None,
    last: datetime | None,
) -> None:
    """The messages of the user's sessions, most recently active first, as many sessions as
    hold at most ``MAX_SCANNED`` messages (the last one read from its newest message down)."""
    whole: list[ObjectId] = []
    # A session read from this seq up, and how many of its messages may be read.
    part: tuple[dict[str, Any], int, int] | None = None
    unread: list[datetime] = []  # bounds of the newest a message not read may be
    budget = MAX_SCANNED
    for index, session in enumerate(sessions):
        if first is not None and as_utc(session["updated_at"]) < first:
            break  # this one and every older one hold nothing since ``first``
        if index == MAX_USER_SESSIONS:
            unread.append(as_utc(session["updated_at"]))
            break
        top, floor = session.get("last_seq", 0), session.get("cleared_through_seq", 0)
        if (
            session.get("status") not in VISIBLE_STATUSES
            or top <= floor
            # Made after the range: nothing in it, unless a fork (its copies keep their times).
            or (
                last is not None
                and session.get("forked_from") is None
                and as_utc(session["created_at"]) > last
            )
        ):
            continue
        if top - floor <= budget:
            whole.append(session["_id"])
            budget -= top - floor
            continue
        if budget:
            part = (session, top - budget + 1, budget)
        else:
            unread.append(as_utc(session["updated_at"]))
        if index + 1 < len(sessions):  # every later one was active before it
            unread.append(as_utc(sessions[index + 1]["updated_at"]))
        break
    messages = found.db.collection(MessageDocument)
    bounds = {} if first is None and last is None else {"created_at": _range(first, last)}
    # session_id first: SecantusDB reads by the first clause an index serves.
    if whole:
        query = {"session_id": {"$in": whole}, **bounds}
        cursor = messages.find(query, _FIELDS).sort(_NEWEST_FIRST)
        await _read(found, cursor, MAX_SCANNED, skip=found.cleared)
        if found.done and (
            # Enough, unless the partly read session holds newer ones: none is newer than its
            # last activity.
            part is None or found.newest()[-1].created_at >= as_utc(part[0]["updated_at"])
        ):
            return
    if part is not None:
        session, low, bound = part
        # One message more than the bound (``low - 1``): whether the cut falls inside a
        # millisecond (a batch) is then known.
        query = {"session_id": session["_id"], "seq": {"$gte": low - 1}, **bounds}
        cursor = messages.find(query, _FIELDS).sort(_NEWEST_FIRST)
        held = await _read(found, cursor, bound, whole=True)
        if held > bound and found.searched_since is not None:
            unread.append(found.searched_since)  # its older messages were not read
        elif held and found.oldest is not None:
            unread.append(found.oldest)
        else:
            unread.append(as_utc(session["updated_at"]))
    if unread and not found.done:
        found.searched_since = max(unread)


async def _read(
    found: _Found,
    cursor: AsyncCursor[Any],
    left: int,
    *,
    whole: bool = False,
    skip: Callable[[Mapping[str, Any]], bool] | None = None,
) -> int:
    """Hand ``cursor``'s messages (newest first) to ``found`` in replies of ``_CANDIDATES``:
    all of them with ``whole``, else until enough hits; those ``skip`` says are neither
    looked at nor counted. Returns how many the cursor held (more than ``left``: the bound cut
    them, and ``found`` says since when it searched)."""
    held = 0
    try:
        cursor.batch_size(_CANDIDATES)
        while whole or not found.done:
            raws = await cursor.to_list(_CANDIDATES)
            if not raws:
                break
            if skip is not None:
                raws = [raw for raw in raws if not skip(raw)]
            held += len(raws)
            if held > left:  # the bound: the newest ``left`` were read
                cut = len(raws) - (held - left)
                await found.take(raws[:cut])
                found.stopped_before(raws[cut])
                break
            await found.take(raws)
    finally:
        await cursor.close()
    return held


def _composed(content: str) -> str:
    """``content`` as the phrase is matched: composed (NFC)."""
    return unicodedata.normalize("NFC", content)


def _excerpt(content: str, pattern: re.Pattern[str]) -> tuple[str, int, int]:
    """The first match with up to ``EXCERPT_CHARS`` of context each side, on one line."""
    flat = " ".join(_composed(content).split())
    match = pattern.search(flat)
    if match is None:  # pragma: no cover - the pattern found it in ``content``
        return flat[: 2 * EXCERPT_CHARS], 0, 0
    at, stop = match.span()
    begin, end = max(0, at - EXCERPT_CHARS), min(len(flat), stop + EXCERPT_CHARS)
    prefix = "…" if begin > 0 else ""
    suffix = "…" if end < len(flat) else ""
    start = len(prefix) + at - begin
    return prefix + flat[begin:end] + suffix, start, start + stop - at
