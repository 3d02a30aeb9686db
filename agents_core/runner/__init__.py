"""The blueprint's ``AgentRunner`` and what it is built from: a model client and a tool registry."""

from agents_core.runner.model import (
    ModelClient,
    ModelRequest,
    ModelResponse,
    ScriptedModel,
    ScriptExhaustedError,
    ToolRequest,
    Usage,
)
from agents_core.runner.runner import CANCELLED, AgentRunner
from agents_core.runner.tools import ToolRegistry, UnknownToolError

__all__ = [
    "CANCELLED",
    "AgentRunner",
    "ModelClient",
    "ModelRequest",
    "ModelResponse",
    "ScriptExhaustedError",
    "ScriptedModel",
    "ToolRegistry",
    "ToolRequest",
    "UnknownToolError",
    "Usage",
]
