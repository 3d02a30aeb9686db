"""The saver's storage: its two collections with their indexes, and how a value is kept.

:class:`Store` is the base of the saver's parts (``_heads``, ``_reads``, ``_writes``,
``_lifecycle``): it binds the database to ``lg_checkpoints`` (or the prefix's) and the layer's
``payload_chunks``, creating the indexes once per database, and turns values into document fields
and back: a serialized value up to ``inline_max_bytes`` stays in its document, a larger one goes
to ``payload_chunks`` (``agents_core.db.chunks``, the layer's format keyed by ``thread_id``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from bson import ObjectId
from langgraph.checkpoint.base import BaseCheckpointSaver
from pymongo import ASCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from agents_core.db import chunks as payload_chunks
from agents_core.db import validation as check
from agents_core.db.client import get_database
from agents_core.db.documents import PayloadRef
from agents_core.db.errors import DatabaseError, InvalidInputError, translate
from agents_core.integrations.langgraph._documents import Row

__all__ = ["INLINE_MAX_BYTES", "Store", "insert_new", "only_duplicates", "translated"]

#: Largest serialized value kept inside its blob or write document; larger ones are chunked.
INLINE_MAX_BYTES = 1024 * 1024
#: MongoDB's code of a duplicate key error.
DUPLICATE_KEY = 11000


class Store(BaseCheckpointSaver[str]):
    """The collections and the value encoding every part of the saver uses (set up by
    ``AgentsCoreSaver.__init__``)."""

    _database: AsyncDatabase[Any] | None
    _name: str
    _inline_max: int
    _client: AsyncMongoClient[Any] | None
    _bound: tuple[AsyncDatabase[Any], AsyncCollection[Any], AsyncCollection[Any]] | None
    _indexed: set[int]

    async def _ready(self) -> tuple[AsyncCollection[Any], AsyncCollection[Any]]:
        """The threads' collection and the chunks' collection, with their indexes."""
        db = self._database if self._database is not None else get_database()
        if self._bound is None or self._bound[0] is not db:
            self._bound = (db, db[self._name], db[payload_chunks.COLLECTION])
        _, coll, chunks = self._bound
        if id(db) not in self._indexed:
            await asyncio.gather(
                coll.create_indexes(
                    [
                        # Checkpoint ranges of a namespace; every document of a thread.
                        IndexModel(
                            [("thread_id", ASCENDING), ("ns", ASCENDING), ("seq", ASCENDING)],
                            name="thread_ns_seq",
                        ),
                        # Blobs and writes of checkpoints, heads of a thread, in one $in.
                        IndexModel([("k", ASCENDING)], name="k", sparse=True),
                        IndexModel([("run_id", ASCENDING)], name="run_id", sparse=True),
                    ]
                ),
                chunks.create_indexes(
                    [
                        # The layer's own index of this collection, for a database without it.
                        payload_chunks.PAYLOAD_ORDER_INDEX,
                        IndexModel([("thread_id", ASCENDING)], name="lg_thread_id", sparse=True),
                    ]
                ),
            )
            self._indexed.add(id(db))
        return coll, chunks

    def _dumped(self, value: object, field: str) -> tuple[str, bytes]:
        """``value`` serialized by the saver's serde, or ``InvalidInputError`` naming ``field``.

        What the serde cannot take (an integer beyond 64 bits: ``TypeError`` from msgpack) is
        refused, and so is what it would change: LangGraph's msgpack writes a lone surrogate
        (``"\\ud83d"``, a cut-off model answer) as ``?``, so a checkpoint read back would differ.
        Its output holds a ``?`` byte then, and only then are the strings searched.
        """
        try:
            typed = self.serde.dumps_typed(value)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise InvalidInputError(field, f"cannot be serialized ({exc})") from exc
        if typed[0] == "msgpack" and b"?" in typed[1]:
            check.valid_unicode(value, field)
        return typed

    def _value_fields(
        self, thread: str, typed: tuple[str, bytes], chunk_docs: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """``{type, value}``, or ``{type, payload}`` with the value's chunks appended to
        ``chunk_docs``."""
        type_, data = typed
        if len(data) <= self._inline_max:
            return {"type": type_, "value": data}
        ref, docs = payload_chunks.split(data, {"thread_id": thread})
        chunk_docs.extend(docs)
        return {"type": type_, "payload": ref.model_dump()}

    async def _chunked(
        self, chunks: AsyncCollection[Any], docs: Iterable[Mapping[str, Any]]
    ) -> dict[ObjectId, bytes]:
        """The data of every chunked value of ``docs``, by payload id (checked)."""
        refs = [PayloadRef.model_validate(doc["payload"]) for doc in docs if "payload" in doc]
        found = await payload_chunks.read(chunks, refs)
        for ref in refs:
            if ref.id not in found:
                raise DatabaseError(f"chunked checkpoint value {ref.id} is missing or corrupt")
        return found

    def _loaded(self, doc: Mapping[str, Any], chunked: Mapping[ObjectId, bytes]) -> Any:
        data = chunked[doc["payload"]["id"]] if "payload" in doc else bytes(doc["value"])
        return self.serde.loads_typed((doc["type"], data))

    def _row(self, thread: str, ns: str, doc: Mapping[str, Any]) -> Row:
        checkpoint = self.serde.loads_typed((doc["type"], bytes(doc["checkpoint"])))
        metadata = self.serde.loads_typed((doc["metadata_type"], bytes(doc["metadata"])))
        return Row(thread, ns, doc, checkpoint, metadata)


async def insert_new(
    collection: AsyncCollection[Any], docs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Insert ``docs``, skipping those whose ``_id`` exists (written once, never changed);
    returns the skipped ones."""
    if not docs:
        return []
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        if not only_duplicates(exc):
            raise
        existing = {error["index"] for error in exc.details["writeErrors"]}
        return [doc for index, doc in enumerate(docs) if index in existing]
    return []


def only_duplicates(exc: BulkWriteError) -> bool:
    errors = exc.details.get("writeErrors", [])
    return bool(errors) and all(error.get("code") == DUPLICATE_KEY for error in errors)


def translated(exc: BaseException) -> DatabaseError:
    """The layer's error for a driver or bson error (``agents_core.db.errors.translate``)."""
    error = translate(exc)
    assert error is not None
    return error
