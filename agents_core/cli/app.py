"""The ``agents-core`` application: its options, and which function each command runs.

The commands are in one module per group (``read``, ``chat``, ``lifecycle``, ``score``,
``trace``, ``server``); this module only registers them, in the order ``--help`` lists them.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from agents_core import __version__
from agents_core.cli import chat, lifecycle, read, render, score, server, trace

__all__ = ["app", "main"]

app = typer.Typer(
    help="Agents, sessions, messages, runs and tool calls in MongoDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
server_app = typer.Typer(
    help=(
        "The embedded SecantusDB of AGENTS_CORE_DATA: one per data directory, shared by every "
        "process that uses it, stopped after AGENTS_CORE_EMBEDDED_IDLE_S seconds unused."
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"agents-core {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Agents, sessions, messages, runs and tool calls in MongoDB."""
    render.open_consoles()  # this invocation's streams


app.command()(chat.demo)
app.command()(chat.chat)
app.command("sessions")(read.list_sessions)
app.command()(read.show)
app.command()(read.runs)
app.command()(read.search)
app.command()(read.agents)
app.command()(score.score)
app.command("threads")(read.list_threads)
app.command()(read.thread)
app.command()(lifecycle.delete)
app.command()(lifecycle.fork)
app.command()(lifecycle.retention)
app.command()(trace.serve)
app.command("export-otel")(trace.export_otel)
app.add_typer(server_app, name="server")
server_app.command("status")(server.status)
server_app.command("start")(server.start)
server_app.command("stop")(server.stop)


def main() -> None:
    """The ``agents-core`` program: the app, with a closed pipe on stdout ending it quietly."""
    try:
        app(prog_name="agents-core")  # not "python -m …" when the warm worker runs it
    except BrokenPipeError:  # `agents-core sessions | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)
