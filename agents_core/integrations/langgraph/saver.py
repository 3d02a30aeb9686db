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

- **Channel values are stored once per channel and version** (a *blob*), never inside the
  checkpoint: a step that changes one channel writes one blob and a small checkpoint document
  (versions, metadata), so the bytes written per step follow what changed, not the state's size.
  Versions carry a random suffix (as LangGraph's own savers do), so forks never collide.
- **Nothing approaches 16 MB**: a serialized value above ``inline_max_bytes`` (1 MiB) goes to the
  layer's ``payload_chunks`` collection in 1 MiB chunks (``{payload_id, thread_id, n, data}``,
  checked against size and SHA-256 on every read) and its blob or write keeps a reference.
- **One collection, few commands.** Heads, checkpoints, blobs and pending writes of every thread
  live in ``lg_checkpoints`` (a ``kind`` field tells them apart; ``docs/langgraph.md`` has the
  layout), because on a busy server each command's cost dominates: ``aput`` is one ``insert``
  (the new blobs with the checkpoint) and the head's compare-and-set; ``aget_tuple`` one
  ``aggregate`` (the head, which keeps a copy of its newest checkpoint and the lookup keys ``k``
  of its values, with a ``$lookup`` of them); ``alist(limit=10)`` three ``find``s (the head, a
  ``seq`` range, the blobs and writes of those checkpoints in one ``$in`` on ``k``).
- **Every query is an ``_id`` lookup, an ``$in`` on ``k``, or a bounded index range.** Each
  ``(thread, namespace)`` numbers its checkpoints (``seq``) through its head's compare-and-set,
  and ``alist(limit=n)`` reads the range ``(head - n, head]``, widening it (doubling) only when
  filters or gaps need more; its cost does not grow with the thread (no ``sort`` + ``limit``,
  which a server may serve by reading every matching document). Should a checkpoint be stored
  out of id order (a copy into a non-empty thread, a hand-made id), the head says so and listings
  of that namespace read it whole and sort it in the client, which stays correct.
- **Deleting a thread removes all of it** (one ``delete_many`` on ``thread_id``, plus its chunks);
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
    InvalidURI,
    OperationFailure,
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
#: Checkpoints loaded at once by a listing without a limit.
_BATCH = 100
#: Compare-and-set attempts on a head before giving up (only contention needs more than one).
_CAS_ATTEMPTS = 16
#: Heads remembered per saver (the ``seq`` a writer of the thread uses next).
_HEAD_CACHE_SIZE = 4096
_DUPLICATE_KEY = 11000
#: The fields of a checkpoint document that its head copies (``latest``).
_LATEST_FIELDS = ("checkpoint_id", "parent_id", "type", "checkpoint", "metadata_type", "metadata")


def _key(*parts: str | int) -> str:
    """An unambiguous ``_id`` from its parts (a JSON array: readable, any string is safe)."""
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=False)


def _head_key(thread: str, ns: str) -> str:
    return _key("h", thread, ns)


def _thread_heads_key(thread: str) -> str:
    """``k`` of every head of a thread: its namespaces in one ``k`` lookup."""
    return _key("h", thread)


def _checkpoint_key(thread: str, ns: str, checkpoint_id: str) -> str:
    """``_id`` of a checkpoint, and ``k`` of its pending writes."""
    return _key("c", thread, ns, checkpoint_id)


def _blob_key(thread: str, ns: str, channel: str, version: object) -> str:
    return _key("b", thread, ns, channel, str(version))


def _write_key(thread: str, ns: str, checkpoint_id: str, task_id: str, idx: int) -> str:
    return _key("w", thread, ns, checkpoint_id, task_id, idx)


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
        return cls(int(doc["head_seq"]), str(doc["last_id"]), bool(doc.get("ordered", True)))


@dataclass(slots=True)
class _Row:
    """A checkpoint (document fields, its thread and namespace) with its parts decoded."""

    thread: str
    ns: str
    doc: Mapping[str, Any]
    checkpoint: Checkpoint
    metadata: CheckpointMetadata

    @property
    def checkpoint_id(self) -> str:
        return str(self.doc["checkpoint_id"])


class AgentsCoreSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpointer storing threads in agents-core's MongoDB (async API only).

    ``database``: the database to use; by default the layer's (``init_db``), looked up at each
    call. Threads live in the collection ``<prefix>checkpoints`` (``lg_checkpoints`` by
    default) and large values in the layer's ``payload_chunks``; the indexes are created at first
    use (or by :meth:`setup`), idempotently.
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
        self._name = f"{collection_prefix}checkpoints"
        self._inline_max = inline_max_bytes
        self._client: AsyncMongoClient[Any] | None = None
        self._bound: tuple[AsyncDatabase[Any], AsyncCollection[Any], AsyncCollection[Any]] | None
        self._bound = None
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
            coll, chunks = await self._ready()
            configurable = config["configurable"]
            thread = _identifier(configurable["thread_id"], "thread_id")
            ns = _identifier(configurable.get("checkpoint_ns", ""), "checkpoint_ns")
            checkpoint_id = get_checkpoint_id(config)
            if checkpoint_id:
                cid = _identifier(checkpoint_id, "checkpoint_id")
                doc = await coll.find_one({"_id": _checkpoint_key(thread, ns, cid)})
                rows = [] if doc is None else [self._row(thread, ns, doc)]
            else:
                return await self._latest_tuple(coll, chunks, thread, ns)
            if not rows:
                return None
            return (await self._tuples(coll, chunks, rows))[0]
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
            coll, chunks = await self._ready()
            before_id = None
            if before is not None and (raw_before := get_checkpoint_id(before)):
                before_id = _identifier(raw_before, "before checkpoint_id")
            window = max(1, min(limit or _BATCH, _BATCH))
            rows = self._rows(coll, config, before_id, window)
            if filter:
                rows = _matching(rows, filter)
            batch: builtins.list[_Row] = []
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
            raise _translated(exc) from exc

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
            thread = _identifier(configurable["thread_id"], "thread_id")
            ns = _identifier(configurable.get("checkpoint_ns", ""), "checkpoint_ns")
            parent = configurable.get("checkpoint_id")
            cid = _identifier(checkpoint["id"], "checkpoint id")
            stored: dict[str, Any] = dict(checkpoint)
            values: dict[str, Any] = stored.pop("channel_values", None) or {}
            chunk_docs: builtins.list[dict[str, Any]] = []
            blobs = []
            for channel, version in new_versions.items():
                key = _blob_key(thread, ns, channel, version)
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
                "_id": _checkpoint_key(thread, ns, cid),
                "kind": "checkpoint",
                "thread_id": thread,
                "ns": ns,
                "checkpoint_id": cid,
                "seq": 0,  # the head's next, set below
                "parent_id": None if parent is None else _identifier(parent, "checkpoint_id"),
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
                _blob_key(thread, ns, channel, version)
                for channel, version in checkpoint["channel_versions"].items()
            ]
            await self._put(coll, thread, ns, doc, blobs, keys)
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
            coll, chunks = await self._ready()
            configurable = config["configurable"]
            thread = _identifier(configurable["thread_id"], "thread_id")
            ns = _identifier(configurable.get("checkpoint_ns", ""), "checkpoint_ns")
            cid = _identifier(configurable["checkpoint_id"], "checkpoint_id")
            task = _identifier(task_id, "task_id")
            path = _identifier(task_path, "task_path")
            chunk_docs: builtins.list[dict[str, Any]] = []
            docs = []
            for index, (channel, value) in enumerate(writes):
                idx = WRITES_IDX_MAP.get(channel, index)
                docs.append(
                    {
                        "_id": _write_key(thread, ns, cid, task, idx),
                        "kind": "write",
                        "thread_id": thread,
                        "ns": ns,
                        "k": _checkpoint_key(thread, ns, cid),
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
                await _insert_new(coll, docs)
        except (PyMongoError, BSONError) as exc:
            raise _translated(exc) from exc

    async def adelete_thread(self, thread_id: str) -> None:
        try:
            coll, chunks = await self._ready()
            thread = _identifier(thread_id, "thread_id")
            self._forget(thread)
            await asyncio.gather(
                coll.delete_many({"thread_id": thread}), chunks.delete_many({"thread_id": thread})
            )
        except (PyMongoError, BSONError) as exc:
            raise _translated(exc) from exc

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints whose ``metadata.run_id`` is in ``run_ids``, with their writes
        and the blobs and chunks no remaining checkpoint uses."""
        if not run_ids:
            return
        try:
            coll, chunks = await self._ready()
            ids = [_identifier(run_id, "run_id") for run_id in run_ids]
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
            raise _translated(exc) from exc

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and blob of a thread (all namespaces) to another."""
        try:
            coll, chunks = await self._ready()
            source = _identifier(source_thread_id, "source_thread_id")
            target = _identifier(target_thread_id, "target_thread_id")
            if source == target:
                return
            docs = await coll.find({"thread_id": source}).to_list()
            checkpoints = [doc for doc in docs if doc["kind"] == "checkpoint"]
            if not checkpoints:
                return
            values = [doc for doc in docs if doc["kind"] in ("blob", "write")]
            payloads = [doc["payload"]["id"] for doc in values if "payload" in doc]
            renamed: dict[Any, ObjectId] = {payload_id: ObjectId() for payload_id in payloads}
            if payloads:
                copied = await chunks.find({"payload_id": {"$in": payloads}}).to_list()
                for chunk in copied:
                    chunk.pop("_id")
                    chunk["payload_id"] = renamed[chunk["payload_id"]]
                    chunk["thread_id"] = target
                await chunks.insert_many(copied, ordered=False)
            for doc in values:
                if "payload" in doc:
                    doc["payload"] = {**doc["payload"], "id": renamed[doc["payload"]["id"]]}
                doc["thread_id"] = target
                if doc["kind"] == "blob":
                    channel, version = json.loads(doc["_id"])[3:]
                    doc["_id"] = doc["k"] = _blob_key(target, doc["ns"], channel, version)
                else:
                    cid = doc["checkpoint_id"]
                    doc["_id"] = _write_key(target, doc["ns"], cid, doc["task_id"], doc["idx"])
                    doc["k"] = _checkpoint_key(target, doc["ns"], cid)
            await _insert_new(coll, values)
            source_heads = {doc["ns"]: _Head.of(doc) for doc in docs if doc["kind"] == "head"}
            for ns in sorted({doc["ns"] for doc in checkpoints}):
                await self._copy_namespace(
                    coll,
                    target,
                    ns,
                    sorted((d for d in checkpoints if d["ns"] == ns), key=lambda d: d["seq"]),
                    source_heads.get(ns),
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
                coll, chunks = await self._ready()
                thread = _identifier(thread_id, "thread_id")
                found = await coll.find(
                    {"thread_id": thread}, {"kind": 1, "ns": 1, "checkpoint_id": 1}
                ).to_list()
                docs = [doc for doc in found if doc["kind"] == "checkpoint"]
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

    async def _ready(self) -> tuple[AsyncCollection[Any], AsyncCollection[Any]]:
        """The threads' collection and the chunks' collection, with their indexes."""
        db = self._database if self._database is not None else get_database()
        if self._bound is None or self._bound[0] is not db:
            self._bound = (db, db[self._name], db[CHUNKS_COLLECTION])
        _, coll, chunks = self._bound
        if id(db) not in self._indexed:
            await asyncio.gather(
                coll.create_indexes(
                    [
                        # Checkpoint ranges of a namespace; every document of a thread.
                        IndexModel(
                            [("thread_id", ASCENDING), ("ns", ASCENDING), ("seq", ASCENDING)],
                            name="thread_ns_seq",
                        ),
                        # Blobs and writes of checkpoints, heads of a thread, in one $in.
                        IndexModel([("k", ASCENDING)], name="k", sparse=True),
                        IndexModel([("run_id", ASCENDING)], name="run_id", sparse=True),
                    ]
                ),
                chunks.create_indexes(
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
        return coll, chunks

    async def _put(
        self,
        coll: AsyncCollection[Any],
        thread: str,
        ns: str,
        doc: dict[str, Any],
        blobs: builtins.list[dict[str, Any]],
        keys: builtins.list[str],
    ) -> None:
        """Insert the new blobs with the checkpoint (one command), then move the head.

        The head moves last, so a reader (who finds checkpoints through it) never sees a
        checkpoint without its blobs. Should another writer have moved the head (a stale
        cache), the checkpoint takes the next ``seq`` and the compare-and-set is retried.
        """
        known = self._heads.get((thread, ns))
        if known is None:
            known = await self._head(coll, thread, ns)
        doc["seq"] = (0 if known is None else known.seq) + 1
        try:
            await coll.insert_many([*blobs, doc], ordered=False)
        except BulkWriteError as exc:
            if not _only_duplicates(exc):  # a blob stored already: blobs never change
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

    async def _move_head(
        self,
        coll: AsyncCollection[Any],
        thread: str,
        ns: str,
        head: _Head | None,
        *,
        seq: int,
        newest: Mapping[str, Any],
        newest_keys: builtins.list[str],
        oldest: str,
        ordered: bool,
        renumber: str | None = None,
    ) -> None:
        """Move ``head`` to ``seq`` and checkpoint ``newest`` by compare-and-set.

        The filter is ``_id`` plus equalities (an ``_id`` lookup on every server, unlike
        ``$max`` guards or ``findAndModify``). The namespace stays ``ordered`` while every new
        checkpoint comes after the newest one, by seq and by id. The head keeps a copy of its
        newest checkpoint and the ``k`` of its values, for ``aget_tuple``'s one command. On a
        lost race the head is read again and checkpoint ``renumber`` takes the next ``seq``.
        """
        newest_id = str(newest["checkpoint_id"])
        latest = {field: newest.get(field) for field in _LATEST_FIELDS}
        for _ in range(_CAS_ATTEMPTS):
            if head is None:
                moved = _Head(seq, newest_id, ordered)
                insert = {
                    "kind": "head",
                    "thread_id": thread,
                    "ns": ns,
                    "k": _thread_heads_key(thread),
                    "head_seq": seq,
                    "last_id": newest_id,
                    "ordered": ordered,
                    "latest": latest,
                    "latest_keys": newest_keys,
                }
                result = await coll.update_one(
                    {"_id": _head_key(thread, ns)}, {"$setOnInsert": insert}, upsert=True
                )
                done = result.upserted_id is not None
            else:
                moved = _Head(
                    max(head.seq, seq),
                    max(head.last_id, newest_id),
                    head.ordered and ordered and seq > head.seq and oldest >= head.last_id,
                )
                update: dict[str, Any] = {
                    "head_seq": moved.seq,
                    "last_id": moved.last_id,
                    "ordered": moved.ordered,
                }
                if newest_id >= head.last_id:
                    update["latest"] = latest
                    update["latest_keys"] = newest_keys
                query = {
                    "_id": _head_key(thread, ns),
                    "head_seq": head.seq,
                    "last_id": head.last_id,
                }
                result = await coll.update_one(query, {"$set": update})
                done = result.matched_count == 1
            if done:
                self._remember(thread, ns, moved)
                return
            head = await self._head(coll, thread, ns)
            if renumber is not None and head is not None and seq <= head.seq:
                seq = head.seq + 1
                await coll.update_one({"_id": renumber}, {"$set": {"seq": seq}})
        raise DatabaseError(f"head of thread {thread}: too much contention")

    async def _head(self, coll: AsyncCollection[Any], thread: str, ns: str) -> _Head | None:
        doc = await coll.find_one({"_id": _head_key(thread, ns)}, {"latest": 0, "latest_keys": 0})
        head = None if doc is None else _Head.of(doc)
        self._remember(thread, ns, head)
        return head

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

    async def _copy_namespace(
        self,
        coll: AsyncCollection[Any],
        target: str,
        ns: str,
        docs: builtins.list[dict[str, Any]],
        source_head: _Head | None,
    ) -> None:
        """Copy one namespace's checkpoints after the target's own (``seq`` offset by its
        head), then move the target's head."""
        target_head = await self._head(coll, target, ns)
        offset = 0 if target_head is None else target_head.seq
        for doc in docs:
            doc["_id"] = _checkpoint_key(target, ns, doc["checkpoint_id"])
            doc["thread_id"] = target
            doc["seq"] += offset
        await _insert_new(coll, docs)
        newest = max(docs, key=lambda d: d["checkpoint_id"])
        await self._move_head(
            coll,
            target,
            ns,
            target_head,
            seq=max(doc["seq"] for doc in docs),
            newest=newest,
            newest_keys=sorted(_value_keys([self._row(target, ns, newest)])),
            oldest=min(doc["checkpoint_id"] for doc in docs),
            ordered=source_head is None or source_head.ordered,
        )

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
        keys = [_checkpoint_key(thread, ns, cid) for ns, cid in dropped]
        await asyncio.gather(
            coll.delete_many({"_id": {"$in": keys}}), coll.delete_many({"k": {"$in": keys}})
        )
        docs = await coll.find(
            {"thread_id": thread}, {"value": 0, "latest": 0, "latest_keys": 0}
        ).to_list()
        rows = [self._row(thread, d["ns"], d) for d in docs if d["kind"] == "checkpoint"]
        used = {
            _blob_key(thread, row.ns, channel, version)
            for row in rows
            for channel, version in row.checkpoint["channel_versions"].items()
        }
        unused = [d for d in docs if d["kind"] == "blob" and d["_id"] not in used]
        if unused:
            await coll.delete_many({"_id": {"$in": [d["_id"] for d in unused]}})
            if payloads := [d["payload"]["id"] for d in unused if "payload" in d]:
                await chunks.delete_many({"payload_id": {"$in": payloads}})
        for head_doc in (d for d in docs if d["kind"] == "head"):
            head = _Head.of(head_doc)
            if (head_doc["ns"], head.last_id) not in dropped:
                continue
            remaining = [row for row in rows if row.ns == head_doc["ns"]]
            query = {"_id": head_doc["_id"], "head_seq": head.seq, "last_id": head.last_id}
            if remaining:
                row = max(remaining, key=lambda row: row.checkpoint_id)
                latest = {field: row.doc.get(field) for field in _LATEST_FIELDS}
                keys = sorted(_value_keys([row]))
                update: dict[str, Any] = {
                    "$set": {"last_id": row.checkpoint_id, "latest": latest, "latest_keys": keys}
                }
            else:
                update = {"$unset": {"latest": "", "latest_keys": ""}}
            # A writer that moved the head meanwhile put a newer checkpoint: nothing to fix.
            await coll.update_one(query, update)
            self._remember(thread, head_doc["ns"], None)

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
        self, chunks: AsyncCollection[Any], docs: Iterable[Mapping[str, Any]]
    ) -> dict[Any, bytes]:
        """The data of every chunked value of ``docs``, by payload id (checked)."""
        refs = {doc["payload"]["id"]: doc["payload"] for doc in docs if "payload" in doc}
        if not refs:
            return {}
        parts: dict[Any, builtins.list[tuple[int, bytes]]] = {key: [] for key in refs}
        async for chunk in chunks.find({"payload_id": {"$in": builtins.list(refs)}}):
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

    def _row(self, thread: str, ns: str, doc: Mapping[str, Any]) -> _Row:
        checkpoint = self.serde.loads_typed((doc["type"], bytes(doc["checkpoint"])))
        metadata = self.serde.loads_typed((doc["metadata_type"], bytes(doc["metadata"])))
        return _Row(thread, ns, doc, checkpoint, metadata)

    async def _latest_tuple(
        self, coll: AsyncCollection[Any], chunks: AsyncCollection[Any], thread: str, ns: str
    ) -> CheckpointTuple | None:
        """The newest checkpoint with its values in one command: the head (which keeps a copy
        of its newest checkpoint and the ``k`` of its values) and a ``$lookup`` of them."""
        pipeline = [
            {"$match": {"_id": _head_key(thread, ns)}},
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
            and _value_keys(rows) <= set(head_doc.get("latest_keys", ()))
        ):
            values = head_doc.get("values")
        return (await self._tuples(coll, chunks, rows, values))[0]

    async def _latest(
        self, coll: AsyncCollection[Any], thread: str, ns: str
    ) -> builtins.list[_Row]:
        """The newest checkpoint of a namespace, through its head."""
        head_doc = await coll.find_one({"_id": _head_key(thread, ns)})
        return await self._latest_of(coll, thread, ns, head_doc)

    async def _latest_of(
        self,
        coll: AsyncCollection[Any],
        thread: str,
        ns: str,
        head_doc: Mapping[str, Any] | None,
    ) -> builtins.list[_Row]:
        if head_doc is None:
            self._remember(thread, ns, None)
            return []
        head = _Head.of(head_doc)
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
    ) -> AsyncIterator[_Row]:
        """The checkpoints a listing selects, newest first (before any metadata filter)."""
        if config is None:
            return self._scan_everything(coll, before_id)
        configurable = config["configurable"]
        thread = _identifier(configurable["thread_id"], "thread_id")
        namespaces = None
        if "checkpoint_ns" in configurable:
            namespaces = [_identifier(configurable["checkpoint_ns"], "checkpoint_ns")]
        return self._scan_namespaces(coll, thread, namespaces, before_id, window)

    async def _scan_namespaces(
        self,
        coll: AsyncCollection[Any],
        thread: str,
        namespaces: builtins.list[str] | None,
        before_id: str | None,
        window: int,
    ) -> AsyncIterator[_Row]:
        if namespaces is None:
            query = {"k": _thread_heads_key(thread)}
            found = coll.find(query, {"latest": 0, "latest_keys": 0})
            heads = {d["ns"]: _Head.of(d) async for d in found}
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
        head: _Head,
        before_id: str | None,
        window: int,
    ) -> AsyncIterator[_Row]:
        """One namespace, newest first: ``seq`` ranges below the head, doubling in size."""
        if not head.ordered:  # read it whole, sort here
            docs = await coll.find({"thread_id": thread, "ns": ns, "seq": {"$gte": 1}}).to_list()
            rows = [self._row(thread, ns, doc) for doc in docs]
            for row in sorted(rows, key=lambda r: r.checkpoint_id, reverse=True):
                if before_id is None or row.checkpoint_id < before_id:
                    yield row
            return
        high = head.seq
        if before_id is not None:
            key = _checkpoint_key(thread, ns, before_id)
            if (before := await coll.find_one({"_id": key}, {"seq": 1})) is not None:
                high = min(high, int(before["seq"]) - 1)
        size = window
        while high >= 1:
            low = max(1, high - size + 1)
            docs = await coll.find(
                {"thread_id": thread, "ns": ns, "seq": {"$gte": low, "$lte": high}},
                batch_size=size + 1,
            ).to_list()
            rows = [self._row(thread, ns, doc) for doc in docs]
            for row in sorted(rows, key=lambda r: r.checkpoint_id, reverse=True):
                if before_id is None or row.checkpoint_id < before_id:
                    yield row
            high = low - 1
            size = min(size * 2, 10 * _BATCH)

    async def _scan_everything(
        self, coll: AsyncCollection[Any], before_id: str | None
    ) -> AsyncIterator[_Row]:
        """Every thread (``alist(None)``): LangGraph's cross-thread listing reads the whole
        collection, newest first (an admin query; give a thread to stay on the indexes)."""
        query: dict[str, Any] = {"kind": "checkpoint"}
        if before_id is not None:
            query["checkpoint_id"] = {"$lt": before_id}
        async for doc in coll.find(query, sort=[("checkpoint_id", -1)]):
            yield self._row(doc["thread_id"], doc["ns"], doc)

    async def _tuples(
        self,
        coll: AsyncCollection[Any],
        chunks: AsyncCollection[Any],
        rows: Sequence[_Row],
        docs: builtins.list[Any] | None = None,
    ) -> builtins.list[CheckpointTuple]:
        """The full tuples of ``rows``: their blobs and writes in one ``$in`` on ``k`` (unless
        given)."""
        if docs is None:
            keys = builtins.list(_value_keys(rows))
            docs = await coll.find({"k": {"$in": keys}}).to_list()
        chunked = await self._chunked(chunks, docs)
        blobs = {doc["_id"]: doc for doc in docs if doc["kind"] == "blob"}
        pending: dict[str, builtins.list[Mapping[str, Any]]] = {}
        for doc in docs:
            if doc["kind"] == "write":
                pending.setdefault(doc["k"], []).append(doc)
        tuples = []
        for row in rows:
            thread, ns, cid = row.thread, row.ns, row.checkpoint_id
            values = {}
            for channel, version in row.checkpoint["channel_versions"].items():
                blob = blobs.get(_blob_key(thread, ns, channel, version))
                if blob is not None and blob["type"] != "empty":
                    values[channel] = self._loaded(blob, chunked)
            checkpoint: Checkpoint = {**row.checkpoint, "channel_values": values}
            row_writes = sorted(
                pending.get(_checkpoint_key(thread, ns, cid), []),
                key=lambda w: (w["task_path"], w["task_id"], w["idx"]),
            )
            pending_writes: builtins.list[PendingWrite] = [
                (w["task_id"], w["channel"], self._loaded(w, chunked)) for w in row_writes
            ]
            parent = row.doc.get("parent_id")
            parent_config: RunnableConfig | None = None
            if parent:
                parent_config = {
                    "configurable": {
                        "thread_id": thread,
                        "checkpoint_ns": ns,
                        "checkpoint_id": parent,
                    }
                }
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
                    parent_config=parent_config,
                    pending_writes=pending_writes,
                )
            )
        return tuples


def _value_keys(rows: Iterable[_Row]) -> frozenset[str]:
    """``k`` of the blobs and of the writes of the checkpoints of ``rows``."""
    keys = set()
    for row in rows:
        keys.add(_checkpoint_key(row.thread, row.ns, row.checkpoint_id))
        for channel, version in row.checkpoint["channel_versions"].items():
            keys.add(_blob_key(row.thread, row.ns, channel, version))
    return frozenset(keys)


async def _insert_new(collection: AsyncCollection[Any], docs: list[dict[str, Any]]) -> None:
    """Insert ``docs``, skipping those whose ``_id`` exists (written once, never changed)."""
    if not docs:
        return
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        if not _only_duplicates(exc):
            raise


def _only_duplicates(exc: BulkWriteError) -> bool:
    errors = exc.details.get("writeErrors", [])
    return bool(errors) and all(error.get("code") == _DUPLICATE_KEY for error in errors)


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
