"""The tools an agent may call: plain Python functions registered under a name.

    tools = ToolRegistry()

    @tools.tool("calculator")
    def calculate(expression: str) -> float: ...

A tool takes the keyword arguments of the model's JSON object and returns text, or anything
``json.dumps`` can encode. Sync and async functions both work.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["ToolFunction", "ToolRegistry", "UnknownToolError"]

ToolFunction = Callable[..., Any | Awaitable[Any]]
F = TypeVar("F", bound=ToolFunction)


class UnknownToolError(LookupError):
    """No tool is registered under that name."""


class ToolRegistry:
    def __init__(self, tools: dict[str, ToolFunction] | None = None) -> None:
        self._tools: dict[str, ToolFunction] = {}
        for name, function in (tools or {}).items():
            self.register(name, function)

    def register(self, name: str, function: ToolFunction) -> None:
        if not name or not isinstance(name, str):
            raise ValueError("a tool needs a non-empty name")
        self._tools[name] = function

    def tool(self, name: str) -> Callable[[F], F]:
        """Decorator form of ``register``."""

        def decorate(function: F) -> F:
            self.register(name, function)
            return function

        return decorate

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    async def execute(self, name: str, arguments: str) -> str:
        """Call tool ``name`` with ``arguments`` (a JSON object as text); its result as text."""
        function = self._tools.get(name)
        if function is None:
            raise UnknownToolError(f"no tool named {name!r} is registered")
        parsed = json.loads(arguments) if arguments.strip() else {}
        if not isinstance(parsed, dict):
            raise TypeError("tool arguments must be a JSON object")
        result = function(**parsed)
        if inspect.isawaitable(result):
            result = await result
        return result if isinstance(result, str) else json.dumps(result)
