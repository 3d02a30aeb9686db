"""What a run looked like, as data: turns, their steps, and a run's timeline.

Usage::

    from agents_core.trace import group_turns, run_timeline, turn_steps

    timeline = run_timeline(run)  # bars in recorded order, placed by start, sized by duration
    for bar in timeline.bars:
        print(bar.kind, bar.name, bar.offset_ms, bar.duration_ms, bar.status)

The terminal tree (``tree.py``), the web view (``web/``) and the OpenTelemetry export
(``otel.py``) all build on these functions, so every view shows the same turns and bars.

Design notes: a turn is a user message and what followed it until the next one. A run records
the user message that started it (``Run.input_seq``, its ``seq``) and goes to that turn, never
placed by clocks (turns and runs of one millisecond stay apart). Only a run without it is placed
by time: a run recorded before ``input_seq`` existed, in the latest turn whose user message was
created at or before the run started (ties go to the later turn); a framework's run
(``Run.source``, recorded when it has ended, its framework storing the user's input after the
run began), in the latest turn whose user message was created at or before the run *ended*. A
framework run's steps (``RunStep``) are shown among its calls. Inside a turn, order comes from
what the writes recorded, never from clocks: messages by ``seq``, a run's calls by
``Run.calls`` (``call_order``), and each call right after the message it followed
(``turn_steps``).
Tool messages are not shown as steps of their own: the tool call they carry is (whole, with
its input and status), and a tool message whose call is not among the runs shown stays a
message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from agents_core.db import (
    Message,
    MessageRole,
    ModelCall,
    Run,
    RunStep,
    Score,
    ToolCall,
    ToolCallStatus,
)

__all__ = [
    "Bar",
    "BarKind",
    "Step",
    "StepKind",
    "Timeline",
    "Turn",
    "call_duration_ms",
    "format_ms",
    "format_score",
    "group_turns",
    "ms_between",
    "run_duration_ms",
    "run_timeline",
    "step_name",
    "turn_steps",
]

StepKind = Literal["user", "model", "tool", "step", "assistant", "answer", "message"]
#: ``step``: what a framework's run did besides calls (a handoff, a guardrail, …: ``RunStep``).
BarKind = Literal["model", "tool", "step"]


def ms_between(later: datetime, earlier: datetime) -> float:
    """Milliseconds from ``earlier`` to ``later``."""
    return (later - earlier).total_seconds() * 1000


def call_duration_ms(call: ModelCall | ToolCall) -> float | None:
    """The recorded duration of a call (``None``: a tool call still pending)."""
    if isinstance(call, ModelCall):
        return call.duration_ms
    if call.duration_ms is not None:
        return call.duration_ms
    if call.completed_at is not None:
        return max(ms_between(call.completed_at, call.started_at), 0.0)
    return None


def step_name(step: RunStep) -> str:
    """What a framework run's step is called in the views: its kind, then its name."""
    return step.kind if step.name == step.kind else f"{step.kind} {step.name}"


def run_duration_ms(run: Run) -> float | None:
    """Wall time of a finished run (``None`` while it runs)."""
    if run.completed_at is None:
        return None
    return max(ms_between(run.completed_at, run.started_at), 0.0)


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
    bars = [
        _bar(call, max(ms_between(call.started_at, run.started_at), 0.0)) for call in run.calls()
    ]
    total = max([run_duration_ms(run) or 0.0, *(bar.end_ms for bar in bars)])
    return Timeline(run=run, bars=bars, total_ms=total)


def _bar(call: ModelCall | ToolCall | RunStep, offset_ms: float) -> Bar:
    """The bar of one call or step, ``offset_ms`` from its run's start."""
    kind: BarKind
    tokens, cost = 0, 0.0
    if isinstance(call, ModelCall):
        kind, name, duration, error = "model", call.model, call.duration_ms, call.error
        tokens, cost = call.tokens, call.cost
    elif isinstance(call, ToolCall):
        kind, name, duration = "tool", call.tool_name, call_duration_ms(call) or 0.0
        error = (call.error or call.output) if call.status == ToolCallStatus.error else None
    else:
        kind, name, duration, error = "step", step_name(call), call.duration_ms or 0.0, call.error
    return Bar(kind, name, call.status.value, offset_ms, duration, call, tokens, cost, error)


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
    (``ModelCall.history_seq``), a step right after the newest message when it happened
    (``RunStep.history_seq``), a tool call right after the assistant message that asked for
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
            else:  # a step: the runner's name the newest message (a framework's, none)
                calls.append(Step("step", call.started_at, run_step=call, run=run))
                anchors.append(call.history_seq)
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


def format_ms(ms: float | None) -> str:
    """A duration for people: ``—`` (unknown), ``4.2 ms``, ``350 ms``, ``2,500 ms``, ``12.5 s``;
    from a minute on, in whole seconds: ``3 min 12 s``, ``2 h 5 min``, ``3 d 4 h``. Every view
    prints a duration with it: the tree, the trace view, the CLI's tables and ages."""
    if ms is None:
        return "—"
    if ms >= 60_000:
        whole = round(ms / 1000)
        for unit, size, sub_unit, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60)):
            if whole >= size:
                return f"{whole // size} {unit} {whole % size // sub_size} {sub_unit}"
        return f"{whole // 60} min {whole % 60} s"
    if ms >= 10_000:
        return f"{ms / 1000:,.1f} s"
    return f"{ms:,.1f} ms" if ms < 100 else f"{ms:,.0f} ms"


def format_score(score: Score) -> str:
    """What a score says, for people: its label, or its number as written (``4``, ``-1``,
    ``0.85``: a whole number without ``.0``, any other as the shortest text that reads back
    exactly). Every view prints a score with it."""
    if score.value is None:
        return score.label or ""
    value = score.value
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
