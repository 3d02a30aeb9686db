"""``agents-core``: run the demo and read what the data layer holds.

    agents-core demo                  # a scripted conversation through AgentRunner, with its trace
    agents-core sessions              # active sessions, newest first
    agents-core show ID               # a session (transcript, runs, tool calls), or one run's turn
    agents-core runs SESSION_ID       # the runs of one session
    agents-core runs --stale          # runs a crashed process left running (--abandon closes them)
    agents-core agents                # agents and their tools
    agents-core server status         # the embedded server of AGENTS_CORE_DATA (start, stop)
    agents-core delete | fork | retention   # the conversation lifecycle (cli_lifecycle.py)

Every command takes ``--json`` for machine output (its errors are JSON on stderr too). With
``MONGODB_URI`` set it uses that server; otherwise the embedded SecantusDB of ``AGENTS_CORE_DATA``
(default ``./.agents-core``), started by the first command that needs it and shared by all.

Design notes: what the database holds is never read as markup (both consoles have markup, emoji
and highlighting off, and styles come from ``Text`` objects), so a title like ``[/]`` prints as
itself. Output is printed before the connection is closed. Only public names of
``agents_core.db`` are used, imported when a command needs them (``--help``, ``--version`` and
``server`` stay fast).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import string
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from agents_core import __version__, cli_trace
from agents_core.embedded import (
    DATA_ENV,
    DatabaseTarget,
    DataDirectoryError,
    EmbeddedServerError,
    Record,
    data_dir_from_env,
    database_target,
    server_status,
    start_server,
    stop_server,
)

if TYPE_CHECKING:
    from bson import ObjectId
    from pydantic import ValidationError

    from agents_core.db import Agent, Message, Page, Run, Session, Settings, ToolCall

__all__ = ["app", "main"]

T = TypeVar("T")

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
app.add_typer(server_app, name="server")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]

#: How long a command waits for an unreachable MONGODB_URI before it gives up.
CLI_SERVER_TIMEOUT_MS = 3_000
#: Below this many columns, records are printed as blocks rather than as squeezed tables.
NARROW_COLUMNS = 100
#: Longest excerpt of a stored text in a table or block (``--json`` has everything).
EXCERPT = 300
_HEX = frozenset(string.hexdigits)


def _console(*, stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # A file or a pipe gets room for ids (rich would assume 80 columns), unless COLUMNS says.
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(
        stderr=stderr, markup=False, emoji=False, highlight=False, width=160 if wide else None
    )


out = _console(stderr=False)
err = _console(stderr=True)


class CliError(Exception):
    """A failure to report in one line (exit code 1 unless said otherwise)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


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
    global out, err
    out, err = _console(stderr=False), _console(stderr=True)  # this invocation's streams


# ---------------------------------------------------------------------------------------------
# Running a command


def _fail(message: str, *, as_json: bool, code: int = 1) -> NoReturn:
    line = " ".join(message.split())  # one line, whatever the message held
    if as_json:
        sys.stderr.write(json.dumps({"error": line, "exit_code": code}) + "\n")
    else:
        err.print(Text.assemble(("error: ", "bold red"), line), soft_wrap=True)  # one line
    raise typer.Exit(code)


def _settings() -> Settings:
    """The environment's settings, read once; a malformed one is named in the error."""
    from pydantic import ValidationError

    from agents_core.db import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        raise CliError(_settings_problem(exc)) from exc
    if "server_selection_timeout_ms" not in settings.model_fields_set:
        settings = settings.model_copy(
            update={"server_selection_timeout_ms": CLI_SERVER_TIMEOUT_MS}
        )
    return settings


def _settings_problem(exc: ValidationError) -> str:
    from pydantic import AliasChoices

    from agents_core.db import Settings

    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        info = Settings.model_fields.get(field)
        alias = info.validation_alias if info is not None else None
        if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
            name = alias.choices[0]
        else:
            name = f"{Settings.model_config.get('env_prefix', '')}{field}".upper()
        shown = repr(error.get("input"))
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        problems.append(f"{name}={shown}: {error['msg']}")
    return "invalid setting " + "; ".join(problems) + " (fix or unset it)"


def _starting() -> AbstractContextManager[object]:
    """A spinner on stderr while this command starts the embedded server (terminals only)."""
    if err.is_terminal:
        return err.status("Starting the embedded database…", spinner="dots")
    return contextlib.nullcontext()


def _run(
    work: Callable[[], Awaitable[T]],
    render: Callable[[T], None],
    *,
    as_json: bool,
    announce: bool = False,
) -> None:
    """Connect, run ``work``, print its result, disconnect; every failure in one line."""
    from agents_core.db import DatabaseError, DatabaseUnavailableError, NotFoundError

    try:
        settings = _settings()
        with database_target(settings, on_start=_starting) as target:
            _note_started(target)
            if announce and not as_json:
                out.print(Text.assemble(("Database: ", "bold"), target.description))
            try:
                asyncio.run(_session(target.uri, settings, work, render))
            except DatabaseUnavailableError as exc:
                raise CliError(_unreachable(exc, target)) from exc
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    except CliError as exc:
        _fail(str(exc), as_json=as_json, code=exc.code)
    except NotFoundError as exc:
        _fail(f"{exc}; `agents-core sessions` lists the sessions", as_json=as_json)
    except DataDirectoryError as exc:
        hint = "" if DATA_ENV in str(exc) else f"; set {DATA_ENV} to a directory you can write"
        _fail(f"{exc}{hint}", as_json=as_json)
    except (EmbeddedServerError, DatabaseError) as exc:
        _fail(str(exc), as_json=as_json)


async def _session(
    uri: str, settings: Settings, work: Callable[[], Awaitable[T]], render: Callable[[T], None]
) -> None:
    from agents_core.db import close_db, init_db

    await init_db(uri, settings=settings)
    try:
        render(await work())
        sys.stdout.flush()  # printed before anything is closed: a Ctrl-C from here loses nothing
    finally:
        await close_db()


def _note_started(target: DatabaseTarget) -> None:
    server = target.server
    if server is not None and server.started and server.shared and err.is_terminal:
        record = server.record
        err.print(
            Text(
                f"Started the embedded database (pid {record.pid}); it stops after "
                f"{_duration(record.idle_s)} unused, or with `agents-core server stop`.",
                style="dim",
            )
        )


def _unreachable(exc: Exception, target: DatabaseTarget) -> str:
    if target.server is None:
        return (
            f"{exc} ({target.description}): start that server (`docker compose up -d` starts "
            "the one in docker-compose.yml), or unset MONGODB_URI to use the embedded database"
        )
    return f"{exc} ({target.description}): `agents-core server stop`, then try again"


def _checked_id(value: str, *, as_json: bool, what: str = "a session or run") -> str:
    """Refuse a malformed id or prefix before any server is started (exit code 2)."""
    if not 1 <= len(value) <= 24 or not set(value) <= _HEX:
        _fail(
            f"invalid id {value!r}: give {what} id (24 hexadecimal digits) or a unique prefix "
            "of one",
            as_json=as_json,
            code=2,
        )
    return value.lower()


async def _resolve(value: str, *, kinds: Sequence[str] = ("session", "run")) -> tuple[str, Any]:
    """The kind and id of the session or run that ``value`` (an id or its prefix) names."""
    from bson import ObjectId

    from agents_core.db import get_database

    collections = {"session": "sessions", "run": "runs"}
    database = get_database()
    low, high = ObjectId(value.ljust(24, "0")), ObjectId(value.ljust(24, "f"))
    found: list[tuple[str, ObjectId]] = []
    for kind in kinds:
        cursor = database[collections[kind]].find({"_id": {"$gte": low, "$lte": high}}, {"_id": 1})
        found += [(kind, raw["_id"]) for raw in await cursor.limit(2).to_list()]
    described = " or ".join(kinds)
    if not found:
        missing = (
            f"{described} {value} not found"
            if len(value) == 24
            else (f"no {described} id starts with {value}")
        )
        raise CliError(f"{missing}; `agents-core sessions` lists the sessions")
    if len(found) > 1:
        matches = ", ".join(f"{kind} {id}" for kind, id in found[:3])
        raise CliError(f"{value} is ambiguous (it starts {matches}, …): give more of the id")
    return found[0]


def _print_json(value: Any) -> None:
    def encode(item: Any) -> Any:
        dump = getattr(item, "model_dump", None)
        if dump is not None:
            return dump(mode="json")
        if isinstance(item, datetime):
            return item.isoformat()
        return str(item)  # ObjectId

    sys.stdout.write(json.dumps(value, default=encode, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Rendering: stored strings only ever go into Text objects, never through markup


def _narrow() -> bool:
    return out.width < NARROW_COLUMNS


def _excerpt(text: str | None, width: int = EXCERPT) -> str:
    if text is None:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _duration(seconds: float) -> str:
    """``0.4 ms``, ``12 ms``, ``1.2 s``, ``3 min 12 s``, ``2 h 5 min``, ``3 d 4 h``."""
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    for unit, size, sub_unit, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60)):
        if whole >= size:
            return f"{whole // size} {unit} {whole % size // sub_size} {sub_unit}"
    return f"{whole // 60} min {whole % 60} s"


def _age(moment: datetime) -> str:
    seconds = (datetime.now(UTC) - moment).total_seconds()
    return "just now" if seconds < 1 else f"{_duration(seconds)} ago"


def _id_column(table: Table, name: str = "id") -> None:
    table.add_column(name, no_wrap=True, min_width=24, overflow="fold")  # ids never truncated


_STATUS_COLOURS = {
    "completed": "green",
    "success": "green",
    "failed": "red",
    "error": "red",
    "running": "yellow",
    "pending": "yellow",
    "active": "green",
    "archived": "dim",
}
_ROLE_COLOURS = {"user": "cyan", "assistant": "green", "tool": "yellow", "system": "magenta"}


def _status(value: str) -> Text:
    return Text(value, style=_STATUS_COLOURS.get(value, ""))


def _value(enum_or_str: Any) -> str:
    return str(getattr(enum_or_str, "value", enum_or_str))


def _transcript(messages: Sequence[Message], title: str = "Transcript") -> RenderableType:
    if not messages:
        return Text(f"{title}: no messages", style="dim")
    if _narrow():
        lines: list[RenderableType] = [Text(title, style="bold")]
        for message in messages:
            role = _value(message.role)
            lines.append(
                Text.assemble((f"#{message.seq} ", "dim"), (role, _ROLE_COLOURS.get(role, "")))
            )
            lines.append(Text("  " + _excerpt(message.content)))
        return Group(*lines)
    table = Table(expand=False)  # the title on a line of its own: never wrapped to the table
    table.add_column("#", justify="right")
    table.add_column("role")
    table.add_column("content", max_width=100, overflow="fold")
    for message in messages:
        role = _value(message.role)
        table.add_row(
            Text(str(message.seq)),
            Text(role, style=_ROLE_COLOURS.get(role, "")),
            Text(_excerpt(message.content)),
        )
    return Group(Text(title, style="bold"), table)


def _run_trace(run: Run) -> RenderableType:
    took = (
        _duration((run.completed_at - run.started_at).total_seconds()) if run.completed_at else ""
    )
    calls = len(run.tool_calls)
    header = Text.assemble(
        ("Run ", "bold"), (str(run.id), "bold"), "  ", _status(_value(run.status))
    )
    details = (
        (f"from {run.source}  " if run.source else "")
        + f"{calls} tool call{'' if calls == 1 else 's'}  tokens {run.tokens:,}  "
        f"cost ${run.cost:.6f}"
        + (f"  took {took}" if took else "")
        + f"  started {_age(run.started_at)}"
    )
    if _narrow():  # its details on a line of their own rather than wrapped anywhere
        parts: list[RenderableType] = [header, Text("  " + details)]
    else:
        parts = [Text.assemble(header, "  ", details)]
    if run.error:
        parts.append(Text.assemble(("  error: ", "red"), _excerpt(run.error)))
    if run.tool_calls:
        parts.append(_tool_calls(run, run.tool_calls))
    if run.steps:  # a framework's run: its handoffs, guardrails, agents, …
        for step in run.steps:
            at = _duration(max((step.started_at - run.started_at).total_seconds(), 0.0))
            parts.append(
                Text.assemble(
                    f"  +{at}  ",
                    (step.kind, "bold"),
                    " ",
                    _excerpt(step.name, 80),
                    "  ",
                    _status(_value(step.status)),
                    *(("  ", (_excerpt(step.error, 120), "red")) if step.error else ()),
                )
            )
    return Group(*parts)


def _tool_calls(run: Run, calls: Sequence[ToolCall]) -> RenderableType:
    def took(call: ToolCall) -> str:
        return "—" if call.duration_ms is None else _duration(call.duration_ms / 1000)

    def at(call: ToolCall) -> str:
        return "+" + _duration(max((call.started_at - run.started_at).total_seconds(), 0.0))

    if _narrow():
        lines: list[RenderableType] = []
        for call in calls:
            lines.append(
                Text.assemble(
                    f"  {at(call)}  ",
                    (call.tool_name, "bold"),
                    "  ",
                    _status(_value(call.status)),
                    f"  took {took(call)}",
                )
            )
            lines.append(Text("    in:  " + _excerpt(call.input, 200)))
            lines.append(Text("    out: " + _excerpt(call.output, 200)))
        return Group(*lines)
    table = Table(expand=False)
    for column in ("at", "tool", "status", "took", "input", "output"):
        right = column in ("at", "took")
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    for call in calls:
        table.add_row(
            Text(at(call)),
            Text(call.tool_name),
            _status(_value(call.status)),
            Text(took(call)),
            Text(_excerpt(call.input, 60)),
            Text(_excerpt(call.output, 60)),
        )
    return table


def _sessions(
    sessions: Sequence[Session], title: str = "Active sessions (newest first)"
) -> RenderableType:
    if not sessions:
        return Text("no active sessions", style="dim")
    if _narrow():
        lines: list[RenderableType] = [Text(title, style="bold")]
        for session in sessions:
            lines.append(
                Text.assemble((str(session.id), "bold"), "  ", session.title or "(untitled)")
            )
            lines.append(
                Text(
                    f"  user {session.user_id or '—'}  messages {session.last_seq}  "
                    f"agent {session.active_agent_id or '—'}  updated {_age(session.updated_at)}"
                )
            )
        return Group(*lines)
    table = Table()
    _id_column(table)
    table.add_column("title", overflow="fold")
    table.add_column("user", overflow="fold")
    table.add_column("messages", justify="right")
    _id_column(table, "agent")
    table.add_column("updated", no_wrap=True)
    for session in sessions:
        table.add_row(
            Text(str(session.id)),
            Text(session.title or ""),
            Text(session.user_id or ""),
            Text(str(session.last_seq)),
            Text(str(session.active_agent_id or "")),
            Text(_age(session.updated_at)),
        )
    return Group(Text(title, style="bold"), table)


def _session_header(session: Session) -> RenderableType:
    return Group(
        Text.assemble(
            ("Session ", "bold"),
            (str(session.id), "bold"),
            "  ",
            session.title or "(untitled)",
            "  ",
            _status(_value(session.status)),
        ),
        Text(
            f"user {session.user_id or '—'}  agent {session.active_agent_id or '—'}  "
            f"messages {session.last_seq}  updated {_age(session.updated_at)}"
        ),
    )


def _agents(agents: Sequence[Agent]) -> RenderableType:
    if not agents:
        return Text("no agents", style="dim")
    if _narrow():
        lines: list[RenderableType] = []
        for agent in agents:
            lines.append(Text.assemble((agent.name, "bold"), "  ", (str(agent.id), "dim")))
            lines.append(
                Text(f"  model {agent.model or '—'}  tools {', '.join(agent.tools) or '—'}")
            )
            if agent.instructions:
                lines.append(Text("  " + _excerpt(agent.instructions, 200)))
        return Group(*lines)
    table = Table()
    table.add_column("name", overflow="fold")
    _id_column(table)
    table.add_column("model", overflow="fold")
    table.add_column("tools", overflow="fold")
    table.add_column("instructions", max_width=60, overflow="fold")
    for agent in agents:
        table.add_row(
            Text(agent.name),
            Text(str(agent.id)),
            Text(agent.model or ""),
            Text(", ".join(agent.tools)),
            Text(_excerpt(agent.instructions, 120)),
        )
    return Group(Text("Agents", style="bold"), table)


def _turn(messages: Sequence[Message], run: Run) -> list[Message]:
    """The messages of ``run``'s turn: from the user message that started it to the next one."""
    run_id = str(run.id)
    starts = [
        i
        for i, message in enumerate(messages)
        if _value(message.role) == "user" and message.created_at <= run.started_at
    ]
    if not starts:  # its user message is older than the messages read: its tool results
        return [m for m in messages if (m.tool_call_id or "").startswith(run_id)]
    first = starts[-1]
    after = [i for i in range(first + 1, len(messages)) if _value(messages[i].role) == "user"]
    return list(messages[first : after[0] if after else len(messages)])


# ---------------------------------------------------------------------------------------------
# Commands


@app.command()
def demo(as_json: JsonOption = False) -> None:
    """Run a scripted three-turn conversation (one failing tool) and print its trace."""
    from agents_core.db import MessagesRepository, SessionsRepository
    from agents_core.demo import TURNS, demo_agent, demo_model, demo_tools
    from agents_core.runner import AgentRunner

    async def work() -> tuple[Session, list[Message], list[Run], list[Session]]:
        agent = await demo_agent()
        sessions = SessionsRepository()
        title = f"Demo {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
        session = await sessions.create(title, user_id="demo")
        await sessions.set_active_agent(session.id, agent.id)
        runner = AgentRunner(demo_model(), demo_tools())
        runs = [await runner.run(session.id, question) for question, _ in TURNS]
        messages = await MessagesRepository().find_by_session(session.id, 100)
        return session, messages, runs, await sessions.list_active(user_id="demo", limit=20)

    def render(result: tuple[Session, list[Message], list[Run], list[Session]]) -> None:
        session, messages, runs, active = result
        if as_json:
            _print_json({"session": session, "messages": messages, "runs": runs})
            return
        out.print(Text.assemble(("Session: ", "bold"), str(session.id)))
        out.print(_transcript(messages))
        for run in runs:
            out.print(_run_trace(run))
        out.print(_sessions(active, "Demo sessions (newest first)"))
        out.print(
            f"{len(active)} demo session(s) in this database; see one with `agents-core show ID`."
        )

    _run(work, render, as_json=as_json, announce=not as_json)


@app.command()
def chat(
    model: Annotated[
        str, typer.Option("--model", help="the model to ask (OpenAI, or the server's name)")
    ] = "gpt-4.1-mini",
) -> None:
    """Talk to a real model with the demo's tools; each turn's trace after the answer.

    Configured by OPENAI_API_KEY, and OPENAI_BASE_URL for an OpenAI-compatible server (vLLM,
    Ollama, LiteLLM, …). Lines come from the terminal, or from a pipe (one turn a line); an
    empty line, `exit` or end of input ends the conversation.
    """
    key, base_url = os.environ.get("OPENAI_API_KEY"), os.environ.get("OPENAI_BASE_URL")
    if not key and not base_url:
        _fail(
            "no model is configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for an "
            "OpenAI-compatible server such as Ollama or vLLM)",
            as_json=False,
        )
    try:
        from agents_core.models.openai import OpenAIChatModel
    except ImportError:
        _fail("the chat needs the openai extra: pip install 'agents-core[openai]'", as_json=False)
    from agents_core.db import SessionsRepository
    from agents_core.demo import demo_agent, demo_tools
    from agents_core.runner import AgentRunner, ModelError

    async def work() -> None:
        client = OpenAIChatModel(model, base_url=base_url, api_key=key or "unused")
        try:
            agent = await demo_agent()
            sessions = SessionsRepository()
            session = await sessions.create(
                f"Chat {datetime.now(UTC):%Y-%m-%d %H:%M:%S}", user_id="chat"
            )
            await sessions.set_active_agent(session.id, agent.id)
            out.print(Text.assemble(("Session: ", "bold"), str(session.id), f"  model {model}"))
            runner = AgentRunner(client, demo_tools())
            while (line := await _read_line()) is not None:
                try:
                    run = await runner.run(session.id, line)
                except ModelError as exc:
                    err.print(Text(f"model error: {exc}", style="red"))
                    continue
                answer = await _answer(session.id, run.input_seq)
                out.print(Text.assemble(("assistant: ", "bold"), answer))
                out.print(_run_trace(run))
                sys.stdout.flush()
        finally:
            await client.aclose()

    _run(work, lambda _: None, as_json=False, announce=True)


async def _read_line() -> str | None:
    """The next line the user typed (a prompt on a terminal), or ``None`` at the end."""
    if sys.stdin.isatty():
        out.print(Text("you: ", style="bold"), end="")
    line = await asyncio.to_thread(sys.stdin.readline)
    text = line.strip()
    return None if not text or text in {"exit", "quit"} else text


async def _answer(session_id: ObjectId, input_seq: int | None) -> str:
    """The turn's last assistant text (the answer)."""
    from agents_core.db import MessageRole, MessagesRepository

    latest = await MessagesRepository().find_by_session(session_id, 50)
    answers = [
        m.content
        for m in latest
        if m.role is MessageRole.assistant and m.content and m.seq > (input_seq or 0)
    ]
    return answers[-1] if answers else "(no answer)"


@app.command("sessions")
def list_sessions(
    user: Annotated[str | None, typer.Option(help="Only this user's sessions.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    before: Annotated[
        str | None, typer.Option(help="The cursor the previous page printed.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Active sessions, most recently updated first."""

    def render(page: Page[Session]) -> None:
        _print_json(page.items) if as_json else out.print(_sessions(page.items))
        cli_lifecycle.print_next_page(page, as_json=as_json)

    _run(lambda: cli_lifecycle.sessions_page(user, limit, before), render, as_json=as_json)


@dataclass(frozen=True, slots=True)
class _Shown:
    session: Session
    messages: list[Message]
    runs: list[Run]
    run: Run | None  # when a run was asked for: its session, that turn


@app.command()
def show(
    ident: Annotated[
        str,
        typer.Argument(metavar="ID", help="A session id or a run id, or a unique prefix of one."),
    ],
    limit: Annotated[int, typer.Option(min=0, max=1000, help="Latest messages read.")] = 100,
    before: Annotated[
        int | None, typer.Option(min=1, help="Only messages before this seq.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """A session's transcript, runs and tool calls; for a run id, that run's turn."""
    from agents_core.db import RunsRepository, SessionsRepository

    value = _checked_id(ident, as_json=as_json)

    async def work() -> _Shown:
        kind, id = await _resolve(value)
        if kind == "session":
            session = await SessionsRepository().find_by_id(
                id, message_limit=limit if before is None else 0
            )
            if before is not None:
                messages = await cli_lifecycle.session_messages(id, limit, before)
                session = session.model_copy(update={"messages": messages})
            return _Shown(
                session, session.messages, await RunsRepository().list_by_session(id), None
            )
        run = await RunsRepository().find_by_id(id)
        session = await SessionsRepository().find_by_id(run.session_id, message_limit=limit)
        return _Shown(session, _turn(session.messages, run), [run], run)

    def render(shown: _Shown) -> None:
        if as_json:
            if shown.run is None:
                _print_json({"session": shown.session, "runs": shown.runs})
            else:
                _print_json({"session": shown.session, "run": shown.run, "turn": shown.messages})
            return
        out.print(_session_header(shown.session))
        from agents_core.trace import render_session_tree

        if shown.run is not None:
            out.print(Text(f"The turn of run {shown.run.id}", style="bold"))
        out.print(render_session_tree(shown.session, shown.runs, shown.messages))

    _run(work, render, as_json=as_json)


@app.command()
def runs(
    session_id: Annotated[
        str | None, typer.Argument(help="The session's id (or a unique prefix of it).")
    ] = None,
    stale: Annotated[bool, typer.Option("--stale", help="Runs left running by a crash.")] = False,
    older_than: Annotated[
        float, typer.Option(min=0, help="With --stale: minutes since the run started.")
    ] = 60.0,
    abandon: Annotated[
        bool, typer.Option("--abandon", help="With --stale: mark them failed (abandoned).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The runs of a session, or (--stale) the runs a crashed process left running."""
    from agents_core.db import InvalidStateError, RunsRepository

    if stale == (session_id is not None):
        _fail("give a SESSION_ID or --stale (not both)", as_json=as_json, code=2)
    if abandon and not stale:
        _fail("--abandon goes with --stale", as_json=as_json, code=2)
    value = (
        None if session_id is None else _checked_id(session_id, as_json=as_json, what="a session")
    )

    async def work() -> list[Run]:
        repo = RunsRepository()
        if value is not None:
            _, id = await _resolve(value, kinds=("session",))
            return await repo.list_by_session(id)
        found = await repo.list_stale(timedelta(minutes=older_than))
        if not abandon:
            return found
        abandoned = []
        for run in found:
            assert run.id is not None
            with contextlib.suppress(InvalidStateError):  # it finished meanwhile: nothing to close
                abandoned.append(await repo.mark_abandoned(run.id))
        return abandoned

    def render(found: list[Run]) -> None:
        if as_json:
            _print_json(found)
            return
        if not found:
            out.print("no runs")
        for run in found:
            out.print(_run_trace(run))
        if stale and found and not abandon:
            out.print(
                f"{len(found)} stale run(s); `agents-core runs --stale --abandon` closes them."
            )

    _run(work, render, as_json=as_json)


@app.command()
def agents(
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 200,
    as_json: JsonOption = False,
) -> None:
    """Agents and the tools they may call, by name."""
    from agents_core.db import AgentsRepository

    async def work() -> list[Agent]:
        return await AgentsRepository().list_by_name(limit=limit)

    def render(found: list[Agent]) -> None:
        _print_json(found) if as_json else out.print(_agents(found))

    _run(work, render, as_json=as_json)


# ---------------------------------------------------------------------------------------------
# agents-core server ...


def _record_json(record: Record, data_dir: str, **extra: Any) -> dict[str, Any]:
    started = datetime.fromtimestamp(record.started_at, UTC).isoformat()
    return {
        "data_dir": data_dir,
        "running": True,
        "uri": record.uri,
        "pid": record.pid,
        "port": record.port,
        "supervisor_pid": record.owner,
        "started_by_pid": record.started_by,
        "started_at": started,
        "idle_s": record.idle_s,
        **extra,
    }


def _server_failure(exc: EmbeddedServerError, as_json: bool) -> NoReturn:
    hint = ""
    if isinstance(exc, DataDirectoryError) and DATA_ENV not in str(exc):
        hint = f"; set {DATA_ENV} to a directory you can write"
    _fail(f"{exc}{hint}", as_json=as_json)


@server_app.command("status")
def server_status_command(as_json: JsonOption = False) -> None:
    """Whether the embedded server of AGENTS_CORE_DATA runs, where, and who uses it."""
    try:
        data_dir = data_dir_from_env()
        status = server_status(data_dir)
    except EmbeddedServerError as exc:
        _server_failure(exc, as_json)
    if status is None:
        if as_json:
            _print_json({"data_dir": str(data_dir), "running": False})
        else:
            out.print(Text(f"no embedded server is running for {data_dir}"))
        return
    record, users = status
    if as_json:
        _print_json(_record_json(record, str(data_dir), users=users))
        return
    uptime = _duration(max(datetime.now(UTC).timestamp() - record.started_at, 0.0))
    using = f"used by {len(users)} process(es) now" if users else "unused now"
    out.print(Text.assemble(("Embedded SecantusDB ", "bold"), f"at {data_dir}"))
    out.print(Text(f"  {record.uri}  (pid {record.pid}, supervisor {record.owner}, up {uptime})"))
    out.print(Text(f"  {using}; stops after {_duration(record.idle_s)} unused"))
    if os.environ.get("MONGODB_URI"):
        out.print(
            Text("  (MONGODB_URI is set: the other commands use that server instead)", style="dim")
        )


@server_app.command("start")
def server_start_command(
    idle: Annotated[
        float | None,
        typer.Option(
            "--idle",
            min=0,
            help="Seconds unused before it stops (default AGENTS_CORE_EMBEDDED_IDLE_S, else 300).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Start the embedded server of AGENTS_CORE_DATA (if it is not running) and print its URI."""
    try:
        data_dir = data_dir_from_env()
        record, started = start_server(data_dir, idle_s=idle, on_start=_starting)
    except EmbeddedServerError as exc:
        _server_failure(exc, as_json)
    if as_json:
        _print_json(_record_json(record, str(data_dir), started=started))
        return
    state = "started" if started else "already running"
    out.print(Text.assemble(("Embedded SecantusDB ", "bold"), f"{state} at {data_dir}"))
    out.print(
        Text(f"  {record.uri}  (pid {record.pid}); stops after {_duration(record.idle_s)} unused")
    )


@server_app.command("stop")
def server_stop_command(as_json: JsonOption = False) -> None:
    """Stop the embedded server of AGENTS_CORE_DATA (its users get a moment to finish)."""
    try:
        data_dir = data_dir_from_env()
        with (
            err.status("Stopping the embedded database…")
            if err.is_terminal
            else contextlib.nullcontext()
        ):
            record = stop_server(data_dir)
    except KeyboardInterrupt:
        err.print("interrupted (the server goes on stopping)")
        raise typer.Exit(130) from None
    except EmbeddedServerError as exc:
        _server_failure(exc, as_json)
    if as_json:
        _print_json({"data_dir": str(data_dir), "stopped": record is not None})
    elif record is None:
        out.print(Text(f"no embedded server was running for {data_dir}"))
    else:
        out.print(Text(f"stopped the embedded server of {data_dir} (pid {record.pid})"))


from agents_core import cli_lifecycle  # noqa: E402 - its commands use the helpers above

cli_lifecycle.register(app)
cli_trace.register(app)  # serve, export-otel


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # `agents-core sessions | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)
