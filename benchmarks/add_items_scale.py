"""``add_items`` of one turn as the number of stored conversations grows: ``AgentsCoreSession``
against the OpenAI Agents SDK's ``MongoDBSession``, on the same server.

Usage::

    python -m benchmarks.add_items_scale                 # its own SecantusDB (in memory)
    python -m benchmarks.add_items_scale --sizes 1 100 1000 --calls 40

For each size, both stores first hold that many conversations (one turn each, written through
their own ``add_items``); then one conversation of each gets ``calls`` more turns, timed by wall
clock, three rounds alternating the sides; the medians are printed. The suite's
``openai_agents.add_items`` row times a database holding only the benchmark's conversations;
this shows what happens when it holds a service's worth of them (``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

from agents.extensions.memory import MongoDBSession
from bson import ObjectId

from agents_core.db import close_db, get_database, init_db
from agents_core.integrations.openai_agents import AgentsCoreSession
from benchmarks.openai_agents import turn

ROUNDS = 3


async def _timed(session: AgentsCoreSession | MongoDBSession, calls: int) -> float:
    """The median wall time of ``calls`` ``add_items`` of one turn, in µs."""
    wall = []
    for n in range(calls):
        started = time.perf_counter()
        await session.add_items(turn(n))  # type: ignore[arg-type]
        wall.append(time.perf_counter() - started)
    return statistics.median(wall) * 1e6


async def measure(uri: str, sizes: Sequence[int], calls: int) -> list[tuple[int, float, float]]:
    """``(conversations stored, ours µs, the SDK's µs)`` for each size, smallest first."""
    # A database of its own, made by init_db with the layer's indexes (dropping one after
    # init_db would drop them too, and time a layer without its indexes).
    database = f"add_items_scale_{ObjectId()}"
    await init_db(uri, database=database)
    client: Any = get_database().client
    try:
        rows = []
        stored = 0
        for size in sorted(sizes):
            while stored < size:
                name = f"conversation-{stored}"
                await AgentsCoreSession(name).add_items(turn(0))  # type: ignore[arg-type]
                sdk = MongoDBSession(name, client=client, database=database)
                await sdk.add_items(turn(0))  # type: ignore[arg-type]
                stored += 1
            ours = AgentsCoreSession("conversation-0")
            theirs = MongoDBSession("conversation-0", client=client, database=database)
            medians: dict[str, list[float]] = {"ours": [], "sdk": []}
            for _ in range(ROUNDS):
                medians["ours"].append(await _timed(ours, calls))
                medians["sdk"].append(await _timed(theirs, calls))
            rows.append(
                (size, statistics.median(medians["ours"]), statistics.median(medians["sdk"]))
            )
        return rows
    finally:
        await client.drop_database(database)
        await close_db()


def main() -> None:
    from agents_core.embedded import EmbeddedServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--calls", type=int, default=40, help="timed add_items a round and side")
    args = parser.parse_args()
    uri = os.environ.get("MONGODB_URI")
    if uri:
        rows = asyncio.run(measure(uri, args.sizes, args.calls))
    else:
        with EmbeddedServer() as server:
            rows = asyncio.run(measure(server.uri, args.sizes, args.calls))
    print(f"{'conversations':>13} {'ours µs':>9} {'SDK µs':>9} {'SDK / ours':>10}")
    for size, ours, sdk in rows:
        print(f"{size:>13,} {ours:>9,.0f} {sdk:>9,.0f} {sdk / ours:>9.2f}x")


if __name__ == "__main__":
    main()
