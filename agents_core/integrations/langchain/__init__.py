"""LangChain and LangGraph runs recorded in agents-core (``pip install 'agents-core[langgraph]'``).

- :class:`AgentsCoreCallbackHandler`: a callback handler (``config={"callbacks": [handler]}``)
  that records each top-level invocation as a run, with its model and tool calls
  (``handler.py``).
"""

from agents_core.integrations.langchain.handler import (
    NAMESPACE,
    RUN_NAMESPACE,
    AgentsCoreCallbackHandler,
)

__all__ = ["NAMESPACE", "RUN_NAMESPACE", "AgentsCoreCallbackHandler"]
