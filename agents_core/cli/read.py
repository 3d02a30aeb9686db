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
    from agents_core.db import Agent, Message, Page, Run, Session, SessionWithMessages
    from agents_core.db.repositories import SearchResult
    from agents_core.integrations.langgraph import ThreadState, ThreadSummary
    from agents_core.integrations.langgraph.threads import ThreadReader

__all__ = ["agents", "list_sessions", "list_threads", "runs", "search", "show", "thread"]

#: The largest ``seq`` the layer takes (``agents_core.db.validation.count``), written out so that
#: ``--help`` does not import the database layer: a larger ``--before`` is a usage error.
MAX_SEQ = 2**62


def list_sessions(
    user: Annotated[str | None, typer.Option(help="Only this user's sessions.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    before: Annotated[
        str | None, typer.Option(help="The cursor the previous page printed.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Active sessions, most recently updated first."""

    async def work() -> tuple[Page[Session], render.ShortIds]:
        from agents_core.db import SessionsRepository

        page = await SessionsRepository().list_active_page(user_id=user, limit=limit, cursor=before)
        return page, await common.short_ids(agents=True, as_json=as_json)

    def display(result: tuple[Page[Session], render.ShortIds]) -> None:
        page, short = result
        if as_json:
            common.print_json(page.items)
        else:
            render.out.print(render.sessions(page.items, short=short))
        if page.next_cursor is not None:  # on stderr under --json: stdout stays one document
            hint = Text(f"more: agents-core sessions --before {page.next_cursor}")
            (render.err if as_json else render.out).print(hint)

    common.run(work, display, as_json=as_json)


@dataclass(frozen=True, slots=True)
class _Shown:
    session: SessionWithMessages  # with the messages shown
    runs: list[Run]
    run: Run | None  # when a run was asked for: its session, that turn
    short: render.ShortIds

    @property
    def messages(self) -> list[Message]:
        return self.session.messages


def show(
    ident: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            help="A session id or a run id, or its last digits (as tables print it), or its first.",
        ),
    ],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most messages shown.")] = 100,
    before: Annotated[
        int | None, typer.Option(min=1, max=MAX_SEQ, help="Only messages before this seq.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """A session's transcript, runs and tool calls; for a run id, that run's turn and scores.

    A page of a session (its latest, or the one before --before) begins at a user message when
    it can, and shows the runs of its turns.
    """
    value = common.checked_id(ident, as_json=as_json)

    async def work() -> _Shown:
        from agents_core.db import MessagesRepository, RunsRepository, SessionsRepository

        kind, id = await common.resolve(value)
        if kind == "session":
            page = await SessionsRepository().find_transcript_page(id, before=before, limit=limit)
            return _Shown(page.session, page.runs, None, await common.short_ids(as_json=as_json))
        run = await RunsRepository().find_by_id(id)
        sessions = SessionsRepository()
        if run.input_seq is None:  # a framework's run: its turn among the latest messages
            session = await sessions.find_by_id(run.session_id, message_limit=limit)
            messages = session.messages
        else:  # from the user message that started it
            session = await sessions.find_by_id(run.session_id, message_limit=0)
            messages = await MessagesRepository().find_page(
                run.session_id, after=run.input_seq - 1, limit=limit
            )
        session = session.model_copy(update={"messages": _turn(messages, run)})
        return _Shown(session, [run], run, await common.short_ids(as_json=as_json))

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
        render.out.print(
            render_session_tree(shown.session, shown.runs, shown.messages, id_text=shown.short)
        )
        if shown.run is not None and shown.run.scores:
            render.out.print(render.scores(shown.run))
        first = shown.messages[0].seq if shown.messages else None
        if (
            shown.run is None
            and first is not None
            and first > shown.session.cleared_through_seq + 1
        ):
            older = f"agents-core show {shown.short(shown.session.id)} --before {first}"
            render.out.print(Text(f"older: {older}", style="dim"))

    common.run(work, display, as_json=as_json)


def _turn(messages: Sequence[Message], run: Run) -> list[Message]:
    """The messages of ``run``'s turn: from the user message that started it to the next one,
    as the trace tree groups them (``group_turns``: by ``input_seq``; a run without one by
    time, a framework's by its end, since it starts before its user message is stored)."""
    from agents_core.trace import group_turns

    for turn in group_turns(messages, [run]):
        if turn.runs and turn.user is not None:
            return list(turn.messages)
    # Its user message is not among the messages read: its tool results.
    run_id = str(run.id)
    return [m for m in messages if (m.tool_call_id or "").startswith(run_id)]


def runs(
    session_id: Annotated[
        str | None,
        typer.Argument(
            help="The session's id, or its last digits (as tables print it), or its first."
        ),
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

    async def work() -> tuple[list[Run], render.ShortIds]:
        from agents_core.db import InvalidStateError, RunsRepository

        repo = RunsRepository()
        if value is not None:
            _, id = await common.resolve(value, kinds=("session",))
            found = await repo.list_by_session(id)
        else:
            found = await repo.list_stale(timedelta(minutes=older_than))
        if abandon:
            abandoned = []
            for run in found:
                with contextlib.suppress(InvalidStateError):  # it finished meanwhile
                    abandoned.append(await repo.mark_abandoned(run.id))
            found = abandoned
        return found, await common.short_ids(as_json=as_json)

    def display(result: tuple[list[Run], render.ShortIds]) -> None:
        found, short = result
        if as_json:
            common.print_json(found)
            return
        if not found:
            render.out.print("no runs")
        for run in found:
            render.out.print(render.run_trace(run, short))
        if stale and found and not abandon:
            render.out.print(
                f"{len(found)} stale run(s); `agents-core runs --stale --abandon` closes them."
            )

    # Even with --abandon (a write) `runs` is a read command by its name: it never stops the
    # server a dead supervisor left (issue 25, E2); it says to run `agents-core server stop`.
    common.run(work, display, as_json=as_json)


def agents(
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 200,
    as_json: JsonOption = False,
) -> None:
    """Agents and the tools they may call, by name."""

    async def work() -> tuple[list[Agent], render.ShortIds]:
        from agents_core.db import AgentsRepository

        found = await AgentsRepository().list_by_name(limit=limit)
        return found, render.WHOLE if as_json else render.ShortIds(await common.recent_ids("agent"))

    def display(result: tuple[list[Agent], render.ShortIds]) -> None:
        found, short = result
        common.print_json(found) if as_json else render.out.print(render.agents(found, short))

    common.run(work, display, as_json=as_json)


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

    async def work() -> tuple[SearchResult, render.ShortIds]:
        from agents_core.db import MessagesRepository

        found = await MessagesRepository().search(
            phrase, user_id=user, since=first, until=last, limit=limit
        )
        return found, await common.short_ids(as_json=as_json)

    def display(result: tuple[SearchResult, render.ShortIds]) -> None:
        found, short = result
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
            render.out.print(render.search_hits(found, short))

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
