"""``agents-core`` commands of the conversation lifecycle: delete, fork, retention.

    agents-core delete SESSION_ID                      # the session with everything it owns
    agents-core fork SESSION_ID [--at-seq N] [--title T]
    agents-core retention --older-than DAYS            # for cron: remove idle sessions whole

Registered on the application by ``register(app)`` (called once by ``agents_core.cli``); they
connect and print through that module's helpers, like every other command.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.markup import escape

from agents_core import cli
from agents_core.db import Message, MessagesRepository, Page, Session, SessionsRepository
from agents_core.db.retention import SweepResult, sweep

__all__ = ["register", "session_messages", "sessions_page"]


def register(app: typer.Typer) -> None:
    """Add the lifecycle commands to ``app``."""
    app.command("delete")(delete)
    app.command("fork")(fork)
    app.command("retention")(retention)


def delete(
    session_id: Annotated[str, typer.Argument(help="The session's id.")],
    as_json: cli.JsonOption = False,
) -> None:
    """Delete a session with its messages, runs, tool calls and payloads (re-run to finish one
    that was interrupted)."""
    cli._checked_id(session_id, "session")
    deleted = cli._run(lambda: SessionsRepository().delete(session_id))
    if as_json:
        cli._print_json({"id": session_id, "deleted": deleted})
    elif deleted:
        cli.out.print(f"deleted session {escape(session_id)}")
    if not deleted:
        cli.err.print(f"[red]error:[/] session {escape(session_id)} not found")
        raise typer.Exit(1)


def fork(
    session_id: Annotated[str, typer.Argument(help="The session's id.")],
    at_seq: Annotated[
        int | None, typer.Option("--at-seq", min=0, help="Copy messages up to this seq.")
    ] = None,
    title: Annotated[str | None, typer.Option(help="The fork's title.")] = None,
    as_json: cli.JsonOption = False,
) -> None:
    """Start a new session whose history is a copy of this one's (up to --at-seq)."""
    cli._checked_id(session_id, "session")
    created = cli._run(lambda: SessionsRepository().fork(session_id, at_seq=at_seq, title=title))
    if as_json:
        cli._print_json(created)
        return
    cli.out.print(f"forked session {created.id} from {session_id} at seq {created.forked_at_seq}")


def retention(
    older_than: Annotated[
        float, typer.Option("--older-than", min=0, help="Days since a session's last activity.")
    ],
    as_json: cli.JsonOption = False,
) -> None:
    """Remove sessions idle for longer than --older-than days, whole (for cron)."""
    result: SweepResult = cli._run(lambda: sweep(timedelta(days=older_than)))
    if as_json:
        cli._print_json(result)
        return
    cli.out.print(
        f"removed {result.removed} idle session(s); finished {result.resumed} interrupted "
        f"deletion(s); kept {result.kept} that became active again"
    )


async def sessions_page(user: str | None, limit: int, before: str | None) -> Page[Session]:
    """The page of ``agents-core sessions``: ``before`` is the cursor the previous one printed."""
    return await SessionsRepository().list_active_page(user_id=user, limit=limit, cursor=before)


def print_next_page(page: Page[Session], *, as_json: bool) -> None:
    if page.next_cursor is None:
        return
    hint = f"more: agents-core sessions --before {page.next_cursor}"
    (cli.err if as_json else cli.out).print(hint)


async def session_messages(session_id: str, limit: int, before: int | None) -> list[Message]:
    """The messages ``agents-core show`` prints: the latest ``limit``, or those before a seq."""
    return await MessagesRepository().find_page(session_id, before=before, limit=max(limit, 1))
