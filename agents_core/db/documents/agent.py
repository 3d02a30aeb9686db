"""An agent definition with the names of the tools it may call, embedded in enable order."""

from __future__ import annotations

from typing import ClassVar

import pymongo
from beanie import Document
from pydantic import BaseModel, ConfigDict, Field
from pymongo import IndexModel

from agents_core.db.documents._common import ObjectIdField, Record, UtcDatetime, utcnow

__all__ = ["Agent", "AgentDocument", "AgentFields", "CreateAgentDTO"]


class CreateAgentDTO(BaseModel):
    """What ``AgentsRepository.create`` needs to define an agent."""

    model_config = ConfigDict(frozen=True)

    name: str
    instructions: str = ""
    model: str | None = None
    tools: list[str] = Field(default_factory=list)


class AgentFields(BaseModel):
    """The stored fields of an agent: declared here once, for the record and the document."""

    name: str
    instructions: str = ""
    model: str | None = None
    tools: list[str] = Field(default_factory=list)
    created_at: UtcDatetime = Field(default_factory=utcnow)
    updated_at: UtcDatetime = Field(default_factory=utcnow)


class Agent(AgentFields, Record):
    """An agent, as the repositories return it."""

    id: ObjectIdField = Field(alias="_id")


class AgentDocument(Document, AgentFields):
    """The ``agents`` collection, for read-only Beanie queries (writes: the repositories)."""

    class Settings:
        name = "agents"
        use_revision = False
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("name", pymongo.ASCENDING)], name="name_unique", unique=True),
        ]
