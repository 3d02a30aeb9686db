"""``agents-core``: run the demo and read what the data layer holds.

    agents-core demo                 # a scripted conversation through AgentRunner, with its trace
    agents-core sessions             # active sessions, newest first
    agents-core show SESSION_ID      # transcript, runs and tool calls of one session
    agents-core runs SESSION_ID      # the runs of one session
    agents-core runs --stale         # runs a crashed process left running (--abandon closes them)

Every command takes ``--json`` for machine output. With ``MONGODB_URI`` set it uses that server;
otherwise it starts the embedded SecantusDB on ``AGENTS_CORE_DATA`` (default ``./.agents-core``)
for the command's duration.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from agents_core import cli_trace
from agents_core.db import (
    DatabaseError,
    InvalidStateError,
    Message,
    MessagesRepository,
    Run,
    RunsRepository,
    Session,
    SessionsRepository,
    Settings,
    close_db,
    init_db,
)
from agents_core.db import validation as check
from agents_core.db.config import mask_uri
from agents_core.embedded import EmbeddedServer, EmbeddedServerError, data_dir_from_env
from agents_core.trace import render_session_tree

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    help="Agents, sessions, messages, runs and tool calls in MongoDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Wide enough for ids when the output is a file or a pipe (rich assumes 80 columns there).
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]

#: How long a command waits for an unreachable MONGODB_URI before it gives up.
CLI_SERVER_TIMEOUT_MS = 3_000


class CliError(Exception):
    """A failure to report in one line, with exit code 1."""


@contextmanager
def _database_uri() -> Iterator[tuple[str, str]]:
    """The URI to use and how to describe it: ``MONGODB_URI``, or the embedded server."""
    uri = os.environ.get("MONGODB_URI")
    if uri:
        yield uri, f"MongoDB at {mask_uri(uri)}"
        return
    data_dir = data_dir_from_env()
    try:
        with EmbeddedServer(data_dir) as server:
            # The embedded server is local and single-client: retryable writes only slow it.
            yield f"{server.uri}?retryWrites=false", f"embedded SecantusDB at {data_dir.resolve()}"
    except EmbeddedServerError as exc:
        raise CliError(str(exc)) from exc


def _run(work: Callable[[], Awaitable[T]], *, announce: bool = False) -> T:
    """Connect, run ``work``, disconnect; turn every failure into a one-line message."""
    try:
        with _database_uri() as (uri, description):
            if announce:
                out.print(f"[bold]Database:[/] {description}")
            settings = Settings()  # the environment, read once, as everywhere
            if "server_selection_timeout_ms" not in settings.model_fields_set:
                settings = settings.model_copy(
                    update={"server_selection_timeout_ms": CLI_SERVER_TIMEOUT_MS}
                )
            return asyncio.run(_connected(uri, settings, work))
    except (CliError, DatabaseError, ValueError) as exc:  # ValueError: a malformed setting
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc


async def _connected(uri: str, settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    await init_db(uri, settings=settings)
    try:
        return await work()
    finally:
        await close_db()


def _checked_id(value: str, entity: str) -> str:
    """Refuse a malformed id before any server is started."""
    try:
        check.object_id(value, entity)
    except DatabaseError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    return value


def _print_json(value: Any) -> None:
    def encode(item: Any) -> Any:
        return item.model_dump(mode="json") if isinstance(item, BaseModel) else item

    sys.stdout.write(json.dumps(value, default=encode, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Rendering


def _excerpt(text: str | None, width: int = 40) -> str:
    if text is None:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _ms(delta: timedelta) -> str:
    return f"{delta.total_seconds() * 1000:,.0f} ms"


def _transcript(messages: list[Message]) -> Table:
    table = Table(title="Transcript", title_justify="left", expand=False)
    table.add_column("#", justify="right")
    table.add_column("role")
    table.add_column("content", max_width=90)
    colours = {"user": "cyan", "assistant": "green", "tool": "yellow", "system": "magenta"}
    for message in messages:
        role = Text(message.role.value, style=colours.get(message.role.value, ""))
        table.add_row(str(message.seq), role, _excerpt(message.content, 300))
    return table


def _run_trace(run: Run) -> Group:
    duration = _ms(run.completed_at - run.started_at) if run.completed_at else "running"
    status = {"completed": "green", "failed": "red", "running": "yellow"}[run.status.value]
    header = (
        f"[bold]Run {run.id}[/]  [{status}]{run.status.value}[/]  tokens {run.tokens}  "
        f"cost ${run.cost:.6f}  {duration}"
    )
    if run.error:
        header += f"  error: {_excerpt(run.error, 60)}"
    table = Table(expand=False)
    for column in ("at", "tool", "status", "took", "input", "output"):
        table.add_column(column, justify="right" if column in ("at", "took") else "left")
    for call in run.tool_calls:
        took = f"{call.duration_ms:,.1f} ms" if call.duration_ms is not None else "—"
        colour = {"success": "green", "error": "red", "pending": "yellow"}[call.status.value]
        table.add_row(
            "+" + _ms(call.started_at - run.started_at),
            call.tool_name,
            Text(call.status.value, style=colour),
            took,
            _excerpt(call.input),
            _excerpt(call.output),
        )
    return Group(header, table) if run.tool_calls else Group(header)


def _sessions_table(sessions: list[Session]) -> Table:
    table = Table(title="Active sessions (newest first)", title_justify="left")
    for column in ("id", "title", "user", "messages", "agent", "updated"):
        table.add_column(column, no_wrap=column in ("id", "agent", "updated"))
    for session in sessions:
        table.add_row(
            str(session.id),
            session.title or "",
            session.user_id or "",
            str(session.last_seq),
            str(session.active_agent_id or ""),
            session.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    return table


# ---------------------------------------------------------------------------------------------
# Commands


@app.command()
def demo(as_json: JsonOption = False) -> None:
    """Run a scripted three-turn conversation (one failing tool) and print its trace."""
    from agents_core.demo import TURNS, demo_agent, demo_model, demo_tools
    from agents_core.runner import AgentRunner

    async def work() -> tuple[Session, list[Message], list[Run], list[Session]]:
        agent = await demo_agent()
        sessions = SessionsRepository()
        title = f"Demo {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
        session = await sessions.create(title, user_id="demo")
        assert session.id is not None
        assert agent.id is not None
        await sessions.set_active_agent(session.id, agent.id)
        runner = AgentRunner(demo_model(), demo_tools())
        runs = [await runner.run(session.id, question) for question, _ in TURNS]
        messages = await MessagesRepository().find_by_session(session.id, 100)
        return session, messages, runs, await sessions.list_active(user_id="demo", limit=20)

    session, messages, runs, active = _run(work, announce=not as_json)
    if as_json:
        _print_json({"session": session, "messages": messages, "runs": runs})
        return
    out.print(f"[bold]Session:[/] {session.id}")
    out.print(_transcript(messages))
    for run in runs:
        out.print(_run_trace(run))
    out.print(_sessions_table(active))
    out.print(
        f"{len(active)} demo session(s) in this database; see one with `agents-core show ID`."
    )


@app.command("sessions")
def list_sessions(
    user: Annotated[str | None, typer.Option(help="Only this user's sessions.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Active sessions, most recently updated first."""
    sessions = _run(lambda: SessionsRepository().list_active(user_id=user, limit=limit))
    if as_json:
        _print_json(sessions)
    else:
        out.print(_sessions_table(sessions))


@app.command()
def show(
    session_id: Annotated[str, typer.Argument(help="The session's id.")],
    limit: Annotated[int, typer.Option(min=0, max=1000, help="Latest messages shown.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """A session's transcript, runs and tool calls."""
    _checked_id(session_id, "session")

    async def work() -> tuple[Session, list[Message], list[Run]]:
        session = await SessionsRepository().find_by_id(session_id, message_limit=limit)
        runs = await RunsRepository().list_by_session(session_id)
        return session, session.messages, runs

    session, messages, runs = _run(work)
    if as_json:
        _print_json({"session": session, "runs": runs})
        return
    agent = session.active_agent_id or "none"
    out.print(f"[bold]Session {session.id}[/] {session.title or ''}  ({session.status.value})")
    out.print(f"user: {session.user_id or '—'}  agent: {agent}  messages: {session.last_seq}")
    out.print(render_session_tree(session, runs, messages))


@app.command()
def runs(
    session_id: Annotated[str | None, typer.Argument(help="The session's id.")] = None,
    stale: Annotated[bool, typer.Option("--stale", help="Runs left running by a crash.")] = False,
    older_than: Annotated[
        float, typer.Option(min=0, help="With --stale: minutes since the run started.")
    ] = 60.0,
    abandon: Annotated[
        bool, typer.Option("--abandon", help="With --stale: mark them failed (abandoned).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The runs of a session, or (``--stale``) the runs a crashed process left running."""
    if stale == (session_id is not None):
        err.print("[red]error:[/] give a SESSION_ID or --stale (not both)")
        raise typer.Exit(2)
    if abandon and not stale:
        err.print("[red]error:[/] --abandon goes with --stale")
        raise typer.Exit(2)
    if session_id is not None:
        _checked_id(session_id, "session")

    async def work() -> list[Run]:
        repo = RunsRepository()
        if session_id is not None:
            await SessionsRepository().find_by_id(session_id, message_limit=0)  # NotFoundError
            return await repo.list_by_session(session_id)
        found = await repo.list_stale(timedelta(minutes=older_than))
        if not abandon:
            return found
        abandoned = []
        for run in found:
            assert run.id is not None
            with suppress(InvalidStateError):  # it finished meanwhile: nothing to close
                abandoned.append(await repo.mark_abandoned(run.id))
        return abandoned

    found = _run(work)
    if as_json:
        _print_json(found)
        return
    if not found:
        out.print("no runs")
    for run in found:
        out.print(_run_trace(run))
    if stale and found and not abandon:
        out.print(f"{len(found)} stale run(s); `agents-core runs --stale --abandon` closes them.")


cli_trace.register(app)  # serve, export-otel


def main() -> None:
    app()
