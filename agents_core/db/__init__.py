"""The MongoDB data layer of agent services (the blueprint's ``db`` module).

Repositories return frozen records (``Agent``, ``Session``, ``Message``, ``Run``, ``ToolCall``)
with non-optional ids; the Beanie documents (``AgentDocument``, …) define what is stored and
serve users' own read-only Beanie queries. Writes go through the repositories.

Usage::

    from agents_core.db import (
        AgentsRepository, CreateAgentDTO, MessagesRepository, SessionsRepository, init_db,
    )

    await init_db()  # MONGODB_URI / MONGODB_DB, or init_db("mongodb://…", database="…")
    agent = await AgentsRepository().create(CreateAgentDTO(name="support", tools=["search"]))
    session = await SessionsRepository().create("Refund question", user_id="u-42")
    await SessionsRepository().set_active_agent(session.id, agent.id)
    await MessagesRepository().create(session.id, "user", "Where is my refund?")
"""

from agents_core.db.client import (
    Connection,
    close_db,
    connect,
    default_connection,
    get_database,
    get_settings,
    init_db,
)
from agents_core.db.config import Settings
from agents_core.db.documents import (
    Agent,
    AgentDocument,
    CallKind,
    CreateAgentDTO,
    ExternalSessionDTO,
    FinishedRun,
    FinishedToolCall,
    Message,
    MessageDocument,
    MessageRole,
    ModelCall,
    ModelCallStatus,
    NewMessage,
    NewToolCall,
    Page,
    PayloadChunkDocument,
    PayloadRef,
    Price,
    RequestedToolCall,
    Run,
    RunDocument,
    RunStatus,
    RunStep,
    Session,
    SessionDocument,
    SessionStatus,
    SessionWithMessages,
    StepStatus,
    ToolCall,
    ToolCallResult,
    ToolCallStatus,
)
from agents_core.db.errors import (
    AlreadyExistsError,
    AlreadyInitializedError,
    CorruptDocumentError,
    DatabaseError,
    DatabaseUnavailableError,
    InvalidIdError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    NotInitializedError,
    WrongEventLoopError,
)
from agents_core.db.repositories import (
    AgentsRepository,
    MessagesRepository,
    RunsRepository,
    SessionsRepository,
    StatsRepository,
    ToolCallsRepository,
)

__all__ = [
    "Agent",
    "AgentDocument",
    "AgentsRepository",
    "AlreadyExistsError",
    "AlreadyInitializedError",
    "CallKind",
    "Connection",
    "CorruptDocumentError",
    "CreateAgentDTO",
    "DatabaseError",
    "DatabaseUnavailableError",
    "ExternalSessionDTO",
    "FinishedRun",
    "FinishedToolCall",
    "InvalidIdError",
    "InvalidInputError",
    "InvalidStateError",
    "Message",
    "MessageDocument",
    "MessageRole",
    "MessagesRepository",
    "ModelCall",
    "ModelCallStatus",
    "NewMessage",
    "NewToolCall",
    "NotFoundError",
    "NotInitializedError",
    "Page",
    "PayloadChunkDocument",
    "PayloadRef",
    "Price",
    "RequestedToolCall",
    "Run",
    "RunDocument",
    "RunStatus",
    "RunStep",
    "RunsRepository",
    "Session",
    "SessionDocument",
    "SessionStatus",
    "SessionWithMessages",
    "SessionsRepository",
    "Settings",
    "StatsRepository",
    "StepStatus",
    "ToolCall",
    "ToolCallResult",
    "ToolCallStatus",
    "ToolCallsRepository",
    "WrongEventLoopError",
    "close_db",
    "connect",
    "default_connection",
    "get_database",
    "get_settings",
    "init_db",
]
