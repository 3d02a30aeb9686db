"""The OpenAI Agents SDK's own session tests, run against ``AgentsCoreSession``.

``make test-openai-agents`` (``python -m tests_frameworks.openai_agents``); ``plugin.py`` is
the glue (the swap of the SDK's in-test sessions, the deselections and their reasons).
"""
