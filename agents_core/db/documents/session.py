"""A conversation. Its messages live in their own collection and point back to it by id."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

import pymongo
from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import IndexModel

from agents_core.db.documents._common import UtcDatetime, utcnow
from agents_core.db.documents.message import Message

__all__ = [
    "RECENT_KEYS",
    "RECENT_KEYS_KEPT",
    "SESSION_PROJECTION",
    "Session",
    "SessionStatus",
    "SessionWithMessages",
]

#: The session's latest message idempotency keys (internal: never part of the model).
RECENT_KEYS = "recent_idempotency_keys"
#: How many of them a session remembers: enough for repeats racing their first writer (a repeat
#: that comes later finds the stored message before it reserves anything).
RECENT_KEYS_KEPT = 64
#: Projection for reading a session as a model (leaves the internal key list on the server).
SESSION_PROJECTION = {RECENT_KEYS: 0}


class SessionStatus(StrEnum):
    active = "active"
    archived = "archived"


class Session(Document):
    title: str | None = None
    user_id: str | None = None
    status: SessionStatus = SessionStatus.active
    active_agent_id: PydanticObjectId | None = None
    #: The ``seq`` of the latest message reserved in this session (0: none yet).
    last_seq: int = 0
    created_at: UtcDatetime = Field(default_factory=utcnow)
    updated_at: UtcDatetime = Field(default_factory=utcnow)

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
        ]


class SessionWithMessages(Session):
    """A session with its latest messages, oldest first (never the whole history)."""

    messages: list[Message] = Field(default_factory=list)
