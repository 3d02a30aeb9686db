"""The read commands of ``agents-core``: what the database holds.

agents-core sessions [--user U] [--before CURSOR]   # active sessions, newest first, in pages
agents-core show ID [--before SEQ]                   # a session, or one run's turn and scores
agents-core runs SESSION_ID                          # the runs of one session
agents-core runs --stale [--abandon]                 # runs a crashed process left running
agents-core agents                                   # agents and their tools
agents-core search PHRASE [--user U] [--since D]     # messages that contain a phrase
agents-core threads [--after CURSOR]                 # LangGraph threads, by id, in pages
agents-core thread ID [--before CHECKPOINT]          # a thread's state and its checkpoints
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from agents_core.cli import common, render
from agents_core.cli.common import JsonOption

if TYPE_CHECKING:
    from agents_core.db import Agent, Message, Page, Run, Session
    from agents_core.db.repositories import SearchResult
    from agents_core.integrations.langgraph import ThreadState, ThreadSummary
    from agents_core.integrations.langgraph.threads import ThreadReader

__all__ = ["agents", "list_sessions", "list_threads", "runs", "search", "show", "thread"]


def list_sessions(
    user: Annotated[str | None, typer.Option(help="Only this user's sessions.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    before: Annotated[
        str | None, typer.Option(help="The cursor the previous page printed.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Active sessions, most recently updated first."""

    async def work() -> Page[Session]:
        from agents_core.db import SessionsRepository

        return await SessionsRepository().list_active_page(user_id=user, limit=limit, cursor=before)

    def display(page: Page[Session]) -> None:
        common.print_json(page.items) if as_json else render.out.print(render.sessions(page.items))
        if page.next_cursor is not None:  # on stderr under --json: stdout stays one document
            hint = Text(f"more: agents-core sessions --before {page.next_cursor}")
            (render.err if as_json else render.out).print(hint)

    common.run(work, display, as_json=as_json)


@dataclass(frozen=True, slots=True)
class _Shown:
    session: Session
    messages: list[Message]
    runs: list[Run]
    run: Run | None  # when a run was asked for: its session, that turn


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
    """A session's transcript, runs and tool calls; for a run id, that run's turn and scores."""
    value = common.checked_id(ident, as_json=as_json)

    async def work() -> _Shown:
        from agents_core.db import MessagesRepository, RunsRepository, SessionsRepository

        kind, id = await common.resolve(value)
        if kind == "session":
            session = await SessionsRepository().find_by_id(
                id, message_limit=limit if before is None else 0
            )
            if before is not None:  # the `limit` messages before `before`
                messages = await MessagesRepository().find_page(
                    id, before=before, limit=max(limit, 1)
                )
                session = session.model_copy(update={"messages": messages})
            return _Shown(
                session, session.messages, await RunsRepository().list_by_session(id), None
            )
        run = await RunsRepository().find_by_id(id)
        session = await SessionsRepository().find_by_id(run.session_id, message_limit=limit)
        return _Shown(session, _turn(session.messages, run), [run], run)

    def display(shown: _Shown) -> None:
        if as_json:
            if shown.run is None:
                common.print_json({"session": shown.session, "runs": shown.runs})
            else:
                common.print_json(
                    {"session": shown.session, "run": shown.run, "turn": shown.messages}
                )
            return
        from agents_core.trace import render_session_tree

        render.out.print(render.session_header(shown.session))
        if shown.run is not None:
            render.out.print(Text(f"The turn of run {shown.run.id}", style="bold"))
        render.out.print(render_session_tree(shown.session, shown.runs, shown.messages))
        if shown.run is not None and shown.run.scores:
            render.out.print(render.scores(shown.run))

    common.run(work, display, as_json=as_json)


def _turn(messages: Sequence[Message], run: Run) -> list[Message]:
    """The messages of ``run``'s turn: from the user message that started it to the next one."""
    run_id = str(run.id)

    def started_it(message: Message) -> bool:
        # The user message that started the run, as the run recorded it (input_seq); by time
        # only for a run without one (a framework's).
        if run.input_seq is not None:
            return message.seq == run.input_seq
        return message.created_at <= run.started_at

    starts = [
        i
        for i, message in enumerate(messages)
        if render.enum_value(message.role) == "user" and started_it(message)
    ]
    if not starts:  # its user message is older than the messages read: its tool results
        return [m for m in messages if (m.tool_call_id or "").startswith(run_id)]
    first = starts[-1]
    after = [
        i for i in range(first + 1, len(messages)) if render.enum_value(messages[i].role) == "user"
    ]
    return list(messages[first : after[0] if after else len(messages)])


def runs(
    session_id: Annotated[
        str | None, typer.Argument(help="The session's id (or a unique prefix of it).")
    ] = None,
    stale: Annotated[bool, typer.Option("--stale", help="Runs left running by a crash.")] = False,
    older_than: Annotated[
        float,
        typer.Option(
            min=0,
            max=common.MAX_AGE_DAYS * 24 * 60,
            help="With --stale: minutes since the run started.",
        ),
    ] = 60.0,
    abandon: Annotated[
        bool, typer.Option("--abandon", help="With --stale: mark them failed (abandoned).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The runs of a session, or (--stale) the runs a crashed process left running."""
    if stale == (session_id is not None):
        common.fail("give a SESSION_ID or --stale (not both)", as_json=as_json, code=2)
    if abandon and not stale:
        common.fail("--abandon goes with --stale", as_json=as_json, code=2)
    value = (
        None
        if session_id is None
        else common.checked_id(session_id, as_json=as_json, what="a session")
    )

    async def work() -> list[Run]:
        from agents_core.db import InvalidStateError, RunsRepository

        repo = RunsRepository()
        if value is not None:
            _, id = await common.resolve(value, kinds=("session",))
            return await repo.list_by_session(id)
        found = await repo.list_stale(timedelta(minutes=older_than))
        if not abandon:
            return found
        abandoned = []
        for run in found:
            with contextlib.suppress(InvalidStateError):  # it finished meanwhile: nothing to close
                abandoned.append(await repo.mark_abandoned(run.id))
        return abandoned

    def display(found: list[Run]) -> None:
        if as_json:
            common.print_json(found)
            return
        if not found:
            render.out.print("no runs")
        for run in found:
            render.out.print(render.run_trace(run))
        if stale and found and not abandon:
            render.out.print(
                f"{len(found)} stale run(s); `agents-core runs --stale --abandon` closes them."
            )

    common.run(work, display, as_json=as_json)


def agents(
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 200,
    as_json: JsonOption = False,
) -> None:
    """Agents and the tools they may call, by name."""

    async def work() -> list[Agent]:
        from agents_core.db import AgentsRepository

        return await AgentsRepository().list_by_name(limit=limit)

    common.run(work, common.printed(as_json, render.agents), as_json=as_json)


def _moment(raw: str | None, option: str, *, as_json: bool) -> datetime | None:
    """``--since``/``--until``: a UTC day (``2026-12-01``) or an ISO 8601 time."""
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        common.fail(f"{option} must be a day (2026-12-01) or an ISO time", as_json=as_json, code=2)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def search(
    phrase: Annotated[str, typer.Argument(help="The text to find, as written (any case).")],
    user: Annotated[str | None, typer.Option(help="Only this user's sessions.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Messages from this day or time on (UTC).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Messages up to this day or time.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Messages that contain a phrase, newest first, with their sessions."""
    first = _moment(since, "--since", as_json=as_json)
    last = _moment(until, "--until", as_json=as_json)
    if last is not None and until is not None and len(until) == 10:
        last += timedelta(days=1) - timedelta(milliseconds=1)  # the whole day

    async def work() -> SearchResult:
        from agents_core.db import MessagesRepository

        return await MessagesRepository().search(
            phrase, user_id=user, since=first, until=last, limit=limit
        )

    def display(found: SearchResult) -> None:
        if as_json:
            common.print_json(
                {
                    "phrase": found.phrase,
                    "method": found.method,
                    "scanned": found.scanned,
                    "searched_since": found.searched_since,
                    "hits": [
                        {
                            "session_id": hit.session_id,
                            "session_title": hit.session_title,
                            "user_id": hit.user_id,
                            "seq": hit.seq,
                            "role": hit.role.value,
                            "created_at": hit.created_at,
                            "excerpt": hit.excerpt,
                        }
                        for hit in found.hits
                    ],
                }
            )
        else:
            render.out.print(render.search_hits(found))

    common.run(work, display, as_json=as_json)


def _thread_reader(as_json: bool) -> ThreadReader:
    """A reader of LangGraph threads on this command's connection; the extra named if missing."""
    try:
        from agents_core.integrations.langgraph.threads import ThreadReader
    except ImportError as exc:
        common.fail(
            f"LangGraph threads need the langgraph extra: pip install 'agents-core[langgraph]' "
            f"({exc})",
            as_json=as_json,
        )
    return ThreadReader()


def list_threads(
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    after: Annotated[str | None, typer.Option(help="The cursor the previous page printed.")] = None,
    as_json: JsonOption = False,
) -> None:
    """LangGraph threads (AgentsCoreSaver), by thread id, with their latest checkpoint."""

    async def work() -> Page[ThreadSummary]:
        return await _thread_reader(as_json).list(limit=limit, after=after)

    def display(page: Page[ThreadSummary]) -> None:
        common.print_json(page.items) if as_json else render.out.print(render.threads(page.items))
        if page.next_cursor is not None:  # on stderr under --json: stdout stays one document
            hint = Text(f"more: agents-core threads --after {page.next_cursor}")
            (render.err if as_json else render.out).print(hint)

    common.run(work, display, as_json=as_json)


def thread(
    thread_id: Annotated[str, typer.Argument(metavar="THREAD_ID", help="The thread's id.")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Checkpoints listed.")] = 20,
    before: Annotated[
        str | None, typer.Option(help="Only checkpoints older than this checkpoint id.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """A LangGraph thread: its current state, pending writes and checkpoints (newest first)."""

    async def work() -> ThreadState:
        from agents_core.db import NotFoundError

        try:
            return await _thread_reader(as_json).get(thread_id, limit=limit, before=before)
        except NotFoundError:
            raise common.CliError(
                f"thread {thread_id!r} not found; `agents-core threads` lists the threads"
            ) from None

    def display(state: ThreadState) -> None:
        if as_json:
            common.print_json(state)
            return
        render.out.print(render.thread(state))
        if state.older_before is not None:
            render.out.print(
                Text(
                    f"more: agents-core thread {shlex.quote(thread_id)} "
                    f"--before {state.older_before}"
                )
            )

    common.run(work, display, as_json=as_json)
