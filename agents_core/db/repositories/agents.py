"""Agent definitions and the tools they may call."""

from __future__ import annotations

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from agents_core.db import validation as check
from agents_core.db.documents import Agent, AgentDocument, CreateAgentDTO, utcnow
from agents_core.db.errors import (
    AlreadyExistsError,
    InvalidInputError,
    InvalidStateError,
    translate_errors,
)
from agents_core.db.limits import MAX_INSTRUCTIONS_BYTES, RECENT_IDS
from agents_core.db.repositories._base import (
    Repository,
    get,
    insert,
    load,
    load_many,
    require,
    update,
)

__all__ = ["AgentsRepository"]

_COLLECTION = "agents"


class AgentsRepository(Repository):
    """Create agents, find them by name, edit their instructions and enabled tools."""

    __slots__ = ()

    @translate_errors
    async def create(self, data: CreateAgentDTO) -> Agent:
        """Insert a new agent; ``AlreadyExistsError`` if the name is taken. One command."""
        db = self.db
        if not isinstance(data, CreateAgentDTO):
            raise InvalidInputError("data", f"must be a CreateAgentDTO, not {type(data).__name__}")
        # getattr: a DTO built with model_construct may lack fields or hold anything.
        name = check.name(getattr(data, "name", None), "name")
        raw_tools = getattr(data, "tools", None)
        if not isinstance(raw_tools, list | tuple):
            raise InvalidInputError("tools", "must be a list of tool names")
        tools = list(dict.fromkeys(check.name(tool, "tool_name") for tool in raw_tools))
        if len(tools) > db.settings.max_tools_per_agent:
            raise InvalidInputError("tools", f"more than {db.settings.max_tools_per_agent}")
        instructions = check.text(
            getattr(data, "instructions", ""), "instructions", max_bytes=MAX_INSTRUCTIONS_BYTES
        )
        model = check.optional_name(getattr(data, "model", None), "model")
        try:
            return await insert(
                db,
                AgentDocument,
                Agent,
                name=name,
                instructions=instructions,
                model=model,
                tools=tools,
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
        query = {"name": check.name(name, "name")}
        raw = await self.db.collection(AgentDocument).find_one(query)
        return None if raw is None else load(Agent, raw, _COLLECTION)

    @translate_errors
    async def list_by_name(self, *, after: str | None = None, limit: int = 100) -> list[Agent]:
        """Agents in name order, the first ``limit`` after the name ``after`` (``None``: from
        the start), to page with the last name of a page. One command, on the unique name
        index."""
        query = {} if after is None else {"name": {"$gt": check.name(after, "after")}}
        count = check.limit(limit)
        raws = await (
            self.db.collection(AgentDocument)
            .find(query)
            .sort("name", ASCENDING)
            .limit(count)
            .batch_size(count)
            .to_list()
        )
        return load_many(Agent, raws, _COLLECTION)

    @translate_errors
    async def list_recent_ids(self, *, limit: int = RECENT_IDS) -> list[ObjectId]:
        """The ids of the ``limit`` agents created last, newest first (by ``_id``, which begins
        with its creation time). One command, ids only; on SecantusDB its sort reads every
        agent (agents are configuration: a few dozen, not a growing collection)."""
        count = check.limit(limit)
        raws = await (
            self.db.collection(AgentDocument)
            .find({}, {"_id": 1})
            .sort("_id", DESCENDING)
            .limit(count)
            .batch_size(count)
            .to_list()
        )
        return [raw["_id"] for raw in raws]

    @translate_errors
    async def find_by_id(self, agent_id: str | ObjectId) -> Agent:
        """The agent with this id; ``NotFoundError`` if there is none. One command."""
        aid = check.object_id(agent_id, "agent")
        return load(Agent, await get(self.db, AgentDocument, aid, "agent"), _COLLECTION)

    @translate_errors
    async def update_instructions(self, id: str | ObjectId, instructions: str) -> Agent:
        """Replace the instructions and bump ``updated_at``; returns the agent. One command
        (two on SecantusDB: update, read back; ``agents_core.db.server``)."""
        agent_id = check.object_id(id, "agent")
        text = check.text(instructions, "instructions", max_bytes=MAX_INSTRUCTIONS_BYTES)
        change = {"$set": {"instructions": text, "updated_at": utcnow()}}
        raw = await update(self.db, AgentDocument, agent_id, "agent", change)
        return load(Agent, raw, _COLLECTION)

    @translate_errors
    async def enable_tool(self, agent_id: str | ObjectId, tool_name: str) -> None:
        """Add ``tool_name`` to the agent's tools (idempotent, atomic). One command."""
        db = self.db
        id = check.object_id(agent_id, "agent")
        tool = check.name(tool_name, "tool_name")
        cap = db.settings.max_tools_per_agent
        result = await db.collection(AgentDocument).update_one(
            # Matches when the tool is there already (a no-op) or when there is room for it.
            {"_id": id, "$or": [{"tools": tool}, {f"tools.{cap - 1}": {"$exists": False}}]},
            {"$addToSet": {"tools": tool}, "$set": {"updated_at": utcnow()}},
        )
        if result.matched_count == 0:
            await require(db, AgentDocument, id, "agent")
            raise InvalidStateError("agent", id, f"has {cap} tools enabled, the most allowed")

    @translate_errors
    async def get_tools(self, agent_id: str | ObjectId) -> list[str]:
        """The agent's enabled tools, in the order they were enabled. One command."""
        aid = check.object_id(agent_id, "agent")
        raw = await get(self.db, AgentDocument, aid, "agent", {"tools": 1, "_id": 0})
        return list(raw.get("tools", []))
