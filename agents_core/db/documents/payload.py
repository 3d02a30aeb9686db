"""Chunks of tool-call payloads too large to embed in their run (a GridFS of our own).

PyMongo's ``AsyncGridFSBucket`` refuses the in-memory mock's database, so the layer keeps its
own chunk collection, which works the same on both backends: a payload is split into chunks of
``limits.CHUNK_BYTES``, each a document ``{payload_id, run_id, n, data}`` (``thread_id`` instead
of ``run_id`` for a LangGraph value). ``agents_core.db.chunks`` writes and reads them.
"""

from __future__ import annotations

from typing import ClassVar

import pymongo
from beanie import Document
from pydantic import BaseModel
from pymongo import IndexModel

from agents_core.db.documents._common import ObjectIdField, Record

__all__ = ["PAYLOAD_ORDER_INDEX", "PayloadChunkDocument", "PayloadChunkFields", "PayloadRef"]

#: A payload's chunks in order, one per ``(payload_id, n)``; every user of the collection
#: creates it (the LangGraph saver too, on a database without ``init_db``).
PAYLOAD_ORDER_INDEX = IndexModel(
    [("payload_id", pymongo.ASCENDING), ("n", pymongo.ASCENDING)],
    name="payload_id_n_unique",
    unique=True,
)


class PayloadRef(Record):
    """What a tool call keeps of a payload stored outside its run."""

    id: ObjectIdField
    #: Size in bytes of UTF-8.
    size: int
    #: Hex SHA-256 of the UTF-8 bytes, checked on every read.
    sha256: str


class PayloadChunkFields(BaseModel):
    payload_id: ObjectIdField
    #: The run whose tool call stored it (its payloads are deleted with the run).
    run_id: ObjectIdField | None = None
    #: The LangGraph thread whose value stored it (``agents_core.integrations.langgraph``).
    thread_id: str | None = None
    n: int
    data: bytes


class PayloadChunkDocument(Document, PayloadChunkFields):
    """The ``payload_chunks`` collection (read-only for users; the repositories write it)."""

    class Settings:
        name = "payload_chunks"
        use_revision = False
        indexes: ClassVar[list[IndexModel]] = [
            PAYLOAD_ORDER_INDEX,
            IndexModel([("run_id", pymongo.ASCENDING)], name="run_id"),
        ]
