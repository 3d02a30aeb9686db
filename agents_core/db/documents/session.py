"""A conversation. Its messages live in their own collection and point back to it by id."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

import pymongo
from beanie import Document
from pydantic import BaseModel, Field
from pymongo import IndexModel

from agents_core.db.documents._common import ObjectIdField, Record, UtcDatetime, utcnow
from agents_core.db.documents.message import Message

__all__ = [
    "Session",
    "SessionDocument",
    "SessionFields",
    "SessionStatus",
    "SessionWithMessages",
]


class SessionStatus(StrEnum):
    active = "active"
    archived = "archived"


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
    #: within ``external_namespace`` and ``user_id``.
    external_id: str | None = None
    external_namespace: str | None = None
    created_at: UtcDatetime = Field(default_factory=utcnow)
    updated_at: UtcDatetime = Field(default_factory=utcnow)


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
            IndexModel(
                [
                    ("external_namespace", pymongo.ASCENDING),
                    ("user_id", pymongo.ASCENDING),
                    ("external_id", pymongo.ASCENDING),
                ],
                name="external_namespace_user_id_external_id_unique",
                unique=True,
                partialFilterExpression={"external_id": {"$type": "string"}},
            ),
        ]
