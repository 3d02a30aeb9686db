"""The blueprint's ``AgentRunner`` and what it is built from: a model client and a tool registry."""

from agents_core.runner.model import (
    ModelClient,
    ModelConnectionError,
    ModelError,
    ModelRequest,
    ModelResponse,
    ModelResponseError,
    ModelStatusError,
    ModelTimeoutError,
    ScriptedModel,
    ScriptExhaustedError,
    ToolDefinition,
    ToolRequest,
    Usage,
)
from agents_core.runner.runner import CANCELLED, NOT_ENABLED_KIND, AgentRunner, turn_window
from agents_core.runner.tools import (
    InvalidArgumentsError,
    ToolError,
    ToolRegistry,
    UnknownToolError,
)

__all__ = [
    "CANCELLED",
    "NOT_ENABLED_KIND",
    "AgentRunner",
    "InvalidArgumentsError",
    "ModelClient",
    "ModelConnectionError",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "ModelResponseError",
    "ModelStatusError",
    "ModelTimeoutError",
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
