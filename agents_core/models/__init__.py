"""Model clients for the runner, and what they share.

- ``Price``: what a model charges; the runner stores each call's cost and the price used.
- ``agents_core.models.chat``: a conversation as OpenAI Chat Completions messages, and tool
  definitions as its ``tools``.
- ``agents_core.models.openai.OpenAIChatModel``: a ``ModelClient`` on the official ``openai``
  SDK, for OpenAI and any OpenAI-compatible server (``pip install agents-core[openai]``).
"""

from agents_core.db import Price

__all__ = ["Price"]
