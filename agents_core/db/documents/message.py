"""One message of a conversation, ordered within its session by ``seq`` (1, 2, 3, …)."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

import pymongo
from beanie import Document
from pydantic import BaseModel, Field
from pymongo import IndexModel

from agents_core.db.documents._common import ObjectIdField, Record, UtcDatetime, utcnow

__all__ = ["Message", "MessageDocument", "MessageFields", "MessageRole", "RequestedToolCall"]


class MessageRole(StrEnum):
    system = "system"
    user = "user"
    assistant = "assistant"
    tool = "tool"


class RequestedToolCall(Record):
    """A tool call a model asked for, as its assistant message records it."""

    #: The model's id of the call (OpenAI's ``tool_calls[].id``); tool results answer it.
    id: str
    name: str
    #: The arguments as the model sent them (a JSON object, as text).
    arguments: str


class MessageFields(BaseModel):
    """The stored fields of a message: declared here once, for the record and the document."""

    session_id: ObjectIdField
    seq: int
    role: MessageRole
    content: str
    created_at: UtcDatetime = Field(default_factory=utcnow)
    #: Set by a caller that may retry: the same key in the same session is one message.
    idempotency_key: str | None = None
    #: For a ``tool`` message: the id of the ``ToolCall`` record whose output it carries.
    tool_call_id: str | None = None
    #: For an ``assistant`` message: the tool calls the model asked for, in its order.
    requested_tool_calls: list[RequestedToolCall] = Field(default_factory=list)
    #: For a ``tool`` message: the model's id of the call it answers (a ``RequestedToolCall``).
    request_id: str | None = None


class Message(MessageFields, Record):
    """A message, as the repositories return it."""

    id: ObjectIdField = Field(alias="_id")


class MessageDocument(Document, MessageFields):
    """The ``messages`` collection, for read-only Beanie queries (writes: the repositories)."""

    class Settings:
        name = "messages"
        use_revision = False
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel(
                [("session_id", pymongo.ASCENDING), ("seq", pymongo.ASCENDING)],
                name="session_id_seq_unique",
                unique=True,
            ),
            IndexModel(
                [("session_id", pymongo.ASCENDING), ("idempotency_key", pymongo.ASCENDING)],
                name="session_id_idempotency_key_unique",
                unique=True,
                partialFilterExpression={"idempotency_key": {"$type": "string"}},
            ),
        ]
