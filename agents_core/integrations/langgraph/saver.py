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
  layer's ``payload_chunks`` collection in 1 MiB chunks (``agents_core.db.chunks``: the layer's
  format, ``{payload_id, thread_id, n, data}``, checked against size and SHA-256 on every read)
  and its blob or write keeps a reference.
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
- **Under contention** (double-texting) writers of a thread back off and retry the head's
  compare-and-set, and all succeed; a failed ``aput`` leaves nothing behind; a write racing
  ``adelete_thread`` lands before it (and goes with it) or is refused (``NotFoundError``); a
  checkpoint is never returned without the values its versions name (``_writes``, and
  ``docs/langgraph.md``, "Under contention, and with deletes").
- **Deleting a thread removes all of it** (its heads, one ``delete_many`` on ``thread_id`` plus
  its chunks, its heads again); ``adelete_for_runs`` and ``aprune`` also delete the blobs and
  chunks no kept checkpoint uses.
- The sync methods raise ``NotImplementedError`` pointing to the async API: this saver speaks
  PyMongo's async API only, and never wraps a sync driver in threads.

The class is composed of one part per concern, each a module of this package: ``_documents``
(keys, the documents' fields), ``_store`` (the collections, their indexes, inline and chunked
values), ``_heads`` (the head's compare-and-set and the cache of heads), ``_reads``
(``aget_tuple``, ``alist``), ``_threads`` (``alist_threads``, ``aget_thread``: threads as the
CLI and the trace view show them), ``_writes`` (``aput``, ``aput_writes``) and ``_lifecycle``
(delete, copy, prune).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC
from types import TracebackType
from typing import Any

from bson.errors import BSONError
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError, InvalidURI, PyMongoError

from agents_core.db.client import DEFAULT_DATABASE
from agents_core.db.config import mask_uri
from agents_core.db.errors import InvalidInputError
from agents_core.integrations.langgraph._lifecycle import Lifecycle
from agents_core.integrations.langgraph._store import INLINE_MAX_BYTES, translated
from agents_core.integrations.langgraph._threads import Threads
from agents_core.integrations.langgraph._writes import Writes

__all__ = ["AgentsCoreSaver"]


class AgentsCoreSaver(Threads, Writes, Lifecycle):
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
        self._client = None
        self._bound = None
        self._indexed = set()
        self._heads = {}
        self._turns = {}

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
            raise translated(exc) from exc

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


def _sync_only(name: str) -> NotImplementedError:
    return NotImplementedError(
        f"AgentsCoreSaver is async only: use `await saver.a{name}(...)` (or the graph's "
        f"ainvoke/astream/aget_state) instead of `{name}`"
    )
