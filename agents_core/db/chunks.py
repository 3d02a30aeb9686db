"""Chunked payloads in ``payload_chunks``: the one implementation of their format.

A payload too large to embed in its document is split into chunks of ``limits.CHUNK_BYTES``,
each a document ``{payload_id, <owner>, n, data}``; the document that embeds it keeps a
:class:`~agents_core.db.documents.PayloadRef` (id, size, SHA-256), checked on every read. The
owner field says whose payload it is (``run_id`` for a tool call's, ``thread_id`` for a LangGraph
value), so that one ``delete_many`` removes all of an owner's payloads.

These functions work on the driver's collection, without Beanie, so the repositories
(``repositories/_payloads.py``) and the LangGraph saver (which may run without ``init_db``) share
them::

    ref, docs = chunks.split(data, {"run_id": run_id})   # nothing written yet
    await collection.insert_many(docs)
    ...
    found = await chunks.read(collection, [ref])          # {ref.id: data} if it is whole
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from agents_core.db.documents.payload import PAYLOAD_ORDER_INDEX, PayloadChunkDocument, PayloadRef
from agents_core.db.limits import CHUNK_BYTES

__all__ = [
    "COLLECTION",
    "PAYLOAD_ORDER_INDEX",
    "copy",
    "delete_owned",
    "discard",
    "read",
    "split",
]

#: The chunks' collection.
COLLECTION: str = PayloadChunkDocument.Settings.name


def split(
    data: bytes, owner: Mapping[str, Any], *, payload_id: ObjectId | None = None
) -> tuple[PayloadRef, list[dict[str, Any]]]:
    """``data``'s reference and its chunk documents, each carrying ``owner``'s fields (e.g.
    ``{"run_id": id}``); nothing is written. Empty data is one empty chunk. ``payload_id``: an
    id the caller derived (so that a retried write finds what landed), else a new one."""
    payload_id = payload_id or ObjectId()
    docs = [
        {"payload_id": payload_id, **owner, "n": n, "data": data[start : start + CHUNK_BYTES]}
        for n, start in enumerate(range(0, max(len(data), 1), CHUNK_BYTES))
    ]
    ref = PayloadRef(id=payload_id, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    return ref, docs


async def read(
    collection: AsyncCollection[Any], refs: Iterable[PayloadRef]
) -> dict[ObjectId, bytes]:
    """The data of each payload of ``refs`` that is whole, by id: one ``find`` (none without
    refs). A payload missing from the answer is missing or corrupt (its size or SHA-256
    differs); the caller says whose it was."""
    wanted = {ref.id: ref for ref in refs}
    if not wanted:
        return {}
    parts: dict[ObjectId, list[tuple[int, bytes]]] = {payload_id: [] for payload_id in wanted}
    async for chunk in collection.find({"payload_id": {"$in": list(wanted)}}):
        parts[chunk["payload_id"]].append((chunk["n"], bytes(chunk["data"])))
    found = {}
    for payload_id, ref in wanted.items():
        data = b"".join(part for _, part in sorted(parts[payload_id]))
        if len(data) == ref.size and hashlib.sha256(data).hexdigest() == ref.sha256:
            found[payload_id] = data
    return found


async def copy(
    collection: AsyncCollection[Any], ids: Iterable[ObjectId], owner: Mapping[str, Any]
) -> dict[ObjectId, ObjectId]:
    """Copy the payloads ``ids`` to ``owner`` under new ids (one ``find``, one ``insert``);
    returns the new id of each."""
    renamed = {payload_id: ObjectId() for payload_id in ids}
    if not renamed:
        return {}
    copied = await collection.find({"payload_id": {"$in": list(renamed)}}).to_list()
    for chunk in copied:
        chunk.pop("_id")
        chunk["payload_id"] = renamed[chunk["payload_id"]]
        chunk.update(owner)
    if copied:
        await collection.insert_many(copied, ordered=False)
    return renamed


async def discard(collection: AsyncCollection[Any], ids: Iterable[ObjectId]) -> None:
    """Delete the payloads ``ids`` (ones no document refers to any more); one command."""
    await collection.delete_many({"payload_id": {"$in": list(ids)}})


async def delete_owned(collection: AsyncCollection[Any], owner: Mapping[str, Any]) -> None:
    """Delete every payload of ``owner`` (e.g. ``{"run_id": id}``); one command."""
    await collection.delete_many(dict(owner))
