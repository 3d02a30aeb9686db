"""The terminal trace tree: a session's turns with their steps, duration bars and a summary.

Usage::

    from rich.console import Console
    from agents_core.trace import render_session_tree

    session = await SessionsRepository().find_by_id(session_id, message_limit=100)
    runs = await RunsRepository().list_by_session(session_id)
    Console().print(render_session_tree(session, runs))

Everything stored is rendered as ``rich.text.Text``, never parsed as markup. ``excerpt``,
``status_style`` and ``format_ms`` are the one way the terminal shortens text, colours a status
and prints a duration (the CLI's tables use them too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from bson import ObjectId
from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from agents_core.db import (
    Message,
    ModelCallStatus,
    Run,
    RunStatus,
    RunStep,
    Session,
    SessionWithMessages,
    StepStatus,
    ToolCallStatus,
)
from agents_core.trace.model import (
    Step,
    Timeline,
    Turn,
    call_duration_ms,
    format_ms,
    group_turns,
    ms_between,
    run_duration_ms,
    run_timeline,
    turn_steps,
)

__all__ = [
    "BAR_COLUMNS",
    "EXCERPT",
    "excerpt",
    "render_session_tree",
    "render_summary",
    "status_style",
    "visible",
]

#: Columns of a duration bar in the terminal tree.
BAR_COLUMNS = 24
#: Characters of a stored text shown on one line of the tree.
EXCERPT = 80

#: Every status the terminal shows, in its colour: a session's, a run's, a call's, a step's.
_STATUS_STYLE = {
    "active": "green",
    "archived": "dim",
    "success": "green",
    "completed": "green",
    "error": "bold red",
    "failed": "bold red",
    "pending": "yellow",
    "running": "yellow",
}


#: Control characters as visible symbols: C0 (but newline and tab) as their Control Pictures
#: (``\x1b`` → ``␛``), DEL as ``␡``, C1 as an escape (``\x9b`` → ``\\x9b``). Stored text comes
#: from models and from tools that read web pages: an ESC byte printed raw lets it set the
#: window title, write to the clipboard (OSC 52) or clear the screen.
_VISIBLE = {
    **{code: chr(0x2400 + code) for code in range(0x20) if chr(code) not in "\n\t"},
    0x7F: "\u2421",
    **{code: f"\\x{code:02x}" for code in range(0x80, 0xA0)},
}


def visible(text: str) -> str:
    """``text`` safe to print on a terminal: every control character but newline and tab shown
    as a visible symbol instead of acting (see ``_VISIBLE``)."""
    return text.translate(_VISIBLE)


def excerpt(text: str | None, width: int = EXCERPT) -> str:
    """``text`` on one line (white space folded), control characters made ``visible``, cut to
    ``width`` characters with an ellipsis."""
    if not text:
        return ""
    flat = visible(" ".join(text.split()))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _call_bar(
    started_at: datetime, duration_ms: float, timeline: Timeline | None, style: str
) -> Text:
    """The bar of a call or step on its run's axis (placed at 0 before the run's start); without
    a timeline, the whole width."""
    if timeline is None:
        return _bar(0.0, duration_ms, duration_ms, style)
    offset = max(ms_between(started_at, timeline.run.started_at), 0.0)
    return _bar(offset, duration_ms, timeline.total_ms, style)


def _bar(offset_ms: float, duration_ms: float, total_ms: float, style: str) -> Text:
    """A waterfall bar of ``BAR_COLUMNS`` cells: blank up to the start, blocks for the duration."""
    if total_ms <= 0:
        return Text("▏".ljust(BAR_COLUMNS), style=style)
    start = min(int(offset_ms / total_ms * BAR_COLUMNS), BAR_COLUMNS - 1)
    cells = max(1, round(duration_ms / total_ms * BAR_COLUMNS))
    cells = min(cells, BAR_COLUMNS - start)
    text = Text(" " * start, style="dim")
    text.append("█" * cells, style=style)
    text.append(" " * (BAR_COLUMNS - start - cells))
    return text


def status_style(status: str) -> str:
    """The Rich style of a session's, run's, call's or step's status (green, red, yellow, dim;
    none if unknown)."""
    return _STATUS_STYLE.get(status, "")


def _append_error(label: Text, error: str | None) -> None:
    label.append("  error: ", style="bold red")
    label.append(excerpt(error, 120), style="red")


def _run_label(run: Run, id_text: Callable[[ObjectId], str]) -> Text:
    tools = len(run.tool_calls)
    errors = sum(call.status == ToolCallStatus.error for call in run.tool_calls)
    label = Text.assemble(
        ("run ", "bold"),
        (id_text(run.id), "bold"),
        "  ",
        (run.status.value, status_style(run.status.value)),
        f"  {len(run.model_calls)} model call(s) · {tools} tool call(s)",
    )
    if errors:
        label.append(f" ({errors} failed)", style="red")
    if run.steps:
        label.append(f" · {len(run.steps)} step(s)")
    label.append(f" · {run.tokens:,} tokens · ${run.cost:.6f} · {format_ms(run_duration_ms(run))}")
    if run.error:
        _append_error(label, run.error)
    return label


def _step_label(step: Step, timeline: Timeline | None) -> Text:
    if step.model_call is not None:
        call = step.model_call
        failed = call.status == ModelCallStatus.error
        style = "bold red" if failed else "blue"
        label = Text.assemble(
            _call_bar(call.started_at, call.duration_ms, timeline, style),
            " ",
            ("model ", "bold"),
            (call.model, style),
            f"  {format_ms(call.duration_ms)}",
            f"  {call.input_tokens:,} in / {call.output_tokens:,} out",
        )
        if call.cached_input_tokens:
            label.append(f" ({call.cached_input_tokens:,} cached)")
        if call.reasoning_tokens:
            label.append(f" ({call.reasoning_tokens:,} reasoning)")
        label.append(f"  ${call.cost:.6f}")
        if call.finish_reason:
            label.append(f"  {visible(call.finish_reason)}", style="dim")
        if failed:
            _append_error(label, call.error)
        return label
    if step.tool_call is not None:
        tool = step.tool_call
        style = status_style(tool.status.value) or "yellow"
        duration = call_duration_ms(tool)
        return Text.assemble(
            _call_bar(tool.started_at, duration or 0.0, timeline, style),
            " ",
            ("tool ", "bold"),
            (tool.tool_name, style),
            "  ",
            (tool.status.value, style),
            f"  {format_ms(duration)}  ",
            (excerpt(tool.input, 40), "dim"),
            " → ",
            (excerpt(tool.output, 60), "red" if tool.status == ToolCallStatus.error else ""),
        )
    if step.run_step is not None:
        return _run_step_label(step.run_step, timeline)
    message = step.message
    assert message is not None
    if step.kind == "answer":
        return Text.assemble(("answer: ", "bold green"), excerpt(message.content))
    if step.kind == "assistant":
        label = Text("assistant:", style="green")
        if message.content:
            label.append(" " + excerpt(message.content))
        if message.requested_tool_calls:
            names = ", ".join(request.name for request in message.requested_tool_calls)
            label.append(f" (asks for {names})", style="dim")
        return label
    return Text.assemble((f"{message.role.value}: ", "magenta"), excerpt(message.content))


def _run_step_label(step: RunStep, timeline: Timeline | None) -> Text:
    failed = step.status == StepStatus.error
    style = "bold red" if failed else "magenta"
    duration = step.duration_ms or 0.0
    label = Text.assemble(
        _call_bar(step.started_at, duration, timeline, style),
        " ",
        (f"{step.kind} ", "bold"),
        (step.name, style),
        f"  {format_ms(step.duration_ms)}",
    )
    if failed:
        _append_error(label, step.error)
    return label


def _turn_tree(number: int, turn: Turn, id_text: Callable[[ObjectId], str]) -> Tree:
    heading = Text(f"Turn {number}", style="bold")
    if turn.user is not None:
        heading.append(f"  #{turn.user.seq}  ", style="dim")
        heading.append(excerpt(turn.user.content), style="cyan")
    elif not turn.messages:
        heading.append("  (no messages recorded)", style="dim")
    else:
        heading.append("  (begins before the messages shown)", style="dim")
    tree = Tree(heading, guide_style="dim")
    timelines = {str(run.id): run_timeline(run) for run in turn.runs}
    run_nodes = {str(run.id): tree.add(_run_label(run, id_text)) for run in turn.runs}
    for step in turn_steps(turn):
        if step.kind == "user":
            continue  # the heading
        run = step.run or _run_at(turn.runs, step.at)
        if run is not None:
            run_nodes[str(run.id)].add(_step_label(step, timelines[str(run.id)]))
        else:
            tree.add(_step_label(step, None))
    return tree


def _run_at(runs: Sequence[Run], at: datetime) -> Run | None:
    """The latest of ``runs`` that was going on at ``at`` (a message it appended)."""
    found = None
    for run in runs:
        if run.started_at <= at and (run.completed_at is None or at <= run.completed_at):
            found = run
    return found


def _which(messages: Sequence[Message], last_seq: int) -> str:
    """Which of the session's messages are shown: the latest ones, or a page of older ones."""
    if not messages:
        return f"none of {last_seq} messages"
    if messages[-1].seq >= last_seq:
        return f"latest {len(messages)} of {last_seq} messages"
    return f"messages #{messages[0].seq} to #{messages[-1].seq} of {last_seq}"


def render_summary(turns: Sequence[Turn]) -> Text:
    """One line: turns, runs, tool calls and errors, tokens, cost, time."""
    runs = [run for turn in turns for run in turn.runs]
    failed_runs = sum(run.status == RunStatus.failed for run in runs)
    tools = [call for run in runs for call in run.tool_calls]
    tool_errors = sum(call.status == ToolCallStatus.error for call in tools)
    model_errors = sum(
        call.status == ModelCallStatus.error for run in runs for call in run.model_calls
    )
    tokens = sum(run.tokens for run in runs)
    cost = sum(run.cost for run in runs)
    elapsed = sum(run_duration_ms(run) or 0.0 for run in runs)
    line = Text(f"{len(turns)} turn(s) · {len(runs)} run(s)")
    if failed_runs:
        line.append(f" ({failed_runs} failed)", style="red")
    line.append(f" · {len(tools)} tool call(s)")
    line.append(f" ({tool_errors} error(s))", style="red" if tool_errors else "")
    if model_errors:
        line.append(f" · {model_errors} failed model call(s)", style="red")
    line.append(f" · {tokens:,} tokens · ${cost:.6f} · {format_ms(elapsed)}")
    return line


def render_session_tree(
    session: Session | SessionWithMessages,
    runs: Sequence[Run],
    messages: Sequence[Message] | None = None,
    *,
    id_text: Callable[[ObjectId], str] = str,
) -> RenderableType:
    """The session's turns as trees (model → tool → model → answer) with duration bars.

    ``messages`` default to the session's own (a ``SessionWithMessages``); failed calls are red
    inside their turn; the last line sums up turns, runs, tool calls and errors, tokens, cost
    and time of what is shown. ``id_text`` prints a run's id (the CLI: its short form).
    """
    if messages is None:
        messages = session.messages if isinstance(session, SessionWithMessages) else []
    turns = group_turns(messages, runs)
    parts: list[RenderableType] = [_turn_tree(n, turn, id_text) for n, turn in enumerate(turns, 1)]
    if not turns:
        parts.append(Text("no messages", style="dim"))
    summary = render_summary(turns)
    if len(messages) < session.last_seq:
        summary.append(f"  ({_which(messages, session.last_seq)})", style="dim")
    parts.append(summary)
    return Group(*parts)
