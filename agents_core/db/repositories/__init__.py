"""One async repository per aggregate, each constructible with no arguments.

``Repository`` (the base: the connection a repository works on), ``load_many`` (stored
documents validated as records, a corrupt one named) and ``NEWEST_WINDOWS`` (the windows of
time a newest-first read takes on SecantusDB) are public for reads built beside the
repositories, such as the trace view's.
"""

from agents_core.db.repositories._base import NEWEST_WINDOWS, Repository, load_many
from agents_core.db.repositories.agents import AgentsRepository
from agents_core.db.repositories.messages import MessagesRepository
from agents_core.db.repositories.runs import RunsRepository
from agents_core.db.repositories.search import SearchHit, SearchResult
from agents_core.db.repositories.sessions import SessionsRepository, TranscriptPage
from agents_core.db.repositories.stats import (
    DayTotals,
    KeyTotals,
    Overview,
    StatsRepository,
)
from agents_core.db.repositories.tool_calls import ToolCallsRepository

__all__ = [
    "NEWEST_WINDOWS",
    "AgentsRepository",
    "DayTotals",
    "KeyTotals",
    "MessagesRepository",
    "Overview",
    "Repository",
    "RunsRepository",
    "SearchHit",
    "SearchResult",
    "SessionsRepository",
    "StatsRepository",
    "ToolCallsRepository",
    "TranscriptPage",
    "load_many",
]
