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
from typing import Any
from uuid import UUID

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, CheckpointMetadata

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
    "thread_heads_key",
    "value_keys",
    "write_key",
]

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
    """A thread id, namespace or checkpoint id as a string; never a query operator."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | UUID) and not isinstance(value, bool):
        return str(value)
    raise InvalidInputError(name, f"expected a string, got {type(value).__name__}")


def config_of(thread: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    """The config that names one checkpoint."""
    return {
        "configurable": {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}
    }


@dataclass(frozen=True, slots=True)
class Head:
    """The head of a ``(thread, namespace)``: its last ``seq`` and newest checkpoint id."""

    seq: int
    last_id: str
    ordered: bool  # seq order is checkpoint-id order in this namespace

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> Head:
        return cls(int(doc["head_seq"]), str(doc["last_id"]), bool(doc.get("ordered", True)))


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


def value_keys(rows: Iterable[Row]) -> frozenset[str]:
    """``k`` of the blobs and of the writes of the checkpoints of ``rows``."""
    keys = set()
    for row in rows:
        keys.add(checkpoint_key(row.thread, row.ns, row.checkpoint_id))
        for channel, version in row.checkpoint["channel_versions"].items():
            keys.add(blob_key(row.thread, row.ns, channel, version))
    return frozenset(keys)
