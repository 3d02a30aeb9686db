"""Small builders shared by the tests."""

from __future__ import annotations

from agents_core.db import (
    Agent,
    AgentsRepository,
    CreateAgentDTO,
    Run,
    RunsRepository,
    Session,
    SessionsRepository,
)


async def make_agent(name: str = "helper", tools: list[str] | None = None) -> Agent:
    return await AgentsRepository().create(CreateAgentDTO(name=name, tools=tools or []))


async def make_session(title: str | None = "chat", user_id: str | None = None) -> Session:
    return await SessionsRepository().create(title, user_id=user_id)


async def make_run() -> Run:
    session = await make_session()
    agent = await make_agent(f"agent-{session.id}")
    return await RunsRepository().create(session.id, agent.id)


def common_prefix(*ids: object) -> str:
    """The longest start that the hex forms of ``ids`` share."""
    texts = [str(i) for i in ids]
    first = texts[0]
    return next(
        first[:n] for n in range(len(first), -1, -1) if all(t[:n] == first[:n] for t in texts)
    )
