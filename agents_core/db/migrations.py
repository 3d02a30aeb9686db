"""One-time moves of data stored by earlier versions of the layer.

Usage::

    from agents_core.db import init_db
    from agents_core.db.migrations import migrate_external_ids

    await init_db(uri)
    moved = await migrate_external_ids()   # idempotent: run it again, it moves nothing

Each function is idempotent and safe to run while the application serves. Run each once
after upgrading, before serving: until ``migrate_external_ids`` has run,
``SessionsRepository.find_by_external_id`` does not find a session stored the old way
(``get_or_create_by_external_id`` adopts one when it meets it).
"""

from __future__ import annotations

from typing import Any

from pymongo.errors import BulkWriteError

from agents_core.db.client import Connection, default_connection
from agents_core.db.documents import ExternalIdDocument, SessionDocument, utcnow
from agents_core.db.errors import translate_errors

__all__ = ["LEGACY_EXTERNAL_ID_INDEX", "migrate_external_ids"]

#: The partial unique index on ``sessions`` that held external ids before they had their own
#: collection: it cannot exist on ``sessions`` sharded by hashed ``_id``.
LEGACY_EXTERNAL_ID_INDEX = "external_namespace_user_id_external_id_unique"
_BATCH = 1_000
_DUPLICATE_KEY = 11000


@translate_errors
async def migrate_external_ids(db: Connection | None = None) -> int:
    """Give every session that carries an external id its mapping in ``session_external_ids``
    (``documents/external_id.py``), then drop the sessions' old unique index on the key.

    Returns how many mappings it inserted (those already there are left as they are). Reads
    the sessions in ``_id`` order, 1,000 at a time (one find and one insert per 1,000), so
    memory stays bounded. Until it has run, ``sessions`` cannot be sharded: MongoDB refuses
    to shard a collection whose unique index does not start with the shard key.
    """
    connection = db or default_connection()
    sessions = connection.collection(SessionDocument)
    mappings = connection.collection(ExternalIdDocument)
    fields = {"external_namespace": 1, "user_id": 1, "external_id": 1}
    inserted, after = 0, None
    while True:
        query: dict[str, Any] = {"external_id": {"$type": "string"}}
        if after is not None:
            query["_id"] = {"$gt": after}
        batch = await sessions.find(query, fields).sort("_id", 1).limit(_BATCH).to_list()
        if not batch:
            break
        after = batch[-1]["_id"]
        documents = [
            {
                "external_namespace": raw.get("external_namespace"),
                "user_id": raw.get("user_id"),
                "external_id": raw["external_id"],
                "session_id": raw["_id"],
                "created_at": utcnow(),
            }
            for raw in batch
        ]
        try:
            result = await mappings.insert_many(documents, ordered=False)
            inserted += len(result.inserted_ids)
        except BulkWriteError as exc:  # mappings there already: kept as they are
            if any(error["code"] != _DUPLICATE_KEY for error in exc.details["writeErrors"]):
                raise
            inserted += exc.details["nInserted"]
    if LEGACY_EXTERNAL_ID_INDEX in await sessions.index_information():
        await sessions.drop_index(LEGACY_EXTERNAL_ID_INDEX)
    return inserted
