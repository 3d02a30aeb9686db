"""Tool-call payloads stored outside their run: write, read back (verified), delete.

A payload above ``payload_inline_max_bytes``, or one that would push its run past
``run_inline_budget_bytes``, is split into ``payload_chunks`` documents; the embedded tool call
keeps a ``PayloadRef`` (id, size, SHA-256). Chunks carry their run's id, so deleting a run
deletes its payloads with one command.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bson import ObjectId
from pymongo.errors import BulkWriteError

from agents_core.db.client import Connection
from agents_core.db.documents import PayloadChunkDocument, PayloadRef, ToolCall
from agents_core.db.errors import CorruptDocumentError
from agents_core.db.limits import CHUNK_BYTES

__all__ = ["delete_for_run", "discard", "ref", "resolve", "store", "store_given"]

_DUPLICATE_KEY = 11000


async def store(db: Connection, run_id: ObjectId, data: bytes) -> PayloadRef:
    """Write UTF-8 ``data`` as chunks (one insert command up to ~48 MB); returns its reference."""
    payload_id = ObjectId()
    await db.collection(PayloadChunkDocument).insert_many(
        _chunks(run_id, payload_id, data), ordered=True
    )
    return ref(payload_id, data)


async def store_given(db: Connection, payloads: Sequence[tuple[ObjectId, ObjectId, bytes]]) -> None:
    """Write several payloads ``(run_id, payload_id, data)`` whose ids the caller derived, in
    one insert (a few commands beyond ~48 MB).

    Idempotent: a retry after a network error finds the chunks that landed (their unique
    ``(payload_id, n)`` key refuses them again) and writes only the others.
    """
    chunks = [
        chunk
        for run_id, payload_id, data in payloads
        for chunk in _chunks(run_id, payload_id, data)
    ]
    if not chunks:
        return
    try:
        await db.collection(PayloadChunkDocument).insert_many(chunks, ordered=False)
    except BulkWriteError as exc:
        if any(error.get("code") != _DUPLICATE_KEY for error in exc.details["writeErrors"]):
            raise


def ref(payload_id: ObjectId, data: bytes) -> PayloadRef:
    """What a tool call keeps of ``data`` stored as ``payload_id``."""
    return PayloadRef(id=payload_id, size=len(data), sha256=hashlib.sha256(data).hexdigest())


def _chunks(run_id: ObjectId, payload_id: ObjectId, data: bytes) -> list[dict[str, object]]:
    return [
        {
            "payload_id": payload_id,
            "run_id": run_id,
            "n": n,
            "data": data[start : start + CHUNK_BYTES],
        }
        for n, start in enumerate(range(0, max(len(data), 1), CHUNK_BYTES))
    ]


async def discard(db: Connection, ref: PayloadRef) -> None:
    """Delete a payload that ended up unreferenced (its tool-call write was refused)."""
    await db.collection(PayloadChunkDocument).delete_many({"payload_id": ref.id})


async def delete_for_run(db: Connection, run_id: ObjectId) -> None:
    await db.collection(PayloadChunkDocument).delete_many({"run_id": run_id})


async def resolve(
    db: Connection, calls: list[ToolCall], *, fields: tuple[str, ...] = ("input", "output")
) -> list[ToolCall]:
    """``calls`` with the text of every spilled field filled in (one command if any is).

    Returns ``calls`` itself when nothing is spilled.
    """
    for call in calls:  # the common case, nothing spilled, at the cost of one look per call
        if call.input_payload is not None or call.output_payload is not None:
            break
    else:
        return calls
    refs = {
        (index, field): ref
        for index, call in enumerate(calls)
        for field, ref in (("input", call.input_payload), ("output", call.output_payload))
        if field in fields and ref is not None
    }
    if not refs:
        return calls
    ids = list({ref.id for ref in refs.values()})
    parts: dict[ObjectId, list[bytes]] = {payload_id: [] for payload_id in ids}
    cursor = (
        db.collection(PayloadChunkDocument)
        .find({"payload_id": {"$in": ids}})
        .sort([("payload_id", 1), ("n", 1)])
    )
    async for chunk in cursor:
        parts[chunk["payload_id"]].append(bytes(chunk["data"]))
    texts: dict[int, dict[str, str]] = {}
    for (index, field), ref in refs.items():
        data = b"".join(parts[ref.id])
        if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise CorruptDocumentError(
                "payload_chunks",
                ref.id,
                f"payload of tool call {calls[index].id} is missing or corrupt",
            )
        texts.setdefault(index, {})[field] = data.decode("utf-8")
    return [
        call.model_copy(update=texts[index]) if index in texts else call
        for index, call in enumerate(calls)
    ]
