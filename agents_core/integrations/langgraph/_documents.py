"""The documents of ``lg_checkpoints``: their keys, and what the saver reads out of them.

Every document of a thread has an ``_id`` built from its parts (``docs/langgraph.md`` has the
layout): a head ``["h", thread, ns]``, a checkpoint ``["c", thread, ns, checkpoint_id]``, a blob
``["b", thread, ns, channel, version]``, a write ``["w", thread, ns, checkpoint_id, task, idx]``.
No I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from bson import ObjectId
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, CheckpointMetadata

from agents_core.db import validation as check
from agents_core.db.errors import InvalidInputError

__all__ = [
    "LATEST_FIELDS",
    "Head",
    "Row",
    "blob_key",
    "checkpoint_key",
    "config_of",
    "head_key",
    "identifier",
    "published",
    "thread_heads_key",
    "value_keys",
    "write_key",
]

D = TypeVar("D", bound=Mapping[str, Any])

#: The fields of a checkpoint document that its head copies (``latest``).
LATEST_FIELDS = ("checkpoint_id", "parent_id", "type", "checkpoint", "metadata_type", "metadata")


def _key(*parts: str | int) -> str:
    """An unambiguous ``_id`` from its parts (a JSON array: readable, any string is safe)."""
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=False)


def head_key(thread: str, ns: str) -> str:
    return _key("h", thread, ns)


def thread_heads_key(thread: str) -> str:
    """``k`` of every head of a thread: its namespaces in one ``k`` lookup."""
    return _key("h", thread)


def checkpoint_key(thread: str, ns: str, checkpoint_id: str) -> str:
    """``_id`` of a checkpoint, and ``k`` of its pending writes."""
    return _key("c", thread, ns, checkpoint_id)


def blob_key(thread: str, ns: str, channel: str, version: object) -> str:
    return _key("b", thread, ns, channel, str(version))


def write_key(thread: str, ns: str, checkpoint_id: str, task_id: str, idx: int) -> str:
    return _key("w", thread, ns, checkpoint_id, task_id, idx)


def identifier(value: object, name: str) -> str:
    """A thread id, namespace, checkpoint id or channel as a string that BSON can encode;
    never a query operator."""
    if isinstance(value, int | UUID) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise InvalidInputError(name, f"expected a string, got {type(value).__name__}")
    check.valid_unicode(value, name)
    return value


def config_of(thread: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    """The config that names one checkpoint."""
    return {
        "configurable": {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}
    }


@dataclass(frozen=True, slots=True)
class Head:
    """The head of a ``(thread, namespace)``: its last ``seq``, newest checkpoint id, and the
    epoch its checkpoints carry.

    A head gets a new ``epoch`` each time it is created, and a checkpoint is published under
    the head whose epoch it carries, at a ``seq`` the head has reached: what a writer left while
    its thread was deleted (the head went, its documents did not) is never read, even once the
    thread is created again and numbers its checkpoints from 1. Heads written before epochs have
    none, and neither have their checkpoints.
    """

    seq: int
    last_id: str
    ordered: bool  # seq order is checkpoint-id order in this namespace
    epoch: ObjectId | None

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> Head:
        ordered = bool(doc.get("ordered", True))
        return cls(int(doc["head_seq"]), str(doc["last_id"]), ordered, doc.get("epoch"))

    def publishes(self, doc: Mapping[str, Any]) -> bool:
        """Whether checkpoint document ``doc`` is one of this head's (published, same epoch)."""
        return doc.get("epoch") == self.epoch and 1 <= int(doc["seq"]) <= self.seq


@dataclass(slots=True)
class Row:
    """A checkpoint (document fields, its thread and namespace) with its parts decoded."""

    thread: str
    ns: str
    doc: Mapping[str, Any]
    checkpoint: Checkpoint
    metadata: CheckpointMetadata

    @property
    def checkpoint_id(self) -> str:
        return str(self.doc["checkpoint_id"])


def published(docs: Iterable[D]) -> list[D]:
    """The checkpoint documents among a thread's ``docs`` that its heads (among ``docs`` too)
    publish: not one being written, nor one a deleted head left."""
    docs = list(docs)
    heads = {doc["ns"]: Head.of(doc) for doc in docs if doc["kind"] == "head"}
    return [
        doc
        for doc in docs
        if doc["kind"] == "checkpoint"
        and (head := heads.get(doc["ns"])) is not None
        and head.publishes(doc)
    ]


def value_keys(rows: Iterable[Row]) -> frozenset[str]:
    """``k`` of the blobs and of the writes of the checkpoints of ``rows``."""
    keys = set()
    for row in rows:
        keys.add(checkpoint_key(row.thread, row.ns, row.checkpoint_id))
        for channel, version in row.checkpoint["channel_versions"].items():
            keys.add(blob_key(row.thread, row.ns, channel, version))
    return frozenset(keys)
