"""Writing checkpoints and pending writes: ``aput`` and ``aput_writes``.

Everything is checked and serialized before anything is written (identifiers and metadata that
UTF-8 cannot encode, a checkpoint too large for its document: ``InvalidInputError``). Then
``aput`` writes the chunks of its large values, one ``insert`` (the new blobs with the checkpoint
document), and publishes the checkpoint by moving its head (``_heads``): the head moves last, so
a reader, who finds checkpoints through it, never sees a checkpoint without its blobs.

- **Lost races** (writers of one thread at once, as double-texting does): the writer backs off,
  reads the head again, gives its checkpoint the next ``seq`` and retries.
- **A failed call leaves nothing behind.** Every document a call writes carries its ``op`` (an
  ObjectId); on any failure (too much contention, a refusal, an error, a cancellation) the call
  deletes its documents by ``op`` and their chunks, unless a compare-and-set went out and no
  answer came back (then the checkpoint may be published, and is kept).
- **A thread deleted meanwhile.** A checkpoint with a parent whose head has gone (or was
  created again, without that parent) is refused: ``NotFoundError``. A write that creates a
  head checks afterwards that its checkpoint, every value its versions name, and its chunks are
  still there (a deletion running meanwhile took them), else it takes the head back and is
  refused. Either way a write racing ``adelete_thread`` lands before it (and goes with it) or is
  refused.
- **Nothing unreferenced.** A blob or write that exists already is kept (written once), and the
  chunks just written for it are removed; a special write that replaces another removes the
  replaced one's chunks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId
from bson.errors import BSONError
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_serializable_checkpoint_metadata,
)
from pymongo import ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, PyMongoError

from agents_core.db import chunks as payload_chunks
from agents_core.db import validation as check
from agents_core.db.errors import DatabaseError, InvalidInputError, NotFoundError
from agents_core.db.limits import MAX_CHECKPOINT_BYTES
from agents_core.integrations.langgraph import _heads
from agents_core.integrations.langgraph._documents import (
    Head,
    blob_key,
    checkpoint_key,
    config_of,
    head_key,
    identifier,
    write_key,
)
from agents_core.integrations.langgraph._heads import Heads, Move, back_off
from agents_core.integrations.langgraph._store import insert_new, only_duplicates, translated

__all__ = ["Writes"]


@dataclass(slots=True)
class _Put:
    """What one ``aput`` wrote, and how far its publication got."""

    doc: dict[str, Any]  # the checkpoint document (its seq and epoch follow the head)
    blobs: list[dict[str, Any]]
    keys: list[str]  # its _id and the k of every value its versions name: the head's latest_keys
    parent: str | None
    fresh: bool  # its epoch is new: no head had it
    #: Payload ids and chunk count of the chunked blobs this call stored (checked on creation).
    payloads: list[ObjectId] = field(default_factory=list)
    chunk_count: int = 0
    unanswered: bool = False  # a compare-and-set went out with no answer: published or not


class Writes(Heads):
    """``aput`` and ``aput_writes``."""

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        try:
            coll, chunks = await self._ready()
            configurable = config["configurable"]
            thread = identifier(configurable["thread_id"], "thread_id")
            ns = identifier(configurable.get("checkpoint_ns", ""), "checkpoint_ns")
            parent = configurable.get("checkpoint_id")
            parent_id = None if parent is None else identifier(parent, "checkpoint_id")
            cid = identifier(checkpoint["id"], "checkpoint id")
            kept_metadata = get_serializable_checkpoint_metadata(config, metadata)
            check.valid_unicode(kept_metadata, "metadata")
            metadata_type, metadata_bytes = self._dumped(kept_metadata, "metadata")
            stored: dict[str, Any] = dict(checkpoint)
            values: dict[str, Any] = stored.pop("channel_values", None) or {}
            versions = checkpoint["channel_versions"]
            for channel in (*versions, *new_versions):
                identifier(channel, "channel")
            checkpoint_type, checkpoint_bytes = self._dumped(stored, "checkpoint")
            _check_size(checkpoint_bytes, metadata_bytes)
            op = ObjectId()
            chunk_docs: list[dict[str, Any]] = []
            blobs = []
            for channel, version in new_versions.items():
                key = blob_key(thread, ns, channel, version)
                typed = (
                    self._dumped(values[channel], f"channel_values[{channel!r}]")
                    if channel in values
                    else None
                )
                blobs.append(
                    {
                        "_id": key,
                        "kind": "blob",
                        "thread_id": thread,
                        "ns": ns,
                        "k": key,
                        "op": op,
                        **self._value_fields(thread, typed or ("empty", b""), chunk_docs),
                    }
                )
            doc: dict[str, Any] = {
                "_id": checkpoint_key(thread, ns, cid),
                "kind": "checkpoint",
                "thread_id": thread,
                "ns": ns,
                "checkpoint_id": cid,
                "seq": 0,  # the head's next, set below
                "epoch": None,  # the head's, set below
                "parent_id": parent_id,
                "type": checkpoint_type,
                "checkpoint": checkpoint_bytes,
                "metadata_type": metadata_type,
                "metadata": metadata_bytes,
                "op": op,
            }
            if isinstance(run_id := kept_metadata.get("run_id"), str):
                doc["run_id"] = run_id
            keys = [doc["_id"]] + [
                blob_key(thread, ns, channel, version) for channel, version in versions.items()
            ]
            put = _Put(doc, blobs, keys, parent_id, fresh=False)
            await self._put(coll, chunks, thread, ns, put, chunk_docs)
            return config_of(thread, ns, cid)
        except (PyMongoError, BSONError) as exc:
            raise translated(exc) from exc

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if not writes:
            return
        try:
            coll, chunks = await self._ready()
            configurable = config["configurable"]
            thread = identifier(configurable["thread_id"], "thread_id")
            ns = identifier(configurable.get("checkpoint_ns", ""), "checkpoint_ns")
            cid = identifier(configurable["checkpoint_id"], "checkpoint_id")
            task = identifier(task_id, "task_id")
            path = identifier(task_path, "task_path")
            op = ObjectId()
            chunk_docs: list[dict[str, Any]] = []
            docs = []
            for index, (channel, value) in enumerate(writes):
                idx = WRITES_IDX_MAP.get(channel, index)
                docs.append(
                    {
                        "_id": write_key(thread, ns, cid, task, idx),
                        "kind": "write",
                        "thread_id": thread,
                        "ns": ns,
                        "k": checkpoint_key(thread, ns, cid),
                        "checkpoint_id": cid,
                        "task_id": task,
                        "task_path": path,
                        "idx": idx,
                        "channel": identifier(channel, "channel"),
                        "op": op,
                        **self._value_fields(
                            thread, self._dumped(value, f"writes[{index}]"), chunk_docs
                        ),
                    }
                )
            try:
                await self._put_writes(
                    coll,
                    chunks,
                    docs,
                    chunk_docs,
                    special=all(channel in WRITES_IDX_MAP for channel, _ in writes),
                )
            except BaseException:
                await _abandon(coll, chunks, docs, op)
                raise
        except (PyMongoError, BSONError) as exc:
            raise translated(exc) from exc

    async def _put_writes(
        self,
        coll: AsyncCollection[Any],
        chunks: AsyncCollection[Any],
        docs: list[dict[str, Any]],
        chunk_docs: list[dict[str, Any]],
        *,
        special: bool,
    ) -> None:
        """Store pending writes: each once per ``(task, index)``, except special writes (errors,
        interrupts, resumes), which replace an earlier one, as in LangGraph's own savers."""
        if chunk_docs:  # before anything that refers to them
            await chunks.insert_many(chunk_docs, ordered=False)
        if special:
            ids = [d["_id"] for d in docs]
            replaced = await coll.find({"_id": {"$in": ids}}, {"payload.id": 1}).to_list()
            await coll.bulk_write(
                [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=False
            )
            unreferenced = _payload_ids(replaced)
        else:
            unreferenced = _payload_ids(await insert_new(coll, docs))
        if unreferenced:
            await payload_chunks.discard(chunks, unreferenced)

    async def _put(
        self,
        coll: AsyncCollection[Any],
        chunks: AsyncCollection[Any],
        thread: str,
        ns: str,
        put: _Put,
        chunk_docs: list[dict[str, Any]],
    ) -> None:
        """Write the chunks, then the new blobs with the checkpoint (one command), then
        publish; on failure, take back what was written."""
        doc = put.doc
        try:
            if chunk_docs:  # before anything that refers to them
                await chunks.insert_many(chunk_docs, ordered=False)
            async with self._turn(thread, ns):
                known = self._heads.get((thread, ns))
                if known is None:
                    known = await self._head(coll, thread, ns)
                doc["seq"] = (0 if known is None else known.seq) + 1
                doc["epoch"] = ObjectId() if known is None else known.epoch
                put.fresh = known is None
                existing = await self._insert(coll, put.blobs, doc)
                if unreferenced := _payload_ids(existing):  # the blob was stored already
                    await payload_chunks.discard(chunks, unreferenced)
                put.payloads = [p for p in _payload_ids(put.blobs) if p not in unreferenced]
                put.chunk_count = sum(c["payload_id"] in put.payloads for c in chunk_docs)
                await self._publish(coll, chunks, thread, ns, known, put)
        except BaseException:
            if not put.unanswered:
                await _abandon(coll, chunks, [doc, *put.blobs], doc["op"])
            raise

    async def _insert(
        self, coll: AsyncCollection[Any], blobs: list[dict[str, Any]], doc: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Insert the blobs with the checkpoint (one command); returns the blobs that existed
        (blobs never change)."""
        try:
            await coll.insert_many([*blobs, doc], ordered=False)
        except BulkWriteError as exc:
            if not only_duplicates(exc):
                raise
            existing = {error["index"] for error in exc.details["writeErrors"]}
            if len(blobs) in existing:
                await coll.replace_one({"_id": doc["_id"]}, doc)  # the same checkpoint again
            return [blob for index, blob in enumerate(blobs) if index in existing]
        return []

    async def _publish(
        self,
        coll: AsyncCollection[Any],
        chunks: AsyncCollection[Any],
        thread: str,
        ns: str,
        head: Head | None,
        put: _Put,
    ) -> None:
        """Move the head to the checkpoint; after a lost race, back off, read the head again,
        renumber the checkpoint, retry. Refuses (``NotFoundError``) a checkpoint whose history
        was deleted meanwhile."""
        doc = put.doc
        origin = head  # the head the write started from: None for a new namespace
        for attempt in range(_heads.CAS_ATTEMPTS):
            put.unanswered = True
            move = Move(doc["seq"], doc, put.keys, doc["checkpoint_id"], ordered=True)
            moved = await self._cas(coll, thread, ns, head, move)
            if moved is not None:
                # A head it created: a deletion running meanwhile may have taken what the
                # checkpoint needs. Until that is known, it may be published: keep it on errors.
                if head is None and not await self._intact(coll, chunks, put):
                    await self._retract(coll, thread, ns, moved)
                    put.unanswered = False
                    raise NotFoundError("thread", thread)
                return
            put.unanswered = False
            await back_off(attempt)
            head = await self._head(coll, thread, ns)
            if (
                origin is not None
                and put.parent is not None
                and (head is None or head.epoch != origin.epoch)
            ):
                # The history it continues was deleted, unless its parent is in the new one.
                if head is None or not await self._published(coll, thread, ns, put.parent, head):
                    raise NotFoundError("thread", thread)
                origin = head
            if head is None:  # to be created: with a new epoch, not a gone head's
                seq, epoch = doc["seq"], (doc["epoch"] if put.fresh else ObjectId())
                put.fresh = True
            else:
                seq, epoch = max(doc["seq"], head.seq + 1), head.epoch
            if (seq, epoch) != (doc["seq"], doc["epoch"]):
                doc["seq"], doc["epoch"] = seq, epoch
                await coll.update_one(
                    {"_id": doc["_id"], "op": doc["op"]}, {"$set": {"seq": seq, "epoch": epoch}}
                )
        raise DatabaseError(f"head of thread {thread}: too much contention")

    async def _intact(
        self, coll: AsyncCollection[Any], chunks: AsyncCollection[Any], put: _Put
    ) -> bool:
        """Whether the checkpoint, every value its versions name and the chunks it wrote are
        stored (a deletion of the thread may have taken them while the head was created)."""
        wanted = set(put.keys)
        found = await coll.find({"_id": {"$in": list(wanted)}}, {"_id": 1}).to_list()
        if len(found) != len(wanted):
            return False
        if not put.payloads:
            return True
        stored = await chunks.count_documents({"payload_id": {"$in": put.payloads}})
        return stored == put.chunk_count

    async def _retract(self, coll: AsyncCollection[Any], thread: str, ns: str, head: Head) -> None:
        """Delete a head this write created, unless another writer moved it since."""
        self._remember(thread, ns, None)
        await coll.delete_one(
            {
                "_id": head_key(thread, ns),
                "head_seq": head.seq,
                "last_id": head.last_id,
                "epoch": head.epoch,
            }
        )

    async def _published(
        self, coll: AsyncCollection[Any], thread: str, ns: str, checkpoint_id: str, head: Head
    ) -> bool:
        doc = await coll.find_one(
            {"_id": checkpoint_key(thread, ns, checkpoint_id)}, {"seq": 1, "epoch": 1}
        )
        return doc is not None and head.publishes(doc)


def _check_size(checkpoint: bytes, metadata: bytes) -> None:
    """Refuse a checkpoint whose document (and its head's copy) could not be stored."""
    size = len(checkpoint) + len(metadata)
    if size > MAX_CHECKPOINT_BYTES:
        raise InvalidInputError(
            "metadata" if len(metadata) >= len(checkpoint) else "checkpoint",
            f"the checkpoint and its metadata take {size} bytes serialized, more than "
            f"{MAX_CHECKPOINT_BYTES}",
        )


def _payload_ids(docs: Sequence[dict[str, Any]]) -> list[ObjectId]:
    return [doc["payload"]["id"] for doc in docs if "payload" in doc]


async def _abandon(
    coll: AsyncCollection[Any],
    chunks: AsyncCollection[Any],
    docs: list[dict[str, Any]],
    op: ObjectId,
) -> None:
    """Delete what a failed call wrote (its documents, by ``op``, and their chunks). Best
    effort: the caller gets the call's own error."""
    with contextlib.suppress(PyMongoError):
        await coll.delete_many({"_id": {"$in": [doc["_id"] for doc in docs]}, "op": op})
        if payloads := _payload_ids(docs):
            await payload_chunks.discard(chunks, payloads)
