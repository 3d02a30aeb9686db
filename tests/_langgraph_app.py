"""A small LangGraph agent for the checkpointer tests: a model, a tool node, an approval step.

``agent`` asks the model; tool calls go to ``tools`` and back to ``agent``; an answer without
tool calls goes to ``approve``, which interrupts for a human decision, then ``reply`` asks the
model once more. The model is langchain-core's ``GenericFakeChatModel`` (no network).

Run as ``python -m tests._langgraph_app URI DATABASE THREAD``: a new process that resumes the
interrupted thread from its own saver and prints the state before and after as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command, interrupt

from agents_core.integrations.langgraph import AgentsCoreSaver


@tool
def lookup_order(order_id: str) -> str:
    """Look up an order's refund."""
    return f"order {order_id}: refund of 42 EUR waiting for approval"


class State(MessagesState):
    approval: str


FIRST_TURN = [
    AIMessage(
        content="",
        tool_calls=[{"name": "lookup_order", "args": {"order_id": "A-17"}, "id": "call-1"}],
    ),
    AIMessage(content="The refund of 42 EUR needs your approval."),
]
AFTER_APPROVAL = [AIMessage(content="Refund approved: 42 EUR are on their way.")]


def build(
    responses: Iterable[AIMessage], checkpointer: BaseCheckpointSaver[Any]
) -> CompiledStateGraph[Any]:
    model = GenericFakeChatModel(messages=iter(list(responses)))

    async def agent(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def approve(state: State) -> dict[str, Any]:
        answer = interrupt({"question": "Approve the refund of 42 EUR?"})
        return {"approval": str(answer)}

    builder = StateGraph(State)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([lookup_order]))
    builder.add_node("approve", approve)
    builder.add_node("reply", agent)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: "approve"})
    builder.add_edge("tools", "agent")
    builder.add_edge("approve", "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=checkpointer)


def describe(messages: list[BaseMessage]) -> list[list[str]]:
    return [[message.type, str(message.content)] for message in messages]


async def resume(uri: str, database: str, thread: str) -> dict[str, Any]:
    """In this (new) process: the interrupted state, then the state after resuming."""
    async with AgentsCoreSaver.from_uri(uri, database=database) as saver:
        graph = build(AFTER_APPROVAL, saver)
        config: Any = {"configurable": {"thread_id": thread}}
        before = await graph.aget_state(config)
        await graph.ainvoke(Command(resume="yes"), config)
        after = await graph.aget_state(config)
        return {
            "before": {
                "next": list(before.next),
                "interrupts": [i.value for task in before.tasks for i in task.interrupts],
                "messages": describe(before.values["messages"]),
            },
            "after": {
                "next": list(after.next),
                "approval": after.values.get("approval"),
                "messages": describe(after.values["messages"]),
            },
        }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(resume(*sys.argv[1:4]))))
