"""Per-day totals of finished runs, kept up to date as runs finish (``run_days``).

The trace view's overview reads a few dozen of these small documents instead of aggregating
every run: 100,000 runs are one day range of ``run_days``, not a scan of ``runs``. One document
per day and *dimension*:

- ``all`` (key ``""``) and ``agent`` (key: the agent's id): runs, failed runs, tokens, cost,
  and the runs' durations;
- ``model`` (key: the model's name): model calls, failed calls, tokens, cost, durations;
- ``tool`` (key: the tool's name): tool calls, failed calls, durations.

A run counts on the UTC day it started. Durations are kept as a histogram (``hist``: bucket →
count, ``bucket_of``), from which the overview reads p50 and p95 within one bucket's width
(19 %); ``ms`` is their sum, for the mean.

The ``_id`` is ``<day>/<dimension>/<key>``, so each finish is one ``update`` with ``upsert``
per document, all of them one ``bulk_write``; ``run_days`` is sharded by ``_id`` (hashed).
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import ClassVar

import pymongo
from beanie import Document
from pydantic import BaseModel, Field
from pymongo import IndexModel

__all__ = [
    "BUCKETS_PER_DOUBLING",
    "MAX_BUCKET",
    "RunDayDocument",
    "RunDayFields",
    "StatsDimension",
    "bucket_bounds",
    "bucket_of",
]

#: Histogram buckets per doubling of a duration: each bucket is 2^(1/4) = 1.19 times wider
#: than the one before.
BUCKETS_PER_DOUBLING = 4
#: The last bucket (2^40 ms, about 35 years: any longer duration counts in it).
MAX_BUCKET = 40 * BUCKETS_PER_DOUBLING


class StatsDimension(StrEnum):
    all = "all"
    agent = "agent"
    model = "model"
    tool = "tool"


def bucket_of(duration_ms: float) -> int:
    """The histogram bucket of a duration: bucket ``b`` holds ``[2^(b/4), 2^((b+1)/4))`` ms
    (bucket 0 also everything under 1 ms)."""
    if not duration_ms > 1.0:  # NaN and negatives too
        return 0
    if duration_ms >= 2.0 ** (MAX_BUCKET / BUCKETS_PER_DOUBLING):  # infinity too
        return MAX_BUCKET
    return min(MAX_BUCKET, math.floor(math.log2(duration_ms) * BUCKETS_PER_DOUBLING))


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """The durations bucket ``bucket`` holds, in milliseconds: ``[low, high)``."""
    low = 0.0 if bucket <= 0 else 2.0 ** (bucket / BUCKETS_PER_DOUBLING)
    return low, 2.0 ** ((bucket + 1) / BUCKETS_PER_DOUBLING)


class RunDayFields(BaseModel):
    #: The UTC day, ``YYYY-MM-DD`` (so a range of days is a range of strings).
    day: str
    dimension: StatsDimension
    #: The agent's id, the model's or the tool's name (``""`` for ``all``).
    key: str
    #: ``all`` and ``agent``: runs finished, and how many of them failed.
    runs: int = 0
    failed: int = 0
    #: ``model`` and ``tool``: calls, and how many of them failed.
    calls: int = 0
    errors: int = 0
    tokens: int = 0
    cost: float = 0.0
    #: Durations counted in ``hist`` and their sum in milliseconds.
    timed: int = 0
    ms: float = 0.0
    #: Histogram of durations: the bucket (``bucket_of``, as a string) and its count.
    hist: dict[str, int] = Field(default_factory=dict)


class RunDayDocument(Document, RunDayFields):
    """The ``run_days`` collection: written by the runs repository as runs finish."""

    class Settings:
        name = "run_days"
        use_revision = False
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel(
                [("day", pymongo.ASCENDING), ("dimension", pymongo.ASCENDING)],
                name="day_dimension",
            ),
        ]
