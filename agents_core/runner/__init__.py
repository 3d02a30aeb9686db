"""The blueprint's ``AgentRunner`` and what it is built from: a model client and a tool registry."""

from agents_core.runner.model import (
    ModelClient,
    ModelError,
    ModelRequest,
    ModelResponse,
    ScriptedModel,
    ScriptExhaustedError,
    ToolDefinition,
    ToolRequest,
    Usage,
)
from agents_core.runner.runner import CANCELLED, AgentRunner, turn_window
from agents_core.runner.tools import (
    InvalidArgumentsError,
    ToolError,
    ToolRegistry,
    UnknownToolError,
)

__all__ = [
    "CANCELLED",
    "AgentRunner",
    "InvalidArgumentsError",
    "ModelClient",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "ScriptExhaustedError",
    "ScriptedModel",
    "ToolDefinition",
    "ToolError",
    "ToolRegistry",
    "ToolRequest",
    "UnknownToolError",
    "Usage",
    "turn_window",
]
