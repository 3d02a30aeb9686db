"""Conversation lifecycle: create, read with the latest messages, route to an agent, archive,
list in pages, fork and delete."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from agents_core.db import validation as check
from agents_core.db.client import Connection
from agents_core.db.documents import (
    SESSION_PROJECTION,
    Agent,
    AgentDocument,
    ExternalIdDocument,
    ExternalSessionDTO,
    Message,
    MessageDocument,
    MessageRole,
    Page,
    Run,
    RunDocument,
    Session,
    SessionDocument,
    SessionStatus,
    SessionWithMessages,
    utcnow,
)
from agents_core.db.documents.session import VISIBLE_STATUSES
from agents_core.db.errors import (
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    translate_errors,
)
from agents_core.db.limits import MAX_EXTERNAL_ID_LENGTH, MAX_LIMIT, RECENT_IDS
from agents_core.db.repositories import _listing, lifecycle
from agents_core.db.repositories._base import (
    Repository,
    by_id,
    get,
    ids_by_prefix,
    insert,
    load,
    load_many,
    newest_ids,
    require,
    update,
    update_and_read,
)
from agents_core.db.repositories.messages import latest_messages, visible_range

__all__ = ["SessionsRepository", "TranscriptPage"]

_COLLECTION = "sessions"
#: Where the messages read along with a session come from (to name a corrupt one).
_MESSAGES = {"messages": MessageDocument.Settings.name}


@dataclass(frozen=True, slots=True)
class TranscriptPage:
    """A page of a session's transcript with the runs of its turns
    (``SessionsRepository.find_transcript_page``)."""

    #: The session with the page's messages, oldest first: the page begins at a user message
    #: unless one turn outgrows a page.
    session: SessionWithMessages
    #: The runs of this page's turns (at most ``MAX_LIMIT``), oldest first.
    runs: list[Run]

    @property
    def messages(self) -> list[Message]:
        return self.session.messages


class SessionsRepository(Repository):
    """Create, find, route and archive sessions."""

    __slots__ = ()

    @translate_errors
    async def create(self, title: str | None = None, *, user_id: str | None = None) -> Session:
        """Start an ``active`` session, optionally owned by ``user_id``. One command."""
        db = self.db
        session = await insert(
            db,
            SessionDocument,
            Session,
            title=check.optional_name(title, "title"),
            user_id=check.optional_name(user_id, "user_id"),
        )
        db.hint_seq(session.id, session.last_seq)
        return session

    @translate_errors
    async def find_by_id(
        self, id: str | ObjectId, *, message_limit: int = 100
    ) -> SessionWithMessages:
        """The session with its latest ``message_limit`` messages, oldest first. Two commands.

        ``message_limit=0`` reads the session alone (one command).
        """
        db = self.db
        sid = check.object_id(id, "session")
        count = check.limit(message_limit, "message_limit", minimum=0)
        raw = await get(db, SessionDocument, sid, "session", SESSION_PROJECTION)
        db.hint_seq(sid, raw.get("last_seq", 0))
        # The session and its messages validated in one pass.
        raw["messages"] = await visible_range(
            db, sid, raw.get("last_seq", 0), raw.get("cleared_through_seq", 0), count
        )
        return load(SessionWithMessages, raw, _COLLECTION, nested=_MESSAGES)

    @translate_errors
    async def find_transcript_page(
        self, id: str | ObjectId, *, before: int | None = None, limit: int = 100
    ) -> TranscriptPage:
        """Up to ``limit`` messages of the session with ``seq`` below ``before`` (default: the
        latest), and the runs of their turns: a page of its transcript, to show as turns.

        The page begins at its first user message (the turn cut off there is whole on the
        older page, ``before=page.messages[0].seq``) unless one turn outgrows it, so that its
        runs are exactly those whose user message (``input_seq``) is after the message before
        the page and no later than its last: read as one range of the
        ``(session_id, started_at)`` index, whatever the session's length (from the time of
        the message before the page to that of the first message after it, both included:
        writes share a millisecond). A run without ``input_seq`` (a framework's) is placed by
        the clock: it started after the message before the page and before the first message
        after it, and did not end after that next message began (it is that turn's then: it
        starts before its user message is stored). Three to five commands: the session, the
        messages (a ``seq`` range), the message before and the one after the page when there
        are, the runs.
        """
        db = self.db
        sid = check.object_id(id, "session")
        count = check.limit(limit)
        top = None if before is None else check.count(before, "before") - 1
        session = await self.find_by_id(sid, message_limit=0)
        last_seq, floor = session.last_seq, session.cleared_through_seq
        end = last_seq if top is None else min(top, last_seq)
        # What every reader shows: nothing at or below the cleared point, nothing popped.
        messages = await latest_messages(db, sid, end, count, floor=floor) if end > 0 else []
        if messages and messages[0].seq > 1:
            first_user = next(
                (i for i, m in enumerate(messages) if m.role == MessageRole.user), None
            )
            if first_user:
                messages = messages[first_user:]
        upper: datetime | None = None
        if end < last_seq:
            # Only seq end + 1 (the floor at end): never a wider read back for a popped one.
            following = await latest_messages(db, sid, end + 1, 1, floor=max(floor, end))
            if following:
                upper = following[0].created_at
        session = session.model_copy(update={"messages": messages})
        if not messages and last_seq > 0:
            return TranscriptPage(session, [])
        # A session without messages can still have runs (started by the repositories).
        # The clock bounds the read (one index range), inclusive: a run starts in the same
        # millisecond as the message before its turn on a fast machine. Which side of a bound
        # a run is on is then decided by the seq of its user message (input_seq), as its write
        # recorded; by the clock only for a run without one (a framework's).
        started: dict[str, datetime] = {}
        after: datetime | None = None  # a run without input_seq: started later than this
        seqs = range(1, end + 1)  # the input_seq of this page's runs
        if messages and messages[0].seq > 1:
            previous = await latest_messages(db, sid, messages[0].seq - 1, 1, floor=floor)
            if previous:
                started["$gte"] = after = previous[0].created_at
                seqs = range(previous[0].seq + 1, end + 1)
            else:
                started["$gte"] = messages[0].created_at
                seqs = range(messages[0].seq, end + 1)
        if upper is not None:
            started["$lte"] = upper
        query: dict[str, Any] = {"session_id": sid, **({"started_at": started} if started else {})}
        raws = await (
            db.collection(RunDocument)
            .find(query)
            .sort([("started_at", ASCENDING), ("_id", ASCENDING)])
            .limit(MAX_LIMIT)
            .batch_size(MAX_LIMIT)
            .to_list()
        )
        runs = [
            run
            for run in load_many(Run, raws, "runs")
            if (run.input_seq in seqs if run.input_seq is not None else _within(run, after, upper))
        ]
        return TranscriptPage(session, runs)

    @translate_errors
    async def find_with_agent(
        self, id: str | ObjectId, *, message_limit: int = 100
    ) -> tuple[SessionWithMessages, Agent | None]:
        """``find_by_id``'s session with its latest messages, and its active agent (``None``
        when it has none, or it no longer exists): what a turn starts from.

        One command, an ``aggregate`` that joins the agent and the range of the latest
        ``message_limit`` ``seq`` values to the session (more only where that range holds
        messages no reader may see, as ``find_by_id``). On SecantusDB, whose ``$lookup``
        decodes the whole foreign collection, three finds (``agents_core.db.server``).
        """
        db = self.db
        sid = check.object_id(id, "session")
        count = check.limit(message_limit, "message_limit", minimum=0)
        if db.profile.separate_reads:
            session = await self.find_by_id(sid, message_limit=count)
            if session.active_agent_id is None:
                return session, None
            raw_agent = await db.collection(AgentDocument).find_one(
                {"_id": session.active_agent_id}
            )
            return session, None if raw_agent is None else load(Agent, raw_agent, "agents")
        pipeline: list[dict[str, Any]] = [
            {"$match": by_id(SessionDocument, sid)},
            {"$project": SESSION_PROJECTION},
            {
                "$lookup": {
                    "from": AgentDocument.Settings.name,
                    "localField": "active_agent_id",
                    "foreignField": "_id",
                    "as": "agent",
                }
            },
            {
                "$lookup": {
                    "from": MessageDocument.Settings.name,
                    "let": {
                        "top": "$last_seq",
                        "low": {
                            "$max": ["$cleared_through_seq", {"$subtract": ["$last_seq", count]}]
                        },
                    },
                    # session_id by value (an index equality), the range in $expr.
                    "pipeline": [
                        {
                            "$match": {
                                "session_id": sid,
                                "$expr": {
                                    "$and": [
                                        {"$gt": ["$seq", "$$low"]},
                                        {"$lte": ["$seq", "$$top"]},
                                    ]
                                },
                            }
                        }
                    ],
                    "as": "messages",
                }
            },
        ]
        found = await (await db.collection(SessionDocument).aggregate(pipeline)).to_list()
        if not found:
            raise NotFoundError("session", sid)
        raw = found[0]
        agents = raw.pop("agent", [])
        top, floor = raw.get("last_seq", 0), raw.get("cleared_through_seq", 0)
        db.hint_seq(sid, top)
        raw["messages"] = await visible_range(
            db, sid, top, floor, count, first=raw.get("messages", [])
        )
        session = load(SessionWithMessages, raw, _COLLECTION, nested=_MESSAGES)
        return session, load(Agent, agents[0], "agents") if agents else None

    @translate_errors
    async def set_active_agent(
        self, session_id: str | ObjectId, agent_id: str | ObjectId
    ) -> Session:
        """Route the session to an existing agent; returns the session. Two commands (the
        agent's existence, the update; three on SecantusDB: update, read back)."""
        db = self.db
        sid = check.object_id(session_id, "session")
        aid = check.object_id(agent_id, "agent")
        await require(db, AgentDocument, aid, "agent")
        change = {"$set": {"active_agent_id": aid}, "$max": {"updated_at": utcnow()}}
        raw = await update(db, SessionDocument, sid, "session", change, SESSION_PROJECTION)
        return load(Session, raw, _COLLECTION)

    @translate_errors
    async def list_active(self, *, user_id: str | None = None, limit: int = 100) -> list[Session]:
        """Active sessions, latest updated first; only ``user_id``'s if given. One command.

        The order is by ``updated_at`` (stored to the millisecond), then by id: sessions active
        in the same millisecond come newest created first, whichever was touched last.
        """
        query: dict[str, object] = {"status": SessionStatus.active.value}
        if user_id is not None:
            query = {"user_id": check.name(user_id, "user_id"), **query}
        count = check.limit(limit)
        raws = await (
            self.db.collection(SessionDocument)
            .find(query, SESSION_PROJECTION)
            .sort([("updated_at", DESCENDING), ("_id", DESCENDING)])
            .limit(count)
            .batch_size(count)
            .to_list()
        )
        return load_many(Session, raws, _COLLECTION)

    @translate_errors
    async def list_active_page(
        self, *, user_id: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> Page[Session]:
        """``list_active`` in pages: pass each page's ``next_cursor`` to get the next one.

        The order (newest activity first) is the one at the first page, so a walk over all pages
        returns every session that was active then exactly once, however they are updated
        meanwhile (one deleted since is left out; one archived since is shown as it is now).
        The first page is two commands (three when there is a next page), each later page two;
        a cursor lives ``LISTING_TTL`` (one hour).
        """
        uid = None if user_id is None else check.name(user_id, "user_id")
        count = check.limit(limit)
        return await _listing.list_page(
            self.db, scope="active", user_id=uid, limit=count, cursor=cursor
        )

    @translate_errors
    async def list_by_user(
        self, user_id: str, *, limit: int = 100, cursor: str | None = None
    ) -> Page[Session]:
        """Every session of ``user_id``, archived included, in pages like ``list_active_page``."""
        uid = check.name(user_id, "user_id")
        count = check.limit(limit)
        return await _listing.list_page(
            self.db, scope="all", user_id=uid, limit=count, cursor=cursor
        )

    @translate_errors
    async def list_ids_by_prefix(self, prefix: str, *, limit: int = 10) -> list[ObjectId]:
        """The ids of up to ``limit`` sessions that start with ``prefix`` (1 to 24 hexadecimal
        digits, any case): what a person typed resolved to the session it names. One command.

        A session being deleted is listed too, so that ``delete`` can be given it again.
        """
        start = check.id_prefix(prefix, "session")
        return await ids_by_prefix(self.db, SessionDocument, start, check.limit(limit))

    @translate_errors
    async def list_recent_ids(self, *, limit: int = RECENT_IDS) -> list[ObjectId]:
        """The ids of the ``limit`` active sessions most recently active (by ``updated_at``),
        newest first: what the end of an id a person typed is matched among.

        A bounded read of the ``(status, updated_at)`` index (``newest_ids``: in windows of
        time on SecantusDB), ids only; never the whole collection.
        """
        return await newest_ids(
            self.db,
            SessionDocument,
            "updated_at",
            check.limit(limit),
            {"status": SessionStatus.active.value},
        )

    @translate_errors
    async def fork(
        self, session_id: str | ObjectId, *, at_seq: int | None = None, title: str | None = None
    ) -> Session:
        """A new ``active`` session whose history is a copy of this one's up to ``at_seq``.

        Default: the whole history. The fork keeps the session's other fields (user, agent),
        takes ``title`` if given, and records ``forked_from`` and ``forked_at_seq``; copied
        messages keep their ``seq``. Memory stays bounded however long the history: it is copied
        in windows of 1,000 ``seq`` values (one read, then inserts of 250 messages), hidden
        until complete; if the source is deleted meanwhile, the fork is removed and this raises
        ``NotFoundError``. Commands: 4, plus 5 per 1,000 messages copied.

        The fork shows what the source showed up to ``at_seq``: an ``at_seq`` inside a batch
        the source shows raises ``InvalidInputError`` (one more command), a fork at or below
        the cleared point is empty with its floor at ``at_seq``, and a fork that a ``clear``
        overtakes while it copies is empty, never part of the history (docs/lifecycle.md).
        """
        db = self.db
        sid = check.object_id(session_id, "session")
        cut = None if at_seq is None else check.count(at_seq, "at_seq")
        new_title = check.optional_name(title, "title")
        source = load(
            Session, await get(db, SessionDocument, sid, "session", SESSION_PROJECTION), _COLLECTION
        )
        if cut is None:
            cut = source.last_seq
        elif cut > source.last_seq:
            raise InvalidInputError(
                "at_seq", f"is beyond the session's last seq ({source.last_seq})"
            )
        return await lifecycle.copy_session(db, source, cut, new_title)

    @translate_errors
    async def delete(self, session_id: str | ObjectId) -> bool:
        """Delete the session with its messages, runs, tool calls and stored payloads.

        ``False`` if there was no such session. From its first command on the session is gone
        for every reader and writer (appends to it raise ``NotFoundError``); a call that crashed
        midway is completed by calling ``delete`` again (or by the retention sweep). Commands: 5
        for a session without runs, 8 with up to 1,000 runs (4 more per further 1,000); one
        more, after a wait of up to two seconds, when it starts right after an append and finds
        fewer messages than the session reserved.
        """
        db = self.db
        sid = check.object_id(session_id, "session")
        sessions = db.collection(SessionDocument)
        deleting = SessionStatus.deleting.value
        # Marked first, unconditionally (whatever its status, a fork being copied included):
        # appends stop here. Retention instead claims with a compare-and-set on last_seq and
        # updated_at, so that a session active again survives it.
        await sessions.update_one(
            {"_id": sid, "status": {"$ne": deleting}},
            {"$set": {"status": deleting, "deleting_at": utcnow()}},
        )
        # The state as of the mark (nothing changes it after), or of a deletion a crash left.
        raw = await sessions.find_one({"_id": sid}, lifecycle.STATE)
        if raw is None:
            return False
        await lifecycle.finish_deletion(db, sid, raw)
        return True

    @translate_errors
    async def archive(self, session_id: str | ObjectId) -> Session:
        """Mark the session ``archived`` (it leaves ``list_active``). One command (two on
        SecantusDB: update, read back).

        Idempotent: archiving an archived session changes nothing (one more command to read it).
        """
        db = self.db
        sid = check.object_id(session_id, "session")
        raw = await update_and_read(
            db,
            SessionDocument,
            {"_id": sid, "status": SessionStatus.active.value},
            {"$set": {"status": SessionStatus.archived.value}, "$max": {"updated_at": utcnow()}},
            SESSION_PROJECTION,
        )
        if raw is None:
            raw = await get(db, SessionDocument, sid, "session", SESSION_PROJECTION)
        return load(Session, raw, _COLLECTION)

    @translate_errors
    async def set_title_if_untitled(self, session_id: str | ObjectId, title: str) -> bool:
        """Give the session ``title`` unless it has one: ``True`` if this call titled it. One
        command, a compare-and-set (``update_one({_id, title: null}, ...)``), so of racing
        callers the first wins and no title is ever replaced. ``updated_at`` is left alone (a
        title is not activity). ``False`` also for a session that does not exist."""
        db = self.db
        sid = check.object_id(session_id, "session")
        result = await db.collection(SessionDocument).update_one(
            {**by_id(SessionDocument, sid), "title": None},
            {"$set": {"title": check.name(title, "title")}},
        )
        return result.modified_count == 1

    @translate_errors
    async def find_by_external_id(
        self, external_id: str, *, namespace: str, user_id: str | None = None
    ) -> Session | None:
        """The session that carries this caller's id, or ``None``. One command (an
        ``aggregate`` of the id's mapping and its session; on SecantusDB two finds).

        An external id is unique within ``namespace`` and ``user_id``: the key of the
        ``session_external_ids`` collection (``documents/external_id.py``), which a sharded
        cluster shards by it, so the lookup goes to one shard and then to the session's.
        """
        key = _external_key(external_id, namespace, user_id)
        _, raw = await _by_external_key(self.db, key)
        return None if raw is None or not _shown(raw) else load(Session, raw, _COLLECTION)

    @translate_errors
    async def get_or_create_by_external_id(
        self,
        external_id: str,
        *,
        namespace: str,
        user_id: str | None = None,
        title: str | None = None,
    ) -> Session:
        """The session of this external id, created (``active``) if there is none yet.

        Race-safe: processes that create the same external id at once all get the one session
        whose mapping the unique index let in. One command when it exists (as
        ``find_by_external_id``), three to create it (look up; insert the mapping, naming a
        session ``_id`` made here; insert the session with that ``_id``), three for the loser of
        a race (look up, refused mapping, look up). A creator that died between its two inserts
        left a mapping without its session: the next call inserts that session (the same
        ``_id``, so two such calls make one), and no session with an external id ever exists
        without its mapping. A session being deleted still holds its external id until its
        deletion releases it: ``InvalidStateError`` then. A session stored before external ids
        had their own collection (its key on the session alone, see
        ``agents_core.db.migrations``) is found and given its mapping.
        """
        return await _get_or_create(self.db, external_id, namespace, user_id, title)

    @translate_errors
    async def get_or_create_many_by_external_id(
        self, keys: Sequence[ExternalSessionDTO]
    ) -> list[Session]:
        """The sessions of these external ids, in the order given, those missing created.

        ``get_or_create_by_external_id`` for each distinct key, one after the other (each key's
        mapping lives on the shard of its own key, so one command cannot serve several on a
        sharded cluster): race-safe like the single one; a session being deleted still holds its
        external id: ``InvalidStateError`` then. Callers that look the same keys up often (the
        framework run writer) keep what they found.
        """
        db = self.db
        if isinstance(keys, str | bytes) or not isinstance(keys, Sequence):
            raise InvalidInputError("keys", "must be a list of ExternalSessionDTO")
        for key in keys:
            if not isinstance(key, ExternalSessionDTO):
                raise InvalidInputError(
                    "keys", f"must hold ExternalSessionDTO, not {type(key).__name__}"
                )
            # Every key checked before anything is written: one bad key writes nothing.
            _external_key(key.external_id, key.namespace, key.user_id)
            check.optional_name(key.title, "title")
        found: dict[tuple[str, str | None, str], Session] = {}
        for key in keys:
            triple = (key.namespace, key.user_id, key.external_id)
            if triple not in found:
                found[triple] = await _get_or_create(
                    db, key.external_id, key.namespace, key.user_id, key.title
                )
        return [found[(key.namespace, key.user_id, key.external_id)] for key in keys]


async def _get_or_create(
    db: Connection,
    external_id: object,
    namespace: object,
    user_id: object,
    title: object,
) -> Session:
    """``get_or_create_by_external_id`` of one key (see there)."""
    key = _external_key(external_id, namespace, user_id)
    session_title = check.optional_name(title, "title")
    mapping, raw = await _by_external_key(db, key)
    if mapping is None:
        session_id = ObjectId()
        try:
            await db.collection(ExternalIdDocument).insert_one(
                {**key, "session_id": session_id, "created_at": utcnow()}
            )
        except DuplicateKeyError:  # another process created it first
            mapping, raw = await _by_external_key(db, key)
            if mapping is None:  # and a deletion released it since
                raise InvalidStateError(
                    "session", key["external_id"], "deleted meanwhile: retry"
                ) from None
        else:
            return await _create_mapped(db, session_id, key, session_title)
    if raw is None:  # its creator is still inserting it, or died first: complete it
        return await _create_mapped(db, mapping["session_id"], key, session_title)
    if not _shown(raw):
        raise InvalidStateError(
            "session", key["external_id"], "being deleted: retry once it is gone"
        )
    return load(Session, raw, _COLLECTION)


async def _by_external_key(
    db: Connection, key: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The mapping of ``key`` and the session it names, as stored (any status); ``None`` for
    either that does not exist. One ``aggregate`` (SecantusDB: a find, then one by ``_id``)."""
    mappings = db.collection(ExternalIdDocument)
    if db.profile.separate_reads:
        mapping: dict[str, Any] | None = await mappings.find_one(key)
        if mapping is None:
            return None, None
        raw: dict[str, Any] | None = await db.collection(SessionDocument).find_one(
            {"_id": mapping["session_id"]}, SESSION_PROJECTION
        )
        return mapping, raw
    joined = {
        "from": SessionDocument.Settings.name,
        "localField": "session_id",
        "foreignField": "_id",
        "as": "session",
    }
    found = await (await mappings.aggregate([{"$match": key}, {"$lookup": joined}])).to_list()
    if not found:
        return None, None
    sessions = found[0].pop("session")
    # Whole, with the layer's own fields: a record's validation ignores what it does not declare.
    return found[0], sessions[0] if sessions else None


async def _create_mapped(
    db: Connection, session_id: ObjectId, key: dict[str, Any], title: str | None
) -> Session:
    """Insert the session a mapping names (``session_id``); the session if another process
    did first; a session stored before the mappings (its key on the session alone) adopted."""
    try:
        session = await insert(db, SessionDocument, Session, _id=session_id, title=title, **key)
    except DuplicateKeyError:
        sessions = db.collection(SessionDocument)
        raw = await sessions.find_one({"_id": session_id}, SESSION_PROJECTION)
        if raw is None:  # refused by the sessions' own unique key of a database not migrated
            raw = await sessions.find_one(_visible(key), SESSION_PROJECTION)
            if raw is None:
                raise InvalidStateError(
                    "session", key["external_id"], "being deleted: retry once it is gone"
                ) from None
            await db.collection(ExternalIdDocument).update_one(
                {**key, "session_id": session_id}, {"$set": {"session_id": raw["_id"]}}
            )
        if not _shown(raw):
            raise InvalidStateError(
                "session", key["external_id"], "being deleted: retry once it is gone"
            ) from None
        return load(Session, raw, _COLLECTION)
    db.hint_seq(session.id, session.last_seq)
    return session


def _shown(raw: dict[str, Any]) -> bool:
    """Whether callers may see this stored session (not being deleted or forked)."""
    return raw.get("status") in VISIBLE_STATUSES


def _visible(key: dict[str, Any]) -> dict[str, Any]:
    """``key`` for sessions callers may see (not being deleted or forked)."""
    return {**key, **SessionDocument.visible}


def _external_key(external_id: object, namespace: object, user_id: object) -> dict[str, Any]:
    """The key of an external id's mapping (its collection's shard key and unique index, in
    their order)."""
    return {
        "external_namespace": check.name(namespace, "namespace"),
        "user_id": check.optional_name(user_id, "user_id"),
        "external_id": check.name(external_id, "external_id", max_length=MAX_EXTERNAL_ID_LENGTH),
    }


def _within(run: Run, after: datetime | None, upper: datetime | None) -> bool:
    """Whether a run without ``input_seq`` is of a transcript page whose message before it was
    written at ``after`` and the one after it at ``upper`` (``None``: no such message): it
    started after the one and before the other, and a framework's run did not end at or after
    ``upper`` (it is then the next page's first turn's: it starts before its user message is
    stored)."""
    if after is not None and run.started_at <= after:
        return False
    if upper is None:
        return True
    ends_after = (
        run.source is not None and run.completed_at is not None and run.completed_at >= upper
    )
    return run.started_at < upper and not ends_after
