"""Agent definitions and the tools they may call."""

from __future__ import annotations

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from agents_core.db import _validation as check
from agents_core.db.client import collection, get_settings
from agents_core.db.documents import Agent, CreateAgentDTO
from agents_core.db.documents._common import utcnow
from agents_core.db.errors import (
    AlreadyExistsError,
    InvalidInputError,
    InvalidStateError,
    translate_errors,
)
from agents_core.db.repositories._base import get, insert, load, require, update

__all__ = ["AgentsRepository"]

#: Longest agent instructions accepted, in bytes of UTF-8.
MAX_INSTRUCTIONS_BYTES = 256 * 1024


class AgentsRepository:
    """Create agents, find them by name, edit their instructions and enabled tools."""

    @translate_errors
    async def create(self, data: CreateAgentDTO) -> Agent:
        """Insert a new agent; ``AlreadyExistsError`` if the name is taken. One command."""
        if not isinstance(data, CreateAgentDTO):
            raise InvalidInputError("data", f"must be a CreateAgentDTO, not {type(data).__name__}")
        # getattr: a DTO built with model_construct may lack fields or hold anything.
        name = check.name(getattr(data, "name", None), "name")
        raw_tools = getattr(data, "tools", None)
        if not isinstance(raw_tools, list | tuple):
            raise InvalidInputError("tools", "must be a list of tool names")
        tools = list(dict.fromkeys(check.name(tool, "tool_name") for tool in raw_tools))
        if len(tools) > get_settings().max_tools_per_agent:
            raise InvalidInputError("tools", f"more than {get_settings().max_tools_per_agent}")
        instructions = check.text(
            getattr(data, "instructions", ""), "instructions", max_bytes=MAX_INSTRUCTIONS_BYTES
        )
        model = check.optional_name(getattr(data, "model", None), "model")
        try:
            return await insert(
                Agent, name=name, instructions=instructions, model=model, tools=tools
            )
        except DuplicateKeyError as exc:
            raise AlreadyExistsError("agent", "name", name) from exc

    @translate_errors
    async def get_or_create(self, data: CreateAgentDTO) -> Agent:
        """The agent named ``data.name`` as stored, or a new one made from ``data``.

        An existing agent is returned as it is (``data``'s other fields are not applied to it).
        One command when it exists, two when it is created; a concurrent creation of the same
        name is found rather than raised, so setup code can be re-run freely.
        """
        if not isinstance(data, CreateAgentDTO):
            raise InvalidInputError("data", f"must be a CreateAgentDTO, not {type(data).__name__}")
        name = check.name(getattr(data, "name", None), "name")  # model_construct: maybe absent
        if (found := await self.find_by_name(name)) is not None:
            return found
        try:
            return await self.create(data)
        except AlreadyExistsError:
            if (found := await self.find_by_name(name)) is None:
                raise  # created and deleted again meanwhile
            return found

    @translate_errors
    async def find_by_name(self, name: str) -> Agent | None:
        """The agent called ``name``, or ``None``. One command."""
        raw = await collection(Agent).find_one({"name": check.name(name, "name")})
        return None if raw is None else load(Agent, raw)

    @translate_errors
    async def find_by_id(self, agent_id: str | ObjectId) -> Agent:
        """The agent with this id; ``NotFoundError`` if there is none. One command."""
        return load(Agent, await get(Agent, check.object_id(agent_id, "agent"), "agent"))

    @translate_errors
    async def update_instructions(self, id: str | ObjectId, instructions: str) -> Agent:
        """Replace the instructions and bump ``updated_at``; returns the agent. One command."""
        agent_id = check.object_id(id, "agent")
        text = check.text(instructions, "instructions", max_bytes=MAX_INSTRUCTIONS_BYTES)
        change = {"$set": {"instructions": text, "updated_at": utcnow()}}
        return load(Agent, await update(Agent, agent_id, "agent", change))

    @translate_errors
    async def enable_tool(self, agent_id: str | ObjectId, tool_name: str) -> None:
        """Add ``tool_name`` to the agent's tools (idempotent, atomic). One command."""
        id = check.object_id(agent_id, "agent")
        tool = check.name(tool_name, "tool_name")
        cap = get_settings().max_tools_per_agent
        result = await collection(Agent).update_one(
            # Matches when the tool is there already (a no-op) or when there is room for it.
            {"_id": id, "$or": [{"tools": tool}, {f"tools.{cap - 1}": {"$exists": False}}]},
            {"$addToSet": {"tools": tool}, "$set": {"updated_at": utcnow()}},
        )
        if result.matched_count == 0:
            await require(Agent, id, "agent")
            raise InvalidStateError("agent", id, f"has {cap} tools enabled, the most allowed")

    @translate_errors
    async def get_tools(self, agent_id: str | ObjectId) -> list[str]:
        """The agent's enabled tools, in the order they were enabled. One command."""
        raw = await get(Agent, check.object_id(agent_id, "agent"), "agent", {"tools": 1, "_id": 0})
        return list(raw.get("tools", []))
