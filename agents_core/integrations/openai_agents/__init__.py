"""The OpenAI Agents SDK on agents-core (``pip install 'agents-core[openai-agents]'``).

- :class:`AgentsCoreSession`: the SDK's conversation history (``Runner.run(..., session=...)``)
  stored as the messages of one of our sessions (``session.py``).
"""

from agents_core.integrations.openai_agents.session import NAMESPACE, AgentsCoreSession

__all__ = ["NAMESPACE", "AgentsCoreSession"]
