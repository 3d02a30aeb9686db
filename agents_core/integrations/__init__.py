"""Adapters of agents-core to agent frameworks, each behind its own optional extra.

Importing this package imports no framework:

- ``agents_core.integrations.langgraph``: ``AgentsCoreSaver``, a LangGraph checkpointer
  (``pip install 'agents-core[langgraph]'``).
- ``agents_core.integrations.langchain``: ``AgentsCoreCallbackHandler``, LangChain/LangGraph
  invocations recorded as runs (``pip install 'agents-core[langgraph]'``).
- ``agents_core.integrations.openai_agents``: ``AgentsCoreSession``, a session of the OpenAI
  Agents SDK, and ``AgentsCoreTracingProcessor``, its traces recorded as runs
  (``pip install 'agents-core[openai-agents]'``).
- ``agents_core.integrations.recording``: ``RunWriter``, what the framework tracers share: a
  framework's finished runs (``FrameworkRun``) written from a bounded queue, in batches, by a
  thread of its own (no extra).
"""
