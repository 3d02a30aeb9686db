"""Reading checkpoints: ``aget_tuple`` and ``alist``.

Every query is an ``_id`` lookup, an ``$in`` on ``k``, or a bounded ``seq`` range below a head:
``aget_tuple`` of the newest is one ``aggregate`` (the head, which keeps a copy of its newest
checkpoint, and a ``$lookup`` of its values); ``alist(limit=n)`` reads the range
``(head - n, head]``, widening it (doubling) only when filters or gaps need more, then the blobs
and writes of those checkpoints in one ``$in``. No ``sort`` + ``limit``, which a server may serve
by reading every matching document; a namespace whose checkpoints were stored out of id order
(its head says so) is read whole and sorted here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from bson.errors import BSONError
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    Checkpoint,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
)
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure, PyMongoError

from agents_core.db.errors import CorruptDocumentError
from agents_core.integrations.langgraph._documents import (
    Head,
    Row,
    blob_key,
    checkpoint_key,
    config_of,
    head_key,
    identifier,
    thread_heads_key,
    value_keys,
)
from agents_core.integrations.langgraph._heads import Heads
from agents_core.integrations.langgraph._store import translated

__all__ = ["Reads"]

#: Checkpoints loaded at once by a listing without a limit.
BATCH = 100


class Reads(Heads):
    """``aget_tuple`` and ``alist``."""

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        try:
            coll, chunks = await self._ready()
            configurable = config["configurable"]
            thread = identifier(configurable["thread_id"], "thread_id")
            ns = identifier(configurable.get("checkpoint_ns", ""), "checkpoint_ns")
            checkpoint_id = get_checkpoint_id(config)
            if not checkpoint_id:
                return await self._latest_tuple(coll, chunks, thread, ns)
            cid = identifier(checkpoint_id, "checkpoint_id")
            return await self._tuple_by_id(coll, chunks, thread, ns, cid)
        except (PyMongoError, BSONError) as exc:
            raise translated(exc) from exc

    async def _tuple_by_id(
        self,
        coll: AsyncCollection[Any],
        chunks: AsyncCollection[Any],
        thread: str,
        ns: str,
        cid: str,
    ) -> CheckpointTuple | None:
        """A checkpoint by id, if its head publishes it: the document, then its values with the
        thread's heads (one ``$in`` on ``k``). A checkpoint being written, or left by a write
        whose thread was deleted, is not there yet, or not any more."""
        doc = await coll.find_one({"_id": checkpoint_key(thread, ns, cid)})
        if doc is None:
            return None
        row = self._row(thread, ns, doc)
        keys = [*value_keys([row]), thread_heads_key(thread)]
        docs = await coll.find({"k": {"$in": keys}}).to_list()
        head_doc = next((d for d in docs if d["kind"] == "head" and d["ns"] == ns), None)
        head = None if head_doc is None else Head.of(head_doc)
        self._remember(thread, ns, head)
        if head is None or not head.publishes(doc):
            return None
        return (await self._tuples(coll, chunks, [row], docs))[0]

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        if limit is not None and limit <= 0:
            return
        try:
            coll, chunks = await self._ready()
            before_id = None
            if before is not None and (raw_before := get_checkpoint_id(before)):
                before_id = identifier(raw_before, "before checkpoint_id")
            window = max(1, min(limit or BATCH, BATCH))
            rows = self._rows(coll, config, before_id, window)
            if filter:
                rows = _matching(rows, filter)
            batch: list[Row] = []
            remaining = limit
            async for row in rows:
                batch.append(row)
                if remaining is not None:
                    remaining -= 1
                if len(batch) >= window or remaining == 0:
                    for item in await self._tuples(coll, chunks, batch):
                        yield item
                    batch = []
                    if remaining == 0:
                        return
            if batch:
                for item in await self._tuples(coll, chunks, batch):
                    yield item
        except (PyMongoError, BSONError) as exc:
            raise translated(exc) from exc

    async def _latest_tuple(
        self, coll: AsyncCollection[Any], chunks: AsyncCollection[Any], thread: str, ns: str
    ) -> CheckpointTuple | None:
        """The newest checkpoint with its values in one command: the head (which keeps a copy
        of its newest checkpoint and the ``k`` of its values) and a ``$lookup`` of them."""
        pipeline = [
            {"$match": {"_id": head_key(thread, ns)}},
            {
                "$lookup": {
                    "from": coll.name,
                    "localField": "latest_keys",
                    "foreignField": "k",
                    "as": "values",
                }
            },
        ]
        try:
            found = await (await coll.aggregate(pipeline)).to_list()
        except OperationFailure:
            # e.g. a state too large for one 16 MB reply: the head, then its values.
            rows = await self._latest(coll, thread, ns)
            return (await self._tuples(coll, chunks, rows))[0] if rows else None
        head_doc = found[0] if found else None
        rows = await self._latest_of(coll, thread, ns, head_doc)
        if not rows:
            return None
        values = None
        if (
            head_doc is not None
            and head_doc.get("latest") is not None
            and value_keys(rows) <= set(head_doc.get("latest_keys", ()))
        ):
            values = head_doc.get("values")
        return (await self._tuples(coll, chunks, rows, values))[0]

    async def _latest(self, coll: AsyncCollection[Any], thread: str, ns: str) -> list[Row]:
        """The newest checkpoint of a namespace, through its head."""
        head_doc = await coll.find_one({"_id": head_key(thread, ns)})
        return await self._latest_of(coll, thread, ns, head_doc)

    async def _latest_of(
        self,
        coll: AsyncCollection[Any],
        thread: str,
        ns: str,
        head_doc: Mapping[str, Any] | None,
    ) -> list[Row]:
        if head_doc is None:
            self._remember(thread, ns, None)
            return []
        head = Head.of(head_doc)
        self._remember(thread, ns, head)
        if (latest := head_doc.get("latest")) is not None:
            return [self._row(thread, ns, latest)]
        # Its newest checkpoint was deleted with nothing left behind: whatever remains.
        async for row in self._scan(coll, thread, ns, head, None, 1):
            return [row]
        return []

    def _rows(
        self,
        coll: AsyncCollection[Any],
        config: RunnableConfig | None,
        before_id: str | None,
        window: int,
    ) -> AsyncIterator[Row]:
        """The checkpoints a listing selects, newest first (before any metadata filter)."""
        if config is None:
            return self._scan_everything(coll, before_id)
        configurable = config["configurable"]
        thread = identifier(configurable["thread_id"], "thread_id")
        namespaces = None
        if "checkpoint_ns" in configurable:
            namespaces = [identifier(configurable["checkpoint_ns"], "checkpoint_ns")]
        return self._scan_namespaces(coll, thread, namespaces, before_id, window)

    async def _scan_namespaces(
        self,
        coll: AsyncCollection[Any],
        thread: str,
        namespaces: list[str] | None,
        before_id: str | None,
        window: int,
    ) -> AsyncIterator[Row]:
        if namespaces is None:
            query = {"k": thread_heads_key(thread)}
            found = coll.find(query, {"latest": 0, "latest_keys": 0})
            heads = {d["ns"]: Head.of(d) async for d in found}
        else:
            heads = {ns: h for ns in namespaces if (h := await self._head(coll, thread, ns))}
        streams = [
            self._scan(coll, thread, ns, head, before_id, window) for ns, head in heads.items()
        ]
        async for row in _merge_newest_first(streams):
            yield row

    async def _scan(
        self,
        coll: AsyncCollection[Any],
        thread: str,
        ns: str,
        head: Head,
        before_id: str | None,
        window: int,
    ) -> AsyncIterator[Row]:
        """One namespace, newest first: ``seq`` ranges below the head, doubling in size."""
        if not head.ordered:  # read it whole, sort here
            docs = await coll.find({"thread_id": thread, "ns": ns, "seq": {"$gte": 1}}).to_list()
            rows = [self._row(thread, ns, doc) for doc in docs if head.publishes(doc)]
            for row in sorted(rows, key=lambda r: r.checkpoint_id, reverse=True):
                if before_id is None or row.checkpoint_id < before_id:
                    yield row
            return
        high = head.seq
        if before_id is not None:
            key = checkpoint_key(thread, ns, before_id)
            if (before := await coll.find_one({"_id": key}, {"seq": 1})) is not None:
                high = min(high, int(before["seq"]) - 1)
        size = window
        while high >= 1:
            low = max(1, high - size + 1)
            docs = await coll.find(
                {"thread_id": thread, "ns": ns, "seq": {"$gte": low, "$lte": high}},
                batch_size=size + 1,
            ).to_list()
            rows = [self._row(thread, ns, doc) for doc in docs if head.publishes(doc)]
            for row in sorted(rows, key=lambda r: r.checkpoint_id, reverse=True):
                if before_id is None or row.checkpoint_id < before_id:
                    yield row
            high = low - 1
            size = min(size * 2, 10 * BATCH)

    async def _scan_everything(
        self, coll: AsyncCollection[Any], before_id: str | None
    ) -> AsyncIterator[Row]:
        """Every thread (``alist(None)``): LangGraph's cross-thread listing reads the whole
        collection, newest first (an admin query; give a thread to stay on the indexes): every
        head, then every checkpoint they publish."""
        found = coll.find({"kind": "head"}, {"latest": 0, "latest_keys": 0})
        heads = {(d["thread_id"], d["ns"]): Head.of(d) async for d in found}
        query: dict[str, Any] = {"kind": "checkpoint"}
        if before_id is not None:
            query["checkpoint_id"] = {"$lt": before_id}
        async for doc in coll.find(query, sort=[("checkpoint_id", -1)]):
            head = heads.get((doc["thread_id"], doc["ns"]))
            if head is not None and head.publishes(doc):
                yield self._row(doc["thread_id"], doc["ns"], doc)

    async def _tuples(
        self,
        coll: AsyncCollection[Any],
        chunks: AsyncCollection[Any],
        rows: Sequence[Row],
        docs: list[Any] | None = None,
    ) -> list[CheckpointTuple]:
        """The full tuples of ``rows``: their blobs and writes in one ``$in`` on ``k`` (unless
        given)."""
        if docs is None:
            docs = await coll.find({"k": {"$in": list(value_keys(rows))}}).to_list()
        chunked = await self._chunked(chunks, docs)
        blobs = {doc["_id"]: doc for doc in docs if doc["kind"] == "blob"}
        pending: dict[str, list[Mapping[str, Any]]] = {}
        for doc in docs:
            if doc["kind"] == "write":
                pending.setdefault(doc["k"], []).append(doc)
        tuples = []
        for row in rows:
            thread, ns, cid = row.thread, row.ns, row.checkpoint_id
            values = {}
            for channel, version in row.checkpoint["channel_versions"].items():
                blob = blobs.get(blob_key(thread, ns, channel, version))
                if blob is None:  # never a checkpoint without the values it names
                    raise CorruptDocumentError(
                        coll.name,
                        checkpoint_key(thread, ns, cid),
                        f"no value of channel {channel!r} at version {version} (deleted "
                        "while it was read?)",
                    )
                if blob["type"] != "empty":
                    values[channel] = self._loaded(blob, chunked)
            checkpoint: Checkpoint = {**row.checkpoint, "channel_values": values}
            row_writes = sorted(
                pending.get(checkpoint_key(thread, ns, cid), []),
                key=lambda w: (w["task_path"], w["task_id"], w["idx"]),
            )
            pending_writes: list[PendingWrite] = [
                (w["task_id"], w["channel"], self._loaded(w, chunked)) for w in row_writes
            ]
            parent = row.doc.get("parent_id")
            tuples.append(
                CheckpointTuple(
                    config=config_of(thread, ns, cid),
                    checkpoint=checkpoint,
                    metadata=row.metadata,
                    parent_config=config_of(thread, ns, parent) if parent else None,
                    pending_writes=pending_writes,
                )
            )
        return tuples


async def _matching(rows: AsyncIterator[Row], filter: Mapping[str, Any]) -> AsyncIterator[Row]:
    """The rows whose metadata has every ``filter`` key with an equal value."""
    async for row in rows:
        metadata: Mapping[str, Any] = row.metadata
        if all(key in metadata and metadata[key] == value for key, value in filter.items()):
            yield row


async def _merge_newest_first(streams: Sequence[AsyncIterator[Row]]) -> AsyncIterator[Row]:
    """Merge streams that are each newest first into one newest-first stream."""
    if len(streams) == 1:
        async for row in streams[0]:
            yield row
        return
    current: dict[int, Row] = {}
    for index, stream in enumerate(streams):
        if (first := await anext(stream, None)) is not None:
            current[index] = first
    while current:
        index = max(current, key=lambda i: current[i].checkpoint_id)
        yield current[index]
        following = await anext(streams[index], None)
        if following is None:
            del current[index]
        else:
            current[index] = following
