"""``agents-core`` commands of the conversation lifecycle: delete, fork, retention.

    agents-core delete ID                       # a session (id or unique prefix), whole
    agents-core fork ID [--at-seq N] [--title T]
    agents-core retention --older-than DAYS     # for cron: remove sessions idle that long, whole

Registered on the application by ``register(app)`` (called once by ``agents_core.cli``); they
connect, resolve ids and print through that module's helpers, like every other command, and
import ``agents_core.db`` only when they run (``--help`` stays fast).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from agents_core import cli

if TYPE_CHECKING:
    from bson import ObjectId

    from agents_core.db import Message, Page, Session
    from agents_core.db.retention import SweepResult

__all__ = ["print_next_page", "register", "session_messages", "sessions_page"]


def register(app: typer.Typer) -> None:
    """Add the lifecycle commands to ``app``."""
    app.command("delete")(delete)
    app.command("fork")(fork)
    app.command("retention")(retention)


def delete(
    ident: Annotated[
        str, typer.Argument(metavar="ID", help="A session id, or a unique prefix of one.")
    ],
    as_json: cli.JsonOption = False,
) -> None:
    """Delete a session with its messages, runs, tool calls and payloads (run it again to
    finish one that was interrupted)."""
    value = cli._checked_id(ident, as_json=as_json, what="a session")

    async def work() -> tuple[str, bool]:
        from agents_core.db import SessionsRepository

        _, session_id = await cli._resolve(value, kinds=("session",))
        return str(session_id), await SessionsRepository().delete(session_id)

    def render(result: tuple[str, bool]) -> None:
        session_id, deleted = result
        if as_json:
            cli._print_json({"id": session_id, "deleted": deleted})
        elif deleted:
            cli.out.print(Text(f"deleted session {session_id}"))
        else:  # deleted by someone else meanwhile
            cli.out.print(Text(f"session {session_id} was already gone"))

    cli._run(work, render, as_json=as_json)


def fork(
    ident: Annotated[
        str, typer.Argument(metavar="ID", help="A session id, or a unique prefix of one.")
    ],
    at_seq: Annotated[
        int | None, typer.Option("--at-seq", min=0, help="Copy the messages up to this seq.")
    ] = None,
    title: Annotated[str | None, typer.Option(help="The fork's title.")] = None,
    as_json: cli.JsonOption = False,
) -> None:
    """Start a new session whose history is a copy of this one's (up to --at-seq)."""
    value = cli._checked_id(ident, as_json=as_json, what="a session")

    async def work() -> Session:
        from agents_core.db import SessionsRepository

        _, session_id = await cli._resolve(value, kinds=("session",))
        return await SessionsRepository().fork(session_id, at_seq=at_seq, title=title)

    def render(created: Session) -> None:
        if as_json:
            cli._print_json(created)
            return
        cli.out.print(
            Text(
                f"forked session {created.id} from {created.forked_from} "
                f"at seq {created.forked_at_seq}"
            )
        )

    cli._run(work, render, as_json=as_json)


def retention(
    older_than: Annotated[
        float, typer.Option("--older-than", min=0, help="Days since a session's last activity.")
    ],
    as_json: cli.JsonOption = False,
) -> None:
    """Remove sessions idle for longer than --older-than days, whole (for cron)."""

    async def work() -> SweepResult:
        from agents_core.db.retention import sweep

        return await sweep(timedelta(days=older_than))

    def render(result: SweepResult) -> None:
        if as_json:
            cli._print_json(result)
            return
        cli.out.print(
            Text(
                f"removed {result.removed} idle session(s); finished {result.resumed} "
                f"interrupted deletion(s); kept {result.kept} that became active again"
            )
        )

    cli._run(work, render, as_json=as_json)


async def sessions_page(user: str | None, limit: int, before: str | None) -> Page[Session]:
    """The page of ``agents-core sessions``: ``before`` is the cursor the previous one printed."""
    from agents_core.db import SessionsRepository

    return await SessionsRepository().list_active_page(user_id=user, limit=limit, cursor=before)


def print_next_page(page: Page[Session], *, as_json: bool) -> None:
    """How to get the next page (on stderr under ``--json``, so stdout stays one document)."""
    if page.next_cursor is not None:
        hint = Text(f"more: agents-core sessions --before {page.next_cursor}")
        (cli.err if as_json else cli.out).print(hint)


async def session_messages(session_id: ObjectId, limit: int, before: int | None) -> list[Message]:
    """The messages ``agents-core show --before SEQ`` prints: the ``limit`` before ``before``."""
    from agents_core.db import MessagesRepository

    return await MessagesRepository().find_page(session_id, before=before, limit=max(limit, 1))
