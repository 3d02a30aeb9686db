"""``add_items`` of one turn as the number of stored conversations grows: ``AgentsCoreSession``
against the OpenAI Agents SDK's ``MongoDBSession``, on the same server.

Usage::

    python -m benchmarks.add_items_scale                 # its own SecantusDB (in memory)
    python -m benchmarks.add_items_scale --sizes 1 100 1000 --calls 40

For each size, both stores first hold that many conversations (one turn each, written through
their own ``add_items``); then one conversation of each gets ``calls`` more turns, timed by wall
clock, three rounds alternating the sides; the medians are printed. On its own server (no
``MONGODB_URI``, Linux) it also prints the server's CPU time per call, read from ``/proc``: what
each side's two commands cost the server, apart from the client and the waiting. The suite's
``openai_agents.add_items`` row times a database holding only the benchmark's conversations;
this shows what happens when it holds a service's worth of them (``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.extensions.memory import MongoDBSession
from bson import ObjectId

from agents_core.db import close_db, get_database, init_db
from agents_core.integrations.openai_agents import AgentsCoreSession
from benchmarks.openai_agents import turn

ROUNDS = 3


#: One size's figures: conversations stored, then ours and the SDK's µs a call: the median wall
#: time and the server's mean CPU time (``nan`` when the server's process is not known).
Row = tuple[int, float, float, float, float]


def server_cpu_s(pid: int | None) -> float:
    """The CPU time the server's process has used (user and system), in seconds; ``nan`` when
    it cannot be read (no ``pid``: another server; or no ``/proc``)."""
    if pid is None:
        return math.nan
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _timed(
    session: AgentsCoreSession | MongoDBSession, calls: int, pid: int | None
) -> tuple[float, float]:
    """The median wall time of ``calls`` ``add_items`` of one turn and the server's mean CPU
    time a call, in µs."""
    wall = []
    server_before = server_cpu_s(pid)
    for n in range(calls):
        started = time.perf_counter()
        await session.add_items(turn(n))  # type: ignore[arg-type]
        wall.append(time.perf_counter() - started)
    server = (server_cpu_s(pid) - server_before) / calls
    return statistics.median(wall) * 1e6, server * 1e6


async def measure(
    uri: str, sizes: Sequence[int], calls: int, server_pid: int | None = None
) -> list[Row]:
    """For each size, smallest first: the conversations stored, then ours and the SDK's wall
    and server CPU µs a call (``Row``). ``server_pid``: the server's process, if local."""
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
            rounds: dict[str, list[tuple[float, float]]] = {"ours": [], "sdk": []}
            for _ in range(ROUNDS):
                rounds["ours"].append(await _timed(ours, calls, server_pid))
                rounds["sdk"].append(await _timed(theirs, calls, server_pid))
            (ours_wall, ours_server), (sdk_wall, sdk_server) = (
                (
                    statistics.median(wall for wall, _ in rounds[side]),
                    statistics.median(server for _, server in rounds[side]),
                )
                for side in ("ours", "sdk")
            )
            rows.append((size, ours_wall, sdk_wall, ours_server, sdk_server))
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
            rows = asyncio.run(measure(server.uri, args.sizes, args.calls, server.pid))
    print(
        f"{'conversations':>13} {'ours µs':>9} {'SDK µs':>9} {'SDK / ours':>10}"
        f" {'server CPU µs: ours':>20} {'SDK':>6}"
    )
    for size, ours, sdk, ours_server, sdk_server in rows:
        print(
            f"{size:>13,} {ours:>9,.0f} {sdk:>9,.0f} {sdk / ours:>9.2f}x"
            f" {ours_server:>20,.0f} {sdk_server:>6,.0f}"
        )


if __name__ == "__main__":
    main()
