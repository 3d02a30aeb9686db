"""LangGraph on agents-core (``pip install 'agents-core[langgraph]'``).

- :class:`AgentsCoreSaver`: a native async checkpointer (``saver.py``).
"""

from agents_core.integrations.langgraph.saver import AgentsCoreSaver

__all__ = ["AgentsCoreSaver"]
