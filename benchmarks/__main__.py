"""``python -m benchmarks [--quick] [--json PATH] [--only TEXT] [--profile]``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

from rich.console import Console

from benchmarks.report import print_report, write_json
from benchmarks.scale import FULL_SIZES, QUICK_SIZES, print_scale
from benchmarks.suite import FULL, QUICK, run, run_scale


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Round trips and client CPU of agents_core.db against raw PyMongo. Starts "
        "its own SecantusDB (in memory) unless MONGODB_URI is set. --only langgraph: "
        "AgentsCoreSaver against langgraph-checkpoint-mongodb; --only openai_agents: "
        "AgentsCoreSession against the OpenAI Agents SDK's MongoDBSession; --only scale: appends "
        "and completions as the database grows.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds (CI)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the records here")
    parser.add_argument("--only", metavar="TEXT", help="only the ops whose name contains TEXT")
    parser.add_argument("--rounds", type=int, help="measured rounds per op")
    parser.add_argument("--calls", type=int, help="calls per side in each round")
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of each op's repository side"
    )
    args = parser.parse_args(argv)
    if args.only == "langgraph":  # AgentsCoreSaver against langgraph-checkpoint-mongodb
        from benchmarks.langgraph import main as langgraph_main

        langgraph_main(args)
        return
    # Wide enough for the tables when the output goes to a file or a CI log.
    console = Console(width=None if sys.stdout.isatty() else 150)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
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
        profile=args.profile,
        **{name: getattr(args, name) for name in ("rounds", "calls") if getattr(args, name)},
    )
    suite = asyncio.run(run(config, console.log))
    print_report(console, suite)
    if args.only is None:
        print_scale(console, asyncio.run(run_scale(sizes, console.log)))
    if args.json is not None:
        write_json(args.json, suite)
        console.print(f"records written to {args.json}")


if __name__ == "__main__":
    main()
