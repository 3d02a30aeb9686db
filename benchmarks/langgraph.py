"""``python -m benchmarks --only langgraph``: ``AgentsCoreSaver`` against ``MongoDBSaver``.

Both checkpointers on the same server (our own SecantusDB, in memory, or ``MONGODB_URI``), each
in a fresh database, given the same inputs, in lockstep (each round runs both sides, the first
one alternating, so drift on the machine hits both alike):

1. A thread of 100 steps whose state has ten channels of ~100 KB (about 1 MB); step 0 writes
   them all, every later step changes one channel. Per ``aput`` (steps 1-99): bytes of the
   write commands sent (BSON, documents included, counted by a ``CommandListener``), commands,
   client CPU and wall time.
2. ``aget_tuple`` of that thread's newest checkpoint (the full state back), by the saver that
   wrote it and by a new saver (as another process would; ``MongoDBSaver`` keeps nothing
   between calls, so both of its rows are the same saver).
3. ``alist(limit=10)`` on a thread of 1,000 checkpoints (ten channels of ~100 bytes), and on
   the 100-step thread of 1 MB states.

Client CPU is ``time.process_time()`` of this process, all threads included (``MongoDBSaver``
runs its sync driver in the default executor); wall time is ``time.perf_counter()``. Figures
are medians per call. Requires ``benchmarks/requirements-langgraph.txt`` (``make bench-langgraph``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bson
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from pymongo import AsyncMongoClient, MongoClient, monitoring

from agents_core.embedded import database_target
from agents_core.integrations.langgraph import AgentsCoreSaver

__all__ = ["main", "run"]

STEPS = 100
CHANNELS = 10
CHANNEL_BYTES = 100_000
LIST_CHECKPOINTS = 1_000
LIST_CHANNEL_BYTES = 100
REPEATS = 15
_WRITES = frozenset({"insert", "update", "delete", "findAndModify"})
_BACKGROUND = frozenset({"hello", "isMaster", "ismaster", "endSessions"})


class Traffic(monitoring.CommandListener):
    """Commands sent and the BSON bytes of the write commands (documents included)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.commands = 0
        self.write_bytes = 0

    def reset(self) -> None:
        with self._lock:
            self.commands = 0
            self.write_bytes = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in _BACKGROUND:
            return
        size = len(bson.encode(event.command)) if event.command_name in _WRITES else 0
        with self._lock:
            self.commands += 1
            self.write_bytes += size

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclass
class Calls:
    """Per-call samples of one operation."""

    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    commands: list[int] = field(default_factory=list)
    write_bytes: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        return {
            "wall_ms": round(statistics.median(self.wall_ms), 2),
            "cpu_ms": round(statistics.median(self.cpu_ms), 2),
            "commands": statistics.median(self.commands),
            "write_bytes": int(statistics.median(self.write_bytes)),
        }


async def timed(calls: Calls, traffic: Traffic, call: Callable[[], Awaitable[Any]]) -> Any:
    traffic.reset()
    cpu, wall = time.process_time(), time.perf_counter()
    result = await call()
    calls.wall_ms.append((time.perf_counter() - wall) * 1000)
    calls.cpu_ms.append((time.process_time() - cpu) * 1000)
    calls.commands.append(traffic.commands)
    calls.write_bytes.append(traffic.write_bytes)
    return result


def text(size: int) -> str:
    """``size`` characters that do not compress."""
    return base64.b64encode(os.urandom(size * 3 // 4)).decode()


def steps(count: int, channel_bytes: int) -> list[tuple[dict[str, str], list[str]]]:
    """The state after each step, and the channels the step changed (all of them at step 0)."""
    values = {f"channel_{i}": text(channel_bytes) for i in range(CHANNELS)}
    states = [(dict(values), list(values))]
    for step in range(1, count):
        channel = f"channel_{step % CHANNELS}"
        values[channel] = text(channel_bytes)
        states.append((dict(values), [channel]))
    return states


class Writer:
    """One side's thread: puts each step's checkpoint with that saver's own versions."""

    def __init__(self, saver: BaseCheckpointSaver[Any], thread: str) -> None:
        self.saver = saver
        self.versions: dict[str, Any] = {}
        self.config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        self.thread = self.config

    async def put(self, step: int, values: dict[str, str], changed: list[str]) -> None:
        new = {c: self.saver.get_next_version(self.versions.get(c), None) for c in changed}
        self.versions.update(new)
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = dict(values)
        checkpoint["channel_versions"] = dict(self.versions)
        checkpoint["versions_seen"] = {"step": dict(self.versions)}
        metadata: Any = {"source": "loop", "step": step, "parents": {}}
        self.config = await self.saver.aput(self.config, checkpoint, metadata, new)


def alternating(round_: int, sides: list[str]) -> list[str]:
    """Both sides each round, the first one alternating (drift on the machine hits both)."""
    return sides if round_ % 2 == 0 else sides[::-1]


async def measure(
    savers: dict[str, BaseCheckpointSaver[Any]],
    fresh: dict[str, Callable[[], Awaitable[BaseCheckpointSaver[Any]]]],
    traffic: Traffic,
) -> dict[str, dict[str, Any]]:
    """Every measurement, both sides in lockstep."""
    names = list(savers)
    calls: dict[str, dict[str, Calls]] = {name: {op: Calls() for op in OPS} for name in names}

    # 1. 100 steps of a 1 MB state; aput timed from step 1 (one channel changed).
    writers = {name: Writer(saver, "one-megabyte") for name, saver in savers.items()}
    for step, (values, changed) in enumerate(steps(STEPS, CHANNEL_BYTES)):
        for name in alternating(step, names):
            put = writers[name].put(step, values, changed)
            if step == 0:
                await put
            else:
                await timed(calls[name]["aput"], traffic, lambda p=put: p)
    big = {name: writer.thread for name, writer in writers.items()}

    async def latest(saver: BaseCheckpointSaver[Any], config: Any) -> None:
        found = await saver.aget_tuple(config)
        assert found is not None
        assert len(found.checkpoint["channel_values"]) == CHANNELS

    # 2. aget_tuple of the newest checkpoint: by the saver that wrote it, and by a new one.
    for round_ in range(REPEATS):
        for name in alternating(round_, names):
            saver = savers[name]
            await timed(
                calls[name]["aget_tuple"], traffic, lambda s=saver, n=name: latest(s, big[n])
            )
            cold = await fresh[name]()
            await timed(
                calls[name]["aget_tuple_new_saver"],
                traffic,
                lambda s=cold, n=name: latest(s, big[n]),
            )

    # 3. alist(limit=10) on a thread of 1,000 small checkpoints, and on the 1 MB one.
    writers = {name: Writer(saver, "thousand") for name, saver in savers.items()}
    for step, (values, changed) in enumerate(steps(LIST_CHECKPOINTS, LIST_CHANNEL_BYTES)):
        for name in names:
            await writers[name].put(step, values, changed)
    long = {name: writer.thread for name, writer in writers.items()}

    async def latest_ten(saver: BaseCheckpointSaver[Any], config: Any) -> None:
        listed = [item async for item in saver.alist(config, limit=10)]
        assert len(listed) == 10

    for round_ in range(REPEATS):
        for name in alternating(round_, names):
            saver = savers[name]
            await timed(
                calls[name]["alist_1000"], traffic, lambda s=saver, n=name: latest_ten(s, long[n])
            )
    for round_ in range(max(3, REPEATS // 3)):
        for name in alternating(round_, names):
            saver = savers[name]
            await timed(
                calls[name]["alist_100x1MB"], traffic, lambda s=saver, n=name: latest_ten(s, big[n])
            )
    return {name: {op: c.summary() for op, c in ops.items()} for name, ops in calls.items()}


OPS = ("aput", "aget_tuple", "aget_tuple_new_saver", "alist_1000", "alist_100x1MB")
OURS, THEIRS = "agents_core", "langgraph-checkpoint-mongodb"


async def run(uri: str) -> dict[str, Any]:
    from langgraph.checkpoint.mongodb import MongoDBSaver

    ours_db, theirs_db = (f"bench_lg_{uuid.uuid4().hex[:8]}" for _ in range(2))
    traffic = Traffic()
    ours_client: AsyncMongoClient[Any] = AsyncMongoClient(uri, event_listeners=[traffic])
    theirs_client: MongoClient[Any] = MongoClient(uri, event_listeners=[traffic])
    ours = AgentsCoreSaver(ours_client[ours_db])
    theirs = MongoDBSaver(theirs_client, db_name=theirs_db)

    async def new_ours() -> BaseCheckpointSaver[Any]:
        saver = AgentsCoreSaver(ours_client[ours_db])
        await saver.setup()  # once per process: not what is measured
        return saver

    async def new_theirs() -> BaseCheckpointSaver[Any]:
        return theirs  # keeps nothing between calls: a new one reads the same way

    try:
        results: dict[str, Any] = await measure(
            {OURS: ours, THEIRS: theirs}, {OURS: new_ours, THEIRS: new_theirs}, traffic
        )
        results["data_size_bytes"] = {
            OURS: (await ours_client[ours_db].command("dbStats")).get("dataSize"),
            THEIRS: theirs_client[theirs_db].command("dbStats").get("dataSize"),
        }
    finally:
        await ours_client.drop_database(ours_db)
        theirs_client.drop_database(theirs_db)
        await ours_client.close()
        theirs_client.close()
    return results


@contextmanager
def server() -> Iterator[str]:
    """``MONGODB_URI``, else a SecantusDB of our own, in memory (its URI has
    ``retryWrites=false``: the server slows down as it keeps a record per retryable write)."""
    with database_target(in_memory=True) as target:
        yield target.uri


def report(results: dict[str, Any]) -> str:
    ours, theirs = results[OURS], results[THEIRS]
    rows = [
        ("aput: bytes written per step", "aput", "write_bytes", "{:,.0f}"),
        ("aput: commands", "aput", "commands", "{:g}"),
        ("aput: client CPU (ms)", "aput", "cpu_ms", "{:.2f}"),
        ("aput: wall (ms)", "aput", "wall_ms", "{:.2f}"),
        ("aget_tuple (the saver that wrote): commands", "aget_tuple", "commands", "{:g}"),
        ("aget_tuple (the saver that wrote): client CPU (ms)", "aget_tuple", "cpu_ms", "{:.2f}"),
        ("aget_tuple (the saver that wrote): wall (ms)", "aget_tuple", "wall_ms", "{:.2f}"),
        ("aget_tuple (a new saver): commands", "aget_tuple_new_saver", "commands", "{:g}"),
        ("aget_tuple (a new saver): client CPU (ms)", "aget_tuple_new_saver", "cpu_ms", "{:.2f}"),
        ("aget_tuple (a new saver): wall (ms)", "aget_tuple_new_saver", "wall_ms", "{:.2f}"),
        ("alist(limit=10), 1,000 checkpoints: commands", "alist_1000", "commands", "{:g}"),
        ("alist(limit=10), 1,000 checkpoints: client CPU (ms)", "alist_1000", "cpu_ms", "{:.2f}"),
        ("alist(limit=10), 1,000 checkpoints: wall (ms)", "alist_1000", "wall_ms", "{:.2f}"),
        ("alist(limit=10), 100 checkpoints of 1 MB: commands", "alist_100x1MB", "commands", "{:g}"),
        (
            "alist(limit=10), 100 checkpoints of 1 MB: client CPU (ms)",
            "alist_100x1MB",
            "cpu_ms",
            "{:.2f}",
        ),
        (
            "alist(limit=10), 100 checkpoints of 1 MB: wall (ms)",
            "alist_100x1MB",
            "wall_ms",
            "{:.2f}",
        ),
    ]
    lines = [
        "| Median per call | AgentsCoreSaver | MongoDBSaver 0.5.1 | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, op, key, form in rows:
        mine, other = ours[op][key], theirs[op][key]
        ratio = f"{mine / other:.3f}" if other else "-"
        lines.append(f"| {label} | {form.format(mine)} | {form.format(other)} | {ratio} |")
    sizes = results["data_size_bytes"]
    if sizes[OURS] and sizes[THEIRS]:
        lines.append(
            f"| dataSize after the run (bytes) | {sizes[OURS]:,} | {sizes[THEIRS]:,} | "
            f"{sizes[OURS] / sizes[THEIRS]:.3f} |"
        )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    with server() as uri:
        results = asyncio.run(run(uri))
    print(report(results))
    if args.json is not None:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"records written to {args.json}")
