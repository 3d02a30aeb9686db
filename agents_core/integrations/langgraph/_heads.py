"""The heads of a thread's namespaces: the compare-and-set that numbers checkpoints, and the
per-saver cache of heads.

A head (``["h", thread, ns]``) holds the namespace's last ``seq``, its newest checkpoint id, a
copy of that checkpoint (``latest``) and the ``k`` of its values (``latest_keys``). Writers move
it with ``update_one({_id, head_seq, last_id}, …)``: ``_id`` plus equalities, an ``_id`` lookup
on every server (unlike ``$max`` guards or ``findAndModify``). A saver remembers the heads it
saw, which saves the read before each ``aput``; a stale entry costs one failed compare-and-set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from agents_core.db.errors import DatabaseError
from agents_core.integrations.langgraph._documents import (
    LATEST_FIELDS,
    Head,
    head_key,
    thread_heads_key,
)
from agents_core.integrations.langgraph._store import Store

__all__ = ["Heads"]

#: Compare-and-set attempts on a head before giving up (only contention needs more than one).
CAS_ATTEMPTS = 16
#: Heads remembered per saver (the ``seq`` a writer of the thread uses next).
HEAD_CACHE_SIZE = 4096


class Heads(Store):
    """Reading, caching and moving heads."""

    _heads: dict[tuple[str, str], Head]

    async def _move_head(
        self,
        coll: AsyncCollection[Any],
        thread: str,
        ns: str,
        head: Head | None,
        *,
        seq: int,
        newest: Mapping[str, Any],
        newest_keys: list[str],
        oldest: str,
        ordered: bool,
        renumber: str | None = None,
    ) -> None:
        """Move ``head`` to ``seq`` and checkpoint ``newest`` by compare-and-set.

        The namespace stays ``ordered`` while every new checkpoint comes after the newest one,
        by seq and by id. On a lost race the head is read again and checkpoint ``renumber``
        takes the next ``seq``.
        """
        newest_id = str(newest["checkpoint_id"])
        latest = {field: newest.get(field) for field in LATEST_FIELDS}
        for _ in range(CAS_ATTEMPTS):
            if head is None:
                moved = Head(seq, newest_id, ordered)
                insert = {
                    "kind": "head",
                    "thread_id": thread,
                    "ns": ns,
                    "k": thread_heads_key(thread),
                    "head_seq": seq,
                    "last_id": newest_id,
                    "ordered": ordered,
                    "latest": latest,
                    "latest_keys": newest_keys,
                }
                result = await coll.update_one(
                    {"_id": head_key(thread, ns)}, {"$setOnInsert": insert}, upsert=True
                )
                done = result.upserted_id is not None
            else:
                moved = Head(
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
                    "_id": head_key(thread, ns),
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
