"""The terminal side of ``agents-core``: its two consoles and every Rich renderer of the CLI.

What the database holds is never read as markup: both consoles have markup, emoji and
highlighting off, and stored strings only ever go into ``Text`` objects, so a title like
``[/]`` prints as itself. Below ``NARROW_COLUMNS`` records print as blocks rather than as
squeezed tables. The session tree of ``show`` is ``agents_core.trace.render_session_tree``.

The consoles are made again for each invocation (``open_consoles``: a warm worker's command and
a test runner bring streams of their own), so other modules use them as ``render.out`` and
``render.err``, never as names imported once.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from bson import ObjectId

    from agents_core.db import Agent, Message, Run, Session, ToolCall
    from agents_core.db.repositories import SearchResult
    from agents_core.integrations.langgraph import CheckpointInfo, ThreadState, ThreadSummary

__all__ = [
    "EXCERPT",
    "NARROW_COLUMNS",
    "SHORT_ID",
    "WHOLE",
    "ShortIds",
    "age",
    "agents",
    "enum_value",
    "err",
    "excerpt",
    "format_ms",
    "open_consoles",
    "out",
    "run_trace",
    "scores",
    "session_header",
    "sessions",
    "shortest_ends",
    "spinner",
    "status",
    "thread",
    "threads",
    "transcript",
]

#: Lines of one channel value or pending write ``thread`` prints (``--json`` has everything).
VALUE_LINES = 40

#: Below this many columns, records are printed as blocks rather than as squeezed tables.
NARROW_COLUMNS = 100
#: Longest excerpt of a stored text in a table or block (``--json`` has everything).
EXCERPT = 300


def _console(*, stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # A file or a pipe gets room for ids (rich would assume 80 columns), unless COLUMNS says.
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(
        stderr=stderr, markup=False, emoji=False, highlight=False, width=160 if wide else None
    )


out = _console(stderr=False)
err = _console(stderr=True)


def open_consoles() -> None:
    """Consoles on this invocation's streams (called once per command, before it runs)."""
    global out, err
    out, err = _console(stderr=False), _console(stderr=True)


def spinner(text: str, *, stdout: bool = False) -> AbstractContextManager[object]:
    """A spinner while ``text`` goes on, on stderr (``stdout``: on stdout), on a terminal only:
    nothing at all when that stream is a pipe or a file."""
    console = out if stdout else err
    return console.status(text) if console.is_terminal else contextlib.nullcontext()


def _narrow() -> bool:
    return out.width < NARROW_COLUMNS


# ---------------------------------------------------------------------------------------------
# Values


def excerpt(text: str | None, width: int = EXCERPT) -> str:
    """The trace's ``excerpt`` at the CLI's width: ``text`` on one line, its control characters
    made visible (they never act on the terminal), cut with an ellipsis."""
    from agents_core.trace import excerpt as one_line  # with the database layer: not for --help

    return one_line(text, width)


def format_ms(ms: float | None) -> str:
    """A duration as every view prints it: the trace's ``format_ms`` (``4.2 ms``, ``12.5 s``,
    ``2 h 5 min``), which ``show``'s tree uses too."""
    from agents_core.trace import format_ms as one_way  # with the database layer: not for --help

    return one_way(ms)


def age(moment: datetime) -> str:
    """How long ago ``moment`` was: ``just now``, ``350 ms ago``, ``2 h 5 min ago``."""
    seconds = (datetime.now(UTC) - moment).total_seconds()
    return "just now" if seconds < 1 else f"{format_ms(seconds * 1000)} ago"


_ROLE_COLOURS = {"user": "cyan", "assistant": "green", "tool": "yellow", "system": "magenta"}


def status(value: str) -> Text:
    """A status (of a run, a call, a step, a session) in its colour: the same as in ``show``'s
    tree."""
    from agents_core.trace import status_style

    return Text(value, style=status_style(value))


def enum_value(enum_or_str: Any) -> str:
    """The string of a stored enum (a role, a status), or the string itself."""
    return str(getattr(enum_or_str, "value", enum_or_str))


#: Fewest hex digits of an id a table prints: its last 6, the counter of an ObjectId, which is
#: what tells apart the ids one process made (a session and its runs share the other 18).
SHORT_ID = 6


class ShortIds:
    """How a table prints ids: each recent id (``common.recent_ids``) as its last ``SHORT_ID``
    hex digits, or as many more as it takes to tell it from every other recent id of its kinds
    (sessions and runs are told apart from each other too: ``show`` takes either); any other
    id whole. What is printed, typed back, names the same id (``common.resolve``).

    Usage: ``short = await common.short_ids()`` (in a command's work), then ``short(run.id)``.
    ``WHOLE`` prints every id whole.
    """

    __slots__ = ("_forms",)

    def __init__(self, *groups: Iterable[ObjectId]) -> None:
        self._forms: dict[str, str] = {}
        for group in groups:
            self._forms.update(shortest_ends([str(id) for id in group]))

    def __call__(self, id: ObjectId | str | None) -> str:
        text = "" if id is None else str(id)
        return self._forms.get(text, text)


def shortest_ends(ids: Sequence[str]) -> dict[str, str]:
    """Each of ``ids`` (hex strings of one length) mapped to its shortest end, at least
    ``SHORT_ID`` characters long, that no other of them ends with."""
    ordered = sorted(set(ids), key=lambda id: id[::-1])
    forms = {}
    for i, id in enumerate(ordered):
        shared = max(
            (_common_end(id, ordered[j]) for j in (i - 1, i + 1) if 0 <= j < len(ordered)),
            default=0,
        )
        forms[id] = id[-min(len(id), max(SHORT_ID, shared + 1)) :]
    return forms


def _common_end(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


#: Every id printed whole (no recent ids read).
WHOLE = ShortIds()


def _id_column(table: Table, forms: Sequence[str], name: str = "id") -> None:
    width = max((len(form) for form in forms), default=SHORT_ID)
    table.add_column(name, no_wrap=True, min_width=width, overflow="fold")  # never truncated


# ---------------------------------------------------------------------------------------------
# Records


def transcript(messages: Sequence[Message], title: str = "Transcript") -> RenderableType:
    """Messages in seq order: a table, or blocks on a narrow terminal."""
    if not messages:
        return Text(f"{title}: no messages", style="dim")
    if _narrow():
        lines: list[RenderableType] = [Text(title, style="bold")]
        for message in messages:
            role = enum_value(message.role)
            lines.append(
                Text.assemble((f"#{message.seq} ", "dim"), (role, _ROLE_COLOURS.get(role, "")))
            )
            lines.append(Text("  " + excerpt(message.content)))
        return Group(*lines)
    table = Table(expand=False)  # the title on a line of its own: never wrapped to the table
    table.add_column("#", justify="right")
    table.add_column("role")
    table.add_column("content", max_width=100, overflow="fold")
    for message in messages:
        role = enum_value(message.role)
        table.add_row(
            Text(str(message.seq)),
            Text(role, style=_ROLE_COLOURS.get(role, "")),
            Text(excerpt(message.content)),
        )
    return Group(Text(title, style="bold"), table)


def run_trace(run: Run, short: ShortIds = WHOLE) -> RenderableType:
    """A run: its status, tool calls, tokens, cost and time, then its tool calls."""
    from agents_core.trace import run_duration_ms  # what show's tree prints as its duration

    took = format_ms(run_duration_ms(run)) if run.completed_at else ""
    calls = len(run.tool_calls)
    header = Text.assemble(
        ("Run ", "bold"), (short(run.id), "bold"), "  ", status(enum_value(run.status))
    )
    details = (
        (f"from {run.source}  " if run.source else "")
        + f"{calls} tool call{'' if calls == 1 else 's'}  tokens {run.tokens:,}  "
        f"cost ${run.cost:.6f}"
        + (f"  took {took}" if took else "")
        + f"  started {age(run.started_at)}"
    )
    if _narrow():  # its details on a line of their own rather than wrapped anywhere
        parts: list[RenderableType] = [header, Text("  " + details)]
    else:
        parts = [Text.assemble(header, "  ", details)]
    if run.error:
        parts.append(Text.assemble(("  error: ", "red"), excerpt(run.error)))
    if run.tool_calls:
        parts.append(_tool_calls(run, run.tool_calls))
    for step in run.steps:  # a framework's run: its handoffs, guardrails, agents, …
        parts.append(
            Text.assemble(
                f"  {_since_start(run, step.started_at)}  ",
                (step.kind, "bold"),
                " ",
                excerpt(step.name, 80),
                "  ",
                status(enum_value(step.status)),
                *(("  ", (excerpt(step.error, 120), "red")) if step.error else ()),
            )
        )
    return Group(*parts)


def _since_start(run: Run, moment: datetime) -> str:
    """Where ``moment`` is in ``run``: ``+12.0 ms`` after its start (``+0.0 ms`` before it)."""
    return "+" + format_ms(max((moment - run.started_at).total_seconds() * 1000, 0.0))


def _tool_calls(run: Run, calls: Sequence[ToolCall]) -> RenderableType:
    def took(call: ToolCall) -> str:
        return format_ms(call.duration_ms)

    if _narrow():
        lines: list[RenderableType] = []
        for call in calls:
            lines.append(
                Text.assemble(
                    f"  {_since_start(run, call.started_at)}  ",
                    (call.tool_name, "bold"),
                    "  ",
                    status(enum_value(call.status)),
                    f"  took {took(call)}",
                )
            )
            lines.append(Text("    in:  " + excerpt(call.input, 200)))
            lines.append(Text("    out: " + excerpt(call.output, 200)))
        return Group(*lines)
    table = Table(expand=False)
    for column in ("at", "tool", "status", "took", "input", "output"):
        right = column in ("at", "took")
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    for call in calls:
        table.add_row(
            Text(_since_start(run, call.started_at)),
            Text(call.tool_name),
            status(enum_value(call.status)),
            Text(took(call)),
            Text(excerpt(call.input, 60)),
            Text(excerpt(call.output, 60)),
        )
    return table


def scores(run: Run, title: str = "Scores") -> RenderableType:
    """The run's scores in the order they were added: name, value or label, who gave it, when,
    and why. A table, or blocks on a narrow terminal."""
    from agents_core.trace import format_score

    if not run.scores:
        return Text(f"{title}: none", style="dim")
    if _narrow():
        lines: list[RenderableType] = [Text(title, style="bold")]
        for score in run.scores:
            line = Text.assemble((score.name, "bold"), f" {format_score(score)}")
            if score.by is not None:
                line.append(f"  by {score.by}")
            line.append(f"  {age(score.created_at)}", style="dim")
            lines.append(line)
            if score.comment:
                lines.append(Text("  " + excerpt(score.comment, 200)))
        return Group(*lines)
    table = Table(expand=False)
    for column in ("name", "score", "by", "when", "comment"):
        table.add_column(column, justify="right" if column == "score" else "left", overflow="fold")
    for score in run.scores:
        table.add_row(
            Text(score.name),
            Text(format_score(score)),
            Text(score.by or ""),
            Text(age(score.created_at)),
            Text(excerpt(score.comment, 120)),
        )
    return Group(Text(title, style="bold"), table)


def sessions(
    found: Sequence[Session],
    title: str = "Active sessions (newest first)",
    short: ShortIds = WHOLE,
) -> RenderableType:
    """Sessions with their user, message count, agent and last activity."""
    if not found:
        return Text("no active sessions", style="dim")
    if _narrow():
        lines: list[RenderableType] = [Text(title, style="bold")]
        for session in found:
            lines.append(
                Text.assemble((short(session.id), "bold"), "  ", session.title or "(untitled)")
            )
            lines.append(
                Text(
                    f"  user {session.user_id or '—'}  messages {session.last_seq}  "
                    f"agent {short(session.active_agent_id) or '—'}  "
                    f"updated {age(session.updated_at)}"
                )
            )
        return Group(*lines)
    ids = [short(session.id) for session in found]
    agent_ids = [short(session.active_agent_id) for session in found]
    table = Table()
    _id_column(table, ids)
    table.add_column("title", overflow="fold")
    table.add_column("user", overflow="fold")
    table.add_column("messages", justify="right")
    _id_column(table, agent_ids, "agent")
    table.add_column("updated", no_wrap=True)
    for session, id, agent_id in zip(found, ids, agent_ids, strict=True):
        table.add_row(
            Text(id),
            Text(session.title or ""),
            Text(session.user_id or ""),
            Text(str(session.last_seq)),
            Text(agent_id),
            Text(age(session.updated_at)),
        )
    return Group(Text(title, style="bold"), table)


def session_header(session: Session) -> RenderableType:
    """Two lines: the session's id, title and status; its user, agent, messages and age."""
    return Group(
        Text.assemble(
            ("Session ", "bold"),
            (str(session.id), "bold"),
            "  ",
            session.title or "(untitled)",
            "  ",
            status(enum_value(session.status)),
        ),
        Text(
            f"user {session.user_id or '—'}  agent {session.active_agent_id or '—'}  "
            f"messages {session.last_seq}  updated {age(session.updated_at)}"
        ),
    )


def agents(found: Sequence[Agent], short: ShortIds = WHOLE) -> RenderableType:
    """Agents with their model, tools and instructions."""
    if not found:
        return Text("no agents", style="dim")
    if _narrow():
        lines: list[RenderableType] = []
        for agent in found:
            lines.append(Text.assemble((agent.name, "bold"), "  ", (short(agent.id), "dim")))
            lines.append(
                Text(f"  model {agent.model or '—'}  tools {', '.join(agent.tools) or '—'}")
            )
            if agent.instructions:
                lines.append(Text("  " + excerpt(agent.instructions, 200)))
        return Group(*lines)
    ids = [short(agent.id) for agent in found]
    table = Table()
    table.add_column("name", overflow="fold")
    _id_column(table, ids)
    table.add_column("model", overflow="fold")
    table.add_column("tools", overflow="fold")
    table.add_column("instructions", max_width=60, overflow="fold")
    for agent, id in zip(found, ids, strict=True):
        table.add_row(
            Text(agent.name),
            Text(id),
            Text(agent.model or ""),
            Text(", ".join(agent.tools)),
            Text(excerpt(agent.instructions, 120)),
        )
    return Group(Text("Agents", style="bold"), table)


def search_hits(found: SearchResult, short: ShortIds = WHOLE) -> RenderableType:
    """What a search found: when, where, who, and the match in its context; then how it was
    searched."""
    from agents_core.trace import visible  # with the database layer: not for --help

    if found.method == "text-index":
        how = "searched with the text index"
        if found.searched_since is not None:
            how += (
                f" (more messages matched its words than one search reads: those since "
                f"{found.searched_since:%Y-%m-%d %H:%M} UTC were checked)"
            )
    elif found.searched_since is not None:
        how = (
            f"searched the newest {found.scanned:,} messages (since "
            f"{found.searched_since:%Y-%m-%d %H:%M} UTC): the server has no text index"
        )
    else:
        how = f"searched {found.scanned or 0:,} messages one by one: the server has no text index"
    if not found.hits:
        return Group(Text(f"no message contains {found.phrase!r}", style="dim"), Text(how, "dim"))
    table = Table(title=f"Messages that contain {found.phrase!r} (newest first)")
    table.add_column("when", no_wrap=True)
    ids = [short(hit.session_id) for hit in found.hits]
    _id_column(table, ids, "session")
    table.add_column("title", overflow="fold")
    table.add_column("seq", justify="right")
    table.add_column("role")
    table.add_column("text", overflow="fold")
    for hit, id in zip(found.hits, ids, strict=True):
        text = Text.assemble(
            visible(hit.excerpt[: hit.start]),
            (visible(hit.excerpt[hit.start : hit.end]), "bold reverse"),
            visible(hit.excerpt[hit.end :]),
        )
        table.add_row(
            age(hit.created_at),
            id,
            visible(hit.session_title or "(untitled)"),
            str(hit.seq),
            hit.role.value,
            text,
        )
    return Group(table, Text(how, style="dim"))


def _checkpoint_when(checkpoint: CheckpointInfo | None) -> str:
    return "" if checkpoint is None or checkpoint.created_at is None else age(checkpoint.created_at)


def _step(checkpoint: CheckpointInfo | None) -> str:
    """``step 3 (loop)``: where a checkpoint is in its thread's run."""
    if checkpoint is None:
        return "no checkpoint"
    step = "—" if checkpoint.step is None else str(checkpoint.step)
    return f"step {step}" + (f" ({checkpoint.source})" if checkpoint.source else "")


def threads(found: Sequence[ThreadSummary]) -> RenderableType:
    """LangGraph threads with their latest checkpoint."""
    if not found:
        return Text("no LangGraph threads", style="dim")
    title = "LangGraph threads (by id)"
    if _narrow():
        lines: list[RenderableType] = [Text(title, style="bold")]
        for summary in found:
            latest = summary.latest
            lines.append(Text(excerpt(summary.thread_id, 200), style="bold"))
            lines.append(Text(f"  {_step(latest)}  updated {_checkpoint_when(latest) or '—'}"))
        return Group(*lines)
    table = Table()
    table.add_column("thread", overflow="fold")
    table.add_column("latest", no_wrap=True)
    table.add_column("updated", no_wrap=True)
    table.add_column("checkpoint", no_wrap=True)
    for summary in found:
        latest = summary.latest
        table.add_row(
            Text(excerpt(summary.thread_id, 200)),
            Text(_step(latest)),
            Text(_checkpoint_when(latest)),
            Text("" if latest is None else latest.checkpoint_id),
        )
    return Group(Text(title, style="bold"), table)


def _value_lines(text: str) -> list[RenderableType]:
    """A value's text, a line at a time (each cut to ``EXCERPT``), at most ``VALUE_LINES``."""
    lines = text.splitlines() or [""]
    shown: list[RenderableType] = [
        Text("    " + " " * (len(line) - len(line.lstrip(" "))) + excerpt(line))
        for line in lines[:VALUE_LINES]
    ]
    if len(lines) > VALUE_LINES:
        more = len(lines) - VALUE_LINES
        shown.append(Text(f"    … {more} more line(s): --json has the whole value", style="dim"))
    return shown


def thread(state: ThreadState) -> RenderableType:
    """A LangGraph thread: its state, its pending writes, its checkpoints (newest first)."""
    latest = state.latest
    parts: list[RenderableType] = [
        Text.assemble(
            ("Thread ", "bold"),
            (excerpt(state.thread_id, 200), "bold"),
            *(("  ", ("interrupted", "yellow")) if state.interrupted else ()),
        ),
        Text(
            f"latest {_step(latest)}"
            + (f"  updated {_checkpoint_when(latest)}" if _checkpoint_when(latest) else "")
            + f"  namespaces {len(state.namespaces)}"
        ),
    ]
    if state.session_id is not None:
        parts.append(Text(f"runs: agents-core show {state.session_id}"))
    parts.append(Text("State", style="bold"))
    if not state.values:
        parts.append(Text("  no values", style="dim"))
    for value in state.values:
        parts.append(Text("  " + excerpt(value.channel, 200), style="cyan"))
        parts.extend(_value_lines(value.text))
    if state.pending_writes:
        parts.append(Text("Pending writes", style="bold"))
        for write in state.pending_writes:
            parts.append(
                Text.assemble(
                    "  ",
                    (excerpt(write.channel, 200), "yellow"),
                    (f"  task {excerpt(write.task_id, 80)}", "dim"),
                )
            )
            parts.extend(_value_lines(write.text))
    parts.append(Text("Checkpoints (newest first)", style="bold"))
    if not state.checkpoints:
        parts.append(Text("  none", style="dim"))
    if _narrow():
        for checkpoint in state.checkpoints:
            parts.append(
                Text(
                    f"  #{checkpoint.seq}  {_step(checkpoint)}  "
                    f"{_checkpoint_when(checkpoint)}  {checkpoint.checkpoint_id}"
                )
            )
        return Group(*parts)
    table = Table(expand=False)
    for column in ("#", "step", "source", "created", "checkpoint", "parent"):
        table.add_column(column, justify="right" if column in ("#", "step") else "left")
    for checkpoint in state.checkpoints:
        table.add_row(
            Text("" if checkpoint.seq is None else str(checkpoint.seq)),
            Text("" if checkpoint.step is None else str(checkpoint.step)),
            Text(checkpoint.source or ""),
            Text(_checkpoint_when(checkpoint)),
            Text(checkpoint.checkpoint_id),
            Text(checkpoint.parent_id or ""),
        )
    if state.checkpoints:
        parts.append(table)
    return Group(*parts)
