"""Recorded conversations for the trace tests: the demo, one full of hostile text, a run and its
replay, and framework runs over past days (for the pages across sessions).

A turn of an agent with a registered tool it has not enabled carries a warning step. The
hostile session stores markup everywhere a user or a tool can put text: its title, a user
message, tool arguments and output (large enough to be cut in the page), the answer, and the
error of a failed model call. Whatever shows it must show it as text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agents_core.cli.demo import TURNS, demo_agent, demo_model, demo_tools
from agents_core.db import (
    AgentsRepository,
    CreateAgentDTO,
    FinishedRun,
    FinishedToolCall,
    ModelCall,
    Price,
    Run,
    RunsRepository,
    SessionsRepository,
    SessionWithMessages,
)
from agents_core.runner import (
    AgentRunner,
    ModelError,
    ModelResponse,
    ScriptedModel,
    ToolRegistry,
    ToolRequest,
)
from tests.helpers import make_session

#: Runs if it is ever parsed as HTML (it sets a global the browser tests look for).
SCRIPT = "<script>window.__pwned = true; document.title = 'pwned';</script>"
#: Shows 49 if it is ever rendered as a template.
#: A Jinja expression: were it evaluated, the page would hold EVALUATED.
TEMPLATE = "{{ 7919*7907 }}"
EVALUATED = str(7919 * 7907)
MARKUP = "[bold red]not markup[/]"
HOSTILE_TITLE = f"Hostile {SCRIPT} {TEMPLATE} {MARKUP}"
HOSTILE_QUESTION = f"Echo this: {SCRIPT} {TEMPLATE}"
#: Longer than the page shows (``DISPLAY_CHARS``): it is cut, with a link to the whole text.
LONG_TAIL = "x" * 5_000 + " END-OF-OUTPUT"
HOSTILE_OUTPUT = f"{SCRIPT} {TEMPLATE} {MARKUP} " + LONG_TAIL
HOSTILE_ANSWER = f"<b>not bold</b> {TEMPLATE} {MARKUP}"
MODEL_ERROR = f"upstream said {SCRIPT}"
#: How long the echo tool takes.
ECHO_SECONDS = 0.04


@dataclass(frozen=True)
class Recorded:
    session: SessionWithMessages
    runs: list[Run]


async def record_demo() -> Recorded:
    """The three turns of ``agents-core demo`` (the third tool call fails)."""
    agent = await demo_agent()
    session = await make_session("Demo", user_id="demo")
    await SessionsRepository().set_active_agent(session.id, agent.id)
    runner = AgentRunner(demo_model(), demo_tools())
    runs = [await runner.run(session.id, question) for question, _ in TURNS]
    full = await SessionsRepository().find_by_id(session.id)
    return Recorded(full, runs)


#: What the run of ``record_not_enabled`` warns of: the demo's clock, registered, not enabled.
NOT_ENABLED_WARNING = "tools not enabled for agent calculator-only: clock"


async def record_not_enabled() -> Recorded:
    """A turn of an agent that enables the calculator only, with the demo's two tools
    registered: its run starts with a warning step naming the clock."""
    agents = AgentsRepository()
    agent = await agents.find_by_name("calculator-only") or await agents.create(
        CreateAgentDTO(name="calculator-only", model="scripted-demo", tools=["calculator"])
    )
    session = await make_session("Calculator only", user_id="demo")
    await SessionsRepository().set_active_agent(session.id, agent.id)
    model = ScriptedModel(
        [
            ModelResponse(tool_calls=[ToolRequest("calculator", '{"expression": "2 + 2"}')]),
            ModelResponse(text="2 + 2 = 4."),
        ]
    )
    runs = [await AgentRunner(model, demo_tools()).run(session.id, "What is 2 + 2?")]
    return Recorded(await SessionsRepository().find_by_id(session.id), runs)


async def _echo(text: str) -> str:
    await asyncio.sleep(ECHO_SECONDS)  # a bar wide enough to see on the timeline
    return HOSTILE_OUTPUT if text else ""


async def record_hostile() -> Recorded:
    """Two turns: an echo tool returning hostile text, then a model call that fails."""
    agents = AgentsRepository()
    agent = await agents.find_by_name("echo-agent") or await agents.create(
        CreateAgentDTO(name="echo-agent", model="scripted-echo", tools=["echo"])
    )
    session = await make_session(HOSTILE_TITLE, user_id=f"user {SCRIPT}")
    await SessionsRepository().set_active_agent(session.id, agent.id)
    model = ScriptedModel(
        [
            ModelResponse(tool_calls=[ToolRequest("echo", json.dumps({"text": SCRIPT}))]),
            ModelResponse(text=HOSTILE_ANSWER),
            ModelError(MODEL_ERROR),
        ],
        model=f"scripted {TEMPLATE}",
        price=Price(input_per_million=1.0, output_per_million=2.0),
    )
    runner = AgentRunner(model, ToolRegistry({"echo": _echo}))
    await runner.run(session.id, HOSTILE_QUESTION)
    with contextlib.suppress(ModelError):
        await runner.run(session.id, "and again?")
    found = await SessionsRepository().find_by_id(session.id)
    return Recorded(found, await RunsRepository().list_by_session(session.id))


async def record_replay() -> tuple[str, str]:
    """A turn answered by one model, replayed with another that answers differently: the ids
    of the run and of its replay."""
    agent = await AgentsRepository().create(CreateAgentDTO(name="replayed", tools=["add"]))
    session = await make_session("Replayed", user_id="replayer")
    await SessionsRepository().set_active_agent(session.id, agent.id)
    tools = ToolRegistry({"add": lambda a, b: a + b})
    first = ScriptedModel(
        [
            ModelResponse(tool_calls=[ToolRequest("add", json.dumps({"a": 2, "b": 3}))]),
            ModelResponse(text="2 + 3 is 5, as the tool said."),
        ],
        model="model-a",
    )
    original = await AgentRunner(first, tools).run(session.id, "What is 2 + 3?")
    other = ScriptedModel(
        [
            ModelResponse(tool_calls=[ToolRequest("add", json.dumps({"a": 2, "b": 3}))]),
            ModelResponse(text="The sum is 5 <b>exactly</b>, as the tool said."),
        ],
        model="model-b",
    )
    replay = await AgentRunner(ScriptedModel([]), tools).replay(original.id, model=other)
    return str(original.id), str(replay.id)


async def record_history(days: int, *, per_day: int = 6, seed: int = 3) -> list[Run]:
    """Framework runs (``insert_finished``) over the last ``days`` days: three agents, three
    models, two tools, one run in seven failed."""
    rng = random.Random(seed)
    agents = [
        await AgentsRepository().create(CreateAgentDTO(name=f"history-{name}"))
        for name in ("triage", "billing", f"odd {SCRIPT}")
    ]
    session = await make_session("History", user_id="history")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    runs = []
    for day in range(days):
        for n in range(per_day):
            start = today - timedelta(days=day, hours=n + 1)
            model = ("model-a", "model-b", f"model {TEMPLATE}")[rng.randrange(3)]
            took = rng.uniform(50, 3_000)
            failed = rng.random() < 1 / 7
            runs.append(
                FinishedRun(
                    source="history",
                    external_id=f"h-{day}-{n}",
                    session_id=session.id,
                    agent_id=agents[rng.randrange(len(agents))].id,
                    status="failed" if failed else "completed",
                    error="the model refused" if failed else None,
                    started_at=start,
                    completed_at=start + timedelta(milliseconds=took),
                    calls=[
                        ModelCall(
                            model=model,
                            started_at=start,
                            duration_ms=took * 0.6,
                            input_tokens=rng.randrange(100, 2_000),
                            output_tokens=rng.randrange(10, 300),
                            cost=round(rng.uniform(0.001, 0.05), 6),
                        ),
                        FinishedToolCall(
                            tool_name=("search", "refund")[rng.randrange(2)],
                            input="{}",
                            output="done",
                            started_at=start,
                            duration_ms=rng.uniform(5, 400),
                            status="error" if failed else "success",
                        ),
                    ],
                )
            )
    ids = await RunsRepository().insert_finished(runs)
    return [await RunsRepository().find_by_id(run_id) for run_id in ids]
