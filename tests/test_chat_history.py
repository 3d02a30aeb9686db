"""Stored histories convert to Chat Completions messages the API accepts, and windows are safe."""

from __future__ import annotations

import asyncio

import pytest
from bson import ObjectId

from agents_core.db import Message, MessageRole, MessagesRepository, RequestedToolCall
from agents_core.models.chat import MISSING_RESULT, UNRECORDED_TOOL, to_chat_messages
from agents_core.runner import (
    AgentRunner,
    ModelResponse,
    ScriptedModel,
    ToolRegistry,
    ToolRequest,
    turn_window,
)
from tests.chat_server import check_request
from tests.helpers import make_agent, make_session

pytestmark = pytest.mark.usefixtures("backend")


def registry(started: asyncio.Event | None = None) -> ToolRegistry:
    async def slow() -> str:
        assert started is not None
        started.set()
        await asyncio.sleep(60)
        return "never"

    return ToolRegistry(
        {"add": lambda a, b: a + b, "boom": lambda: 1 / 0, "slow": slow, "off": lambda: "x"}
    )


async def history_of_every_kind() -> ObjectId:
    """A session built every way the runner builds one (and one older kind of message)."""
    agent = await make_agent(tools=["add", "boom", "slow"])
    session = await make_session()
    from agents_core.db import SessionsRepository

    await SessionsRepository().set_active_agent(session.id, agent.id)
    add = ToolRequest("add", '{"a": 1, "b": 2}')
    steps = [
        ModelResponse(text="plain answer"),  # 1: no tools
        ModelResponse(tool_calls=[add]),  # 2: one tool
        ModelResponse(text="3"),
        ModelResponse(text="two at once", tool_calls=[add, ToolRequest("boom")]),  # 3: parallel
        ModelResponse(tool_calls=[ToolRequest("off"), ToolRequest("add", "{bad")]),  # refused, bad
        ModelResponse(text="done"),
    ]
    runner = AgentRunner(ScriptedModel(steps), registry())
    for text in [
        "hello",
        "1 + 2?",
        "both",
    ]:
        await runner.run(session.id, text)
    # 4: a turn whose model fails after a tool's result (its answer never comes).
    failing = ScriptedModel([ModelResponse(tool_calls=[add]), ConnectionError("down")])
    with pytest.raises(ConnectionError):
        await AgentRunner(failing, registry()).run(session.id, "fails")
    # 5: a turn cancelled while its tool runs: the request is stored, its result never is.
    started = asyncio.Event()
    cancelled = ScriptedModel([ModelResponse(tool_calls=[ToolRequest("slow")])])
    task = asyncio.create_task(AgentRunner(cancelled, registry(started)).run(session.id, "slow"))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # 6: a tool result stored without its request (as messages were before requests were kept).
    await MessagesRepository().create(session.id, "user", "legacy")
    await MessagesRepository().create(session.id, "tool", "old output")
    await MessagesRepository().create(session.id, "assistant", "old answer")
    return session.id


async def test_every_kind_of_history_converts_to_messages_the_api_accepts() -> None:
    sid = await history_of_every_kind()
    stored = await MessagesRepository().find_by_session(sid, 1000)
    converted = to_chat_messages(stored, instructions="Be brief.")
    assert check_request({"model": "m", "messages": converted}) == []
    # Nothing stored is lost, in order: each stored message is one converted message.
    synthesized = [
        m
        for m in converted
        if m.get("content") == MISSING_RESULT
        or any(c["function"]["name"] == UNRECORDED_TOOL for c in m.get("tool_calls", []))
    ]
    originals = [m for m in converted[1:] if m not in synthesized]
    assert [m["content"] or "" for m in originals] == [m.content for m in stored]
    # The cancelled turn's request got a marked result; the legacy result a marked request.
    assert sum(m.get("content") == MISSING_RESULT for m in converted) == 1
    asked = [c["function"]["name"] for m in converted for c in m.get("tool_calls", [])]
    assert asked.count(UNRECORDED_TOOL) == 1
    # Parallel calls stay in one assistant message, followed by their results.
    both = next(m for m in converted if m.get("content") == "two at once")
    index = converted.index(both)
    assert [m["role"] for m in converted[index + 1 : index + 3]] == ["tool", "tool"]
    assert [c["id"] for c in both["tool_calls"]] == [
        m["tool_call_id"] for m in converted[index + 1 : index + 3]
    ]


async def test_every_cut_of_a_multi_tool_history_gives_a_turn_safe_window() -> None:
    sid = await history_of_every_kind()
    stored = await MessagesRepository().find_by_session(sid, 1000)
    for cut in range(len(stored) + 1):
        window = turn_window(stored[cut:])
        assert not window or window[0].role is MessageRole.user, cut
        assert window == stored[len(stored) - len(window) :]
        converted = to_chat_messages(window)
        assert check_request({"model": "m", "messages": converted or _hello()}) == [], cut
        # Inside a window, only the turns that were really interrupted need a marked result.
        interrupted = {"slow"}
        starts = {m.content for m in window if m.role is MessageRole.user}
        expected = len(interrupted & starts)
        assert sum(m.get("content") == MISSING_RESULT for m in converted) == expected, cut


def _hello() -> list[dict[str, str]]:
    return [{"role": "user", "content": "hello"}]


def test_conversion_of_records_built_in_memory() -> None:
    sid = ObjectId()

    def message(seq: int, role: str, content: str, **fields: object) -> Message:
        return Message.model_validate(
            {"_id": ObjectId(), "session_id": sid, "seq": seq, "role": role, "content": content}
            | fields
        )

    calls = [RequestedToolCall(id="a", name="add", arguments="{}")]
    history = [
        message(1, "user", "q"),
        message(2, "assistant", "", requested_tool_calls=calls),
        message(3, "tool", "r", request_id="a"),
        message(4, "assistant", "answer"),
    ]
    assert to_chat_messages(history) == [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "add", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "r"},
        {"role": "assistant", "content": "answer"},
    ]
