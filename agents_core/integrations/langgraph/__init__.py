"""LangGraph on agents-core (``pip install 'agents-core[langgraph]'``).

- :class:`AgentsCoreSaver`: a native async checkpointer (``saver.py``), which also lists
  threads and shows one (``alist_threads``, ``aget_thread``: ``_threads.py``) for the CLI's
  ``threads``/``thread`` and the trace view's ``/threads``.
"""

from agents_core.integrations.langgraph._threads import (
    ChannelValue,
    CheckpointInfo,
    PendingWriteInfo,
    ThreadState,
    ThreadSummary,
)
from agents_core.integrations.langgraph.saver import AgentsCoreSaver

__all__ = [
    "AgentsCoreSaver",
    "ChannelValue",
    "CheckpointInfo",
    "PendingWriteInfo",
    "ThreadState",
    "ThreadSummary",
]
