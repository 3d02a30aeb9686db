"""``python -m benchmarks --only langgraph``: ``AgentsCoreSaver`` against ``MongoDBSaver``.

Both checkpointers on the same server (our own SecantusDB, in memory, or ``MONGODB_URI``), each
in a fresh database, given the same inputs, one after the other:

1. A thread of 100 steps whose state has ten channels of ~100 KB (about 1 MB); step 0 writes
   them all, every later step changes one channel. Per ``aput``: bytes of the write commands sent
   (BSON, counted by a ``CommandListener``), commands, client CPU and wall time.
2. ``aget_tuple`` of that thread's latest checkpoint (the full state back), repeated.
3. ``alist(limit=10)`` on a thread of 1,000 checkpoints (ten channels of ~100 bytes each), and on
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

from agents_core.embedded import EmbeddedServer
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


async def put_thread(
    saver: BaseCheckpointSaver[Any],
    traffic: Traffic,
    thread: str,
    *,
    steps: int,
    channel_bytes: int,
    puts: Calls | None = None,
) -> dict[str, Any]:
    """``steps`` checkpoints of ten channels; step 0 writes all, each later step one."""
    values = {f"channel_{i}": text(channel_bytes) for i in range(CHANNELS)}
    versions: dict[str, Any] = {}
    config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    for step in range(steps):
        changed = list(values) if step == 0 else [f"channel_{step % CHANNELS}"]
        if step:
            values[changed[0]] = text(channel_bytes)
        new = {channel: saver.get_next_version(versions.get(channel), None) for channel in changed}
        versions.update(new)
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = dict(values)
        checkpoint["channel_versions"] = dict(versions)
        checkpoint["versions_seen"] = {"step": dict(versions)}
        metadata: Any = {"source": "loop", "step": step, "parents": {}}
        if puts is not None and step > 0:  # the steady state: one channel changed
            config = await timed(
                puts,
                traffic,
                lambda c=config, k=checkpoint, m=metadata, n=new: saver.aput(c, k, m, n),
            )
        else:
            config = await saver.aput(config, checkpoint, metadata, new)
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}


async def measure(saver: BaseCheckpointSaver[Any], traffic: Traffic) -> dict[str, Any]:
    puts, gets, lists_big, lists_long = Calls(), Calls(), Calls(), Calls()
    big = await put_thread(
        saver, traffic, "one-megabyte", steps=STEPS, channel_bytes=CHANNEL_BYTES, puts=puts
    )
    latest = await saver.aget_tuple(big)
    assert latest is not None
    assert len(latest.checkpoint["channel_values"]) == CHANNELS
    for _ in range(REPEATS):
        await timed(gets, traffic, lambda: saver.aget_tuple(big))
    long = await put_thread(
        saver, traffic, "thousand", steps=LIST_CHECKPOINTS, channel_bytes=LIST_CHANNEL_BYTES
    )

    async def latest_ten(config: Any) -> None:
        listed = [item async for item in saver.alist(config, limit=10)]
        assert len(listed) == 10

    for _ in range(REPEATS):
        await timed(lists_long, traffic, lambda: latest_ten(long))
    for _ in range(max(3, REPEATS // 3)):
        await timed(lists_big, traffic, lambda: latest_ten(big))
    return {
        "aput": puts.summary(),
        "aget_tuple": gets.summary(),
        "alist_1000": lists_long.summary(),
        "alist_100x1MB": lists_big.summary(),
    }


async def run(uri: str) -> dict[str, Any]:
    from langgraph.checkpoint.mongodb import MongoDBSaver

    ours_db, theirs_db = (f"bench_lg_{uuid.uuid4().hex[:8]}" for _ in range(2))
    traffic = Traffic()
    ours_client: AsyncMongoClient[Any] = AsyncMongoClient(uri, event_listeners=[traffic])
    theirs_client: MongoClient[Any] = MongoClient(uri, event_listeners=[traffic])
    try:
        ours = await measure(AgentsCoreSaver(ours_client[ours_db]), traffic)
        theirs = await measure(MongoDBSaver(theirs_client, db_name=theirs_db), traffic)
        sizes = {
            "agents_core": await ours_client[ours_db].command("dbStats"),
            "langgraph-checkpoint-mongodb": theirs_client[theirs_db].command("dbStats"),
        }
    finally:
        await ours_client.drop_database(ours_db)
        theirs_client.drop_database(theirs_db)
        await ours_client.close()
        theirs_client.close()
    return {
        "agents_core": ours,
        "langgraph-checkpoint-mongodb": theirs,
        "data_size_bytes": {name: stats.get("dataSize") for name, stats in sizes.items()},
    }


@contextmanager
def server() -> Iterator[str]:
    if uri := os.environ.get("MONGODB_URI"):
        yield uri
        return
    with EmbeddedServer(data_dir=None) as embedded:
        # SecantusDB slows down as it keeps a record per retryable write (NOTES-wire-server.md).
        yield embedded.uri + "?retryWrites=false"


def report(results: dict[str, Any]) -> str:
    ours, theirs = results["agents_core"], results["langgraph-checkpoint-mongodb"]
    rows = [
        ("aput: bytes written per step", "aput", "write_bytes", "{:,.0f}"),
        ("aput: commands", "aput", "commands", "{:g}"),
        ("aput: client CPU (ms)", "aput", "cpu_ms", "{:.2f}"),
        ("aput: wall (ms)", "aput", "wall_ms", "{:.2f}"),
        ("aget_tuple: commands", "aget_tuple", "commands", "{:g}"),
        ("aget_tuple: client CPU (ms)", "aget_tuple", "cpu_ms", "{:.2f}"),
        ("aget_tuple: wall (ms)", "aget_tuple", "wall_ms", "{:.2f}"),
        ("alist(limit=10), 1,000 checkpoints: commands", "alist_1000", "commands", "{:g}"),
        ("alist(limit=10), 1,000 checkpoints: client CPU (ms)", "alist_1000", "cpu_ms", "{:.2f}"),
        ("alist(limit=10), 1,000 checkpoints: wall (ms)", "alist_1000", "wall_ms", "{:.2f}"),
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
    ours_size, theirs_size = sizes["agents_core"], sizes["langgraph-checkpoint-mongodb"]
    if ours_size and theirs_size:
        lines.append(
            f"| dataSize after the run (bytes) | {ours_size:,} | {theirs_size:,} | "
            f"{ours_size / theirs_size:.3f} |"
        )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    with server() as uri:
        results = asyncio.run(run(uri))
    print(report(results))
    if args.json is not None:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"records written to {args.json}")
