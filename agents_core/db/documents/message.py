"""One message of a conversation, ordered within its session by ``seq`` (1, 2, 3, …)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple

import pymongo
from beanie import Document
from pydantic import BaseModel, Field
from pymongo import IndexModel

from agents_core.db.documents._common import ObjectIdField, Record, UtcDatetime, utcnow

__all__ = [
    "MESSAGE_TEXT_INDEXES",
    "Message",
    "MessageDocument",
    "MessageFields",
    "MessageRole",
    "NewMessage",
    "RequestedToolCall",
]


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


class NewMessage(NamedTuple):
    """A message to append in a batch (``MessagesRepository.create_batch``): ``create``'s
    arguments but the session and the idempotency key."""

    role: MessageRole | str
    content: str
    tool_call_id: str | None = None
    request_id: str | None = None
    requested_tool_calls: Sequence[RequestedToolCall] = ()


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
    #: A framework's own item, kept exactly as it was appended (e.g. an OpenAI Agents SDK
    #: Responses item, see ``MessagesRepository.append_items``); ``content`` then holds its
    #: readable text for views and search.
    item: dict[str, Any] | None = None
    #: The item's ``type`` (``message``, ``function_call``, ``reasoning``, ...), for views.
    item_type: str | None = None
    #: The item's ``call_id`` (function/computer/shell calls and their outputs), for views.
    call_id: str | None = None
    #: For a message appended in a batch: the ``seq`` of the batch's last message, which is
    #: written last. The batch is visible only once that message exists (see ``append_items``).
    batch_end_seq: int | None = None
    #: When ``pop_last`` removed this message (it is then never shown again).
    popped_at: UtcDatetime | None = None


class Message(MessageFields, Record):
    """A message, as the repositories return it."""

    id: ObjectIdField = Field(alias="_id")


#: The text index ``MessagesRepository.search`` uses where the server has text indexes
#: (``ServerProfile.text_index``; created by ``connect``, never on SecantusDB). No language:
#: words are kept as written (no stemming, no stop words), so a phrase matches what was typed.
MESSAGE_TEXT_INDEXES = [
    IndexModel([("content", pymongo.TEXT)], name="content_text", default_language="none"),
]


class MessageDocument(Document, MessageFields):
    """The ``messages`` collection, for read-only Beanie queries (writes: the repositories)."""

    #: Set on a message whose ``item`` had field names escaped for storage (``db/_items.py``):
    #: the repositories unescape it; internal, never part of the record.
    item_keys_escaped: bool = False

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
            # Search's bounded scan, newest first, where there is no text index.
            IndexModel([("created_at", pymongo.DESCENDING)], name="created_at"),
        ]
