"""``python -m benchmarks [--quick] [--json PATH] [--only TEXT] [--processes N] [--profile]
[--latency-ms MS]``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from benchmarks.dashboard import FULL_RUNS, QUICK_RUNS, print_dashboard
from benchmarks.latency import DEFAULT_DELAY_MS, LATENCY_OPS
from benchmarks.report import print_latency, print_report, write_json
from benchmarks.scale import FULL_SIZES, QUICK_SIZES, print_scale
from benchmarks.suite import FULL, QUICK, Config, merge, run, run_dashboard, run_scale


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Round trips and client CPU of agents_core.db against raw PyMongo. Starts "
        "its own SecantusDB (in memory) unless MONGODB_URI is set. --only langgraph: "
        "AgentsCoreSaver against langgraph-checkpoint-mongodb; --only openai_agents: "
        "AgentsCoreSession against the OpenAI Agents SDK's MongoDBSession; --only dashboard: "
        "the trace view's overview and run list at 100,000 runs; --only scale: appends "
        "and completions as the database grows.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds (CI)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the records here")
    parser.add_argument("--only", metavar="TEXT", help="only the ops whose name contains TEXT")
    parser.add_argument("--rounds", type=int, help="measured rounds per op")
    parser.add_argument("--calls", type=int, help="calls per side in each round")
    parser.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="processes the timing runs in, one after the other, each on its own server "
        "(default: 3, --quick 2); the figures are their medians",
    )
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of each op's repository side"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        metavar="MS",
        help="only the latency pass: a turn, an append, a latest-50 read and add_items through "
        f"a loopback proxy delaying each direction by MS (the full and quick runs end with one "
        f"at {DEFAULT_DELAY_MS} ms)",
    )
    # One of the other processes of a run: measure, write the timings here, print nothing.
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.only == "langgraph":  # AgentsCoreSaver against langgraph-checkpoint-mongodb
        from benchmarks.langgraph import main as langgraph_main

        langgraph_main(args)
        return
    # Wide enough for the tables when the output goes to a file or a CI log.
    console = Console(width=None if sys.stdout.isatty() else 180)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    runs = QUICK_RUNS if args.quick else FULL_RUNS
    if args.only == "dashboard":  # the overview and the run list as the runs grow
        print_dashboard(console, asyncio.run(run_dashboard(runs, console.log)))
        return
    if args.only == "scale":  # appends and tool-call completions as the database grows
        print_scale(console, asyncio.run(run_scale(sizes, console.log)))
        return
    if args.only == "openai_agents":  # AgentsCoreSession against the SDK's MongoDBSession
        from benchmarks.openai_agents import main as openai_agents_main

        openai_agents_main(args, console)
        return
    config = dataclasses.replace(
        QUICK if args.quick else FULL,
        only=args.only,
        profile=args.profile and args.worker is None,
        **{
            name: getattr(args, name)
            for name in ("rounds", "calls", "processes")
            if getattr(args, name)
        },
    )
    if args.latency_ms is not None:  # the latency pass alone
        latency = asyncio.run(run(_latency_config(config, args.latency_ms), console.log))
        print_latency(console, latency)
        if args.json is not None:
            write_json(args.json, latency)
        return
    if args.worker is not None:
        args.worker.write_text(json.dumps(asyncio.run(run(config, console.log)).timings()))
        return
    suite = asyncio.run(run(config, console.log))
    merge(suite, [_other_process(args, number) for number in range(2, config.processes + 1)])
    print_report(console, suite)
    suites = [suite]
    if args.only is None:
        print_scale(console, asyncio.run(run_scale(sizes, console.log)))
        print_dashboard(console, asyncio.run(run_dashboard(runs, console.log)))
        suites.append(asyncio.run(run(_latency_config(config, DEFAULT_DELAY_MS), console.log)))
        print_latency(console, suites[-1])
    if args.json is not None:
        write_json(args.json, *suites)
        console.print(f"records written to {args.json}")


def _latency_config(config: Config, delay_ms: float) -> Config:
    """The latency pass of ``config``'s size: one process (it compares wall times), the
    OpenAI Agents SDK's session beside ours when the SDK is installed."""
    sdk = importlib.util.find_spec("agents") is not None
    return dataclasses.replace(
        config,
        processes=1,
        latency_ms=delay_ms,
        ops=LATENCY_OPS,
        openai_agents_sizes=(config.growth_sizes[0],) if sdk else (),
    )


def _other_process(args: argparse.Namespace, number: int) -> dict[str, dict[str, float]]:
    """The timings of the same ops measured by a new process (see ``suite.merge``)."""
    same = [
        *(["--quick"] if args.quick else []),
        *(
            option
            for name in ("only", "rounds", "calls")
            if getattr(args, name) is not None
            for option in (f"--{name}", str(getattr(args, name)))
        ),
    ]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "timings.json"
        print(f"process {number}: python -m benchmarks {' '.join(same)}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "benchmarks", *same, "--worker", str(path)], check=True
        )
        timings: dict[str, dict[str, float]] = json.loads(path.read_text())
    return timings


if __name__ == "__main__":
    main()
