"""The demo of ``agents-core demo`` and ``chat``: an agent with two real tools, a scripted model.

The model is scripted (deterministic, no network) but the tools are real: a calculator that
evaluates arithmetic safely, and a clock. The third turn divides by zero, so every demo shows a
failing tool call recorded and fed back to the model.
"""

from __future__ import annotations

import ast
import json
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agents_core.db import Agent, AgentsRepository, CreateAgentDTO, Price
from agents_core.runner import (
    ModelRequest,
    ModelResponse,
    ScriptedModel,
    ToolRegistry,
    ToolRequest,
    Usage,
)

__all__ = ["DEMO_AGENT", "TURNS", "calculate", "demo_agent", "demo_model", "demo_tools"]

DEMO_AGENT = "demo-assistant"

#: The user's side of the demo conversation, with the tool call the scripted model makes.
TURNS: list[tuple[str, ToolRequest]] = [
    ("What is 17 * 23?", ToolRequest("calculator", json.dumps({"expression": "17 * 23"}))),
    ("What time is it in UTC?", ToolRequest("clock", "{}")),
    ("And 1 / 0?", ToolRequest("calculator", json.dumps({"expression": "1 / 0"}))),
]

_OPERATORS: dict[type[ast.AST], Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def calculate(expression: str) -> float | int:
    """Evaluate an arithmetic expression: numbers, + - * / // % ** and parentheses."""

    def evaluate(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return evaluate(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = evaluate(node.left), evaluate(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 64:
                raise ValueError("exponent too large")
            return _OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](evaluate(node.operand))
        raise ValueError(f"unsupported expression: {ast.dump(node)[:60]}")

    result = evaluate(ast.parse(expression, mode="eval"))
    assert isinstance(result, int | float)
    return result


def clock() -> str:
    """The current UTC time, to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def demo_tools() -> ToolRegistry:
    return ToolRegistry({"calculator": calculate, "clock": clock})


async def demo_agent() -> Agent:
    """The demo agent, created on first use and reused afterwards (also by concurrent demos)."""
    return await AgentsRepository().get_or_create(
        CreateAgentDTO(
            name=DEMO_AGENT,
            instructions="Answer briefly. Use the calculator for sums and the clock for time.",
            model="scripted-demo",
            tools=["calculator", "clock"],
        )
    )


#: What the scripted model is charged at, as a real one would be.
DEMO_PRICE = Price(input_per_million=0.40, output_per_million=1.60, cached_input_per_million=0.10)


def _usage(request: ModelRequest, reply: str) -> Usage:
    # A stand-in for a real model's meter: about four characters a token.
    prompt = sum(len(m.content) for m in request.messages) // 4 + 20
    return Usage(input_tokens=prompt, output_tokens=len(reply) // 4 + 5)


def _ask(tool: ToolRequest) -> Callable[[ModelRequest], ModelResponse]:
    return lambda request: ModelResponse(tool_calls=[tool], usage=_usage(request, tool.arguments))


def _answer(request: ModelRequest) -> ModelResponse:
    output = request.messages[-1].content
    question = next(m.content for m in reversed(request.messages) if m.role == "user")
    if "Error" in output:
        reply = f"I could not compute that ({output})."
    elif "time" in question:
        reply = f"It is {output}."
    else:
        reply = f"{question.split('is ')[-1].rstrip('?')} = {output}."
    return ModelResponse(text=reply, usage=_usage(request, reply))


def demo_model() -> ScriptedModel:
    """Two model calls a turn: ask for the turn's tool, then answer from its output."""
    return ScriptedModel(
        (step for _, tool in TURNS for step in (_ask(tool), _answer)),
        model="scripted-demo",
        price=DEMO_PRICE,
    )
