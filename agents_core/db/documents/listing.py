"""Snapshots of a session listing's order, taken at its first page (see ``_listing.py``).

A paged listing of sessions (``SessionsRepository.list_page``) reads the order of every
matching session once, at its first page, and keeps it here in chunks of ``LISTING_CHUNK_IDS``
ids; each later page reads the chunk(s) holding its slice. A TTL index removes a snapshot
``LISTING_TTL`` after it was taken: a cursor older than that is refused.
"""

from __future__ import annotations

from typing import ClassVar

import pymongo
from beanie import Document
from pydantic import BaseModel, Field
from pymongo import IndexModel

from agents_core.db.documents._common import ObjectIdField, UtcDatetime

__all__ = ["SessionListingDocument", "SessionListingFields"]


class SessionListingFields(BaseModel):
    #: One listing (the opaque cursor names it), split into chunks ``n`` = 0, 1, …
    listing_id: ObjectIdField
    n: int
    #: This chunk's session ids, in the listing's order (newest activity first).
    ids: list[ObjectIdField] = Field(default_factory=list)
    #: How many sessions the whole listing has.
    total: int
    #: What was listed: ``active`` or ``all`` sessions, of ``user_id`` (``None``: every user).
    scope: str
    user_id: str | None = None
    #: When the TTL index may remove the chunk.
    expires_at: UtcDatetime


class SessionListingDocument(Document, SessionListingFields):
    """The ``session_listings`` collection: the layer's own, written and read by it alone."""

    class Settings:
        name = "session_listings"
        use_revision = False
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel(
                [("listing_id", pymongo.ASCENDING), ("n", pymongo.ASCENDING)],
                name="listing_id_n_unique",
                unique=True,
            ),
            IndexModel(
                [("expires_at", pymongo.ASCENDING)], name="expires_at_ttl", expireAfterSeconds=0
            ),
        ]
