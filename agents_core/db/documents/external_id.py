"""Callers' own ids of sessions (a framework's string session id), kept apart from the sessions.

A session is found by its ``_id`` everywhere, and ``sessions`` is sharded by it (hashed). A
caller's id is another key, unique within its namespace and user: MongoDB enforces a unique
index across shards only if it starts with the shard key, so that key lives here, in a
collection sharded by it, beside the ``_id`` of the session it names. A lookup by a caller's id
goes to one shard, then to the session's.

How the two stay consistent without a transaction (``SessionsRepository``): a mapping is
inserted first, naming a session ``_id`` made on the client, then the session with that
``_id``. So a session with a caller's id never exists without its mapping. A mapping whose
session does not exist yet (its creator is still inserting it, or died first) is completed by
the next ``get_or_create_by_external_id`` with the very ``_id`` it names, and read as absent
until then; a deletion removes the mapping before the session document.
"""

from __future__ import annotations

from typing import ClassVar

import pymongo
from beanie import Document
from pydantic import BaseModel, Field
from pymongo import IndexModel

from agents_core.db.documents._common import ObjectIdField, UtcDatetime, utcnow

__all__ = ["ExternalIdDocument", "ExternalIdFields"]


class ExternalIdFields(BaseModel):
    external_namespace: str
    user_id: str | None = None
    external_id: str
    #: The session this id names (it may not exist yet: see the module's docstring).
    session_id: ObjectIdField
    created_at: UtcDatetime = Field(default_factory=utcnow)


class ExternalIdDocument(Document, ExternalIdFields):
    """The ``session_external_ids`` collection: the layer's own, written and read by it alone."""

    class Settings:
        name = "session_external_ids"
        use_revision = False
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel(
                [
                    ("external_namespace", pymongo.ASCENDING),
                    ("user_id", pymongo.ASCENDING),
                    ("external_id", pymongo.ASCENDING),
                ],
                name="external_namespace_user_id_external_id_unique",
                unique=True,
            ),
        ]
