"""Chunks of tool-call payloads too large to embed in their run (a GridFS of our own).

PyMongo's ``AsyncGridFSBucket`` refuses the in-memory mock's database, so the layer keeps its
own chunk collection, which works the same on both backends: a payload is split into chunks of
``CHUNK_BYTES``, each a document ``{payload_id, run_id, n, data}``.
"""

from __future__ import annotations

from typing import ClassVar

import pymongo
from beanie import Document, PydanticObjectId
from pydantic import BaseModel, ConfigDict
from pymongo import IndexModel

__all__ = ["CHUNK_BYTES", "Payload", "PayloadRef"]

#: Size of one chunk: far below 16 MB, and a handful fill one insert batch.
CHUNK_BYTES = 1024 * 1024


class PayloadRef(BaseModel):
    """What a tool call keeps of a payload stored outside its run."""

    model_config = ConfigDict(frozen=True)

    id: PydanticObjectId
    #: Size in bytes of UTF-8.
    size: int
    #: Hex SHA-256 of the UTF-8 bytes, checked on every read.
    sha256: str


class Payload(Document):
    payload_id: PydanticObjectId
    run_id: PydanticObjectId
    n: int
    data: bytes

    class Settings:
        name = "payload_chunks"
        use_revision = False
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel(
                [("payload_id", pymongo.ASCENDING), ("n", pymongo.ASCENDING)],
                name="payload_id_n_unique",
                unique=True,
            ),
            IndexModel([("run_id", pymongo.ASCENDING)], name="run_id"),
        ]
