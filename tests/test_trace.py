"""Turns, timelines and the terminal trace tree (``agents_core.trace``), on both backends."""

from __future__ import annotations

import json
from datetime import timedelta

from rich.console import Console

from agents_core.db import (
    MessagesRepository,
    ModelCall,
    RequestedToolCall,
    RunsRepository,
    SessionsRepository,
    ToolCallsRepository,
)
from agents_core.runner import AgentRunner, ModelResponse, ScriptedModel, ToolRegistry, ToolRequest
from agents_core.trace import (
    format_ms,
    group_turns,
    render_session_tree,
    run_timeline,
    turn_steps,
    visible,
)
from tests.helpers import Clock, make_agent, make_session
from tests.recorded import (
    HOSTILE_TITLE,
    MARKUP,
    NOT_ENABLED_WARNING,
    SCRIPT,
    record_demo,
    record_hostile,
    record_not_enabled,
)


def rendered(renderable: object, *, styles: bool = False) -> str:
    console = Console(record=True, width=240, color_system="truecolor", force_terminal=True)
    console.print(renderable)
    return console.export_text(styles=styles)


def test_a_duration_reads_one_way_at_every_length() -> None:
    # The tree, the trace view and the CLI's tables and ages all print durations with it.
    table = {
        None: "—",
        4.25: "4.2 ms",
        350.4: "350 ms",
        2_500: "2,500 ms",
        12_500: "12.5 s",
        59_949: "59.9 s",
        60_000: "1 min 0 s",
        192_400: "3 min 12 s",
        3_723_000: "1 h 2 min",
        273_600_000: "3 d 4 h",
    }
    assert {ms: format_ms(ms) for ms in table} == table


async def test_runs_go_to_their_turn_and_steps_are_in_call_order(backend: str) -> None:
    demo = await record_demo()
    turns = group_turns(demo.session.messages, demo.runs)
    assert [turn.user.content for turn in turns if turn.user] == [
        "What is 17 * 23?",
        "What time is it in UTC?",
        "And 1 / 0?",
    ]
    assert [[run.id for run in turn.runs] for turn in turns] == [[run.id] for run in demo.runs]
    kinds = [step.kind for step in turn_steps(turns[0])]
    assert kinds == ["user", "model", "assistant", "tool", "model", "answer"]
    # A run from before the first message shown is left out, not put in a wrong turn.
    later = group_turns(demo.session.messages[4:], demo.runs)
    assert [[run.id for run in turn.runs] for turn in later] == [[r.id] for r in demo.runs[1:]]


async def test_runs_go_to_their_turn_when_turns_share_a_millisecond(
    backend: str, clock: Clock
) -> None:
    demo = await record_demo()  # the clock stands still: every write in one millisecond
    turns = group_turns(demo.session.messages, demo.runs)
    assert [run.input_seq for run in demo.runs] == [t.user.seq for t in turns if t.user]
    assert [[run.id for run in turn.runs] for turn in turns] == [[run.id] for run in demo.runs]


async def test_a_timeline_places_calls_by_start_and_recorded_duration(backend: str) -> None:
    demo = await record_demo()
    run = demo.runs[2]
    timeline = run_timeline(run)
    assert [(bar.kind, bar.status) for bar in timeline.bars] == [
        ("model", "success"),
        ("tool", "error"),
        ("model", "success"),
    ]
    tool = run.tool_calls[0]
    bar = timeline.bars[1]
    assert bar.duration_ms == tool.duration_ms
    assert bar.offset_ms == (tool.started_at - run.started_at) / timedelta(milliseconds=1)
    assert bar.error == "ZeroDivisionError: division by zero"
    assert timeline.total_ms >= max(b.end_ms for b in timeline.bars)
    assert run.completed_at is not None
    assert timeline.total_ms >= (run.completed_at - run.started_at) / timedelta(milliseconds=1)


async def test_a_turn_of_one_millisecond_keeps_the_order_its_writes_recorded(backend: str) -> None:
    """On a fast machine a whole turn fits in one millisecond: clocks cannot order it."""
    session = await make_session()
    agent = await make_agent(f"agent-{session.id}")
    messages, runs, tools = MessagesRepository(), RunsRepository(), ToolCallsRepository()
    user = await messages.create(session.id, "user", "What is 2 + 2?")
    run = await runs.start(session, agent, input_seq=user.seq)
    instant = run.started_at

    def model_call(history_seq: int) -> ModelCall:
        return ModelCall(model="m", started_at=instant, duration_ms=0.0, history_seq=history_seq)

    await runs.record_model_call(run.id, model_call(user.seq))
    request = RequestedToolCall(id="c1", name="calc", arguments="{}")
    await messages.create(session.id, "assistant", "", requested_tool_calls=[request])
    call = await tools.create(run.id, "calc", "{}", request_id="c1")
    await tools.complete(call.id, "4", "success", 0.0)
    result = await messages.create(session.id, "tool", "4", tool_call_id=call.id, request_id="c1")
    await runs.record_model_call(run.id, model_call(result.seq))
    await messages.create(session.id, "assistant", "4")
    stored = await runs.find_by_id(run.id)
    history = (await SessionsRepository().find_by_id(session.id)).messages
    # Every timestamp in the same millisecond, as a fast machine records them.
    tied_calls = [c.model_copy(update={"started_at": instant}) for c in stored.tool_calls]
    tied_run = stored.model_copy(update={"tool_calls": tied_calls})
    tied_messages = [m.model_copy(update={"created_at": instant}) for m in history]

    assert [(bar.kind, bar.name) for bar in run_timeline(tied_run).bars] == [
        ("model", "m"),
        ("tool", "calc"),
        ("model", "m"),
    ]
    (turn,) = group_turns(tied_messages, [tied_run])
    kinds = [step.kind for step in turn_steps(turn)]
    assert kinds == ["user", "model", "assistant", "tool", "model", "answer"]
    assert [type(call).__name__ for call in stored.calls()] == [
        "ModelCall",
        "ToolCall",
        "ModelCall",
    ]


async def test_a_run_recorded_before_call_order_is_ordered_by_time(backend: str) -> None:
    run = (await record_demo()).runs[2]
    legacy = run.model_copy(update={"call_order": []})
    starts = [call.started_at for call in legacy.calls()]
    assert starts == sorted(starts)
    assert len(legacy.calls()) == len(run.model_calls) + len(run.tool_calls)


async def test_the_tree_shows_each_turn_with_bars_errors_and_a_summary(backend: str) -> None:
    demo = await record_demo()
    text = rendered(render_session_tree(demo.session, demo.runs))
    for expected in (
        "Turn 1",
        "What is 17 * 23?",
        "model scripted-demo",
        "tool calculator  success",
        "tool calculator  error",
        "ZeroDivisionError: division by zero",
        "answer: 17 * 23 = 391.",
        "█",
    ):
        assert expected in text, expected
    lines = text.splitlines()
    turn3 = next(i for i, line in enumerate(lines) if line.startswith("Turn 3"))
    error = next(i for i, line in enumerate(lines) if "tool calculator  error" in line)
    assert error > turn3  # the failed call is inside its turn
    tokens = sum(run.tokens for run in demo.runs)
    summary = lines[-1]
    assert summary.startswith("3 turn(s) · 3 run(s) · 3 tool call(s) (1 error(s))")
    assert f"{tokens:,} tokens" in summary
    assert f"${sum(run.cost for run in demo.runs):.6f}" in summary
    # The failed tool call is printed in red.
    styled = rendered(render_session_tree(demo.session, demo.runs), styles=True)
    failed_line = next(line for line in styled.splitlines() if "error" in line and "tool" in line)
    assert "\x1b[1;31m" in failed_line or "\x1b[31m" in failed_line


async def test_the_tree_shows_the_warning_of_a_tool_not_enabled_after_the_question(
    backend: str,
) -> None:
    recorded = await record_not_enabled()
    lines = rendered(render_session_tree(recorded.session, recorded.runs)).splitlines()
    (warning,) = [n for n, line in enumerate(lines) if NOT_ENABLED_WARNING in line]
    assert "warning " in lines[warning]
    question = next(n for n, line in enumerate(lines) if "What is 2 + 2?" in line)
    first_model_call = next(n for n, line in enumerate(lines) if "model scripted" in line)
    assert question < warning < first_model_call
    assert "1 step(s)" in "".join(lines)


async def test_stored_text_is_printed_as_text_not_markup(backend: str) -> None:
    hostile = await record_hostile()
    text = rendered(render_session_tree(hostile.session, hostile.runs))
    assert MARKUP in text  # "[bold red]not markup[/]" printed as it is
    assert SCRIPT[:40] in text.replace("\n", "")
    assert "failed" in text
    assert "upstream said" in text
    assert "1 failed model call(s)" in text.splitlines()[-1]
    assert HOSTILE_TITLE  # the title is the CLI's header, not the tree's


async def test_a_window_of_the_latest_messages_says_so(backend: str) -> None:
    demo = await record_demo()
    session = await SessionsRepository().find_by_id(demo.session.id, message_limit=5)
    runs = await RunsRepository().list_by_session(demo.session.id)
    text = rendered(render_session_tree(session, runs))
    assert "(latest 5 of 12 messages)" in text
    assert "begins before the messages shown" in text  # message 8 is mid-turn


#: What a web page a tool fetched, or a model, may hold: set the window title (OSC 0), put a
#: command on the clipboard (OSC 52), clear the screen, and a C1 CSI and DEL.
TERMINAL_ATTACK = "t\x1b]0;owned\x07 c\x1b]52;c;Y3VybCBldmlsLnNofHNo\x07 x\x1b[2J y\x9b31m z\x7f"


async def test_stored_control_characters_are_shown_not_sent_to_the_terminal(
    backend: str,
) -> None:
    agent = await make_agent("echo-terminal", tools=["echo"])
    session = await make_session("terminal")
    await SessionsRepository().set_active_agent(session.id, agent.id)
    model = ScriptedModel(
        [
            ModelResponse(tool_calls=[ToolRequest("echo", json.dumps({"text": TERMINAL_ATTACK}))]),
            ModelResponse(text=f"answer {TERMINAL_ATTACK}", finish_reason=f"stop{TERMINAL_ATTACK}"),
        ]
    )
    await AgentRunner(model, ToolRegistry({"echo": lambda text: text})).run(
        session.id, f"ask {TERMINAL_ATTACK}"
    )
    found = await SessionsRepository().find_by_id(session.id)
    runs = await RunsRepository().list_by_session(session.id)
    text = rendered(render_session_tree(found, runs))  # no styles: every ESC would be stored text
    for raw in ("\x1b", "\x07", "\x9b", "\x7f"):
        assert raw not in text, repr(raw)
    assert "t␛]0;owned␇" in text
    assert "x␛[2J y\\x9b31m z␡" in text
    assert visible("a\nb\tc\x00") == "a\nb\tc␀"
