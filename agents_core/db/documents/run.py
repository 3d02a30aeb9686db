"""One agent execution, with the tool calls it made embedded in call order."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

import pymongo
from beanie import Document
from pydantic import BaseModel, Field
from pymongo import IndexModel

from agents_core.db.documents._common import ObjectIdField, Record, UtcDatetime, utcnow
from agents_core.db.documents.payload import PayloadRef

__all__ = ["Run", "RunDocument", "RunFields", "RunStatus", "ToolCall", "ToolCallStatus"]


class RunStatus(StrEnum):
    running = "running"
    completed = "completed"
    failed = "failed"


class ToolCallStatus(StrEnum):
    pending = "pending"
    success = "success"
    error = "error"


class ToolCall(Record):
    """A tool execution, embedded in its run (the record and the stored shape are one).

    ``id`` is an opaque string that names the run too, so completing a tool call addresses one
    run document by ``_id`` (a single-shard write once runs are sharded).
    """

    id: str
    run_id: ObjectIdField
    tool_name: str
    input: str
    output: str | None = None
    status: ToolCallStatus = ToolCallStatus.pending
    started_at: UtcDatetime = Field(default_factory=utcnow)
    completed_at: UtcDatetime | None = None
    duration_ms: float | None = None
    #: Set when ``input`` was too large to embed: where the text is stored. ``ToolCallsRepository``
    #: and ``RunsRepository.find_by_id`` return the full text in ``input`` all the same.
    input_payload: PayloadRef | None = None
    #: The same for ``output``.
    output_payload: PayloadRef | None = None


class RunFields(BaseModel):
    """The stored fields of a run that its record shows: declared here once."""

    session_id: ObjectIdField
    agent_id: ObjectIdField
    status: RunStatus = RunStatus.running
    error: str | None = None
    tokens: int = 0
    cost: float = 0.0
    tool_calls: list[ToolCall] = Field(default_factory=list)
    started_at: UtcDatetime = Field(default_factory=utcnow)
    completed_at: UtcDatetime | None = None


class Run(RunFields, Record):
    """A run, as the repositories return it."""

    id: ObjectIdField = Field(alias="_id")


class RunDocument(Document, RunFields):
    """The ``runs`` collection, for read-only Beanie queries (writes: the repositories)."""

    #: Bytes of tool-call text embedded in this document (bounded; the rest is spilled).
    inline_bytes: int = 0

    class Settings:
        name = "runs"
        use_revision = False
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel(
                [("session_id", pymongo.ASCENDING), ("started_at", pymongo.ASCENDING)],
                name="session_id_started_at",
            ),
            IndexModel(
                [("status", pymongo.ASCENDING), ("started_at", pymongo.ASCENDING)],
                name="status_started_at",
            ),
        ]
