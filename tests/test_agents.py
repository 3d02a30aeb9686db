"""AgentsRepository contract, on both backends."""

from __future__ import annotations

from datetime import UTC

import pytest
from bson import ObjectId

from agents_core.db import (
    Agent,
    AgentsRepository,
    AlreadyExistsError,
    CreateAgentDTO,
    InvalidInputError,
    NotFoundError,
)
from tests.helpers import Clock, make_agent

pytestmark = pytest.mark.usefixtures("backend")


async def test_create_returns_the_stored_agent() -> None:
    repo = AgentsRepository()
    agent = await repo.create(
        CreateAgentDTO(
            name="support", instructions="Be kind.", model="gpt-x", tools=["a", "b", "a"]
        )
    )
    assert isinstance(agent, Agent)
    assert isinstance(agent.id, ObjectId)
    assert agent.created_at.tzinfo is not None
    assert agent.created_at.utcoffset() == UTC.utcoffset(None)
    found = await repo.find_by_name("support")
    assert found is not None
    assert found.model_dump() == agent.model_dump()
    assert found.tools == ["a", "b"]


async def test_duplicate_name_raises_already_exists() -> None:
    await make_agent("dup")
    with pytest.raises(AlreadyExistsError) as info:
        await make_agent("dup")
    assert info.value.entity == "agent"
    assert info.value.value == "dup"


async def test_find_by_name_of_unknown_is_none() -> None:
    assert await AgentsRepository().find_by_name("nobody") is None


async def test_list_by_name_pages_in_name_order() -> None:
    repo = AgentsRepository()
    assert await repo.list_by_name() == []
    for name in ("carol", "alice", "bob", "dave"):
        await make_agent(name)
    first = await repo.list_by_name(limit=2)
    assert [agent.name for agent in first] == ["alice", "bob"]
    assert first[0].model_dump() == (await repo.find_by_name("alice")).model_dump()
    rest = await repo.list_by_name(after=first[-1].name, limit=2)
    assert [agent.name for agent in rest] == ["carol", "dave"]
    assert await repo.list_by_name(after="dave") == []


async def test_recent_ids_are_the_agents_created_last_newest_first() -> None:
    made = [(await make_agent(f"agent-{i}")).id for i in range(3)]
    assert await AgentsRepository().list_recent_ids() == made[::-1]
    assert await AgentsRepository().list_recent_ids(limit=2) == made[:0:-1]


async def test_find_by_id_roundtrip_and_missing() -> None:
    agent = await make_agent()
    assert (await AgentsRepository().find_by_id(str(agent.id))).name == agent.name
    with pytest.raises(NotFoundError):
        await AgentsRepository().find_by_id(ObjectId())


async def test_update_instructions_bumps_updated_at(clock: Clock) -> None:
    agent = await make_agent()
    later = clock.advance()
    updated = await AgentsRepository().update_instructions(str(agent.id), "New rules.")
    assert updated.instructions == "New rules."
    assert (agent.updated_at, updated.updated_at) == (agent.created_at, later)
    assert updated.created_at == agent.created_at
    found = await AgentsRepository().find_by_name(agent.name)
    assert found is not None
    assert found.model_dump() == updated.model_dump()


async def test_update_instructions_of_unknown_agent_raises_not_found() -> None:
    with pytest.raises(NotFoundError) as info:
        await AgentsRepository().update_instructions(ObjectId(), "x")
    assert info.value.entity == "agent"


async def test_enable_tool_is_idempotent_and_keeps_enable_order() -> None:
    repo = AgentsRepository()
    agent = await make_agent(tools=["zeta"])
    for tool in ["beta", "alpha", "beta", "zeta", "alpha"]:
        assert await repo.enable_tool(agent.id, tool) is None
    assert await repo.get_tools(str(agent.id)) == ["zeta", "beta", "alpha"]


async def test_tool_methods_on_unknown_agent_raise_not_found() -> None:
    with pytest.raises(NotFoundError):
        await AgentsRepository().enable_tool(ObjectId(), "search")
    with pytest.raises(NotFoundError):
        await AgentsRepository().get_tools(str(ObjectId()))


async def test_get_or_create_creates_once_then_returns_the_stored_agent() -> None:
    repo = AgentsRepository()
    dto = CreateAgentDTO(name="support", instructions="Be kind.", tools=["search"])
    created = await repo.get_or_create(dto)
    assert (created.name, created.instructions, created.tools) == (
        "support",
        "Be kind.",
        ["search"],
    )
    again = await repo.get_or_create(dto)
    assert again.model_dump() == created.model_dump()
    # An existing agent is returned as stored: the DTO's other fields are not applied.
    other = await repo.get_or_create(CreateAgentDTO(name="support", instructions="Be terse."))
    assert other.model_dump() == created.model_dump()
    assert (await repo.find_by_name("support")) is not None
    with pytest.raises(AlreadyExistsError):  # create itself still refuses a taken name
        await repo.create(dto)


async def test_get_or_create_refuses_what_create_refuses() -> None:
    repo = AgentsRepository()
    with pytest.raises(InvalidInputError):
        await repo.get_or_create({"name": "support"})
    with pytest.raises(InvalidInputError):
        await repo.get_or_create(CreateAgentDTO(name=" "))
    with pytest.raises(InvalidInputError):
        await repo.get_or_create(CreateAgentDTO(name="x", tools=["a b\n"]))
    assert await repo.find_by_name("x") is None
