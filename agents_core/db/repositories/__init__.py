"""One async repository per aggregate, each constructible with no arguments."""

from agents_core.db.repositories.agents import AgentsRepository
from agents_core.db.repositories.messages import MessagesRepository
from agents_core.db.repositories.runs import RunsRepository
from agents_core.db.repositories.sessions import SessionsRepository
from agents_core.db.repositories.tool_calls import ToolCallsRepository

__all__ = [
    "AgentsRepository",
    "MessagesRepository",
    "RunsRepository",
    "SessionsRepository",
    "ToolCallsRepository",
]
