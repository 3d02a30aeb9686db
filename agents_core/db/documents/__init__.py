"""Records (what the repositories return) and the Beanie documents (what is stored).

Each entity's stored fields are declared once, in ``<Entity>Fields``; the record ``<Entity>``
(frozen, ``id`` from ``_id``) and the Beanie document ``<Entity>Document`` (collection name,
indexes, fields only the layer uses) both derive from it.
"""

from agents_core.db.documents.agent import Agent, AgentDocument, CreateAgentDTO
from agents_core.db.documents.message import Message, MessageDocument, MessageRole
from agents_core.db.documents.payload import PayloadChunkDocument, PayloadRef
from agents_core.db.documents.run import Run, RunDocument, RunStatus, ToolCall, ToolCallStatus
from agents_core.db.documents.session import (
    Session,
    SessionDocument,
    SessionStatus,
    SessionWithMessages,
)

#: Every collection-backed document, in the order ``init_db`` registers them.
DOCUMENT_MODELS = (
    AgentDocument,
    SessionDocument,
    MessageDocument,
    RunDocument,
    PayloadChunkDocument,
)

__all__ = [
    "DOCUMENT_MODELS",
    "Agent",
    "AgentDocument",
    "CreateAgentDTO",
    "Message",
    "MessageDocument",
    "MessageRole",
    "PayloadChunkDocument",
    "PayloadRef",
    "Run",
    "RunDocument",
    "RunStatus",
    "Session",
    "SessionDocument",
    "SessionStatus",
    "SessionWithMessages",
    "ToolCall",
    "ToolCallStatus",
]
