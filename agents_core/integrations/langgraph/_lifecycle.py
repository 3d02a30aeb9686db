"""Whole-thread operations: ``adelete_thread``, ``adelete_for_runs``, ``acopy_thread``,
``aprune``.

Deleting a thread removes all of it: its heads first (writers that have not published lose
their compare-and-set), then one ``delete_many`` on ``thread_id`` with one for its chunks, then
its heads again (one a racing writer created meanwhile; see ``_writes``). ``adelete_for_runs``
and ``aprune`` also delete the blobs and chunks no kept checkpoint uses, and point a head whose
newest checkpoint went to the newest remaining one; they consider only published checkpoints.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from bson import ObjectId
from bson.errors import BSONError
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from agents_core.db import chunks as payload_chunks
from agents_core.db.errors import InvalidInputError
from agents_core.integrations.langgraph._documents import (
    LATEST_FIELDS,
    Head,
    blob_key,
    checkpoint_key,
    identifier,
    published,
    thread_heads_key,
    value_keys,
    write_key,
)
from agents_core.integrations.langgraph._heads import Heads, Move
from agents_core.integrations.langgraph._store import insert_new, translated

__all__ = ["Lifecycle"]


class Lifecycle(Heads):
    """Deleting, copying and pruning threads."""

    async def adelete_thread(self, thread_id: str) -> None:
        try:
            coll, chunks = await self._ready()
            thread = identifier(thread_id, "thread_id")
            self._forget(thread)
            heads = {"k": thread_heads_key(thread)}
            # The heads first: readers stop finding the thread, and a writer that has not
            # published yet loses its compare-and-set and finds its history gone.
            await coll.delete_many(heads)
            await asyncio.gather(
                coll.delete_many({"thread_id": thread}),
                payload_chunks.delete_owned(chunks, {"thread_id": thread}),
            )
            # A head that a racing writer created meanwhile: its checkpoint may need what was
            # just deleted (one created from now on checks that it does not).
            await coll.delete_many(heads)
        except (PyMongoError, BSONError) as exc:
            raise translated(exc) from exc

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints whose ``metadata.run_id`` is in ``run_ids``, with their writes
        and the blobs and chunks no remaining checkpoint uses."""
        if not run_ids:
            return
        try:
            coll, chunks = await self._ready()
            ids = [identifier(run_id, "run_id") for run_id in run_ids]
            docs = await coll.find(
                {"run_id": {"$in": ids}}, {"thread_id": 1, "ns": 1, "checkpoint_id": 1}
            ).to_list()
            for thread in {doc["thread_id"] for doc in docs}:
                await self._drop_checkpoints(
                    coll,
                    chunks,
                    thread,
                    {
                        (doc["ns"], doc["checkpoint_id"])
                        for doc in docs
                        if doc["thread_id"] == thread
                    },
                )
        except (PyMongoError, BSONError) as exc:
            raise translated(exc) from exc

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and blob of a thread (all namespaces) to another."""
        try:
            coll, chunks = await self._ready()
            source = identifier(source_thread_id, "source_thread_id")
            target = identifier(target_thread_id, "target_thread_id")
            if source == target:
                return
            docs = await coll.find({"thread_id": source}).to_list()
            source_heads = {doc["ns"]: Head.of(doc) for doc in docs if doc["kind"] == "head"}
            checkpoints = published(docs)
            if not checkpoints:
                return
            values = [doc for doc in docs if doc["kind"] in ("blob", "write")]
            renamed = await payload_chunks.copy(
                chunks,
                [doc["payload"]["id"] for doc in values if "payload" in doc],
                {"thread_id": target},
            )
            for doc in values:
                if "payload" in doc:
                    doc["payload"] = {**doc["payload"], "id": renamed[doc["payload"]["id"]]}
                doc["thread_id"] = target
                if doc["kind"] == "blob":
                    channel, version = json.loads(doc["_id"])[3:]
                    doc["_id"] = doc["k"] = blob_key(target, doc["ns"], channel, version)
                else:
                    cid = doc["checkpoint_id"]
                    doc["_id"] = write_key(target, doc["ns"], cid, doc["task_id"], doc["idx"])
                    doc["k"] = checkpoint_key(target, doc["ns"], cid)
            if existing := [
                d["payload"]["id"] for d in await insert_new(coll, values) if "payload" in d
            ]:
                await payload_chunks.discard(chunks, existing)  # copied for a value kept as it was
            for ns in sorted({doc["ns"] for doc in checkpoints}):
                await self._copy_namespace(
                    coll,
                    target,
                    ns,
                    sorted((d for d in checkpoints if d["ns"] == ns), key=lambda d: d["seq"]),
                    source_heads.get(ns),
                )
        except (PyMongoError, BSONError) as exc:
            raise translated(exc) from exc

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep each namespace's newest checkpoint (and its writes and blobs);
        ``delete``: delete the threads."""
        if strategy not in ("keep_latest", "delete"):
            raise InvalidInputError("strategy", f"{strategy!r} is not 'keep_latest' or 'delete'")
        for thread_id in thread_ids:
            if strategy == "delete":
                await self.adelete_thread(thread_id)
                continue
            try:
                coll, chunks = await self._ready()
                thread = identifier(thread_id, "thread_id")
                found = await coll.find(
                    {"thread_id": thread},
                    {
                        "kind": 1,
                        "ns": 1,
                        "checkpoint_id": 1,
                        "seq": 1,
                        "epoch": 1,
                        "head_seq": 1,
                        "last_id": 1,
                        "ordered": 1,
                    },
                ).to_list()
                docs = published(found)  # one being written is left to its writer
                newest: dict[str, str] = {}
                for doc in docs:
                    newest[doc["ns"]] = max(doc["checkpoint_id"], newest.get(doc["ns"], ""))
                dropped = {
                    (doc["ns"], doc["checkpoint_id"])
                    for doc in docs
                    if doc["checkpoint_id"] != newest[doc["ns"]]
                }
                if dropped:
                    await self._drop_checkpoints(coll, chunks, thread, dropped)
            except (PyMongoError, BSONError) as exc:
                raise translated(exc) from exc

    async def _copy_namespace(
        self,
        coll: AsyncCollection[Any],
        target: str,
        ns: str,
        docs: list[dict[str, Any]],
        source_head: Head | None,
    ) -> None:
        """Copy one namespace's checkpoints after the target's own (``seq`` offset by its
        head), then move the target's head."""
        target_head = await self._head(coll, target, ns)
        offset = 0 if target_head is None else target_head.seq
        epoch = ObjectId() if target_head is None else target_head.epoch
        for doc in docs:
            doc["_id"] = checkpoint_key(target, ns, doc["checkpoint_id"])
            doc["thread_id"] = target
            doc["seq"] += offset
            doc["epoch"] = epoch
        await insert_new(coll, docs)
        newest = max(docs, key=lambda d: d["checkpoint_id"])
        move = Move(
            seq=max(doc["seq"] for doc in docs),
            newest=newest,
            keys=sorted(value_keys([self._row(target, ns, newest)])),
            oldest=min(doc["checkpoint_id"] for doc in docs),
            ordered=source_head is None or source_head.ordered,
        )
        await self._move_head(coll, target, ns, target_head, move)

    async def _drop_checkpoints(
        self,
        coll: AsyncCollection[Any],
        chunks: AsyncCollection[Any],
        thread: str,
        dropped: set[tuple[str, str]],
    ) -> None:
        """Delete checkpoints of ``thread`` with their writes, then the blobs and chunks that
        no remaining checkpoint uses; a head whose newest checkpoint went points to the newest
        remaining one."""
        keys = [checkpoint_key(thread, ns, cid) for ns, cid in dropped]
        await asyncio.gather(
            coll.delete_many({"_id": {"$in": keys}}), coll.delete_many({"k": {"$in": keys}})
        )
        docs = await coll.find(
            {"thread_id": thread}, {"value": 0, "latest": 0, "latest_keys": 0}
        ).to_list()
        rows = [self._row(thread, d["ns"], d) for d in docs if d["kind"] == "checkpoint"]
        used = {
            blob_key(thread, row.ns, channel, version)
            for row in rows
            for channel, version in row.checkpoint["channel_versions"].items()
        }
        unused = [d for d in docs if d["kind"] == "blob" and d["_id"] not in used]
        if unused:
            await coll.delete_many({"_id": {"$in": [d["_id"] for d in unused]}})
            if payloads := [d["payload"]["id"] for d in unused if "payload" in d]:
                await payload_chunks.discard(chunks, payloads)
        for head_doc in (d for d in docs if d["kind"] == "head"):
            head = Head.of(head_doc)
            if (head_doc["ns"], head.last_id) not in dropped:
                continue
            remaining = [
                row for row in rows if row.ns == head_doc["ns"] and head.publishes(row.doc)
            ]
            query = {"_id": head_doc["_id"], "head_seq": head.seq, "last_id": head.last_id}
            if remaining:
                row = max(remaining, key=lambda row: row.checkpoint_id)
                latest = {field: row.doc.get(field) for field in LATEST_FIELDS}
                keys = sorted(value_keys([row]))
                update: dict[str, Any] = {
                    "$set": {"last_id": row.checkpoint_id, "latest": latest, "latest_keys": keys}
                }
            else:
                update = {"$unset": {"latest": "", "latest_keys": ""}}
            # A writer that moved the head meanwhile put a newer checkpoint: nothing to fix.
            await coll.update_one(query, update)
            self._remember(thread, head_doc["ns"], None)
