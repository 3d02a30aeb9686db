"""Paged session listings that stay consistent while sessions are being updated.

Design note: a keyset over ``(updated_at, _id)`` skips a session that an append moves to the
front after the walk has passed the front, so a listing's order is fixed once, at its first
page. That page reads the ``_id`` and ``updated_at`` of every matching session (scanning an
index on keys no update moves, ``(user_id, _id)`` or ``(status, _id)``, so a session bumped
during the scan is seen exactly once), sorts them newest activity first, and, if they fill
more than one page, stores that order in ``session_listings`` (chunks of
``LISTING_CHUNK_IDS`` ids, removed by a TTL index after ``LISTING_TTL``). A later page reads
its slice of the snapshot (one command) and the sessions it names (one command), as they are
now: every session that existed at the first page comes exactly once, except one deleted
since. The first page costs a read of every matching id (on MongoDB a covered index scan);
each later page is two bounded commands however long the listing.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from bson import ObjectId

from agents_core.db.client import Connection
from agents_core.db.documents import (
    SESSION_PROJECTION,
    Page,
    Session,
    SessionDocument,
    SessionListingDocument,
    SessionStatus,
    utcnow,
)
from agents_core.db.documents.session import VISIBLE_STATUSES
from agents_core.db.errors import InvalidInputError
from agents_core.db.limits import LISTING_CHUNK_IDS, LISTING_TTL
from agents_core.db.repositories._base import load_many

__all__ = ["list_page"]


_COLLECTION = "sessions"
_ORDER_KEYS = {"_id": 1, "updated_at": 1}
#: How many ids one batch of the first page's scan returns (far below 16 MB).
_SCAN_BATCH = 100_000


async def list_page(
    db: Connection, *, scope: str, user_id: str | None, limit: int, cursor: str | None
) -> Page[Session]:
    """One page of the ``active`` or ``all`` (visible) sessions of ``user_id`` (or of all users)."""
    if cursor is None:
        return await _first_page(db, scope, user_id, limit)
    listing_id, offset = _decode(cursor)
    first, last = offset // LISTING_CHUNK_IDS, (offset + limit - 1) // LISTING_CHUNK_IDS
    chunks = await (
        db.collection(SessionListingDocument)
        .find({"listing_id": listing_id, "n": {"$gte": first, "$lte": last}})
        .sort("n", 1)
        .to_list()
    )
    if not chunks or chunks[0]["n"] != first:
        raise InvalidInputError("cursor", "unknown or expired: list again from the first page")
    if chunks[0]["scope"] != scope or chunks[0].get("user_id") != user_id:
        raise InvalidInputError("cursor", "belongs to another listing")
    ids: list[ObjectId] = [id for chunk in chunks for id in chunk["ids"]]
    start = offset - first * LISTING_CHUNK_IDS
    page_ids = ids[start : start + limit]
    total = int(chunks[0]["total"])
    following = _encode(listing_id, offset + limit) if offset + limit < total else None
    return Page(items=await _sessions(db, page_ids), next_cursor=following)


async def _first_page(db: Connection, scope: str, user_id: str | None, limit: int) -> Page[Session]:
    query: dict[str, Any] = {} if user_id is None else {"user_id": user_id}
    if scope == "active":
        query["status"] = SessionStatus.active.value
    else:
        query["status"] = {"$in": list(VISIBLE_STATUSES)}
    keys = await (
        db.collection(SessionDocument)
        .find(query, _ORDER_KEYS)
        .sort("_id", 1)
        .hint("status_id" if user_id is None else "user_id_id")
        .batch_size(_SCAN_BATCH)
        .to_list()
    )
    keys.sort(key=lambda raw: (raw["updated_at"], raw["_id"]), reverse=True)
    order: list[ObjectId] = [raw["_id"] for raw in keys]
    following = None
    if len(order) > limit:
        listing_id = ObjectId()
        expires_at = utcnow() + LISTING_TTL
        chunks = [
            {
                "listing_id": listing_id,
                "n": n,
                "ids": order[start : start + LISTING_CHUNK_IDS],
                "total": len(order),
                "scope": scope,
                "user_id": user_id,
                "expires_at": expires_at,
            }
            for n, start in enumerate(range(0, len(order), LISTING_CHUNK_IDS))
        ]
        await db.collection(SessionListingDocument).insert_many(chunks, ordered=False)
        following = _encode(listing_id, limit)
    return Page(items=await _sessions(db, order[:limit]), next_cursor=following)


async def _sessions(db: Connection, ids: list[ObjectId]) -> list[Session]:
    """The visible sessions with these ids, in the order of ``ids``. One command (if any)."""
    if not ids:
        return []
    raws = await (
        db.collection(SessionDocument)
        .find({"_id": {"$in": ids}, **SessionDocument.visible}, SESSION_PROJECTION)
        .limit(len(ids))
        .batch_size(len(ids))
        .to_list()
    )
    by_id = {raw["_id"]: raw for raw in raws}
    return load_many(Session, [by_id[id] for id in ids if id in by_id], _COLLECTION)


def _encode(listing_id: ObjectId, offset: int) -> str:
    data = listing_id.binary + offset.to_bytes(4, "big")
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _decode(cursor: object) -> tuple[ObjectId, int]:
    if isinstance(cursor, str) and len(cursor) == 22:
        try:
            data = base64.urlsafe_b64decode(cursor + "==")
        except (binascii.Error, ValueError):
            data = b""
        if len(data) == 16:
            return ObjectId(data[:12]), int.from_bytes(data[12:], "big")
    raise InvalidInputError("cursor", "is not a cursor this layer returned")
