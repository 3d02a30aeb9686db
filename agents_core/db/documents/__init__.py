"""The Beanie documents (and the models embedded in them) that ``init_db`` registers."""

from agents_core.db.documents.agent import Agent, CreateAgentDTO
from agents_core.db.documents.message import Message, MessageRole
from agents_core.db.documents.payload import Payload, PayloadRef
from agents_core.db.documents.run import Run, RunStatus, ToolCall, ToolCallStatus
from agents_core.db.documents.session import Session, SessionStatus, SessionWithMessages

#: Every collection-backed document, in the order ``init_beanie`` registers them.
DOCUMENT_MODELS = (Agent, Session, Message, Run, Payload)

__all__ = [
    "DOCUMENT_MODELS",
    "Agent",
    "CreateAgentDTO",
    "Message",
    "MessageRole",
    "Payload",
    "PayloadRef",
    "Run",
    "RunStatus",
    "Session",
    "SessionStatus",
    "SessionWithMessages",
    "ToolCall",
    "ToolCallStatus",
]
