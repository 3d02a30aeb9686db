"""Tool-call payloads stored outside their run: write, read back (verified), delete.

A payload above ``payload_inline_max_bytes``, or one that would push its run past
``run_inline_budget_bytes``, is split into ``payload_chunks`` documents (``agents_core.db.chunks``,
the format's one implementation); the embedded tool call keeps a ``PayloadRef`` (id, size,
SHA-256). Chunks carry their run's id, so deleting a run deletes its payloads with one command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bson import ObjectId
from pymongo.errors import BulkWriteError

from agents_core.db import chunks
from agents_core.db.client import Connection
from agents_core.db.documents import PayloadChunkDocument, PayloadRef, ToolCall
from agents_core.db.errors import CorruptDocumentError

__all__ = ["delete_for_run", "discard", "resolve", "store", "store_given"]

_DUPLICATE_KEY = 11000


async def store(db: Connection, run_id: ObjectId, data: bytes) -> PayloadRef:
    """Write UTF-8 ``data`` as chunks (one insert command up to ~48 MB); returns its reference."""
    ref, docs = chunks.split(data, {"run_id": run_id})
    await db.collection(PayloadChunkDocument).insert_many(docs, ordered=True)
    return ref


async def store_given(db: Connection, docs: Sequence[dict[str, Any]]) -> None:
    """Write the chunks of payloads whose ids the caller derived (``chunks.split`` with a
    ``payload_id``), in one insert (a few commands beyond ~48 MB).

    Idempotent: a retry after a network error finds the chunks that landed (their unique
    ``(payload_id, n)`` key refuses them again) and writes only the others.
    """
    if not docs:
        return
    try:
        await db.collection(PayloadChunkDocument).insert_many(list(docs), ordered=False)
    except BulkWriteError as exc:
        if any(error.get("code") != _DUPLICATE_KEY for error in exc.details["writeErrors"]):
            raise


async def discard(db: Connection, ref: PayloadRef) -> None:
    """Delete a payload that ended up unreferenced (its tool-call write was refused)."""
    await chunks.discard(db.collection(PayloadChunkDocument), [ref.id])


async def delete_for_run(db: Connection, run_id: ObjectId) -> None:
    await chunks.delete_owned(db.collection(PayloadChunkDocument), {"run_id": run_id})


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
    found = await chunks.read(db.collection(PayloadChunkDocument), refs.values())
    texts: dict[int, dict[str, str]] = {}
    for (index, field), ref in refs.items():
        if (data := found.get(ref.id)) is None:
            raise CorruptDocumentError(
                chunks.COLLECTION,
                ref.id,
                f"payload of tool call {calls[index].id} is missing or corrupt",
            )
        texts.setdefault(index, {})[field] = data.decode("utf-8")
    return [
        call.model_copy(update=texts[index]) if index in texts else call
        for index, call in enumerate(calls)
    ]
