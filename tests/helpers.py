"""Small builders shared by the tests."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

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


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: How long a test waits for an event before it fails: only a hang gets there, not a slow machine.
HANG_GUARD_S = 60.0


class Clock:
    """The time the layer's writes record (``utcnow``), set by the test rather than read.

    Every timestamp the repositories write comes from ``utcnow``: with this clock, a test decides
    which writes share a millisecond (``advance`` not called) and which do not (``advance``),
    whatever the machine's speed.
    """

    def __init__(self, now: datetime) -> None:
        self.now = now

    def advance(self, milliseconds: int = 1) -> datetime:
        """Move the clock on (to a later millisecond by default); the new time."""
        self.now += timedelta(milliseconds=milliseconds)
        return self.now

    def time_ns(self) -> int:
        return (self.now - EPOCH) // timedelta(microseconds=1) * 1000


def common_prefix(*ids: object) -> str:
    """The longest start that the hex forms of ``ids`` share."""
    texts = [str(i) for i in ids]
    first = texts[0]
    return next(
        first[:n] for n in range(len(first), -1, -1) if all(t[:n] == first[:n] for t in texts)
    )


def modules_loaded_by(module: str) -> set[str]:
    """The modules that importing ``module`` loads, in a fresh interpreter."""
    code = (
        f"import sys; before = set(sys.modules); import {module}; "
        "print(*sorted(set(sys.modules) - before))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    return set(shown.stdout.split())
