"""What a secondary index costs a write, on the server the benchmark talks to.

Usage::

    python -m benchmarks.index_cost            # its own SecantusDB (in memory)
    MONGODB_URI=mongodb://... python -m benchmarks.index_cost

Two writes of the layer's hot paths, each on collections that differ only in their indexes,
timed by the server's reply (command monitoring's duration, medians of ``CALLS``):

- an ``insert`` of four message-like documents (an ``add_items`` turn), with none, some or
  all of ``messages``' secondary indexes;
- an ``update`` of one session-like document by ``_id`` (the ``seq`` reservation), on a
  collection without secondary indexes and on one with ``sessions``' four, setting an indexed
  field (``updated_at``) or only an unindexed one (``last_seq``).

Why it exists: ``AgentsCoreSession.add_items`` sends the same two commands as the SDK's
``MongoDBSession`` and yet takes longer on SecantusDB; this shows where the server's time goes
(``benchmarks/README.md``, issue 20's ``add_items`` paragraph).
"""

from __future__ import annotations

import asyncio
import os
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, monitoring

#: Writes timed per variant.
CALLS = 300
#: Documents per insert: one turn of the SDK's items.
BATCH = 4
TEXT = "x" * 200

SEQ = IndexModel([("session_id", ASCENDING), ("seq", ASCENDING)], unique=True)
IDEMPOTENCY = IndexModel(
    [("session_id", ASCENDING), ("idempotency_key", ASCENDING)],
    unique=True,
    partialFilterExpression={"idempotency_key": {"$type": "string"}},
)
CREATED = IndexModel([("created_at", DESCENDING)])
MESSAGE_VARIANTS: dict[str, list[IndexModel]] = {
    "no secondary index": [],
    "(session_id, seq)": [SEQ],
    "+ idempotency (partial)": [SEQ, IDEMPOTENCY],
    "+ created_at (all of messages')": [SEQ, IDEMPOTENCY, CREATED],
}
SESSION_INDEXES = [
    IndexModel([("status", ASCENDING), ("updated_at", DESCENDING)]),
    IndexModel([("user_id", ASCENDING), ("status", ASCENDING), ("updated_at", DESCENDING)]),
    IndexModel([("user_id", ASCENDING), ("_id", ASCENDING)]),
    IndexModel([("status", ASCENDING), ("_id", ASCENDING)]),
]


class _Durations(monitoring.CommandListener):
    """The server's duration of every ``insert`` and ``update``, in µs."""

    def __init__(self) -> None:
        self.micros: list[int] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name in {"insert", "update"}:
            self.micros.append(event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def _inserts(db: Any, name: str, indexes: Sequence[IndexModel], timed: _Durations) -> int:
    coll = db[name]
    if indexes:
        await coll.create_indexes(list(indexes))
    session_id, seq = ObjectId(), 0
    timed.micros.clear()
    for _ in range(CALLS):
        docs = []
        for _ in range(BATCH):
            seq += 1
            docs.append(
                {
                    "session_id": session_id,
                    "seq": seq,
                    "idempotency_key": None,
                    "item": {"role": "user", "content": TEXT},
                    "content": TEXT,
                    "created_at": datetime.now(UTC),
                    "batch_end_seq": seq,
                }
            )
        await coll.insert_many(docs)
    return round(statistics.median(timed.micros))


async def _updates(db: Any, name: str, indexed: bool, move: bool, timed: _Durations) -> int:
    coll = db[name]
    if indexed:
        await coll.create_indexes(SESSION_INDEXES)
    ids = [ObjectId() for _ in range(50)]
    now = datetime.now(UTC)
    await coll.insert_many(
        [
            {"_id": i, "status": "active", "user_id": "u", "last_seq": 0, "updated_at": now}
            for i in ids
        ]
    )
    last = 0
    timed.micros.clear()
    for _ in range(CALLS):
        change: dict[str, Any] = {"last_seq": last + BATCH}
        if move:
            change["updated_at"] = datetime.now(UTC)
        query = {"_id": ids[7], "status": {"$nin": ["deleting", "forking"]}, "last_seq": last}
        await coll.update_one(query, {"$set": change})
        last += BATCH
    return round(statistics.median(timed.micros))


async def measure(uri: str, rounds: int = 3) -> list[tuple[str, str, int]]:
    """``(write, variant, median µs)`` for every variant, ``rounds`` times (fresh collections)."""
    timed = _Durations()
    client: AsyncMongoClient[Any] = AsyncMongoClient(uri, event_listeners=[timed])
    db = client[f"index_cost_{ObjectId()}"]
    rows: list[tuple[str, str, int]] = []
    try:
        for round_ in range(rounds):
            for n, (variant, indexes) in enumerate(MESSAGE_VARIANTS.items()):
                micros = await _inserts(db, f"m{round_}_{n}", indexes, timed)
                rows.append((f"insert of {BATCH} messages", variant, micros))
            for indexed in (False, True):
                for move in (False, True):
                    micros = await _updates(db, f"s{round_}_{indexed}_{move}", indexed, move, timed)
                    variant = ("sessions' 4 indexes" if indexed else "no secondary index") + (
                        ", updated_at set" if move else ", last_seq only"
                    )
                    rows.append(("update of a session", variant, micros))
    finally:
        await client.drop_database(db.name)
        await client.close()
    return rows


def main() -> None:
    from agents_core.embedded import EmbeddedServer

    uri = os.environ.get("MONGODB_URI")
    if uri:
        rows = asyncio.run(measure(uri))
    else:
        with EmbeddedServer() as server:
            rows = asyncio.run(measure(server.uri))
    rounds: dict[tuple[str, str], list[int]] = {}
    for write, variant, micros in rows:
        rounds.setdefault((write, variant), []).append(micros)
    for (write, variant), values in rounds.items():
        each = " / ".join(f"{value:,}" for value in values)
        print(f"{write:<22} {variant:<36} {each} µs (each round's median)")


if __name__ == "__main__":
    main()
