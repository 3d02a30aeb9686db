"""A conversation. Its messages live in their own collection and point back to it by id."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

import pymongo
from beanie import Document
from pydantic import BaseModel, ConfigDict, Field
from pymongo import IndexModel

from agents_core.db.documents._common import ObjectIdField, Record, UtcDatetime, utcnow
from agents_core.db.documents.message import Message

__all__ = [
    "SESSION_PROJECTION",
    "VISIBLE_STATUSES",
    "ExternalSessionDTO",
    "Session",
    "SessionDocument",
    "SessionFields",
    "SessionStatus",
    "SessionWithMessages",
]


class SessionStatus(StrEnum):
    active = "active"
    archived = "archived"
    #: Being removed (``SessionsRepository.delete``, retention): gone for every reader and
    #: writer; a re-run of the deletion finishes it. Never returned by a repository.
    deleting = "deleting"
    #: A fork whose history is still being copied: hidden until the copy is complete.
    forking = "forking"


#: The statuses readers and writers see; the others are the layer's own, in-progress states.
VISIBLE_STATUSES = (SessionStatus.active.value, SessionStatus.archived.value)


class ExternalSessionDTO(BaseModel):
    """A session named by a caller's own id, for ``SessionsRepository.
    get_or_create_many_by_external_id``: ``external_id`` in ``namespace``, scoped by
    ``user_id``; ``title`` is given to a session created for it."""

    model_config = ConfigDict(frozen=True)

    external_id: str
    namespace: str
    user_id: str | None = None
    title: str | None = None


class SessionFields(BaseModel):
    """The stored fields of a session that its record shows: declared here once."""

    title: str | None = None
    user_id: str | None = None
    status: SessionStatus = SessionStatus.active
    active_agent_id: ObjectIdField | None = None
    #: The ``seq`` of the latest message reserved in this session (0: none yet).
    last_seq: int = 0
    #: Messages at or below this ``seq`` were cleared (``MessagesRepository.clear``): no reader
    #: shows them.
    cleared_through_seq: int = 0
    #: A caller's own id for this session (e.g. a framework's string session id), unique
    #: within ``external_namespace`` and ``user_id``: the ``session_external_ids`` collection
    #: holds the key (``documents/external_id.py``); the session shows it.
    external_id: str | None = None
    external_namespace: str | None = None
    created_at: UtcDatetime = Field(default_factory=utcnow)
    updated_at: UtcDatetime = Field(default_factory=utcnow)
    #: Set on a fork (``SessionsRepository.fork``): the session it was copied from.
    forked_from: ObjectIdField | None = None
    #: Set on a fork: the ``seq`` of the last message copied (its history is 1..this).
    forked_at_seq: int | None = None


class Session(SessionFields, Record):
    """A session, as the repositories return it."""

    id: ObjectIdField = Field(alias="_id")


class SessionWithMessages(Session):
    """A session with its latest messages, oldest first (never the whole history)."""

    messages: list[Message] = Field(default_factory=list)


class SessionDocument(Document, SessionFields):
    """The ``sessions`` collection, for read-only Beanie queries (writes: the repositories)."""

    #: The latest message idempotency keys (``limits.RECENT_KEYS_KEPT`` of them), remembered in
    #: the same atomic update that reserves a ``seq``: internal, never part of the record.
    recent_idempotency_keys: list[str] = Field(default_factory=list)
    #: When a deletion marked the session ``deleting`` (``None`` otherwise).
    deleting_at: UtcDatetime | None = None
    #: Runs a deletion removed whose payload chunks may remain: a re-run deletes those chunks.
    deleting_runs: list[ObjectIdField] = Field(default_factory=list)

    #: Added to every by-id read and write of a session: sessions in the layer's own
    #: in-progress states (``deleting``, ``forking``) do not exist for callers.
    visible: ClassVar[dict[str, Any]] = {
        "status": {"$nin": [SessionStatus.deleting.value, SessionStatus.forking.value]}
    }

    class Settings:
        name = "sessions"
        use_revision = False
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel(
                [("status", pymongo.ASCENDING), ("updated_at", pymongo.DESCENDING)],
                name="status_updated_at",
            ),
            IndexModel(
                [
                    ("user_id", pymongo.ASCENDING),
                    ("status", pymongo.ASCENDING),
                    ("updated_at", pymongo.DESCENDING),
                ],
                name="user_id_status_updated_at",
            ),
            # Listing snapshots scan these: keys that no update moves (see _listing.py).
            IndexModel(
                [("user_id", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)], name="user_id_id"
            ),
            IndexModel(
                [("status", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)], name="status_id"
            ),
        ]


#: The projection that reads a stored session as its record (``Session``): the fields only the
#: layer uses (``SessionDocument``'s own) stay on the server. Derived from the declarations, so
#: a field added to the document alone is left out by every reader at once.
SESSION_PROJECTION: dict[str, int] = {
    name: 0
    for name in sorted(SessionDocument.model_fields.keys() - Session.model_fields.keys())
    if name != "revision_id"  # Beanie's, never stored (use_revision is off)
}
