"""Records (what the repositories return) and the Beanie documents (what is stored).

Each entity's stored fields are declared once, in ``<Entity>Fields``; the record ``<Entity>``
(frozen, ``id`` from ``_id``) and the Beanie document ``<Entity>Document`` (collection name,
indexes, fields only the layer uses) both derive from it.
"""

from agents_core.db.documents._common import Page, Record, as_utc, json_default, utcnow
from agents_core.db.documents.agent import Agent, AgentDocument, CreateAgentDTO
from agents_core.db.documents.external_id import ExternalIdDocument
from agents_core.db.documents.listing import SessionListingDocument
from agents_core.db.documents.message import (
    Message,
    MessageDocument,
    MessageRole,
    NewMessage,
    RequestedToolCall,
)
from agents_core.db.documents.payload import PayloadChunkDocument, PayloadRef
from agents_core.db.documents.run import (
    CallKind,
    FinishedRun,
    FinishedToolCall,
    ModelCall,
    ModelCallStatus,
    NewToolCall,
    Price,
    Run,
    RunDocument,
    RunStatus,
    RunStep,
    StepStatus,
    ToolCall,
    ToolCallResult,
    ToolCallStatus,
)
from agents_core.db.documents.run_day import (
    RunDayDocument,
    StatsDimension,
    bucket_bounds,
    bucket_of,
)
from agents_core.db.documents.session import (
    SESSION_PROJECTION,
    ExternalSessionDTO,
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
    SessionListingDocument,
    ExternalIdDocument,
    RunDayDocument,
)

#: The shard key of each collection on a sharded cluster (see ``docs/architecture.md``):
#: ``sh.shardCollection("<db>.<collection>", key)``. ``agents`` stays unsharded: it is small,
#: and its unique ``name`` index could not be enforced across shards under another key.
SHARD_KEYS: dict[str, dict[str, int | str]] = {
    "sessions": {"_id": "hashed"},
    "messages": {"session_id": 1},
    "runs": {"_id": "hashed"},
    "payload_chunks": {"payload_id": 1},
    "session_listings": {"listing_id": 1},
    "session_external_ids": {"external_namespace": 1, "user_id": 1, "external_id": 1},
    "run_days": {"_id": "hashed"},
}

__all__ = [
    "DOCUMENT_MODELS",
    "SESSION_PROJECTION",
    "SHARD_KEYS",
    "Agent",
    "AgentDocument",
    "CallKind",
    "CreateAgentDTO",
    "ExternalIdDocument",
    "ExternalSessionDTO",
    "FinishedRun",
    "FinishedToolCall",
    "Message",
    "MessageDocument",
    "MessageRole",
    "ModelCall",
    "ModelCallStatus",
    "NewMessage",
    "NewToolCall",
    "Page",
    "PayloadChunkDocument",
    "PayloadRef",
    "Price",
    "Record",
    "RequestedToolCall",
    "Run",
    "RunDayDocument",
    "RunDocument",
    "RunStatus",
    "RunStep",
    "Session",
    "SessionDocument",
    "SessionListingDocument",
    "SessionStatus",
    "SessionWithMessages",
    "StatsDimension",
    "StepStatus",
    "ToolCall",
    "ToolCallResult",
    "ToolCallStatus",
    "as_utc",
    "bucket_bounds",
    "bucket_of",
    "json_default",
    "utcnow",
]
