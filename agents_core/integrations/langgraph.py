"""A LangGraph checkpointer on agents-core's MongoDB: :class:`AgentsCoreSaver`.

Usage (``pip install 'agents-core[langgraph]'``)::

    from agents_core.db import init_db
    from agents_core.integrations.langgraph import AgentsCoreSaver

    await init_db()                                   # the layer's connection ...
    graph = builder.compile(checkpointer=AgentsCoreSaver())
    await graph.ainvoke(inputs, {"configurable": {"thread_id": "t-1"}})

    saver = AgentsCoreSaver.from_uri("mongodb://…", database="agents")   # ... or its own
    try:
        ...
    finally:
        await saver.aclose()

Design notes:

- **Channel values are stored once per channel and version** (``lg_blobs``), never inside the
  checkpoint: a step that changes one channel writes one blob and a small checkpoint document
  (versions, metadata), so the bytes written per step follow what changed, not the state's size.
  Versions carry a random suffix (as LangGraph's own savers do), so forks never collide.
- **Nothing approaches 16 MB**: a serialized value above ``inline_max_bytes`` (1 MiB) goes to the
  layer's ``payload_chunks`` collection in 1 MiB chunks (``{payload_id, thread_id, n, data}``,
  checked against size and SHA-256 on every read) and its blob or write keeps a reference.
- **Every query is an index point lookup or a bounded index range.** Each ``(thread, namespace)``
  has a head document (``lg_heads``: the last ``seq`` and the newest checkpoint id), and each
  checkpoint a per-namespace ``seq`` backed by a unique index, which also serialises concurrent
  writers of one thread. The latest checkpoint is found through the head (two ``_id`` lookups);
  ``alist(limit=n)`` reads the ``seq`` range ``(head - n, head]`` and widens it (doubling) only
  when filters or gaps need more, so its cost does not grow with the thread (no ``sort`` +
  ``limit``, which a server may serve by reading every matching document). Should a checkpoint be
  stored out of id order (a copy into a non-empty thread, a hand-made id), the head says so and
  listings of that namespace read it whole and sort it in the client, which stays correct.
- **One writer command per collection**: ``aput`` inserts the changed blobs and the checkpoint
  concurrently, then moves the head with a compare-and-set on ``_id`` (3 commands, 2 round trips);
  ``aget_tuple`` reads the head, the checkpoint, then its blobs and writes concurrently.
- **Deleting a thread removes all of it** (checkpoints, writes, blobs, heads and chunks);
  ``adelete_for_runs`` and ``aprune`` also delete the blobs and chunks no kept checkpoint uses.
- The sync methods raise ``NotImplementedError`` pointing to the async API: this saver speaks
  PyMongo's async API only, and never wraps a sync driver in threads.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import json
import random
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from types import TracebackType
from typing import Any
from uuid import UUID

from bson import ObjectId
from bson.errors import BSONError
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from pymongo import ASCENDING, AsyncMongoClient, IndexModel, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    DuplicateKeyError,
    InvalidURI,
    PyMongoError,
)

from agents_core.db.client import DEFAULT_DATABASE, get_database
from agents_core.db.config import mask_uri
from agents_core.db.errors import DatabaseError, InvalidInputError, translate

__all__ = ["AgentsCoreSaver"]

#: Largest serialized value kept inside its blob or write document; larger ones are chunked.
INLINE_MAX_BYTES = 1024 * 1024
#: Size of one chunk in ``payload_chunks`` (the layer's own chunk size).
CHUNK_BYTES = 1024 * 1024
#: The layer's chunk collection (``agents_core.db.documents.payload``).
CHUNKS_COLLECTION = "payload_chunks"
#: ``seq`` range read first by a listing without a limit, and the batch that is loaded at once.
_BATCH = 100
#: Compare-and-set attempts on a head before giving up (only contention needs more than one).
_CAS_ATTEMPTS = 16
#: Heads remembered per saver (the ``seq`` a writer of the thread uses next).
_HEAD_CACHE_SIZE = 4096
_DUPLICATE_KEY = 11000


def _key(*parts: str | int) -> str:
    """An unambiguous ``_id`` from its parts (a JSON array: readable, any string is safe)."""
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=False)


def _identifier(value: object, name: str) -> str:
    """A thread id, namespace or checkpoint id as a string; never a query operator."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | UUID) and not isinstance(value, bool):
        return str(value)
    raise InvalidInputError(name, f"expected a string, got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class _Head:
    """The head of a ``(thread, namespace)``: its last ``seq`` and newest checkpoint id."""

    seq: int
    last_id: str
    ordered: bool  # seq order is checkpoint-id order in this namespace

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> _Head:
        return cls(int(doc["seq"]), str(doc["last_id"]), bool(doc.get("ordered", True)))


@dataclass(slots=True)
class _Row:
    """A checkpoint document with its checkpoint and metadata decoded."""

    doc: Mapping[str, Any]
    checkpoint: Checkpoint
    metadata: CheckpointMetadata

    @property
    def checkpoint_id(self) -> str:
        return str(self.doc["checkpoint_id"])


@dataclass(frozen=True, slots=True)
class _Collections:
    database: AsyncDatabase[Any]
    checkpoints: AsyncCollection[Any]
    writes: AsyncCollection[Any]
    blobs: AsyncCollection[Any]
    heads: AsyncCollection[Any]
    chunks: AsyncCollection[Any]

    def thread_scoped(self) -> tuple[AsyncCollection[Any], ...]:
        return (self.checkpoints, self.writes, self.blobs, self.heads, self.chunks)


class AgentsCoreSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpointer storing threads in agents-core's MongoDB (async API only).

    ``database``: the database to use; by default the layer's (``init_db``), looked up at each
    call. Collections are ``<prefix>checkpoints``, ``<prefix>writes``, ``<prefix>blobs`` and
    ``<prefix>heads`` (``lg_`` by default), plus the layer's ``payload_chunks``; their indexes
    are created at first use (or by :meth:`setup`), idempotently.
    """

    def __init__(
        self,
        database: AsyncDatabase[Any] | None = None,
        *,
        serde: SerializerProtocol | None = None,
        collection_prefix: str = "lg_",
        inline_max_bytes: int = INLINE_MAX_BYTES,
    ) -> None:
        super().__init__(serde=serde)
        if inline_max_bytes < 1:
            raise InvalidInputError("inline_max_bytes", "must be positive")
        self._database = database
        self._prefix = collection_prefix
        self._inline_max = inline_max_bytes
        self._client: AsyncMongoClient[Any] | None = None
        self._collections: _Collections | None = None
        self._indexed: set[int] = set()
        self._heads: dict[tuple[str, str], _Head] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def from_uri(
        cls,
        uri: str,
        *,
        database: str | None = None,
        serde: SerializerProtocol | None = None,
        collection_prefix: str = "lg_",
    ) -> AgentsCoreSaver:
        """A saver on a client of its own (closed by :meth:`aclose`).

        Database: ``database``, else the URI's path, else ``agents_core``. Nothing is sent
        before the first call.
        """
        try:
            client: AsyncMongoClient[Any] = AsyncMongoClient(
                uri, tz_aware=True, tzinfo=UTC, appname="agents_core.langgraph"
            )
        except (ConfigurationError, InvalidURI, ValueError, TypeError) as exc:
            raise InvalidInputError("uri", str(exc).replace(uri, mask_uri(uri))) from exc
        db = client[database] if database else client.get_default_database(DEFAULT_DATABASE)
        saver = cls(db, serde=serde, collection_prefix=collection_prefix)
        saver._client = client
        return saver

    async def aclose(self) -> None:
        """Close the client if :meth:`from_uri` created it (an injected one is left open)."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def __aenter__(self) -> AgentsCoreSaver:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def setup(self) -> None:
        """Create the indexes now (otherwise done by the first call). Idempotent."""
        try:
            await self._ready()
        except (PyMongoError, BSONError) as exc:
            raise _translated(exc) from exc

    # -- the async API -----------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        try:
            c = await self._ready()
            configurable = config["configurable"]
            thread = _identifier(configurable["thread_id"], "thread_id")
            ns = _identifier(configurable.get("checkpoint_ns", ""), "checkpoint_ns")
            checkpoint_id = get_checkpoint_id(config)
            if checkpoint_id:
                cid = _identifier(checkpoint_id, "checkpoint_id")
                doc = await c.checkpoints.find_one({"_id": _key(thread, ns, cid)})
                rows = [] if doc is None else [self._row(doc)]
            else:
                rows = await self._latest(c, thread, ns)
            if not rows:
                return None
            return (await self._tuples(c, rows))[0]
        except (PyMongoError, BSONError) as exc:
            raise _translated(exc) from exc

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
            c = await self._ready()
            before_id = None
            if before is not None and (raw_before := get_checkpoint_id(before)):
                before_id = _identifier(raw_before, "before checkpoint_id")
            window = max(1, min(limit or _BATCH, _BATCH))
            rows = self._rows(c, config, before_id, window)
            if filter:
                rows = _matching(rows, filter)
            batch: builtins.list[_Row] = []
            remaining = limit
            async for row in rows:
                batch.append(row)
                if remaining is not None:
                    remaining -= 1
                if len(batch) >= window or remaining == 0:
                    for item in await self._tuples(c, batch):
                        yield item
                    batch = []
                    if remaining == 0:
                        return
            if batch:
                for item in await self._tuples(c, batch):
                    yield item
        except (PyMongoError, BSONError) as exc:
            raise _translated(exc) from exc

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        try:
            c = await self._ready()
            configurable = config["configurable"]
            thread = _identifier(configurable["thread_id"], "thread_id")
            ns = _identifier(configurable.get("checkpoint_ns", ""), "checkpoint_ns")
            parent = configurable.get("checkpoint_id")
            cid = _identifier(checkpoint["id"], "checkpoint id")
            stored: dict[str, Any] = dict(checkpoint)
            values: dict[str, Any] = stored.pop("channel_values", None) or {}
            chunks: builtins.list[dict[str, Any]] = []
            blobs = [
                {
                    "_id": _key(thread, ns, channel, str(version)),
                    "thread_id": thread,
                    "ns": ns,
                    **self._value_fields(
                        thread,
                        self.serde.dumps_typed(values[channel])
                        if channel in values
                        else ("empty", b""),
                        chunks,
                    ),
                }
                for channel, version in new_versions.items()
            ]
            kept_metadata = get_serializable_checkpoint_metadata(config, metadata)
            checkpoint_type, checkpoint_bytes = self.serde.dumps_typed(stored)
            metadata_type, metadata_bytes = self.serde.dumps_typed(kept_metadata)
            doc: dict[str, Any] = {
                "_id": _key(thread, ns, cid),
                "thread_id": thread,
                "ns": ns,
                "checkpoint_id": cid,
                "seq": 0,  # set below
                "parent_id": None if parent is None else _identifier(parent, "checkpoint_id"),
                "type": checkpoint_type,
                "checkpoint": checkpoint_bytes,
                "metadata_type": metadata_type,
                "metadata": metadata_bytes,
            }
            if isinstance(run_id := kept_metadata.get("run_id"), str):
                doc["run_id"] = run_id
            if chunks:  # before anything that refers to them
                await c.chunks.insert_many(chunks, ordered=False)
            await self._put_checkpoint(c, thread, ns, cid, doc, blobs)
            return {
                "configurable": {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": cid}
            }
        except (PyMongoError, BSONError) as exc:
            raise _translated(exc) from exc

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
            c = await self._ready()
            configurable = config["configurable"]
            thread = _identifier(configurable["thread_id"], "thread_id")
            ns = _identifier(configurable.get("checkpoint_ns", ""), "checkpoint_ns")
            cid = _identifier(configurable["checkpoint_id"], "checkpoint_id")
            task = _identifier(task_id, "task_id")
            path = _identifier(task_path, "task_path")
            chunks: builtins.list[dict[str, Any]] = []
            docs = []
            for index, (channel, value) in enumerate(writes):
                idx = WRITES_IDX_MAP.get(channel, index)
                docs.append(
                    {
                        "_id": _key(thread, ns, cid, task, idx),
                        "thread_id": thread,
                        "ns": ns,
                        "checkpoint_id": cid,
                        "task_id": task,
                        "task_path": path,
                        "idx": idx,
                        "channel": channel,
                        **self._value_fields(thread, self.serde.dumps_typed(value), chunks),
                    }
                )
            if chunks:
                await c.chunks.insert_many(chunks, ordered=False)
            if all(channel in WRITES_IDX_MAP for channel, _ in writes):
                # Special writes (errors, interrupts, resumes) replace an earlier one, as in
                # LangGraph's own savers; the others are written once per (task, index).
                await c.writes.bulk_write(
                    [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=False
                )
            else:
                await _insert_new(c.writes, docs)
        except (PyMongoError, BSONError) as exc:
            raise _translated(exc) from exc

    async def adelete_thread(self, thread_id: str) -> None:
        try:
            c = await self._ready()
            thread = _identifier(thread_id, "thread_id")
            self._forget(thread)
            # The heads first: a reader then sees no thread rather than a partial one.
            await c.heads.delete_many({"thread_id": thread})
            await asyncio.gather(
                *(coll.delete_many({"thread_id": thread}) for coll in c.thread_scoped())
            )
        except (PyMongoError, BSONError) as exc:
            raise _translated(exc) from exc

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints whose ``metadata.run_id`` is in ``run_ids``, with their writes
        and the blobs and chunks no remaining checkpoint uses."""
        if not run_ids:
            return
        try:
            c = await self._ready()
            ids = [_identifier(run_id, "run_id") for run_id in run_ids]
            docs = await c.checkpoints.find(
                {"run_id": {"$in": ids}}, {"thread_id": 1, "ns": 1, "checkpoint_id": 1}
            ).to_list()
            if not docs:
                return
            await c.checkpoints.delete_many({"_id": {"$in": [doc["_id"] for doc in docs]}})
            by_namespace: dict[tuple[str, str], builtins.list[str]] = {}
            for doc in docs:
                by_namespace.setdefault((doc["thread_id"], doc["ns"]), []).append(
                    doc["checkpoint_id"]
                )
            await asyncio.gather(
                *(
                    c.writes.delete_many(
                        {"thread_id": thread, "ns": ns, "checkpoint_id": {"$in": cids}}
                    )
                    for (thread, ns), cids in by_namespace.items()
                )
            )
            for thread in {thread for thread, _ in by_namespace}:
                await self._collect_blobs(c, thread)
        except (PyMongoError, BSONError) as exc:
            raise _translated(exc) from exc

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and blob of a thread (all namespaces) to another."""
        try:
            c = await self._ready()
            source = _identifier(source_thread_id, "source_thread_id")
            target = _identifier(target_thread_id, "target_thread_id")
            if source == target:
                return
            by_thread = {"thread_id": source}
            checkpoints, writes, blobs, heads = await asyncio.gather(
                c.checkpoints.find(by_thread).to_list(),
                c.writes.find(by_thread).to_list(),
                c.blobs.find(by_thread).to_list(),
                c.heads.find(by_thread).to_list(),
            )
            if not checkpoints:
                return
            payloads = [d["payload"]["id"] for d in (*writes, *blobs) if "payload" in d]
            renamed: dict[Any, ObjectId] = {payload_id: ObjectId() for payload_id in payloads}
            if payloads:
                chunks = await c.chunks.find({"payload_id": {"$in": payloads}}).to_list()
                for chunk in chunks:
                    chunk.pop("_id")
                    chunk["payload_id"] = renamed[chunk["payload_id"]]
                    chunk["thread_id"] = target
                await c.chunks.insert_many(chunks, ordered=False)
            for doc in (*writes, *blobs):
                if "payload" in doc:
                    doc["payload"] = {**doc["payload"], "id": renamed[doc["payload"]["id"]]}
            for doc in writes:
                doc["_id"] = _key(
                    target, doc["ns"], doc["checkpoint_id"], doc["task_id"], doc["idx"]
                )
                doc["thread_id"] = target
            for doc in blobs:
                channel_version = json.loads(doc["_id"])[2:]
                doc["_id"] = _key(target, doc["ns"], *channel_version)
                doc["thread_id"] = target
            await asyncio.gather(_insert_new(c.writes, writes), _insert_new(c.blobs, blobs))
            # Each namespace's checkpoints follow the target's own (seq offset by its head).
            source_heads = {head["ns"]: _Head.of(head) for head in heads}
            for ns in {doc["ns"] for doc in checkpoints}:
                docs = sorted(
                    (doc for doc in checkpoints if doc["ns"] == ns), key=lambda d: d["seq"]
                )
                target_head = await self._head(c, target, ns)
                offset = 0 if target_head is None else target_head.seq
                for doc in docs:
                    doc["_id"] = _key(target, ns, doc["checkpoint_id"])
                    doc["thread_id"] = target
                    doc["seq"] += offset
                await _insert_new(c.checkpoints, docs)
                source_head = source_heads.get(ns)
                ids = [doc["checkpoint_id"] for doc in docs]
                await self._advance_head(
                    c,
                    target,
                    ns,
                    seq=docs[-1]["seq"],
                    newest=max(ids),
                    oldest=min(ids),
                    ordered=source_head is None or source_head.ordered,
                    known=target_head,
                )
        except (PyMongoError, BSONError) as exc:
            raise _translated(exc) from exc

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
                c = await self._ready()
                thread = _identifier(thread_id, "thread_id")
                docs = await c.checkpoints.find(
                    {"thread_id": thread}, {"ns": 1, "checkpoint_id": 1}
                ).to_list()
                newest: dict[str, str] = {}
                for doc in docs:
                    if doc["checkpoint_id"] > newest.get(doc["ns"], ""):
                        newest[doc["ns"]] = doc["checkpoint_id"]
                dropped: dict[str, builtins.list[str]] = {}
                for doc in docs:
                    if doc["checkpoint_id"] != newest[doc["ns"]]:
                        dropped.setdefault(doc["ns"], []).append(doc["checkpoint_id"])
                if not dropped:
                    continue
                await c.checkpoints.delete_many(
                    {
                        "_id": {
                            "$in": [_key(thread, ns, i) for ns, ids in dropped.items() for i in ids]
                        }
                    }
                )
                await asyncio.gather(
                    *(
                        c.writes.delete_many(
                            {"thread_id": thread, "ns": ns, "checkpoint_id": {"$in": ids}}
                        )
                        for ns, ids in dropped.items()
                    )
                )
                await self._collect_blobs(c, thread)
            except (PyMongoError, BSONError) as exc:
                raise _translated(exc) from exc

    def get_next_version(self, current: str | None, channel: None) -> str:
        """``<counter>.<random>``: increasing, and never the same for two forks of a thread."""
        if current is None:
            counter = 0
        elif isinstance(current, int):
            counter = current
        else:
            counter = int(str(current).split(".")[0])
        return f"{counter + 1:032}.{random.random():016}"

    # -- the sync API: not supported ---------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        raise _sync_only("get_tuple")

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        raise _sync_only("list")

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        raise _sync_only("put")

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        raise _sync_only("put_writes")

    def delete_thread(self, thread_id: str) -> None:
        raise _sync_only("delete_thread")

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        raise _sync_only("delete_for_runs")

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        raise _sync_only("copy_thread")

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        raise _sync_only("prune")

    # -- storage -----------------------------------------------------------------------------

    async def _ready(self) -> _Collections:
        """The collections of the current database, with their indexes."""
        db = self._database if self._database is not None else get_database()
        c = self._collections
        if c is None or c.database is not db:
            p = self._prefix
            c = _Collections(
                db,
                db[f"{p}checkpoints"],
                db[f"{p}writes"],
                db[f"{p}blobs"],
                db[f"{p}heads"],
                db[CHUNKS_COLLECTION],
            )
            self._collections = c
        if id(db) not in self._indexed:
            await asyncio.gather(
                c.checkpoints.create_indexes(
                    [
                        IndexModel(
                            [("thread_id", ASCENDING), ("ns", ASCENDING), ("seq", ASCENDING)],
                            name="thread_ns_seq",
                            unique=True,
                        ),
                        IndexModel([("run_id", ASCENDING)], name="run_id", sparse=True),
                    ]
                ),
                c.writes.create_indexes(
                    [
                        IndexModel(
                            [
                                ("thread_id", ASCENDING),
                                ("ns", ASCENDING),
                                ("checkpoint_id", ASCENDING),
                            ],
                            name="thread_ns_checkpoint",
                        )
                    ]
                ),
                c.blobs.create_indexes(
                    [IndexModel([("thread_id", ASCENDING), ("ns", ASCENDING)], name="thread_ns")]
                ),
                c.heads.create_indexes([IndexModel([("thread_id", ASCENDING)], name="thread")]),
                c.chunks.create_indexes(
                    [
                        # The layer's own index of this collection, for a database without it.
                        IndexModel(
                            [("payload_id", ASCENDING), ("n", ASCENDING)],
                            name="payload_id_n_unique",
                            unique=True,
                        ),
                        IndexModel([("thread_id", ASCENDING)], name="lg_thread_id", sparse=True),
                    ]
                ),
            )
            self._indexed.add(id(db))
        return c

    async def _put_checkpoint(
        self,
        c: _Collections,
        thread: str,
        ns: str,
        cid: str,
        doc: dict[str, Any],
        blobs: builtins.list[dict[str, Any]],
    ) -> None:
        """Insert the blobs and the checkpoint (with the next ``seq``), then move the head."""
        known = self._heads.get((thread, ns))
        if known is None:
            known = await self._head(c, thread, ns)
        doc["seq"] = (0 if known is None else known.seq) + 1
        pending_blobs = blobs
        for _ in range(_CAS_ATTEMPTS):
            # The blobs and the checkpoint travel together; a reader finds the checkpoint
            # only through the head, which moves after both are written.
            blobs_result, checkpoint_result = await asyncio.gather(
                _insert_new(c.blobs, pending_blobs),
                c.checkpoints.insert_one(doc),
                return_exceptions=True,
            )
            pending_blobs = []
            if isinstance(blobs_result, BaseException):
                raise blobs_result
            if not isinstance(checkpoint_result, BaseException):
                break
            if not isinstance(checkpoint_result, DuplicateKeyError):
                raise checkpoint_result
            existing = await c.checkpoints.find_one({"_id": doc["_id"]}, {"seq": 1})
            if existing is not None:  # the same checkpoint again: replace it in place
                doc["seq"] = existing["seq"]
                await c.checkpoints.replace_one({"_id": doc["_id"]}, doc)
                return
            known = await self._head(c, thread, ns)  # another writer took this seq
            doc["seq"] = (0 if known is None else known.seq) + 1
        else:
            raise DatabaseError(f"checkpoint {cid} of thread {thread}: no free seq (contention)")
        await self._advance_head(
            c, thread, ns, seq=doc["seq"], newest=cid, oldest=cid, ordered=True, known=known
        )

    async def _head(self, c: _Collections, thread: str, ns: str) -> _Head | None:
        doc = await c.heads.find_one({"_id": _key(thread, ns)})
        head = None if doc is None else _Head.of(doc)
        self._remember(thread, ns, head)
        return head

    async def _advance_head(
        self,
        c: _Collections,
        thread: str,
        ns: str,
        *,
        seq: int,
        newest: str,
        oldest: str,
        ordered: bool,
        known: _Head | None,
    ) -> None:
        """Move the head to ``seq`` / ``newest`` with a compare-and-set on ``_id``.

        The namespace stays ``ordered`` while every new checkpoint comes after the newest one
        (by seq and by id); a filter of ``_id`` plus equalities stays an ``_id`` lookup on
        every server, unlike ``$max`` guards or ``findAndModify``.
        """
        key = _key(thread, ns)
        head = known
        for _ in range(_CAS_ATTEMPTS):
            if head is None:
                try:
                    await c.heads.insert_one(
                        {
                            "_id": key,
                            "thread_id": thread,
                            "ns": ns,
                            "seq": seq,
                            "last_id": newest,
                            "ordered": ordered,
                        }
                    )
                except DuplicateKeyError:
                    head = await self._head(c, thread, ns)
                    continue
                self._remember(thread, ns, _Head(seq, newest, ordered))
                return
            moved = _Head(
                max(head.seq, seq),
                max(head.last_id, newest),
                head.ordered and ordered and seq > head.seq and oldest > head.last_id,
            )
            result = await c.heads.update_one(
                {"_id": key, "seq": head.seq, "last_id": head.last_id},
                {"$set": {"seq": moved.seq, "last_id": moved.last_id, "ordered": moved.ordered}},
            )
            if result.matched_count:
                self._remember(thread, ns, moved)
                return
            head = await self._head(c, thread, ns)
        raise DatabaseError(f"head of thread {thread}: too much contention")

    def _remember(self, thread: str, ns: str, head: _Head | None) -> None:
        if head is None:
            self._heads.pop((thread, ns), None)
            return
        if len(self._heads) >= _HEAD_CACHE_SIZE and (thread, ns) not in self._heads:
            self._heads.pop(next(iter(self._heads)))
        self._heads[(thread, ns)] = head

    def _forget(self, thread: str) -> None:
        for key in [key for key in self._heads if key[0] == thread]:
            del self._heads[key]

    def _value_fields(
        self, thread: str, typed: tuple[str, bytes], chunks: builtins.list[dict[str, Any]]
    ) -> dict[str, Any]:
        """``{type, value}``, or ``{type, payload}`` with the value appended to ``chunks``."""
        type_, data = typed
        if len(data) <= self._inline_max:
            return {"type": type_, "value": data}
        payload_id = ObjectId()
        chunks.extend(
            {
                "payload_id": payload_id,
                "thread_id": thread,
                "n": n,
                "data": data[start : start + CHUNK_BYTES],
            }
            for n, start in enumerate(range(0, len(data), CHUNK_BYTES))
        )
        ref = {"id": payload_id, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        return {"type": type_, "payload": ref}

    async def _chunked(
        self, c: _Collections, docs: Iterable[Mapping[str, Any]]
    ) -> dict[Any, bytes]:
        """The data of every chunked value of ``docs``, by payload id (checked)."""
        refs = {doc["payload"]["id"]: doc["payload"] for doc in docs if "payload" in doc}
        if not refs:
            return {}
        parts: dict[Any, builtins.list[tuple[int, bytes]]] = {payload_id: [] for payload_id in refs}
        async for chunk in c.chunks.find({"payload_id": {"$in": list(refs)}}):
            parts[chunk["payload_id"]].append((chunk["n"], bytes(chunk["data"])))
        data = {}
        for payload_id, ref in refs.items():
            joined = b"".join(part for _, part in sorted(parts[payload_id]))
            if len(joined) != ref["size"] or hashlib.sha256(joined).hexdigest() != ref["sha256"]:
                raise DatabaseError(f"chunked checkpoint value {payload_id} is missing or corrupt")
            data[payload_id] = joined
        return data

    def _loaded(self, doc: Mapping[str, Any], chunked: Mapping[Any, bytes]) -> Any:
        data = chunked[doc["payload"]["id"]] if "payload" in doc else bytes(doc["value"])
        return self.serde.loads_typed((doc["type"], data))

    def _row(self, doc: Mapping[str, Any]) -> _Row:
        checkpoint = self.serde.loads_typed((doc["type"], bytes(doc["checkpoint"])))
        metadata = self.serde.loads_typed((doc["metadata_type"], bytes(doc["metadata"])))
        return _Row(doc, checkpoint, metadata)

    async def _latest(self, c: _Collections, thread: str, ns: str) -> builtins.list[_Row]:
        head = await self._head(c, thread, ns)
        if head is None:
            return []
        doc = await c.checkpoints.find_one({"_id": _key(thread, ns, head.last_id)})
        if doc is not None:
            return [self._row(doc)]
        # The newest checkpoint was deleted (by run or by prune): the newest remaining one.
        async for row in self._scan(c, thread, ns, head, None, 1):
            return [row]
        return []

    def _rows(
        self, c: _Collections, config: RunnableConfig | None, before_id: str | None, window: int
    ) -> AsyncIterator[_Row]:
        """The checkpoints a listing selects, newest first (before any metadata filter)."""
        if config is None:
            return self._scan_everything(c, before_id)
        configurable = config["configurable"]
        thread = _identifier(configurable["thread_id"], "thread_id")
        if "checkpoint_ns" in configurable:
            namespaces = [_identifier(configurable["checkpoint_ns"], "checkpoint_ns")]
            return self._scan_namespaces(c, thread, namespaces, before_id, window)
        return self._scan_namespaces(c, thread, None, before_id, window)

    async def _scan_namespaces(
        self,
        c: _Collections,
        thread: str,
        namespaces: builtins.list[str] | None,
        before_id: str | None,
        window: int,
    ) -> AsyncIterator[_Row]:
        if namespaces is None:
            heads = {doc["ns"]: _Head.of(doc) async for doc in c.heads.find({"thread_id": thread})}
        else:
            heads = {ns: head for ns in namespaces if (head := await self._head(c, thread, ns))}
        streams = [self._scan(c, thread, ns, head, before_id, window) for ns, head in heads.items()]
        async for row in _merge_newest_first(streams):
            yield row

    async def _scan(
        self,
        c: _Collections,
        thread: str,
        ns: str,
        head: _Head,
        before_id: str | None,
        window: int,
    ) -> AsyncIterator[_Row]:
        """One namespace, newest first: ``seq`` ranges below the head, doubling in size."""
        if not head.ordered:  # read it whole, sort here
            docs = await c.checkpoints.find({"thread_id": thread, "ns": ns}).to_list()
            rows = sorted(map(self._row, docs), key=lambda r: r.checkpoint_id, reverse=True)
            for row in rows:
                if before_id is None or row.checkpoint_id < before_id:
                    yield row
            return
        high = head.seq
        if before_id is not None:
            before = await c.checkpoints.find_one({"_id": _key(thread, ns, before_id)}, {"seq": 1})
            if before is not None:
                high = min(high, int(before["seq"]) - 1)
        size = window
        while high >= 1:
            low = max(1, high - size + 1)
            docs = await c.checkpoints.find(
                {"thread_id": thread, "ns": ns, "seq": {"$gte": low, "$lte": high}},
                batch_size=size + 1,
            ).to_list()
            rows = sorted(map(self._row, docs), key=lambda r: r.checkpoint_id, reverse=True)
            for row in rows:
                if before_id is None or row.checkpoint_id < before_id:
                    yield row
            high = low - 1
            size = min(size * 2, 10 * _BATCH)

    async def _scan_everything(self, c: _Collections, before_id: str | None) -> AsyncIterator[_Row]:
        """Every thread (``alist(None)``): LangGraph's cross-thread listing reads the whole
        collection, newest first (an admin query; give a thread to stay on the indexes)."""
        query = {} if before_id is None else {"checkpoint_id": {"$lt": before_id}}
        async for doc in c.checkpoints.find(query, sort=[("checkpoint_id", -1)]):
            yield self._row(doc)

    async def _tuples(
        self, c: _Collections, rows: Sequence[_Row]
    ) -> builtins.list[CheckpointTuple]:
        """The full tuples of ``rows``: their blobs and writes, read concurrently."""
        blob_keys = {
            _key(row.doc["thread_id"], row.doc["ns"], channel, str(version))
            for row in rows
            for channel, version in row.checkpoint["channel_versions"].items()
        }
        wanted: dict[tuple[str, str], builtins.list[str]] = {}
        for row in rows:
            wanted.setdefault((row.doc["thread_id"], row.doc["ns"]), []).append(row.checkpoint_id)
        blob_docs, *write_docs = await asyncio.gather(
            c.blobs.find({"_id": {"$in": list(blob_keys)}}).to_list() if blob_keys else _nothing(),
            *(
                c.writes.find(
                    {"thread_id": thread, "ns": ns, "checkpoint_id": {"$in": cids}}
                ).to_list()
                for (thread, ns), cids in wanted.items()
            ),
        )
        writes = [doc for docs in write_docs for doc in docs]
        chunked = await self._chunked(c, [*blob_docs, *writes])
        blobs = {doc["_id"]: doc for doc in blob_docs}
        pending: dict[tuple[str, str, str], builtins.list[Mapping[str, Any]]] = {}
        for doc in writes:
            pending.setdefault((doc["thread_id"], doc["ns"], doc["checkpoint_id"]), []).append(doc)
        tuples = []
        for row in rows:
            thread, ns, cid = row.doc["thread_id"], row.doc["ns"], row.checkpoint_id
            values = {}
            for channel, version in row.checkpoint["channel_versions"].items():
                blob = blobs.get(_key(thread, ns, channel, str(version)))
                if blob is not None and blob["type"] != "empty":
                    values[channel] = self._loaded(blob, chunked)
            checkpoint: Checkpoint = {**row.checkpoint, "channel_values": values}
            row_writes = sorted(
                pending.get((thread, ns, cid), []),
                key=lambda w: (w["task_path"], w["task_id"], w["idx"]),
            )
            pending_writes: builtins.list[PendingWrite] = [
                (w["task_id"], w["channel"], self._loaded(w, chunked)) for w in row_writes
            ]
            parent = row.doc.get("parent_id")
            tuples.append(
                CheckpointTuple(
                    config={
                        "configurable": {
                            "thread_id": thread,
                            "checkpoint_ns": ns,
                            "checkpoint_id": cid,
                        }
                    },
                    checkpoint=checkpoint,
                    metadata=row.metadata,
                    parent_config=None
                    if not parent
                    else {
                        "configurable": {
                            "thread_id": thread,
                            "checkpoint_ns": ns,
                            "checkpoint_id": parent,
                        }
                    },
                    pending_writes=pending_writes,
                )
            )
        return tuples

    async def _collect_blobs(self, c: _Collections, thread: str) -> None:
        """Delete the blobs (and chunks) of ``thread`` that no remaining checkpoint uses."""
        docs, blobs = await asyncio.gather(
            c.checkpoints.find({"thread_id": thread}).to_list(),
            c.blobs.find({"thread_id": thread}, {"payload": 1}).to_list(),
        )
        used = {
            _key(thread, row.doc["ns"], channel, str(version))
            for row in map(self._row, docs)
            for channel, version in row.checkpoint["channel_versions"].items()
        }
        unused = [blob for blob in blobs if blob["_id"] not in used]
        if not unused:
            return
        await c.blobs.delete_many({"_id": {"$in": [blob["_id"] for blob in unused]}})
        if payloads := [blob["payload"]["id"] for blob in unused if "payload" in blob]:
            await c.chunks.delete_many({"payload_id": {"$in": payloads}})


async def _insert_new(collection: AsyncCollection[Any], docs: list[dict[str, Any]]) -> None:
    """Insert ``docs``, skipping those whose ``_id`` exists (written once, never changed)."""
    if not docs:
        return
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != _DUPLICATE_KEY for error in errors) or not errors:
            raise


async def _nothing() -> list[Any]:
    return []


async def _matching(rows: AsyncIterator[_Row], filter: Mapping[str, Any]) -> AsyncIterator[_Row]:
    """The rows whose metadata has every ``filter`` key with an equal value."""
    async for row in rows:
        metadata: Mapping[str, Any] = row.metadata
        if all(key in metadata and metadata[key] == value for key, value in filter.items()):
            yield row


async def _merge_newest_first(streams: Sequence[AsyncIterator[_Row]]) -> AsyncIterator[_Row]:
    """Merge streams that are each newest first into one newest-first stream."""
    if len(streams) == 1:
        async for row in streams[0]:
            yield row
        return
    current: dict[int, _Row] = {}
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


def _translated(exc: BaseException) -> DatabaseError:
    translated = translate(exc)
    assert translated is not None
    return translated


def _sync_only(name: str) -> NotImplementedError:
    return NotImplementedError(
        f"AgentsCoreSaver is async only: use `await saver.a{name}(...)` (or the graph's "
        f"ainvoke/astream/aget_state) instead of `{name}`"
    )
