"""What every command of ``agents-core`` shares: its settings, connecting, ids, failures, JSON.

A command module uses it as ``common`` (the consoles are ``render.out`` and ``render.err``).
A command checks its arguments, then hands ``run`` the work to do on the database and how to
print the result::

    value = common.checked_id(ident, as_json=as_json)   # exit code 2 before any server starts

    async def work() -> Session:
        _, session_id = await common.resolve(value, kinds=("session",))
        return await SessionsRepository().find_by_id(session_id)

    common.run(work, common.printed(as_json, render.session_header), as_json=as_json)

``run`` opens the database (``MONGODB_URI``, else the shared embedded server of
``AGENTS_CORE_DATA``, started if need be), prints the result before it closes the connection,
and turns every failure into one line (JSON on stderr under ``--json``) and an exit code.
A command that writes says so (``writes=True``): only such a command stops the server that a
killed supervisor left running; one that only reads never signals a process (issue 25, E2).
``agents_core.db`` is imported when a command runs, never when this module is imported:
``--help``, ``--version`` and ``server`` stay fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, TextIO, TypeVar

import typer
from rich.console import RenderableType
from rich.text import Text

from agents_core.cli import render
from agents_core.embedded import (
    DATA_ENV,
    DatabaseTarget,
    DataDirectoryError,
    EmbeddedServerError,
    database_target,
)

if TYPE_CHECKING:
    from bson import ObjectId
    from pydantic import ValidationError

    from agents_core.db import DatabaseUnavailableError, Settings

__all__ = [
    "CLI_SERVER_TIMEOUT_MS",
    "CliError",
    "JsonOption",
    "Kind",
    "checked_id",
    "database",
    "embedded_failure",
    "fail",
    "print_json",
    "print_json_line",
    "printed",
    "recent_ids",
    "resolve",
    "run",
    "settings",
    "short_ids",
    "starting",
]

T = TypeVar("T")
#: What an id given on the command line may name.
Kind = Literal["session", "run"]

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]

#: How long a command waits for an unreachable MONGODB_URI before it gives up.
CLI_SERVER_TIMEOUT_MS = 3_000
#: The longest age an option takes: ``agents_core.db.limits.MAX_STALE_AGE`` (100 years), in days,
#: written out so that ``--help`` does not import the database layer (a test checks they agree).
MAX_AGE_DAYS = 36_500


class CliError(Exception):
    """A failure to report in one line (exit code 1 unless said otherwise)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, *, as_json: bool, code: int = 1) -> NoReturn:
    """Report ``message`` on one line of stderr (a JSON object under ``--json``) and exit."""
    line = " ".join(message.split())  # one line, whatever the message held
    if as_json:
        sys.stderr.write(json.dumps({"error": line, "exit_code": code}) + "\n")
    else:
        render.err.print(Text.assemble(("error: ", "bold red"), line), soft_wrap=True)
    raise typer.Exit(code)


def embedded_failure(exc: EmbeddedServerError) -> str:
    """What to say when the embedded server cannot be used: a data directory that cannot be
    used says which variable chooses another."""
    if isinstance(exc, DataDirectoryError) and DATA_ENV not in str(exc):
        return f"{exc}; set {DATA_ENV} to a directory you can write"
    return str(exc)


def settings() -> Settings:
    """The environment's settings, read once; a malformed one is named in the error."""
    from pydantic import ValidationError

    from agents_core.db import Settings

    try:
        found = Settings()
    except ValidationError as exc:
        raise CliError(_settings_problem(exc)) from exc
    if "server_selection_timeout_ms" not in found.model_fields_set:
        found = found.model_copy(update={"server_selection_timeout_ms": CLI_SERVER_TIMEOUT_MS})
    return found


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


def starting() -> AbstractContextManager[object]:
    """A spinner on stderr while this command starts the embedded server (terminals only)."""
    return render.spinner("Starting the embedded database…")


@contextlib.contextmanager
def database(*, announce: bool, writes: bool = False) -> Iterator[tuple[str, Settings]]:
    """The URI and settings of the database this command uses, for as long as the ``with``
    lasts: ``MONGODB_URI``, else the shared embedded server (started if need be: said on a
    terminal). ``announce`` prints which one. ``writes``: the command writes, and may stop the
    server of a stale record (``stop_stale``); otherwise a still running one is an
    ``EmbeddedServerError`` that says `agents-core server stop` stops it. A
    ``DatabaseUnavailableError`` inside becomes a
    ``CliError`` that says what to do about it; any ``DatabaseError`` of an embedded server
    whose storage failed (a full disk) becomes one that says so."""
    from agents_core.db import DatabaseError, DatabaseUnavailableError

    found = settings()
    with database_target(found, on_start=starting, stop_stale=writes) as target:
        _note_started(target)
        if announce:
            render.out.print(Text.assemble(("Database: ", "bold"), target.description))
        try:
            yield target.uri, found
        except DatabaseError as exc:
            # Only a failure of the server itself (no NotFoundError, no refused input) can be
            # its storage's: unreachable, or an error the layer has no name for.
            failed = isinstance(exc, DatabaseUnavailableError) or type(exc) is DatabaseError
            problem = target.server.problem() if failed and target.server is not None else None
            if problem is not None:
                raise CliError(problem) from exc
            if isinstance(exc, DatabaseUnavailableError):
                raise CliError(_unreachable(exc, target)) from exc
            raise


def run(
    work: Callable[[], Awaitable[T]],
    display: Callable[[T], None],
    *,
    as_json: bool,
    announce: bool = False,
    writes: bool = False,
) -> None:
    """Connect, run ``work``, ``display`` its result, disconnect; every failure in one line.
    ``writes``: whether ``work`` writes (``database``)."""
    from agents_core.db import DatabaseError, NotFoundError

    try:
        with database(announce=announce and not as_json, writes=writes) as (uri, found):
            asyncio.run(_session(uri, found, work, display))
    except KeyboardInterrupt:
        if as_json:  # stderr under --json is one JSON object a line
            fail("interrupted", as_json=True, code=130)
        render.err.print("interrupted")
        raise typer.Exit(130) from None
    except CliError as exc:
        fail(str(exc), as_json=as_json, code=exc.code)
    except NotFoundError as exc:
        fail(f"{exc}; `agents-core sessions` lists the sessions", as_json=as_json)
    except EmbeddedServerError as exc:
        fail(embedded_failure(exc), as_json=as_json)
    except DatabaseError as exc:
        fail(str(exc), as_json=as_json)


async def _session(
    uri: str, config: Settings, work: Callable[[], Awaitable[T]], display: Callable[[T], None]
) -> None:
    from agents_core.db import close_db, init_db

    await init_db(uri, settings=config)
    try:
        display(await work())
        sys.stdout.flush()  # printed before anything is closed: a Ctrl-C from here loses nothing
    finally:
        await close_db()


def _note_started(target: DatabaseTarget) -> None:
    """On a terminal: say that this command started the shared embedded server, and when it
    stops."""
    server = target.server
    if server is not None and server.started and server.shared and render.err.is_terminal:
        record = server.record
        idle = render.format_ms(record.idle_s * 1000)
        render.err.print(
            Text(
                f"Started the embedded database (pid {record.pid}); it stops after "
                f"{idle} unused, or with `agents-core server stop`.",
                style="dim",
            )
        )


def _unreachable(exc: DatabaseUnavailableError, target: DatabaseTarget) -> str:
    """What to say when the database of ``target`` does not answer, and what to do about it
    (the command's own advice, in place of the library's)."""
    if target.server is None:
        return (
            f"{exc.reason} ({target.description}): start that server (`docker compose up -d` "
            "starts the one in docker-compose.yml), or unset MONGODB_URI to use the embedded "
            "database"
        )
    return f"{exc.reason} ({target.description}): `agents-core server stop`, then try again"


def checked_id(value: str, *, as_json: bool, what: str = "a session or run") -> str:
    """Refuse a malformed id, start or end of one before any server is started (exit code 2)."""
    from agents_core.db import InvalidIdError
    from agents_core.db.validation import id_prefix

    try:
        return id_prefix(value, "id")  # the digits of a start are those of an end too
    except InvalidIdError:
        fail(
            f"invalid id {value!r}: give {what} id (24 hexadecimal digits), or its last or "
            "first digits",
            as_json=as_json,
            code=2,
        )


#: The recent ids of each kind this command has read, read once per command (``asyncio.run``
#: runs each command's work in a context of its own).
_RECENT: ContextVar[dict[str, list[ObjectId]] | None] = ContextVar("recent_ids", default=None)


async def recent_ids(kind: Kind | Literal["agent"]) -> list[ObjectId]:
    """The ids of the newest sessions (by last activity), runs (by start) or agents (by
    creation), ``RECENT_IDS`` of each: what the end of an id is matched among and what tables
    print short (``render.ShortIds``). A bounded repository read (``list_recent_ids``), once
    per command."""
    from agents_core.db import AgentsRepository, RunsRepository, SessionsRepository

    cache = _RECENT.get()
    if cache is None:
        cache = {}
        _RECENT.set(cache)
    if kind not in cache:
        if kind == "session":
            cache[kind] = await SessionsRepository().list_recent_ids()
        elif kind == "run":
            cache[kind] = await RunsRepository().list_recent_ids()
        else:
            cache[kind] = await AgentsRepository().list_recent_ids()
    return cache[kind]


async def short_ids(*, agents: bool = False, as_json: bool = False) -> render.ShortIds:
    """The short forms of the recent sessions and runs (and agents, if asked) for this
    command's tables: two or three bounded reads (``recent_ids``), shared with ``resolve``.
    Under ``--json`` (``as_json``) every id is whole: ``render.WHOLE``, nothing read."""
    if as_json:
        return render.WHOLE
    groups = [[*await recent_ids("session"), *await recent_ids("run")]]
    if agents:
        groups.append(await recent_ids("agent"))
    return render.ShortIds(*groups)


async def resolve(
    value: str, *, kinds: Sequence[Kind] = ("session", "run")
) -> tuple[Kind, ObjectId]:
    """The kind and id of the session or run that ``value`` names: a whole id; else the end of
    a recent one (``recent_ids``: what tables print); else the start of any one.

    The end is looked for first, among a bounded set (no index can find the end of an id,
    so matching it against every stored id would read the whole collection); a start is a
    range of the ``_id`` index. More than one match is an error that names a few of them.
    """
    from agents_core.db import RunsRepository, SessionsRepository

    found: list[tuple[Kind, ObjectId]] = []
    if len(value) < 24:
        for kind in kinds:
            found += [(kind, id) for id in await recent_ids(kind) if str(id).endswith(value)]
    how = "end"
    if not found:
        how = "start"
        for kind in kinds:
            repository = SessionsRepository() if kind == "session" else RunsRepository()
            found += [(kind, id) for id in await repository.list_ids_by_prefix(value, limit=4)]
    described = " or ".join(kinds)
    if not found:
        missing = (
            f"{described} {value} not found"
            if len(value) == 24
            else f"no recent {described} id ends with {value}, and none starts with it"
        )
        raise CliError(f"{missing}; `agents-core sessions` lists the sessions")
    if len(found) > 1:
        short = await short_ids()
        named = ", ".join(f"{kind} {short(id)}" for kind, id in found[:3])
        if len(found) > 3:  # a start is looked up 4 at most: how many more is not known
            named += " and more" if how == "start" else f" and {len(found) - 3} more"
        raise CliError(f"{value} is ambiguous: {named} {how} with it; give more of the id")
    return found[0]


def print_json(value: Any) -> None:
    """``value`` as indented JSON on stdout, encoded by ``agents_core.db.documents.json_default``:
    records as their JSON form, datetimes in ISO 8601, ids as strings."""

    def encode(item: object) -> Any:
        # Imported for a record only: `server` prints plain values and stays off the db layer.
        from agents_core.db.documents import json_default

        return json_default(item)

    sys.stdout.write(json.dumps(value, default=encode, indent=2) + "\n")


def print_json_line(value: Any, *, stream: TextIO | None = None) -> None:
    """``value`` as JSON on one line of ``stream`` (default stdout; ``print_json``'s encoding),
    flushed: what a command that goes on (``serve``, ``chat``) prints, one object a line, for a
    script to read as it comes."""
    from agents_core.db.documents import json_default

    out = sys.stdout if stream is None else stream
    out.write(json.dumps(value, default=json_default) + "\n")
    out.flush()


def printed(as_json: bool, text: Callable[[T], RenderableType]) -> Callable[[T], None]:
    """What ``run`` shows of a result: its JSON under ``--json``, else ``text(result)``."""

    def display(result: T) -> None:
        if as_json:
            print_json(result)
        else:
            render.out.print(text(result))

    return display
