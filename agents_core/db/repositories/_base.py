"""What the repositories share: driver collections, id lookups and model conversion.

Design note: the repositories speak to PyMongo's collections directly, one command per step,
with every write a single atomic server-side update (``$inc``, ``$addToSet``, ``$push``,
``arrayFilters``). Beanie owns the document classes, their registration and their indexes; its
query builder and per-document state tracking are bypassed on purpose (they cost client CPU and
sometimes a round trip, and buy nothing for these narrow operations).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from beanie import Document
from bson import ObjectId
from pydantic import BaseModel
from pymongo import ReturnDocument

from agents_core.db.client import collection
from agents_core.db.errors import NotFoundError
from agents_core.db.repositories._decode import decode, new_document

D = TypeVar("D", bound=Document)
M = TypeVar("M", bound=BaseModel)

_ID_ONLY = {"_id": 1}


async def insert(document: type[D], **fields: Any) -> D:
    """Insert a new ``document`` (``fields`` already checked, defaults filled in); returns it.

    Its ``_id`` is made on the client, so a retried insert cannot create a second copy.
    """
    target = collection(document)  # NotInitializedError before Beanie is asked for anything
    stored = new_document(document, fields)
    await target.insert_one(stored)
    return decode(document, stored)


def load(model: type[M], raw: Mapping[str, Any]) -> M:
    """A ``model`` from what the server returned (see ``_decode`` for why not model_validate)."""
    return decode(model, raw)


async def get(
    document: type[Document],
    id: ObjectId,
    entity: str,
    projection: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The stored ``document`` with this ``_id`` (``NotFoundError`` if none). One command."""
    raw: dict[str, Any] | None = await collection(document).find_one({"_id": id}, projection)
    if raw is None:
        raise NotFoundError(entity, id)
    return raw


async def update(
    document: type[Document],
    id: ObjectId,
    entity: str,
    change: Mapping[str, Any],
    projection: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Apply ``change`` atomically; the document after it (``NotFoundError`` if none)."""
    raw: dict[str, Any] | None = await collection(document).find_one_and_update(
        {"_id": id}, change, projection=projection, return_document=ReturnDocument.AFTER
    )
    if raw is None:
        raise NotFoundError(entity, id)
    return raw


async def require(document: type[Document], id: ObjectId, entity: str) -> None:
    """Raise ``NotFoundError`` unless a ``document`` with this ``_id`` exists."""
    await get(document, id, entity, _ID_ONLY)
