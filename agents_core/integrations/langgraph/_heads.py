"""The heads of a thread's namespaces: the compare-and-set that publishes checkpoints, and the
per-saver cache of heads.

A head (``["h", thread, ns]``) holds the namespace's last ``seq``, its newest checkpoint id, its
``epoch`` (new each time the head is created), a copy of the newest checkpoint (``latest``) and
the ``k`` of its values (``latest_keys``). A checkpoint is visible once its head has moved to it.
Writers move the head with ``update_one({_id, head_seq, last_id, epoch}, …)``: ``_id`` plus
equalities, an ``_id`` lookup on every server (unlike ``$max`` guards or ``findAndModify``). A
writer that loses the race backs off (a random wait, doubling up to a bound: "full jitter"),
reads the head again and retries; each lost race means another writer won, so ``CAS_ATTEMPTS``
writers of one namespace at once all get through. Writers of one namespace through one saver
take turns (an ``asyncio.Lock`` per namespace while any waits): each then starts from the head
its predecessor left, and only other savers' writers race. A saver remembers the heads it saw,
which saves the read before each ``aput``; a stale entry costs one lost race.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from agents_core.db.errors import DatabaseError
from agents_core.integrations.langgraph._documents import (
    LATEST_FIELDS,
    Head,
    head_key,
    thread_heads_key,
)
from agents_core.integrations.langgraph._store import Store

__all__ = ["CAS_ATTEMPTS", "Heads", "Move", "Turns", "back_off"]

#: Compare-and-set attempts on a head before giving up: as many writers of one namespace at
#: once all succeed (each lost race is another writer's success), with room to spare.
CAS_ATTEMPTS = 128
#: The first wait after a lost race, and the longest, in seconds.
BACKOFF_FIRST_S = 0.005
BACKOFF_MAX_S = 0.2
#: Heads remembered per saver (the ``seq`` a writer of the thread uses next).
HEAD_CACHE_SIZE = 4096


async def back_off(attempt: int) -> None:
    """After lost race number ``attempt`` (from 0): none after the first (a stale head loses
    once, with no one else to wait for), then a random wait below a bound that doubles with
    each lost race, up to a maximum."""
    if attempt:
        bound = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1))
        await asyncio.sleep(random.uniform(0, bound))


@dataclass(frozen=True, slots=True)
class Move:
    """Where a writer moves a head: to ``seq`` and the checkpoint document ``newest`` (whose
    epoch it carries), the ``k`` of whose values are ``keys``; ``oldest`` is the oldest
    checkpoint id it publishes (a copy publishes several), ``ordered`` whether those came in id
    order."""

    seq: int
    newest: Mapping[str, Any]
    keys: list[str]
    oldest: str
    ordered: bool


@dataclass(slots=True)
class Turns:
    """The lock of a namespace's writers in one saver, and how many hold or wait for it."""

    lock: asyncio.Lock
    users: int = 0


class Heads(Store):
    """Reading, caching and moving heads."""

    _heads: dict[tuple[str, str], Head]
    _turns: dict[tuple[str, str], Turns]

    @asynccontextmanager
    async def _turn(self, thread: str, ns: str) -> AsyncIterator[None]:
        """This saver's writers of ``(thread, ns)``, one at a time."""
        turns = self._turns.get((thread, ns))
        if turns is None:
            turns = self._turns[(thread, ns)] = Turns(asyncio.Lock())
        turns.users += 1
        try:
            async with turns.lock:
                yield
        finally:
            turns.users -= 1
            if not turns.users:
                del self._turns[(thread, ns)]

    async def _cas(
        self, coll: AsyncCollection[Any], thread: str, ns: str, head: Head | None, move: Move
    ) -> Head | None:
        """One attempt at ``move`` from ``head`` (or at creating the head, with the newest
        checkpoint's epoch, when ``head`` is None); the head it moved to, or None if another
        writer moved it first.

        The namespace stays ``ordered`` while every new checkpoint comes after the newest one,
        by seq and by id. The head keeps a copy of its newest checkpoint and the ``k`` of its
        values, for ``aget_tuple``'s one command.
        """
        newest_id = str(move.newest["checkpoint_id"])
        latest = {field: move.newest.get(field) for field in LATEST_FIELDS}
        if head is None:
            moved = Head(move.seq, newest_id, move.ordered, move.newest["epoch"])
            insert = {
                "kind": "head",
                "thread_id": thread,
                "ns": ns,
                "k": thread_heads_key(thread),
                "head_seq": moved.seq,
                "last_id": moved.last_id,
                "ordered": moved.ordered,
                "epoch": moved.epoch,
                "latest": latest,
                "latest_keys": move.keys,
            }
            try:
                result = await coll.update_one(
                    {"_id": head_key(thread, ns)}, {"$setOnInsert": insert}, upsert=True
                )
            except DuplicateKeyError:  # another writer's upsert inserted it first
                return None
            done = result.upserted_id is not None
        else:
            moved = Head(
                max(head.seq, move.seq),
                max(head.last_id, newest_id),
                head.ordered
                and move.ordered
                and move.seq > head.seq
                and move.oldest >= head.last_id,
                head.epoch,
            )
            update: dict[str, Any] = {
                "head_seq": moved.seq,
                "last_id": moved.last_id,
                "ordered": moved.ordered,
            }
            if newest_id >= head.last_id:
                update["latest"] = latest
                update["latest_keys"] = move.keys
            query = {
                "_id": head_key(thread, ns),
                "head_seq": head.seq,
                "last_id": head.last_id,
                "epoch": head.epoch,
            }
            result = await coll.update_one(query, {"$set": update})
            done = result.matched_count == 1
        if not done:
            return None
        self._remember(thread, ns, moved)
        return moved

    async def _move_head(
        self, coll: AsyncCollection[Any], thread: str, ns: str, head: Head | None, move: Move
    ) -> None:
        """``move``, retrying lost races (with back-off) while the head keeps the newest
        checkpoint's epoch; for documents that already carry their ``seq`` (a copy)."""
        for attempt in range(CAS_ATTEMPTS):
            if await self._cas(coll, thread, ns, head, move) is not None:
                return
            await back_off(attempt)
            head = await self._head(coll, thread, ns)
            if head is not None and head.epoch != move.newest["epoch"]:
                raise DatabaseError(f"thread {thread} was deleted or replaced meanwhile")
        raise DatabaseError(f"head of thread {thread}: too much contention")

    async def _head(self, coll: AsyncCollection[Any], thread: str, ns: str) -> Head | None:
        doc = await coll.find_one({"_id": head_key(thread, ns)}, {"latest": 0, "latest_keys": 0})
        head = None if doc is None else Head.of(doc)
        self._remember(thread, ns, head)
        return head

    def _remember(self, thread: str, ns: str, head: Head | None) -> None:
        if head is None:
            self._heads.pop((thread, ns), None)
            return
        if len(self._heads) >= HEAD_CACHE_SIZE and (thread, ns) not in self._heads:
            self._heads.pop(next(iter(self._heads)))
        self._heads[(thread, ns)] = head

    def _forget(self, thread: str) -> None:
        for key in [key for key in self._heads if key[0] == thread]:
            del self._heads[key]
