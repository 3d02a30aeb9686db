"""What a run looked like: turns, their steps, and a run's timeline; and the terminal trace tree.

Usage::

    from rich.console import Console
    from agents_core.trace import render_session_tree, run_timeline

    session = await SessionsRepository().find_by_id(session_id, message_limit=100)
    runs = await RunsRepository().list_by_session(session_id)
    Console().print(render_session_tree(session, runs))

    timeline = run_timeline(run)  # bars placed by start offset and sized by duration
    for bar in timeline.bars:
        print(bar.kind, bar.name, bar.offset_ms, bar.duration_ms, bar.status)

The web view (``agents_core.web``) and ``agents-core show`` both build on these functions, so the
browser and the terminal show the same turns and the same bars.

Design notes: a turn is a user message and what followed it until the next one. Runs do not
point to messages, but ``AgentRunner`` appends the user message *before* it starts the run, so
a run belongs to the latest turn whose user message was created at or before the run started
(timestamps are stored to the millisecond; ties go to the later turn, as they must). A
framework's run (``Run.source``) is recorded when it has ended and its framework stores the
user's input after the run began: it belongs to the latest turn whose user message was created
at or before the run *ended*; its steps (``RunStep``) are shown among its calls. Inside a
turn, order comes from what the writes recorded, never from clocks: messages by ``seq``, a
run's calls by ``Run.calls`` (``call_order``), and each call right after the message it
followed (``turn_steps``).
Tool messages are not shown as steps of their own: the tool call they carry is (whole, with
its input and status), and a tool message whose call is not among the runs shown stays a
message. Everything stored is rendered as ``rich.text.Text``, never parsed as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from agents_core.db import (
    Message,
    MessageRole,
    ModelCall,
    ModelCallStatus,
    Run,
    RunStatus,
    RunStep,
    Session,
    SessionWithMessages,
    StepStatus,
    ToolCall,
    ToolCallStatus,
)

__all__ = [
    "Bar",
    "Step",
    "Timeline",
    "Turn",
    "call_duration_ms",
    "format_ms",
    "group_turns",
    "render_session_tree",
    "render_summary",
    "run_duration_ms",
    "run_timeline",
    "step_name",
    "turn_steps",
]

StepKind = Literal["user", "model", "tool", "step", "assistant", "answer", "message"]
#: ``step``: what a framework's run did besides calls (a handoff, a guardrail, …: ``RunStep``).
BarKind = Literal["model", "tool", "step"]

#: Columns of a duration bar in the terminal tree.
BAR_COLUMNS = 24
#: Characters of a stored text shown on one line of the tree.
EXCERPT = 80

_STATUS_STYLE = {
    "success": "green",
    "completed": "green",
    "error": "bold red",
    "failed": "bold red",
    "pending": "yellow",
    "running": "yellow",
}


def _ms(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() * 1000


def call_duration_ms(call: ModelCall | ToolCall) -> float | None:
    """The recorded duration of a call (``None``: a tool call still pending)."""
    if isinstance(call, ModelCall):
        return call.duration_ms
    if call.duration_ms is not None:
        return call.duration_ms
    if call.completed_at is not None:
        return max(_ms(call.completed_at, call.started_at), 0.0)
    return None


def step_name(step: RunStep) -> str:
    """What a framework run's step is called in the views: its kind, then its name."""
    return step.kind if step.name == step.kind else f"{step.kind} {step.name}"


def run_duration_ms(run: Run) -> float | None:
    """Wall time of a finished run (``None`` while it runs)."""
    if run.completed_at is None:
        return None
    return max(_ms(run.completed_at, run.started_at), 0.0)


@dataclass(frozen=True, slots=True)
class Bar:
    """One model call, tool call or step on a run's time axis (milliseconds from its start)."""

    kind: BarKind
    #: The model, the tool's name, or a step's kind and name (``handoff triage → billing``).
    name: str
    #: The recorded status: ``success``/``error`` (``pending`` for an unfinished tool call).
    status: str
    offset_ms: float
    #: The recorded duration (``duration_ms``); 0 for a pending tool call.
    duration_ms: float
    call: ModelCall | ToolCall | RunStep
    tokens: int = 0
    cost: float = 0.0
    error: str | None = None

    @property
    def end_ms(self) -> float:
        return self.offset_ms + self.duration_ms


@dataclass(frozen=True, slots=True)
class Timeline:
    """A run's bars in start order, and the span of the axis that holds them all."""

    run: Run
    bars: list[Bar]
    #: From the run's start to the later of its end and the last call's end.
    total_ms: float

    def fraction(self, ms: float) -> float:
        """``ms`` as a fraction of the axis (0 for an empty one)."""
        return ms / self.total_ms if self.total_ms > 0 else 0.0


def run_timeline(run: Run) -> Timeline:
    """The waterfall of a run: each call placed at its start and sized by its recorded duration.

    The bars are in the order the calls were recorded (``Run.calls``), never re-sorted by
    their clock: two calls often start in the same millisecond. A call recorded before the
    run's start (clocks of two machines) is placed at 0.
    """
    bars: list[Bar] = []
    for call in run.calls():
        if isinstance(call, ModelCall):
            bars.append(
                Bar(
                    kind="model",
                    name=call.model,
                    status=call.status.value,
                    offset_ms=max(_ms(call.started_at, run.started_at), 0.0),
                    duration_ms=call.duration_ms,
                    call=call,
                    tokens=call.tokens,
                    cost=call.cost,
                    error=call.error,
                )
            )
        elif isinstance(call, ToolCall):
            failed = call.status == ToolCallStatus.error
            bars.append(
                Bar(
                    kind="tool",
                    name=call.tool_name,
                    status=call.status.value,
                    offset_ms=max(_ms(call.started_at, run.started_at), 0.0),
                    duration_ms=call_duration_ms(call) or 0.0,
                    call=call,
                    error=(call.error or call.output) if failed else None,
                )
            )
        else:
            bars.append(
                Bar(
                    kind="step",
                    name=step_name(call),
                    status=call.status.value,
                    offset_ms=max(_ms(call.started_at, run.started_at), 0.0),
                    duration_ms=call.duration_ms or 0.0,
                    call=call,
                    error=call.error,
                )
            )
    total = max([run_duration_ms(run) or 0.0, *(bar.end_ms for bar in bars)])
    return Timeline(run=run, bars=bars, total_ms=total)


@dataclass(slots=True)
class Turn:
    """A user message and what followed it; ``user`` is ``None`` for a turn cut off at its start."""

    user: Message | None
    messages: list[Message] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)

    @property
    def started_at(self) -> datetime | None:
        return self.user.created_at if self.user is not None else None


def group_turns(messages: Sequence[Message], runs: Sequence[Run]) -> list[Turn]:
    """``messages`` (oldest first) split into turns, with each run in the turn it belongs to.

    A run goes to the turn of its ``input_seq`` (the user message that started it); a run
    without one (a framework's, or one recorded before ``input_seq`` existed) to the latest turn
    that began before it. A run whose turn began before the first user message shown goes to a
    leading turn without its user message when there is one, and is left out otherwise (its turn
    is not shown), as is a run whose user message is beyond the messages shown. Without
    any message (a framework that keeps the conversation itself, such as a LangGraph thread in
    its checkpoints), each run is a turn of its own, without messages.
    """
    if not messages:
        return [
            Turn(user=None, runs=[run])
            for run in sorted(runs, key=lambda r: (r.started_at, str(r.id)))
        ]
    turns: list[Turn] = []
    for message in messages:
        if message.role == MessageRole.user or not turns:
            turns.append(Turn(user=message if message.role == MessageRole.user else None))
        turns[-1].messages.append(message)
    starts = [turn.started_at for turn in turns]
    by_input = {turn.user.seq: turn for turn in turns if turn.user is not None}
    first_user = min(by_input, default=None)
    for run in sorted(runs, key=lambda r: (r.started_at, str(r.id))):
        owner: Turn | None = None
        if run.input_seq is not None:
            # The user message that started the run, as its write recorded: never a clock.
            owner = by_input.get(run.input_seq)
            if owner is None and turns[0].user is None and first_user is not None:
                # Its turn began before the page: the leading turn without its user message.
                owner = turns[0] if run.input_seq < first_user else None
        else:
            at = _placed_at(run)
            for turn, started in zip(turns, starts, strict=True):
                if started is None or started <= at:
                    owner = turn
                else:
                    break
        if owner is not None:
            owner.runs.append(run)
    return turns


def _placed_at(run: Run) -> datetime:
    """When ``run`` is placed among the turns: its start; a framework's run (recorded whole when
    it ended), its end, since the framework stores the user's input after the run has begun
    (the OpenAI Agents SDK: its session's first write comes after the trace started)."""
    if run.source is not None and run.completed_at is not None:
        return run.completed_at
    return run.started_at


@dataclass(frozen=True, slots=True)
class Step:
    """One line of a turn: the user's input, a model call, a tool call, a message, the answer."""

    kind: StepKind
    at: datetime
    message: Message | None = None
    model_call: ModelCall | None = None
    tool_call: ToolCall | None = None
    #: A ``step``: what a framework's run did besides calls (a handoff, a guardrail, …).
    run_step: RunStep | None = None
    run: Run | None = None


_RANK: dict[StepKind, int] = {
    "user": 0,
    "model": 1,
    "step": 1,
    "assistant": 2,
    "answer": 2,
    "message": 2,
    "tool": 3,
}


def turn_steps(turn: Turn) -> list[Step]:
    """The turn's steps in the order they happened: user input, model → tool → model …, answer.

    Messages keep their ``seq`` order and each run's calls their recorded order
    (``Run.calls``). A model call goes right after the newest message it was sent
    (``ModelCall.history_seq``), a tool call right after the assistant message that asked for
    it (its ``request_id``). Where a call has no such anchor (runs recorded before anchors
    existed, or by a framework whose calls name no message), the two ordered lists are merged
    by time instead, a fixed rank deciding ties; each list still keeps its own order.
    """
    requested_in = {
        request.id: message.seq
        for message in turn.messages
        if message.role == MessageRole.assistant
        for request in message.requested_tool_calls
    }
    calls: list[Step] = []
    anchors: list[int | None] = []
    for run in turn.runs:
        for call in run.calls():
            if isinstance(call, ModelCall):
                calls.append(Step("model", call.started_at, model_call=call, run=run))
                anchors.append(call.history_seq)
            elif isinstance(call, ToolCall):
                calls.append(Step("tool", call.started_at, tool_call=call, run=run))
                anchors.append(
                    None if call.request_id is None else requested_in.get(call.request_id)
                )
            else:  # a framework's step: no message names it
                calls.append(Step("step", call.started_at, run_step=call, run=run))
                anchors.append(None)
    shown_calls = {step.tool_call.id for step in calls if step.tool_call is not None}
    last_assistant = None
    for message in turn.messages:
        if message.role == MessageRole.assistant:
            last_assistant = message
    messages: list[Step] = []
    for message in turn.messages:
        kind: StepKind
        if message.role == MessageRole.user:
            kind = "user"
        elif message.role == MessageRole.assistant:
            final = message is last_assistant and not message.requested_tool_calls
            kind = "answer" if final else "assistant"
        elif message.role == MessageRole.tool and message.tool_call_id in shown_calls:
            continue  # its tool call is a step, with the whole output
        else:
            kind = "message"
        messages.append(Step(kind, message.created_at, message=message))
    if all(anchor is not None for anchor in anchors):
        keyed = [
            ((step.message.seq if step.message else 0), 0, n) for n, step in enumerate(messages)
        ]
        keyed += [(anchor or 0, 1, n) for n, anchor in enumerate(anchors)]
        keyed.sort()
        return [messages[n] if side == 0 else calls[n] for _, side, n in keyed]
    return _merge_by_time(messages, calls)


def _merge_by_time(messages: list[Step], calls: list[Step]) -> list[Step]:
    """Two lists, each in its own order, merged by time (ties by rank)."""
    merged: list[Step] = []
    m = c = 0
    while m < len(messages) and c < len(calls):
        message, call = messages[m], calls[c]
        if (message.at, _RANK[message.kind]) <= (call.at, _RANK[call.kind]):
            merged.append(message)
            m += 1
        else:
            merged.append(call)
            c += 1
    return [*merged, *messages[m:], *calls[c:]]


# ---------------------------------------------------------------------------------------------
# The terminal tree


def _excerpt(text: str | None, width: int = EXCERPT) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_ms(ms: float | None) -> str:
    """A duration for people: ``—`` (unknown), ``4.2 ms``, ``350 ms``, ``12.5 s``."""
    if ms is None:
        return "—"
    if ms >= 10_000:
        return f"{ms / 1000:,.1f} s"
    return f"{ms:,.1f} ms" if ms < 100 else f"{ms:,.0f} ms"


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


def _status_style(status: str) -> str:
    return _STATUS_STYLE.get(status, "")


def _run_label(run: Run) -> Text:
    tools = len(run.tool_calls)
    errors = sum(call.status == ToolCallStatus.error for call in run.tool_calls)
    label = Text.assemble(
        ("run ", "bold"),
        (str(run.id), "bold"),
        "  ",
        (run.status.value, _status_style(run.status.value)),
        f"  {len(run.model_calls)} model call(s) · {tools} tool call(s)",
    )
    if errors:
        label.append(f" ({errors} failed)", style="red")
    if run.steps:
        label.append(f" · {len(run.steps)} step(s)")
    label.append(f" · {run.tokens:,} tokens · ${run.cost:.6f} · {format_ms(run_duration_ms(run))}")
    if run.error:
        label.append("  error: ", style="bold red")
        label.append(_excerpt(run.error, 120), style="red")
    return label


def _step_label(step: Step, timeline: Timeline | None) -> Text:
    if step.model_call is not None:
        call = step.model_call
        failed = call.status == ModelCallStatus.error
        style = "bold red" if failed else "blue"
        offset = 0.0 if timeline is None else max(_ms(call.started_at, timeline.run.started_at), 0)
        total = call.duration_ms if timeline is None else timeline.total_ms
        label = Text.assemble(
            _bar(offset, call.duration_ms, total, style),
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
            label.append(f"  {call.finish_reason}", style="dim")
        if failed:
            label.append("  error: ", style="bold red")
            label.append(_excerpt(call.error, 120), style="red")
        return label
    if step.tool_call is not None:
        tool = step.tool_call
        style = _status_style(tool.status.value) or "yellow"
        duration = call_duration_ms(tool)
        offset = 0.0 if timeline is None else max(_ms(tool.started_at, timeline.run.started_at), 0)
        total = (duration or 0.0) if timeline is None else timeline.total_ms
        return Text.assemble(
            _bar(offset, duration or 0.0, total, style),
            " ",
            ("tool ", "bold"),
            (tool.tool_name, style),
            "  ",
            (tool.status.value, style),
            f"  {format_ms(duration)}  ",
            (_excerpt(tool.input, 40), "dim"),
            " → ",
            (_excerpt(tool.output, 60), "red" if tool.status == ToolCallStatus.error else ""),
        )
    if step.run_step is not None:
        return _run_step_label(step.run_step, timeline)
    message = step.message
    assert message is not None
    if step.kind == "answer":
        return Text.assemble(("answer: ", "bold green"), _excerpt(message.content))
    if step.kind == "assistant":
        label = Text("assistant:", style="green")
        if message.content:
            label.append(" " + _excerpt(message.content))
        if message.requested_tool_calls:
            names = ", ".join(request.name for request in message.requested_tool_calls)
            label.append(f" (asks for {names})", style="dim")
        return label
    return Text.assemble((f"{message.role.value}: ", "magenta"), _excerpt(message.content))


def _run_step_label(step: RunStep, timeline: Timeline | None) -> Text:
    failed = step.status == StepStatus.error
    style = "bold red" if failed else "magenta"
    duration = step.duration_ms or 0.0
    offset = 0.0 if timeline is None else max(_ms(step.started_at, timeline.run.started_at), 0)
    total = duration if timeline is None else timeline.total_ms
    label = Text.assemble(
        _bar(offset, duration, total, style),
        " ",
        (f"{step.kind} ", "bold"),
        (step.name, style),
        f"  {format_ms(step.duration_ms)}",
    )
    if failed:
        label.append("  error: ", style="bold red")
        label.append(_excerpt(step.error, 120), style="red")
    return label


def _turn_tree(number: int, turn: Turn) -> Tree:
    heading = Text(f"Turn {number}", style="bold")
    if turn.user is not None:
        heading.append(f"  #{turn.user.seq}  ", style="dim")
        heading.append(_excerpt(turn.user.content), style="cyan")
    elif not turn.messages:
        heading.append("  (no messages recorded)", style="dim")
    else:
        heading.append("  (begins before the messages shown)", style="dim")
    tree = Tree(heading, guide_style="dim")
    timelines = {str(run.id): run_timeline(run) for run in turn.runs}
    run_nodes = {str(run.id): tree.add(_run_label(run)) for run in turn.runs}
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
) -> RenderableType:
    """The session's turns as trees (model → tool → model → answer) with duration bars.

    ``messages`` default to the session's own (a ``SessionWithMessages``); failed calls are red
    inside their turn; the last line sums up turns, runs, tool calls and errors, tokens, cost
    and time of what is shown.
    """
    if messages is None:
        messages = session.messages if isinstance(session, SessionWithMessages) else []
    turns = group_turns(messages, runs)
    parts: list[RenderableType] = [_turn_tree(n, turn) for n, turn in enumerate(turns, 1)]
    if not turns:
        parts.append(Text("no messages", style="dim"))
    shown = len(messages)
    summary = render_summary(turns)
    if shown < session.last_seq:
        summary.append(f"  (latest {shown} of {session.last_seq} messages)", style="dim")
    parts.append(summary)
    return Group(*parts)
