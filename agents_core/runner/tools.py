"""The tools an agent may call: Python functions registered under a name, with a schema.

    tools = ToolRegistry()

    @tools.tool("calculator")
    def calculate(expression: str) -> float:
        '''Evaluate an arithmetic expression.'''

A tool's description and the JSON Schema of its parameters come from its docstring and its
signature's type hints (through pydantic), or are given at registration. The model's arguments
are validated against that schema before the tool runs: ``InvalidArgumentsError`` says what is
wrong, and the tool is not called. A tool returns text, or anything ``json.dumps`` can encode.
Sync and async functions both work.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic

from agents_core.runner.model import ToolDefinition

__all__ = [
    "InvalidArgumentsError",
    "ToolError",
    "ToolFunction",
    "ToolRegistry",
    "UnknownToolError",
]

ToolFunction = Callable[..., Any | Awaitable[Any]]
F = TypeVar("F", bound=ToolFunction)


class UnknownToolError(LookupError):
    """No tool is registered under that name."""


class ToolError(Exception):
    """Raised by a tool to fail with exactly this text as its output (no exception type added).

    Any other exception fails the call too, shown to the model as ``Type: message``.
    """


class InvalidArgumentsError(ToolError, ValueError):
    """The model's arguments do not match the tool's parameters (the text says how)."""


@dataclass(frozen=True, slots=True)
class _Tool:
    function: ToolFunction
    definition: ToolDefinition
    #: Validates the arguments' JSON into the keyword arguments of ``function``.
    arguments: Callable[[str], dict[str, Any]]


class ToolRegistry:
    def __init__(self, tools: Mapping[str, ToolFunction] | None = None) -> None:
        self._tools: dict[str, _Tool] = {}
        for name, function in (tools or {}).items():
            self.register(name, function)

    def register(
        self,
        name: str,
        function: ToolFunction,
        *,
        description: str | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        """Register ``function`` as tool ``name``.

        ``description`` defaults to the function's docstring; ``parameters`` (a JSON Schema of
        an object) to the schema pydantic derives from its signature. Given explicitly, the
        schema is what the model sees, and arguments are checked against its ``required`` keys
        and the function's signature.
        """
        if not name or not isinstance(name, str):
            raise ValueError("a tool needs a non-empty name")
        adapter = pydantic.TypeAdapter(_arguments_model(name, function))
        schema = dict(parameters) if parameters is not None else _schema(adapter)
        text = description if description is not None else inspect.getdoc(function) or ""
        self._tools[name] = _Tool(
            function=function,
            definition=ToolDefinition(name=name, description=text, parameters=schema),
            arguments=_validator(adapter, schema if parameters is not None else None),
        )

    def tool(
        self,
        name: str,
        *,
        description: str | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> Callable[[F], F]:
        """Decorator form of ``register``."""

        def decorate(function: F) -> F:
            self.register(name, function, description=description, parameters=parameters)
            return function

        return decorate

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def definitions(self, names: list[str] | None = None) -> list[ToolDefinition]:
        """The definitions of the registered tools (only ``names``, in their order, if given)."""
        chosen = self._tools if names is None else [n for n in names if n in self._tools]
        return [self._tools[name].definition for name in chosen]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def validate(self, name: str, arguments: str) -> dict[str, Any]:
        """The keyword arguments of tool ``name`` from the model's ``arguments``.

        Raises ``UnknownToolError`` or ``InvalidArgumentsError``.
        """
        tool = self._tools.get(name)
        if tool is None:
            raise UnknownToolError(f"no tool named {name!r} is registered")
        return tool.arguments(arguments)

    async def execute(self, name: str, arguments: str) -> str:
        """Call tool ``name`` with ``arguments`` (a JSON object as text); its result as text."""
        kwargs = self.validate(name, arguments)
        result = self._tools[name].function(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result if isinstance(result, str) else json.dumps(result)


def _arguments_model(name: str, function: ToolFunction) -> type[pydantic.BaseModel]:
    """A pydantic model of ``function``'s parameters (no extra keys allowed)."""
    fields: dict[str, Any] = {}
    hints = _hints(function)
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = hints.get(parameter.name, Any)
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    return pydantic.create_model(
        f"{name}_arguments",
        __config__=pydantic.ConfigDict(extra="forbid"),
        **fields,
    )


def _hints(function: ToolFunction) -> dict[str, Any]:
    try:
        return dict(inspect.get_annotations(function, eval_str=True))
    except (NameError, TypeError):  # unresolvable hints: take the parameters as they come
        return {}


def _schema(adapter: pydantic.TypeAdapter[Any]) -> dict[str, Any]:
    schema = adapter.json_schema()
    schema.pop("title", None)
    return schema


def _validator(
    adapter: pydantic.TypeAdapter[Any], schema: Mapping[str, Any] | None
) -> Callable[[str], dict[str, Any]]:
    required = list(schema.get("required", [])) if schema is not None else []

    def validate(arguments: str) -> dict[str, Any]:
        text = arguments.strip() or "{}"
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArgumentsError(f"arguments are not valid JSON: {exc.msg}") from exc
        if not isinstance(parsed, dict):
            raise InvalidArgumentsError("arguments must be a JSON object")
        missing = [key for key in required if key not in parsed]
        if missing:
            raise InvalidArgumentsError(f"missing required arguments: {', '.join(missing)}")
        try:
            model = adapter.validate_python(parsed)
        except pydantic.ValidationError as exc:
            raise InvalidArgumentsError(_describe(exc)) from exc
        return {key: getattr(model, key) for key in type(model).model_fields}

    return validate


def _describe(exc: pydantic.ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"{where}: {error['msg']}")
    return "invalid arguments: " + "; ".join(problems)
