"""The terminal tables, the JSON file and the description of the machine and versions."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections import Counter
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.table import Table

import agents_core
from agents_core.db.config import mask_uri
from benchmarks.harness import Counts
from benchmarks.suite import Result, Suite

__all__ = ["GOAL", "STRETCH", "environment", "print_report", "write_json"]

GOAL = 1.2  # the blueprint's most client CPU the repository may cost, relative to raw PyMongo
STRETCH = 1.1  # issue 8's line: every hot path at or under it


def environment(suite: Suite) -> dict[str, str]:
    """What the figures were measured on."""
    packages = ("pymongo", "beanie", "pydantic", "SecantusDB")
    config = suite.config
    several = config.processes > 1
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {_cpu_model()}, {_memory()}",
        "load average": " ".join(f"{load:.2f}" for load in os.getloadavg()),
        "python": platform.python_version(),
        "agents_core": _source_version(),
        **{package: _version(package) for package in packages},
        "server": f"{suite.server_version} at {mask_uri(suite.uri)}, "
        f"{suite.profile} profile (agents_core.db.server)",
        "settings": (
            (f"{config.processes} processes x " if several else "")
            + f"{config.rounds} rounds x {config.calls} calls per side (+{config.warmup} "
            "warm-up rounds), medians; cpu ratio: median of the rounds' ratios"
            + (", then of the processes'" if several else "")
        ),
    }


def print_report(console: Console, suite: Suite) -> None:
    for key, value in environment(suite).items():
        console.print(f"[bold]{key}[/]: {value}")
    hot = [result for result in suite.results if result.group == "hot path"]
    growth = [result for result in suite.results if result.group == "growth"]
    if hot:
        console.print(_results_table("Hot paths: repository vs raw PyMongo (per call)", hot))
        over = [result.op.label for result in hot if result.cpu_ratio > STRETCH]
        if over:
            console.print(f"[red]cpu ratio above {STRETCH}:[/] {', '.join(over)}")
    if growth:
        title = "Growth: the same reads on a short and a long session"
        console.print(_results_table(title, growth))
        console.print(_growth_table(suite))
    sdk = [result for result in suite.results if result.group == "openai_agents"]
    if sdk:
        console.print(_sdk_table(sdk))
    traced = [result for result in suite.results if result.group == "openai_agents tracing"]
    if traced:
        title = "OpenAI Agents SDK: a turn traced by AgentsCoreTracingProcessor vs untraced"
        console.print(_results_table(title, traced))


def write_json(path: Path, *suites: Suite) -> None:
    records = [record for suite in suites for record in suite.records()]
    path.write_text(json.dumps(records, indent=2) + "\n")


def print_latency(console: Console, suite: Suite) -> None:
    """The latency pass: wall time per call through the proxy, ours beside the other side's
    (raw PyMongo for the hot paths, the SDK's ``MongoDBSession`` for the sessions)."""
    delay, ping = suite.config.latency_ms, suite.ping_us or 0.0
    table = Table(
        title=f"Through a loopback proxy delaying each direction by {delay} ms "
        f"(a ping: {ping:,.0f} µs), wall time per call",
        title_justify="left",
    )
    columns = ("op", "against", "commands", "their commands", "wall µs", "their wall µs")
    for column in (*columns, "theirs / ours"):
        table.add_column(column, justify="left" if column in {"op", "against"} else "right")
    for result in suite.results:
        sdk = result.group == "openai_agents"
        table.add_row(
            result.op.label,
            "SDK MongoDBSession" if sdk else "raw PyMongo",
            f"{result.repo_counts.commands:g}",
            f"{result.raw_counts.commands:g}",
            f"{result.repo.wall_us:,.0f}",
            f"{result.raw.wall_us:,.0f}",
            f"{result.raw.wall_us / result.repo.wall_us:.2f}x",
        )
    console.print(table)


def _results_table(title: str, results: list[Result]) -> Table:
    table = Table(title=title, title_justify="left")
    columns = ("op", "commands", "cpu µs", "raw cpu µs", "cpu ratio", "of medians", "wall µs")
    for column in (*columns, "raw wall µs"):
        table.add_column(column, justify="left" if column == "op" else "right")
    per_process = any(result.cpu_ratios for result in results)
    if per_process:
        table.add_column("ratio per process", justify="right")
    if any(result.op.explain is not None for result in results):
        table.add_column("docs examined", justify="right")
    for result in results:
        row = [
            result.op.label,
            _commands(result.repo_counts, result.raw_counts),
            f"{result.repo.cpu_us:,.0f}",
            f"{result.raw.cpu_us:,.0f}",
            _ratio(result.cpu_ratio),
            _ratio(result.cpu_ratio_of_medians),
            f"{result.repo.wall_us:,.0f}",
            f"{result.raw.wall_us:,.0f}",
        ]
        if per_process:
            row.append(" / ".join(f"{ratio:.2f}" for ratio in result.cpu_ratios))
        if len(table.columns) > len(row):
            row.append("" if result.docs_examined is None else f"{result.docs_examined:,}")
        table.add_row(*row)
    return table


def _sdk_table(results: list[Result]) -> Table:
    """AgentsCoreSession (the "repository" side) against the SDK's MongoDBSession ("raw")."""
    table = Table(
        title="OpenAI Agents SDK sessions: AgentsCoreSession vs the SDK's MongoDBSession "
        "(per call)",
        title_justify="left",
    )
    columns = ("op", "commands", "SDK commands", "cpu µs", "SDK cpu µs", "wall µs", "SDK wall µs")
    for column in (*columns, "wall: SDK / ours"):
        table.add_column(column, justify="left" if column == "op" else "right")
    for result in results:
        table.add_row(
            result.op.label,
            f"{result.repo_counts.commands:g} ({_names(result.repo_counts.names)})",
            f"{result.raw_counts.commands:g} ({_names(result.raw_counts.names)})",
            f"{result.repo.cpu_us:,.0f}",
            f"{result.raw.cpu_us:,.0f}",
            f"{result.repo.wall_us:,.0f}",
            f"{result.raw.wall_us:,.0f}",
            f"{result.raw.wall_us / result.repo.wall_us:.1f}x",
        )
    return table


def _growth_table(suite: Suite) -> Table:
    table = Table(title="Growth ratios (long session / short session)", title_justify="left")
    for column in ("op", "sizes", "commands", "cpu", "raw cpu", "docs examined"):
        table.add_column(column, justify="left" if column == "op" else "right")
    for growth in suite.growth():
        ratios = growth.ratios()
        table.add_row(
            growth.name,
            f"{growth.large.session_messages:,} / {growth.small.session_messages:,}",
            *(_ratio(ratios[key]) for key in ("commands_growth", "cpu_growth", "raw_cpu_growth")),
            _ratio(ratios["docs_examined_growth"]),
        )
    return table


def _commands(repo: Counts, raw: Counts) -> str:
    text = f"{repo.commands:g} ({_names(repo.names)})"
    return text if repo.commands == raw.commands else f"[red]{text} vs raw {raw.commands:g}[/]"


def _names(names: tuple[str, ...]) -> str:
    """``find+insert``; or, for long sequences, ``3 find, 8 insert, …`` (sorted by name)."""
    if len(names) <= 3:
        return "+".join(names)
    return ", ".join(f"{count} {name}" for name, count in sorted(Counter(names).items()))


def _ratio(value: float | None) -> str:
    if value is None:
        return "n/a"
    colour = "green" if value <= STRETCH else "yellow" if value <= GOAL else "red"
    return f"[{colour}]{value:.2f}x[/]"


def _source_version() -> str:
    """The commit of the ``agents_core`` measured, and whether it had uncommitted changes."""
    source = Path(agents_core.__file__).parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=source, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.CalledProcessError):
        return f"{source} (not a git checkout)"
    return f"{commit} + uncommitted changes" if dirty else commit


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.0f} GiB RAM"
    except OSError:
        pass
    return "unknown RAM"
