"""Tool-call payloads stored outside their run: write, read back (verified), delete.

A payload above ``payload_inline_max_bytes``, or one that would push its run past
``run_inline_budget_bytes``, is split into ``payload_chunks`` documents; the embedded tool call
keeps a ``PayloadRef`` (id, size, SHA-256). Chunks carry their run's id, so deleting a run
deletes its payloads with one command.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from bson import ObjectId

from agents_core.db.client import collection
from agents_core.db.documents import Payload, PayloadRef, ToolCall
from agents_core.db.documents.payload import CHUNK_BYTES
from agents_core.db.errors import DatabaseError

__all__ = ["delete_for_run", "discard", "resolve", "store"]


async def store(run_id: ObjectId, data: bytes) -> PayloadRef:
    """Write UTF-8 ``data`` as chunks (one insert command up to ~48 MB); returns its reference."""
    payload_id = ObjectId()
    chunks = [
        {
            "payload_id": payload_id,
            "run_id": run_id,
            "n": n,
            "data": data[start : start + CHUNK_BYTES],
        }
        for n, start in enumerate(range(0, max(len(data), 1), CHUNK_BYTES))
    ]
    await collection(Payload).insert_many(chunks, ordered=True)
    return PayloadRef(id=payload_id, size=len(data), sha256=hashlib.sha256(data).hexdigest())


async def discard(ref: PayloadRef) -> None:
    """Delete a payload that ended up unreferenced (its tool-call write was refused)."""
    await collection(Payload).delete_many({"payload_id": ref.id})


async def delete_for_run(run_id: ObjectId) -> None:
    await collection(Payload).delete_many({"run_id": run_id})


async def resolve(
    calls: Iterable[ToolCall], *, fields: tuple[str, ...] = ("input", "output")
) -> None:
    """Fill in the text of every spilled field of ``calls`` (one command if there are any)."""
    pending: list[tuple[ToolCall, str, PayloadRef]] = []
    for call in calls:
        if "input" in fields and call.input_payload is not None:
            pending.append((call, "input", call.input_payload))
        if "output" in fields and call.output_payload is not None:
            pending.append((call, "output", call.output_payload))
    if not pending:
        return
    ids = list({ref.id for _, _, ref in pending})
    parts: dict[Any, list[bytes]] = {payload_id: [] for payload_id in ids}
    cursor = (
        collection(Payload).find({"payload_id": {"$in": ids}}).sort([("payload_id", 1), ("n", 1)])
    )
    async for chunk in cursor:
        parts[chunk["payload_id"]].append(bytes(chunk["data"]))
    for call, field, ref in pending:
        data = b"".join(parts[ref.id])
        if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise DatabaseError(f"payload {ref.id} of tool call {call.id} is missing or corrupt")
        setattr(call, field, data.decode("utf-8"))
