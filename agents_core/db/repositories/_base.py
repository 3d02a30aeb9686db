"""What the repositories share: driver collections, id lookups and model conversion.

Design note: the repositories speak to PyMongo's collections directly, one command per step,
with every write a single atomic server-side update (``$inc``, ``$addToSet``, ``$push``,
``arrayFilters``). Beanie owns the document classes, their registration and their indexes; its
query builder and per-document state tracking are bypassed on purpose (they cost client CPU and
sometimes a round trip, and buy nothing for these narrow operations).
"""

from __future__ import annotations

from typing import Any

from beanie import Document
from bson import ObjectId

from agents_core.db.client import collection
from agents_core.db.errors import NotFoundError

_ID_ONLY = {"_id": 1}


def to_document(model: Document) -> dict[str, Any]:
    """The BSON-ready dict of a new document (its ``_id`` included, generated if missing)."""
    if model.id is None:
        model.id = ObjectId()  # type: ignore[assignment]
    return model.model_dump(by_alias=True, exclude={"revision_id"})


async def require(document: type[Document], id: ObjectId, entity: str) -> None:
    """Raise ``NotFoundError`` unless a ``document`` with this ``_id`` exists."""
    if await collection(document).find_one({"_id": id}, _ID_ONLY) is None:
        raise NotFoundError(entity, id)
