"""The conversation lifecycle commands of ``agents-core``: delete, fork, retention.

agents-core delete ID                       # a session (its id, or the end or start of it), whole
agents-core fork ID [--at-seq N] [--title T]
agents-core retention --older-than DAYS     # for cron: remove sessions idle that long, whole
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from agents_core.cli import common, render
from agents_core.cli.common import JsonOption

if TYPE_CHECKING:
    from agents_core.db import Session
    from agents_core.db.retention import SweepResult

__all__ = ["delete", "fork", "retention"]


def delete(
    ident: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            help="A session id, or its last digits (as tables print it), or its first.",
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Delete a session with its messages, runs, tool calls and payloads (run it again to
    finish one that was interrupted)."""
    value = common.checked_id(ident, as_json=as_json, what="a session")

    async def work() -> tuple[str, bool]:
        from agents_core.db import SessionsRepository

        _, session_id = await common.resolve(value, kinds=("session",))
        return str(session_id), await SessionsRepository().delete(session_id)

    def display(result: tuple[str, bool]) -> None:
        session_id, deleted = result
        if as_json:
            common.print_json({"id": session_id, "deleted": deleted})
        elif deleted:
            render.out.print(Text(f"deleted session {session_id}"))
        else:  # deleted by someone else meanwhile
            render.out.print(Text(f"session {session_id} was already gone"))

    common.run(work, display, as_json=as_json, writes=True)


def fork(
    ident: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            help="A session id, or its last digits (as tables print it), or its first.",
        ),
    ],
    at_seq: Annotated[
        int | None, typer.Option("--at-seq", min=0, help="Copy the messages up to this seq.")
    ] = None,
    title: Annotated[str | None, typer.Option(help="The fork's title.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Start a new session whose history is a copy of this one's (up to --at-seq)."""
    value = common.checked_id(ident, as_json=as_json, what="a session")

    async def work() -> Session:
        from agents_core.db import SessionsRepository

        _, session_id = await common.resolve(value, kinds=("session",))
        return await SessionsRepository().fork(session_id, at_seq=at_seq, title=title)

    def line(created: Session) -> Text:
        return Text(
            f"forked session {created.id} from {created.forked_from} at seq {created.forked_at_seq}"
        )

    common.run(work, common.printed(as_json, line), as_json=as_json, writes=True)


def retention(
    older_than: Annotated[
        float,
        typer.Option(
            "--older-than",
            min=0,
            max=common.MAX_AGE_DAYS,
            help="Days since a session's last activity.",
        ),
    ],
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Change nothing: say what would be removed."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Remove sessions idle for longer than --older-than days, whole (for cron)."""

    async def work() -> SweepResult:
        from agents_core.db.retention import sweep

        return await sweep(timedelta(days=older_than), dry_run=dry_run)

    def line(result: SweepResult) -> Text:
        if result.dry_run:
            return Text(
                f"dry run, nothing changed: would remove {result.removed} idle session(s) "
                f"({result.messages} message(s), {result.runs} run(s)) and finish "
                f"{result.resumed} interrupted deletion(s)"
            )
        return Text(
            f"removed {result.removed} idle session(s); finished {result.resumed} "
            f"interrupted deletion(s); kept {result.kept} that became active again"
        )

    common.run(work, common.printed(as_json, line), as_json=as_json, writes=True)
