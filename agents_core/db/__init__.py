"""The MongoDB data layer of agent services (the blueprint's ``db`` module).

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

from agents_core.db.client import close_db, get_database, init_db
from agents_core.db.config import Settings
from agents_core.db.documents import (
    Agent,
    CreateAgentDTO,
    Message,
    MessageRole,
    Run,
    RunStatus,
    Session,
    SessionStatus,
    SessionWithMessages,
    ToolCall,
    ToolCallStatus,
)
from agents_core.db.errors import (
    AlreadyExistsError,
    DatabaseError,
    DatabaseUnavailableError,
    InvalidIdError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    NotInitializedError,
)
from agents_core.db.repositories import (
    AgentsRepository,
    MessagesRepository,
    RunsRepository,
    SessionsRepository,
    ToolCallsRepository,
)

__all__ = [
    "Agent",
    "AgentsRepository",
    "AlreadyExistsError",
    "CreateAgentDTO",
    "DatabaseError",
    "DatabaseUnavailableError",
    "InvalidIdError",
    "InvalidInputError",
    "InvalidStateError",
    "Message",
    "MessageRole",
    "MessagesRepository",
    "NotFoundError",
    "NotInitializedError",
    "Run",
    "RunStatus",
    "RunsRepository",
    "Session",
    "SessionStatus",
    "SessionWithMessages",
    "SessionsRepository",
    "Settings",
    "ToolCall",
    "ToolCallStatus",
    "ToolCallsRepository",
    "close_db",
    "get_database",
    "init_db",
]
