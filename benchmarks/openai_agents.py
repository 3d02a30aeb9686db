"""``AgentsCoreSession`` against the OpenAI Agents SDK's own ``MongoDBSession``, same server;
and a turn traced by ``AgentsCoreTracingProcessor`` against the same turn untraced.

The "raw" side of the session ops is the SDK's ``MongoDBSession`` (``agents.extensions.memory``,
the ``mongodb`` extra: PyMongo's async client), on the same client and database as the layer.
Both sessions hold the same conversation, written through their own ``add_items`` in turns of
four items (a user message, a function call, its output, an assistant message), so the reads
must return equal lists. ``python -m benchmarks --only openai_agents [--quick] [--json PATH]``:
only these ops, on conversations of 1,000 and 10,000 items (``--quick``: 100 and 400).

The traced turn (``traced_turn_op``): one ``Runner.run`` of an agent (scripted model: a tool
call, then an answer) with an ``AgentsCoreSession`` (history limited to 20 items) whose id is
the trace's group, traced with our processor alone registered; its "raw" side is the same turn
with ``tracing_disabled``. The
processor's writer thread runs in this process, so its client CPU is in the figure: each batch
of traced turns ends with a ``force_flush``, so the runs of the batch are written within it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from agents import Agent, RunConfig, Runner, function_tool, set_trace_processors
from agents.extensions.memory import MongoDBSession
from agents.testing import ScriptedModel
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from pymongo import AsyncMongoClient
from rich.console import Console

from agents_core.integrations.openai_agents import AgentsCoreSession, AgentsCoreTracingProcessor
from benchmarks.harness import Op
from benchmarks.ops import CONTENT, TOOL, TOOL_INPUT, TOOL_OUTPUT
from benchmarks.raw import RawLayer

__all__ = [
    "FULL_SIZES",
    "PREFIX",
    "QUICK_SIZES",
    "labels",
    "main",
    "seed_openai_agents",
    "traced_turn_op",
]

PREFIX = "openai_agents"
#: Conversation sizes read (items), full and ``--quick``.
FULL_SIZES = (1_000, 10_000)
QUICK_SIZES = (100, 400)
#: Items per ``add_items`` call: one turn.
TURN = 4
_counter = itertools.count()


def turn(n: int) -> list[dict[str, Any]]:
    """One turn of items as the SDK's Runner stores them."""
    return [
        {"role": "user", "content": f"{CONTENT} ({n})"},
        {
            "type": "function_call",
            "id": f"fc_{n}",
            "call_id": f"call_{n}",
            "name": TOOL,
            "arguments": TOOL_INPUT,
            "status": "completed",
        },
        {"type": "function_call_output", "call_id": f"call_{n}", "output": TOOL_OUTPUT},
        {
            "type": "message",
            "id": f"msg_{n}",
            "role": "assistant",
            "status": "completed",
            "content": [
                {
                    "type": "output_text",
                    "text": "Your refund was sent on Monday; it should arrive within two days.",
                    "annotations": [],
                    "logprobs": [],
                }
            ],
        },
    ]


class _SdkSessions:
    """The SDK's sessions of one id, one per client (a PyMongo async client is per loop, and
    the harness moves from its counting client to its timing client)."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._by_client: dict[int, MongoDBSession] = {}

    async def on(self, raw: RawLayer) -> MongoDBSession:
        client: AsyncMongoClient[Any] = raw.db.client
        session = self._by_client.get(id(client))
        if session is None:
            session = MongoDBSession(self.session_id, client=client, database=raw.db.name)
            await session.get_items(limit=1)  # its one-time index creation, outside the timing
            self._by_client[id(client)] = session
        return session


async def seed_openai_agents(
    raw: RawLayer, sizes: Sequence[int], wanted: Callable[[str], bool]
) -> list[Op]:
    """Sessions of each size on both sides, written turn by turn; the ops measured on them
    (only those whose label is ``wanted``: seeding 10,000 items a side takes a while)."""
    ops: list[Op] = []
    for size, label in zip(sizes, labels(sizes), strict=False):
        if not wanted(label):
            continue
        name = f"bench-read-{size}"
        ours, theirs = AgentsCoreSession(name), _SdkSessions(name)
        sdk = await theirs.on(raw)
        for n in range(size // TURN):
            await ours.add_items(turn(n))  # type: ignore[arg-type]
            await sdk.add_items(turn(n))  # type: ignore[arg-type]
        ops.append(_read_op(ours, theirs, size))
    if wanted(labels(sizes)[-1]):
        ops.append(_write_op())
    return ops


def labels(sizes: Sequence[int]) -> list[str]:
    """The labels of the ops ``seed_openai_agents`` makes (to skip seeding what is not run)."""
    reads = [f"{PREFIX}.get_items(limit=50) [{size:,} items]" for size in sizes]
    return [*reads, f"{PREFIX}.add_items [{TURN} items]"]


def _read_op(ours: AgentsCoreSession, theirs: _SdkSessions, size: int) -> Op:
    async def warm(raw: RawLayer, calls: int) -> list[None]:
        await ours.get_items(limit=1)  # our external id, looked up once per session object
        await theirs.on(raw)
        return [None] * calls

    async def sdk_read(raw: RawLayer, _: Any) -> object:
        return await (await theirs.on(raw)).get_items(limit=50)

    return Op(
        f"{PREFIX}.get_items(limit=50)",
        lambda _: ours.get_items(limit=50),
        sdk_read,
        prepare=warm,
        check="equal",
        detail=f"{size:,} items",
        # The SDK's read sorts every document of the session on SecantusDB (~0.5 s at 10,000
        # items): fewer calls per round keep the full run in minutes.
        batch=0.1 if size >= 5_000 else 1.0,
    )


def _write_op() -> Op:
    ours, theirs = AgentsCoreSession("bench-write"), _SdkSessions("bench-write")

    async def fresh_turns(raw: RawLayer, calls: int) -> list[list[dict[str, Any]]]:
        await theirs.on(raw)
        if await ours.core_session() is None:  # created by a first turn, outside the timing
            await ours.add_items(turn(next(_counter)))  # type: ignore[arg-type]
        await ours.get_items(limit=1)
        return [turn(next(_counter)) for _ in range(calls)]

    async def sdk_write(raw: RawLayer, items: list[dict[str, Any]]) -> object:
        await (await theirs.on(raw)).add_items(items)  # type: ignore[arg-type]
        return None

    return Op(
        f"{PREFIX}.add_items",
        lambda items: ours.add_items(items),
        sdk_write,
        prepare=fresh_turns,
        check="shape",
        detail=f"{TURN} items",
    )


@function_tool
def lookup_order(order: int) -> str:
    """The state of an order."""
    return f"order {order}: {TOOL_OUTPUT}"


def _traced_agent(n: int) -> Agent[Any]:
    """An agent whose scripted model asks for a tool, then answers (two model calls)."""
    call = ResponseFunctionToolCall(
        id=f"fc_{n}",
        call_id=f"call_{n}",
        type="function_call",
        name="lookup_order",
        arguments=f'{{"order": {n}}}',
    )
    answer = ResponseOutputMessage(
        id=f"msg_{n}",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(text="It ships today.", type="output_text", annotations=[])],
    )
    usage = Usage(requests=1, input_tokens=120, output_tokens=12, total_tokens=132)
    model = ScriptedModel(
        [{"output": [call], "usage": usage}, {"output": [answer], "usage": usage}],
        emit_traces=True,
    )
    return Agent(name="support", model=model, tools=[lookup_order])


def traced_turn_op(uri: str, database: str) -> Op:
    """A turn traced by our processor (its runs written by its thread, flushed at the end of
    each batch) against the same turn with tracing disabled."""
    processor = AgentsCoreTracingProcessor.from_uri(uri, database=database)
    set_trace_processors([processor])  # ours alone: the SDK's exporter would call OpenAI
    session = AgentsCoreSession("bench-traced-turn", session_settings={"limit": 20})
    # The conversation's id as the trace's group: its runs go to the session (docs).
    traced_config = RunConfig(group_id=session.session_id)
    untraced = RunConfig(group_id=session.session_id, tracing_disabled=True)

    async def turns(raw: RawLayer, calls: int) -> list[tuple[Agent[Any], bool]]:
        if await session.core_session() is None:  # created by a first turn, outside the timing
            await session.add_items(turn(next(_counter)))  # type: ignore[arg-type]
        # The last call of a batch flushes: every run of the batch is written within it.
        return [(_traced_agent(next(_counter)), n == calls - 1) for n in range(calls)]

    async def traced(arg: tuple[Agent[Any], bool]) -> object:
        agent, flush = arg
        await Runner.run(agent, CONTENT, session=session, run_config=traced_config)
        if flush:
            processor.force_flush()
        return None

    async def untraced_turn(raw: RawLayer, arg: tuple[Agent[Any], bool]) -> object:
        await Runner.run(arg[0], CONTENT, session=session, run_config=untraced)
        return None

    return Op(
        f"{PREFIX}.traced turn",
        traced,
        untraced_turn,
        prepare=turns,
        check="shape",
        detail="tool call + answer, session; vs tracing disabled",
        batch=0.5,
    )


def main(args: argparse.Namespace, console: Console) -> None:
    """Only these ops, in the suite's harness (commands, client CPU, wall time per call)."""
    from benchmarks.report import print_report, write_json
    from benchmarks.suite import FULL, QUICK, run

    config = dataclasses.replace(
        QUICK if args.quick else FULL,
        hot_paths=False,
        processes=1,  # one process: SDK against ours differ far beyond a process's spread
        openai_agents_sizes=QUICK_SIZES if args.quick else FULL_SIZES,
        profile=args.profile,
        **{name: getattr(args, name) for name in ("rounds", "calls") if getattr(args, name)},
    )
    suite = asyncio.run(run(config, console.log))
    print_report(console, suite)
    if args.json is not None:
        write_json(args.json, suite)
        console.print(f"records written to {args.json}")
