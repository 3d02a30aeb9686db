"""One benchmark run: a server, two clients, fixtures, both passes, growth, clean-up."""

from __future__ import annotations

import dataclasses
import gc
import pstats
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import OperationFailure

from agents_core.db import close_db, init_db
from agents_core.embedded import database_target
from benchmarks.dashboard import DashboardRecord, measure_dashboard
from benchmarks.harness import (
    COUNTED_CALLS,
    CommandCounter,
    Counts,
    Op,
    Timing,
    count_commands,
    profile_op,
    time_op,
)
from benchmarks.latency import proxied
from benchmarks.ops import growth_ops, hot_paths, seed, seed_session
from benchmarks.raw import RawLayer
from benchmarks.scale import ScaleRecord, measure_scale

__all__ = ["FULL", "QUICK", "Config", "Growth", "Planned", "Result", "Suite", "merge", "run"]


@dataclass(frozen=True, slots=True)
class Config:
    rounds: int  # measured rounds per op (each: one batch per side)
    calls: int  # calls per batch
    warmup: int  # rounds run first and not measured
    history: int  # messages of the session read by the find_by_session hot path
    growth_sizes: tuple[int, int]  # session sizes compared by the growth benchmark
    #: Processes the timing pass runs in, one after the other (see ``merge``); each runs
    #: ``rounds`` rounds on its own server and fixtures.
    processes: int = 1
    only: str | None = None  # measure only the ops whose label contains this
    profile: bool = False  # print a cProfile of each measured op's repository side
    hot_paths: bool = True  # the hot paths and growth ops (False: only what is named below)
    # Conversation sizes read by AgentsCoreSession vs the SDK's MongoDBSession (empty: not
    # measured; ``--only openai_agents`` sets them, see benchmarks/openai_agents.py).
    openai_agents_sizes: tuple[int, ...] = ()
    #: Through a loopback proxy that delays each direction by this (``benchmarks/latency.py``).
    latency_ms: float | None = None
    #: Only the ops whose label starts with one of these (empty: every op).
    ops: tuple[str, ...] = ()

    def selects(self, op: Op) -> bool:
        return self.wants(op.label)

    def wants(self, label: str) -> bool:
        if self.ops and not label.startswith(self.ops):
            return False
        return self.only is None or self.only in label


FULL = Config(
    rounds=21, calls=20, warmup=2, history=10_000, growth_sizes=(1_000, 50_000), processes=3
)
QUICK = Config(rounds=5, calls=3, warmup=1, history=500, growth_sizes=(100, 1_000), processes=2)


@dataclass(frozen=True, slots=True)
class Planned:
    op: Op
    group: str  # "hot path", "growth", "openai_agents" or "openai_agents tracing"
    session_messages: int | None = None  # for growth: the size of the session read


@dataclass(frozen=True, slots=True)
class Result:
    planned: Planned
    repo_counts: Counts
    raw_counts: Counts
    repo: Timing
    raw: Timing
    #: The median of the per-round ratios (see ``harness.time_op``), not ``repo / raw``.
    cpu_ratio: float
    docs_examined: int | None
    #: With several processes (``merge``): each process's ``cpu_ratio``, in process order.
    cpu_ratios: tuple[float, ...] = ()

    @property
    def op(self) -> Op:
        return self.planned.op

    @property
    def group(self) -> str:
        return self.planned.group

    @property
    def session_messages(self) -> int | None:
        return self.planned.session_messages

    @property
    def cpu_ratio_of_medians(self) -> float:
        """The estimator of the earlier runs: the repository's median over the raw median."""
        return self.repo.cpu_us / self.raw.cpu_us

    def record(self) -> dict[str, Any]:
        """The JSON record: ``op, commands, cpu_us, raw_cpu_us, cpu_ratio, wall_us`` and more."""
        record: dict[str, Any] = {
            "op": self.op.label,
            "commands": _number(self.repo_counts.commands),
            "cpu_us": round(self.repo.cpu_us, 1),
            "raw_cpu_us": round(self.raw.cpu_us, 1),
            "cpu_ratio": round(self.cpu_ratio, 3),
            "cpu_ratio_of_medians": round(self.cpu_ratio_of_medians, 3),
            "wall_us": round(self.repo.wall_us, 1),
            "raw_commands": _number(self.raw_counts.commands),
            "raw_wall_us": round(self.raw.wall_us, 1),
            "command_names": list(self.repo_counts.names),
            "group": self.group,
        }
        if self.cpu_ratios:
            record["cpu_ratio_per_process"] = [round(ratio, 3) for ratio in self.cpu_ratios]
        if self.session_messages is not None:
            record["session_messages"] = self.session_messages
        if self.op.explain is not None:
            record["docs_examined"] = self.docs_examined
        return record


@dataclass(slots=True)
class Suite:
    config: Config
    uri: str
    database: str
    server_version: str
    results: list[Result] = field(default_factory=list)
    #: With ``latency_ms``: the median wall time of a ``ping`` through the proxy, in µs.
    ping_us: float | None = None
    #: The server profile both sides ran on (``agents_core.db.server``).
    profile: str = "?"

    def timings(self) -> dict[str, dict[str, float]]:
        """What another process's run adds to this one's (see ``merge``), by op label."""
        return {
            result.op.label: {
                "cpu_us": result.repo.cpu_us,
                "wall_us": result.repo.wall_us,
                "raw_cpu_us": result.raw.cpu_us,
                "raw_wall_us": result.raw.wall_us,
                "cpu_ratio": result.cpu_ratio,
            }
            for result in self.results
        }

    def records(self) -> list[dict[str, Any]]:
        """One JSON record per result; the larger growth size also carries the growth ratios,
        and a pass through the latency proxy its delay (``latency_ms``, each way)."""
        records = {id(result): result.record() for result in self.results}
        for growth in self.growth():
            records[id(growth.large)].update(growth.ratios())
        if self.config.latency_ms is not None:
            for record in records.values():
                record["latency_ms"] = self.config.latency_ms
        return list(records.values())

    def growth(self) -> list[Growth]:
        """Each growth op at the smaller session size against the larger one."""
        by_name: dict[str, list[Result]] = {}
        for result in self.results:
            if result.group == "growth":
                by_name.setdefault(result.op.name, []).append(result)
        return [
            Growth(name, min(pair, key=_size), max(pair, key=_size))
            for name, pair in by_name.items()
            if len(pair) == 2
        ]


@dataclass(frozen=True, slots=True)
class Growth:
    name: str
    small: Result
    large: Result

    def ratios(self) -> dict[str, float | None]:
        """Larger session over smaller one, for the repository side (and raw CPU)."""
        small, large = self.small, self.large
        examined = None
        if small.docs_examined and large.docs_examined is not None:
            examined = round(large.docs_examined / small.docs_examined, 3)
        return {
            "commands_growth": round(large.repo_counts.commands / small.repo_counts.commands, 3),
            "cpu_growth": round(large.repo.cpu_us / small.repo.cpu_us, 3),
            "raw_cpu_growth": round(large.raw.cpu_us / small.raw.cpu_us, 3),
            "docs_examined_growth": examined,
        }


def merge(suite: Suite, others: list[dict[str, dict[str, float]]]) -> None:
    """Fold the timings of other processes' runs (``Suite.timings``) into ``suite``'s results.

    Each figure becomes the median over the processes (this one first), and the CPU ratio the
    median of the processes' paired ratios. Why processes: how much of its memory a call
    touches after a wait decides much of its client CPU on a virtual machine (see the README),
    and that depends on where each process's objects landed (address-space layout, hash
    seeds), so one process can sit a few hundredths off for a whole run however many rounds it
    makes: the ratio of a read with nothing to add moved 1.00-1.17 between runs. pyperf runs
    its workers in separate processes for the same reason.
    """
    if not others:
        return
    own = suite.timings()
    if len(own) != len(suite.results):
        raise ValueError("two ops share a label: their timings cannot be told apart")
    for index, result in enumerate(suite.results):
        measured = [own[result.op.label], *(other[result.op.label] for other in others)]
        median = {key: statistics.median(timing[key] for timing in measured) for key in measured[0]}
        suite.results[index] = dataclasses.replace(
            result,
            repo=Timing(cpu_us=median["cpu_us"], wall_us=median["wall_us"]),
            raw=Timing(cpu_us=median["raw_cpu_us"], wall_us=median["raw_wall_us"]),
            cpu_ratio=median["cpu_ratio"],
            cpu_ratios=tuple(timing["cpu_ratio"] for timing in measured),
        )


async def run(config: Config, progress: Callable[[str], None]) -> Suite:
    """Measure every op; ``progress(text)`` is told what is happening."""
    with _server() as server_uri, _network(server_uri, config.latency_ms) as uri:
        counter = CommandCounter()
        async with _client(uri, [counter]) as counted, _client(uri, []) as timed:
            name = f"bench_{uuid.uuid4().hex[:12]}"
            suite = Suite(config, uri, name, await _server_version(timed))
            if config.latency_ms is not None:
                suite.ping_us = await _ping_us(timed)
            try:
                await _measure(suite, counted, timed, counter, progress)
            finally:
                await close_db()
                await timed.drop_database(name)
    return suite


async def run_dashboard(runs: int, progress: Callable[[str], None]) -> list[DashboardRecord]:
    """The trace view's pages across sessions (``benchmarks.dashboard``) on a server of their
    own."""
    with _server() as uri:
        async with _client(uri, []) as client:
            return await measure_dashboard(client, runs, progress)


async def run_scale(sizes: tuple[int, ...], progress: Callable[[str], None]) -> list[ScaleRecord]:
    """The scale measurements (``benchmarks.scale``) on a server of their own."""
    with _server() as uri:
        async with _client(uri, []) as client:
            return await measure_scale(client, sizes, progress)


async def _measure(
    suite: Suite,
    counted: AsyncMongoClient[Any],
    timed: AsyncMongoClient[Any],
    counter: CommandCounter,
    progress: Callable[[str], None],
) -> None:
    layer = await init_db(client=counted, database=suite.database)
    suite.profile = layer.profile.name
    # The raw side knows its server as the layer does (one buildInfo at connect).
    raw = RawLayer(counted[suite.database], profile=layer.profile)
    plan = await _plan(suite.config, raw, suite.uri, progress)
    progress("counting commands and checking results")
    counts = [await count_commands(item.op, raw, counter) for item in plan]

    # Timing on the client without listeners: the layer and the raw side both move over to it.
    await init_db(client=timed, database=suite.database, replace=True, profile=layer.profile)
    raw = RawLayer(timed[suite.database], profile=layer.profile)
    gc.collect()
    gc.freeze()  # the fixtures and imports stay out of the collections measured
    try:
        for number, (item, (repo_counts, raw_counts)) in enumerate(zip(plan, counts, strict=True)):
            progress(f"timing {number + 1}/{len(plan)}: {item.op.label}")
            measured = await time_op(
                item.op,
                raw,
                rounds=suite.config.rounds,
                calls=suite.config.calls,
                warmup=suite.config.warmup,
            )
            examined = None if item.op.explain is None else await _docs_examined(raw, item.op)
            suite.results.append(
                Result(
                    item,
                    repo_counts,
                    raw_counts,
                    measured.repo,
                    measured.raw,
                    measured.cpu_ratio,
                    examined,
                )
            )
            if suite.config.profile:
                await _print_profile(item.op, raw, suite.config)
    finally:
        gc.unfreeze()


async def _plan(
    config: Config, raw: RawLayer, uri: str, progress: Callable[[str], None]
) -> list[Planned]:
    """Seed the fixtures; the ops to measure on them."""
    plan: list[Planned] = []
    if config.hot_paths:
        small, large = config.growth_sizes
        progress(f"seeding: sessions of {config.history:,}, {small:,} and {large:,} messages")
        plan += [
            Planned(op, "hot path")
            for op in hot_paths(await seed(raw, config.history, max(config.calls, COUNTED_CALLS)))
        ]
        # The latency pass reads the hot-path session only (no growth sessions to seed).
        for size in config.growth_sizes if config.latency_ms is None else ():
            if any(config.selects(op) for op in growth_ops(ObjectId(), size)):  # seed if used
                session = await seed_session(raw, size)
                plan += [Planned(op, "growth", size) for op in growth_ops(session, size)]
    sizes = config.openai_agents_sizes
    if sizes:
        from benchmarks import openai_agents  # the SDK (openai-agents extra) only when asked

        progress(f"seeding: OpenAI Agents SDK conversations of {', '.join(map(str, sizes))} items")
        ops = await openai_agents.seed_openai_agents(raw, sizes, config.wants)
        plan += [Planned(op, "openai_agents") for op in ops]
        traced = openai_agents.traced_turn_op(uri, raw.db.name)
        plan.append(Planned(traced, "openai_agents tracing"))
    return [item for item in plan if config.selects(item.op)]


async def _print_profile(op: Op, raw: RawLayer, config: Config) -> None:
    profile = await profile_op(op, raw, config.rounds * config.calls)
    print(f"cProfile of {op.label}, repository side, {config.rounds * config.calls} calls:")
    pstats.Stats(profile).sort_stats("tottime").print_stats(30)


async def _docs_examined(raw: RawLayer, op: Op) -> int | None:
    """``totalDocsExamined`` of the server's ``explain`` of the op's find (``None``: not said)."""
    explained = await raw.db.command("explain", op.explain, verbosity="executionStats")
    examined = explained.get("executionStats", {}).get("totalDocsExamined")
    return None if examined is None else int(examined)


@contextmanager
def _server() -> Iterator[str]:
    """``MONGODB_URI``, else a SecantusDB of our own, in memory, in a child process."""
    with database_target(in_memory=True) as target:
        yield target.uri


@contextmanager
def _network(uri: str, latency_ms: float | None) -> Iterator[str]:
    """``uri``, or with ``latency_ms`` a URI through the latency proxy."""
    if latency_ms is None:
        yield uri
        return
    with proxied(uri, latency_ms) as through:
        yield through


async def _server_version(client: AsyncMongoClient[Any]) -> str:
    """What ``buildInfo`` says (mongoeco's server knows the camel-case name only)."""
    try:
        info = await client.admin.command("buildInfo")
    except OperationFailure:
        return "?"
    return str(info.get("version", "?"))


async def _ping_us(client: AsyncMongoClient[Any], count: int = 50) -> float:
    """The median wall time of a ``ping`` (one round trip, nothing for the server to do)."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await client.admin.command("ping")
        times.append((time.perf_counter() - started) * 1e6)
    return statistics.median(times)


@asynccontextmanager
async def _client(
    uri: str, listeners: list[monitoring.CommandListener]
) -> AsyncIterator[AsyncMongoClient[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        # As init_db configures its own client (UTC datetimes as datetime.UTC).
        uri,
        tz_aware=True,
        tzinfo=UTC,
        event_listeners=listeners,
        serverSelectionTimeoutMS=10_000,
    )
    try:
        yield client
    finally:
        await client.close()


def _size(result: Result) -> int:
    return result.session_messages or 0


def _number(value: float) -> float | int:
    return int(value) if value.is_integer() else round(value, 2)
