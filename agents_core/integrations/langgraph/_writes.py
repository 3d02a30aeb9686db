"""Writing checkpoints and pending writes: ``aput`` and ``aput_writes``.

``aput`` is one ``insert`` (the new blobs with the checkpoint document), then the head's
compare-and-set (``_heads``): the head moves last, so a reader, who finds checkpoints through
it, never sees a checkpoint without its blobs. A value above ``inline_max_bytes`` is written to
``payload_chunks`` first, before anything that refers to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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

from agents_core.integrations.langgraph._documents import (
    blob_key,
    checkpoint_key,
    config_of,
    identifier,
    write_key,
)
from agents_core.integrations.langgraph._heads import Heads
from agents_core.integrations.langgraph._store import insert_new, only_duplicates, translated

__all__ = ["Writes"]


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
            cid = identifier(checkpoint["id"], "checkpoint id")
            stored: dict[str, Any] = dict(checkpoint)
            values: dict[str, Any] = stored.pop("channel_values", None) or {}
            chunk_docs: list[dict[str, Any]] = []
            blobs = []
            for channel, version in new_versions.items():
                key = blob_key(thread, ns, channel, version)
                typed = self.serde.dumps_typed(values[channel]) if channel in values else None
                blobs.append(
                    {
                        "_id": key,
                        "kind": "blob",
                        "thread_id": thread,
                        "ns": ns,
                        "k": key,
                        **self._value_fields(thread, typed or ("empty", b""), chunk_docs),
                    }
                )
            kept_metadata = get_serializable_checkpoint_metadata(config, metadata)
            checkpoint_type, checkpoint_bytes = self.serde.dumps_typed(stored)
            metadata_type, metadata_bytes = self.serde.dumps_typed(kept_metadata)
            doc: dict[str, Any] = {
                "_id": checkpoint_key(thread, ns, cid),
                "kind": "checkpoint",
                "thread_id": thread,
                "ns": ns,
                "checkpoint_id": cid,
                "seq": 0,  # the head's next, set below
                "parent_id": None if parent is None else identifier(parent, "checkpoint_id"),
                "type": checkpoint_type,
                "checkpoint": checkpoint_bytes,
                "metadata_type": metadata_type,
                "metadata": metadata_bytes,
            }
            if isinstance(run_id := kept_metadata.get("run_id"), str):
                doc["run_id"] = run_id
            if chunk_docs:  # before anything that refers to them
                await chunks.insert_many(chunk_docs, ordered=False)
            keys = [doc["_id"]] + [
                blob_key(thread, ns, channel, version)
                for channel, version in checkpoint["channel_versions"].items()
            ]
            await self._put(coll, thread, ns, doc, blobs, keys)
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
                        "channel": channel,
                        **self._value_fields(thread, self.serde.dumps_typed(value), chunk_docs),
                    }
                )
            if chunk_docs:
                await chunks.insert_many(chunk_docs, ordered=False)
            if all(channel in WRITES_IDX_MAP for channel, _ in writes):
                # Special writes (errors, interrupts, resumes) replace an earlier one, as in
                # LangGraph's own savers; the others are written once per (task, index).
                await coll.bulk_write(
                    [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=False
                )
            else:
                await insert_new(coll, docs)
        except (PyMongoError, BSONError) as exc:
            raise translated(exc) from exc

    async def _put(
        self,
        coll: AsyncCollection[Any],
        thread: str,
        ns: str,
        doc: dict[str, Any],
        blobs: list[dict[str, Any]],
        keys: list[str],
    ) -> None:
        """Insert the new blobs with the checkpoint (one command), then move the head.

        Should another writer have moved the head (a stale cache), the checkpoint takes the
        next ``seq`` and the compare-and-set is retried.
        """
        known = self._heads.get((thread, ns))
        if known is None:
            known = await self._head(coll, thread, ns)
        doc["seq"] = (0 if known is None else known.seq) + 1
        try:
            await coll.insert_many([*blobs, doc], ordered=False)
        except BulkWriteError as exc:
            if not only_duplicates(exc):  # a blob stored already: blobs never change
                raise
            if any(error.get("index") == len(blobs) for error in exc.details["writeErrors"]):
                await coll.replace_one({"_id": doc["_id"]}, doc)  # the same checkpoint again
        await self._move_head(
            coll,
            thread,
            ns,
            known,
            seq=doc["seq"],
            newest=doc,
            newest_keys=keys,
            oldest=doc["checkpoint_id"],
            ordered=True,
            renumber=doc["_id"],
        )
