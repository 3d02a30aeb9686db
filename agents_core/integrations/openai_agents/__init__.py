"""The OpenAI Agents SDK on agents-core (``pip install 'agents-core[openai-agents]'``).

- :class:`AgentsCoreSession`: the SDK's conversation history (``Runner.run(..., session=...)``)
  stored as the messages of one of our sessions (``session.py``).
- :class:`AgentsCoreTracingProcessor`: each trace of the SDK (a run of an agent) recorded as one
  of our runs, with its model calls, tool calls, handoffs and guardrails (``tracing.py``):
  ``agents.add_trace_processor(AgentsCoreTracingProcessor.from_uri(uri))``.
"""

from agents_core.integrations.openai_agents.session import NAMESPACE, AgentsCoreSession
from agents_core.integrations.openai_agents.tracing import AgentsCoreTracingProcessor

__all__ = ["NAMESPACE", "AgentsCoreSession", "AgentsCoreTracingProcessor"]
