"""What finished runs cost, took and failed, per day, agent, model and tool (``run_days``).

Usage::

    overview = await StatsRepository().overview(since=date(2026, 12, 1), until=date(2026, 12, 5))
    overview.total.cost, overview.days[-1].runs, overview.models[0].p95_ms

Design notes:

- **Kept as runs finish, read in one range.** Each write that finishes a run (``complete``,
  ``mark_abandoned``, ``insert_finished``) adds the run to its day's totals in the same
  request, as one more command: a ``bulk_write`` of ``$inc`` upserts, one per document it
  touches (``documents/run_day.py``). A run's later usage (``update_usage`` after it
  finished) and a later part of a framework's run add theirs the same way. So the overview
  reads ``run_days`` by a range of days, a few documents per day, whatever the number of
  runs (SecantusDB decodes every document a sort reads: aggregating 100,000 runs would take
  seconds there).
- **Counted once.** The totals are added from what the finishing write returned or wrote:
  a run that finished once is added once; a retried insert of a framework run that had landed
  adds nothing. On MongoDB a network error retried by the driver (retryable writes) is not
  applied twice. What is lost: a process that dies between the run's write and this one
  leaves the run out of its day (``rebuild`` recounts days from the runs).
- **Deleting runs keeps their days.** Retention and session deletion delete runs, never the
  totals: what a day cost stays what it cost.
- **Percentiles from a histogram.** p50 and p95 are read from the bucket the rank falls in
  (its geometric middle): within 9 % of the exact value, from documents of bounded size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError

from agents_core.db.client import Connection
from agents_core.db.documents import (
    AgentDocument,
    ModelCallStatus,
    RunDayDocument,
    RunDocument,
    RunStatus,
    StatsDimension,
    ToolCallStatus,
    bucket_bounds,
    bucket_of,
)
from agents_core.db.errors import InvalidInputError, translate_errors
from agents_core.db.repositories._base import Repository

__all__ = [
    "MAX_OVERVIEW_DAYS",
    "DayTotals",
    "KeyTotals",
    "Overview",
    "StatsRepository",
    "add_finished",
    "day_changes",
    "usage_changes",
]

logger = logging.getLogger(__name__)

#: The longest range one overview reads, in days.
MAX_OVERVIEW_DAYS = 366
_DUPLICATE_KEY = 11000
_FINAL = frozenset({RunStatus.completed.value, RunStatus.failed.value})

#: A document's ``$inc``, by its ``_id``.
Changes = dict[str, dict[str, float]]


# ---------------------------------------------------------------------------------------------
# Writing: what a finished run adds


def _day(value: datetime) -> str:
    return value.date().isoformat()


def _add(changes: Changes, day: str, dimension: StatsDimension, key: str, **inc: float) -> None:
    entry = changes.setdefault(f"{day}/{dimension.value}/{key}", {})
    for name, amount in inc.items():
        if amount:
            entry[name] = entry.get(name, 0) + amount


def _timed(changes: Changes, day: str, dimension: StatsDimension, key: str, ms: Any) -> None:
    if isinstance(ms, int | float) and math.isfinite(ms) and ms >= 0:
        _add(changes, day, dimension, key, timed=1, ms=float(ms))
        _add(changes, day, dimension, key, **{f"hist.{bucket_of(ms)}": 1})


def day_changes(
    raw: Mapping[str, Any], *, as_run: bool = True, changes: Changes | None = None
) -> Changes:
    """What the finished run ``raw`` (a stored ``runs`` document, or the part of one just
    appended) adds to its day: the run itself (``as_run``: once, when it finishes), its
    model calls and tool calls. Added to ``changes`` when given."""
    out: Changes = {} if changes is None else changes
    started = raw.get("started_at")
    if not isinstance(started, datetime):
        return out
    day = _day(started)
    tokens = int(raw.get("tokens") or 0)
    cost = float(raw.get("cost") or 0.0)
    agent = str(raw.get("agent_id", ""))
    run_dims = ((StatsDimension.all, ""), (StatsDimension.agent, agent))
    failed = raw.get("status") == RunStatus.failed.value
    for dimension, key in run_dims:
        if as_run:
            _add(out, day, dimension, key, runs=1, failed=int(failed))
        _add(out, day, dimension, key, tokens=tokens, cost=cost)
    completed = raw.get("completed_at")
    if as_run and isinstance(completed, datetime):
        took = (completed - started).total_seconds() * 1000
        for dimension, key in run_dims:
            _timed(out, day, dimension, key, took)
    for call in raw.get("model_calls") or ():
        model = str(call.get("model") or "unknown")
        _add(
            out,
            day,
            StatsDimension.model,
            model,
            calls=1,
            errors=int(call.get("status") == ModelCallStatus.error.value),
            tokens=int(call.get("input_tokens") or 0) + int(call.get("output_tokens") or 0),
            cost=float(call.get("cost") or 0.0),
        )
        _timed(out, day, StatsDimension.model, model, call.get("duration_ms"))
    for call in raw.get("tool_calls") or ():
        tool = str(call.get("tool_name") or "unknown")
        _add(
            out,
            day,
            StatsDimension.tool,
            tool,
            calls=1,
            errors=int(call.get("status") == ToolCallStatus.error.value),
        )
        _timed(out, day, StatsDimension.tool, tool, call.get("duration_ms"))
    return out


def usage_changes(raw: Mapping[str, Any], tokens: int, cost: float) -> Changes:
    """What usage added to the finished run ``raw`` after it finished adds to its day."""
    out: Changes = {}
    started = raw.get("started_at")
    if isinstance(started, datetime):
        day = _day(started)
        for dimension, key in (
            (StatsDimension.all, ""),
            (StatsDimension.agent, str(raw["agent_id"])),
        ):
            _add(out, day, dimension, key, tokens=tokens, cost=cost)
    return out


async def add_finished(db: Connection, changes: Changes) -> bool:
    """Add ``changes`` to their days: one ``bulk_write`` (none when there is nothing).

    Never raises: the runs are written when this is called, and their days are derived data
    (``StatsRepository.rebuild`` recounts them). A failure is logged; ``False`` says so.
    """
    operations = [_upsert(key, inc) for key, inc in changes.items() if inc]
    if not operations:
        return True
    collection = db.collection(RunDayDocument)
    try:
        try:
            await collection.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            # Two writers creating one day's document at once: the upsert that lost is an
            # update now that the document exists (MongoDB retries these itself; not every
            # server does).
            errors = exc.details.get("writeErrors", [])
            again = [operations[e["index"]] for e in errors if e.get("code") == _DUPLICATE_KEY]
            if len(again) != len(errors):
                raise
            await collection.bulk_write(again, ordered=False)
    except PyMongoError as exc:
        logger.warning(
            "agents-core: %d day total(s) of finished runs not updated (%s: %s); "
            "StatsRepository.rebuild recounts them",
            len(operations),
            type(exc).__name__,
            exc,
        )
        return False
    return True


def _upsert(key: str, inc: Mapping[str, float]) -> UpdateOne:
    day, dimension, name = key.split("/", 2)
    return UpdateOne(
        {"_id": key},
        {"$inc": dict(inc), "$setOnInsert": {"day": day, "dimension": dimension, "key": name}},
        upsert=True,
    )


# ---------------------------------------------------------------------------------------------
# Reading: the overview


@dataclass(frozen=True, slots=True)
class DayTotals:
    """One day of finished runs (every agent)."""

    day: str
    runs: int = 0
    failed: int = 0
    tokens: int = 0
    cost: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None

    @property
    def error_rate(self) -> float:
        """Failed runs over runs (0 without runs)."""
        return self.failed / self.runs if self.runs else 0.0


@dataclass(frozen=True, slots=True)
class KeyTotals:
    """An agent's runs, a model's or a tool's calls, over the overview's days.

    ``count`` is runs for an agent, calls for a model or tool; ``failed`` those that failed.
    ``label`` is what to show: the agent's name (its id if it was deleted), the model's or
    tool's name.
    """

    key: str
    label: str
    count: int = 0
    failed: int = 0
    tokens: int = 0
    cost: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None

    @property
    def error_rate(self) -> float:
        return self.failed / self.count if self.count else 0.0


@dataclass(frozen=True, slots=True)
class Overview:
    """Finished runs from ``since`` to ``until`` (UTC days, both included)."""

    since: date
    until: date
    total: DayTotals
    #: Every day of the range, oldest first (days without runs as zeros).
    days: list[DayTotals] = field(default_factory=list)
    #: Most expensive first (then most runs or calls, then name).
    agents: list[KeyTotals] = field(default_factory=list)
    models: list[KeyTotals] = field(default_factory=list)
    tools: list[KeyTotals] = field(default_factory=list)


@dataclass(slots=True)
class _Sum:
    count: int = 0
    failed: int = 0
    tokens: int = 0
    cost: float = 0.0
    hist: dict[int, int] = field(default_factory=dict)

    def add(self, raw: Mapping[str, Any], count_field: str, failed_field: str) -> None:
        self.count += int(raw.get(count_field) or 0)
        self.failed += int(raw.get(failed_field) or 0)
        self.tokens += int(raw.get("tokens") or 0)
        self.cost += float(raw.get("cost") or 0.0)
        for bucket, n in (raw.get("hist") or {}).items():
            if str(bucket).isdigit() and isinstance(n, int):
                self.hist[int(bucket)] = self.hist.get(int(bucket), 0) + n

    def percentile(self, share: float) -> float | None:
        return percentile(self.hist, share)


def percentile(hist: Mapping[int, int], share: float) -> float | None:
    """The duration at ``share`` (0.5: the median) of a histogram, as its bucket's geometric
    middle (``None`` for an empty histogram)."""
    total = sum(hist.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(share * total))
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            low, high = bucket_bounds(bucket)
            return math.sqrt(low * high) if low > 0 else high / 2
    return None  # pragma: no cover - the loop reaches rank


class StatsRepository(Repository):
    """Per-day totals of finished runs: the overview, and recounting days from the runs."""

    __slots__ = ()

    @translate_errors
    async def overview(self, since: date, until: date) -> Overview:
        """The runs finished between ``since`` and ``until`` (UTC days of their start, both
        included; at most ``MAX_OVERVIEW_DAYS``): totals per day, agent, model and tool. Two
        commands: the days' documents, then the agents' names."""
        first, last = _range(since, until)
        raws = await (
            self.db.collection(RunDayDocument)
            .find({"day": {"$gte": first.isoformat(), "$lte": last.isoformat()}})
            .to_list()
        )
        days: dict[str, _Sum] = {}
        keyed: dict[StatsDimension, dict[str, _Sum]] = {
            StatsDimension.agent: {},
            StatsDimension.model: {},
            StatsDimension.tool: {},
        }
        total = _Sum()
        for raw in raws:
            dimension = raw.get("dimension")
            if dimension == StatsDimension.all.value:
                days.setdefault(str(raw.get("day")), _Sum()).add(raw, "runs", "failed")
                total.add(raw, "runs", "failed")
            elif dimension == StatsDimension.agent.value:
                keyed[StatsDimension.agent].setdefault(str(raw.get("key")), _Sum()).add(
                    raw, "runs", "failed"
                )
            elif dimension in (StatsDimension.model.value, StatsDimension.tool.value):
                keyed[StatsDimension(dimension)].setdefault(str(raw.get("key")), _Sum()).add(
                    raw, "calls", "errors"
                )
        names = await self._agent_names(keyed[StatsDimension.agent])
        return Overview(
            since=first,
            until=last,
            total=_day_totals(f"{first.isoformat()}..{last.isoformat()}", total),
            days=[
                _day_totals(day.isoformat(), days.get(day.isoformat(), _Sum()))
                for day in _each_day(first, last)
            ],
            agents=_ranked(keyed[StatsDimension.agent], names),
            models=_ranked(keyed[StatsDimension.model], {}),
            tools=_ranked(keyed[StatsDimension.tool], {}),
        )

    async def _agent_names(self, agents: Mapping[str, _Sum]) -> dict[str, str]:
        ids = [ObjectId(key) for key in agents if ObjectId.is_valid(key)]
        if not ids:
            return {}
        raws = await (
            self.db.collection(AgentDocument).find({"_id": {"$in": ids}}, {"name": 1}).to_list()
        )
        return {str(raw["_id"]): str(raw.get("name", "")) for raw in raws}

    @translate_errors
    async def rebuild(self, since: date, until: date) -> int:
        """Recount the days from ``since`` to ``until`` from the runs stored (finished runs,
        by the day they started): after an upgrade from a version without ``run_days``, or
        after a crash between a run's write and its day's. Returns the runs counted.

        Reads the runs of each day 1,000 at a time, then replaces the day's documents. Runs
        deleted since are no longer counted; a run finishing during the recount of its day may
        be counted twice or not at all: run it while the days recounted are quiet.
        """
        first, last = _range(since, until)
        db = self.db
        runs = db.collection(RunDocument)
        days = db.collection(RunDayDocument)
        counted = 0
        fields = {
            "agent_id": 1,
            "status": 1,
            "tokens": 1,
            "cost": 1,
            "started_at": 1,
            "completed_at": 1,
            "model_calls.model": 1,
            "model_calls.status": 1,
            "model_calls.input_tokens": 1,
            "model_calls.output_tokens": 1,
            "model_calls.cost": 1,
            "model_calls.duration_ms": 1,
            "tool_calls.tool_name": 1,
            "tool_calls.status": 1,
            "tool_calls.duration_ms": 1,
        }
        for day in _each_day(first, last):
            start = datetime.combine(day, datetime.min.time(), UTC)
            end = start + timedelta(days=1)
            changes: Changes = {}
            after: ObjectId | None = None
            while True:
                query: dict[str, Any] = {
                    "started_at": {"$gte": start, "$lt": end},
                    "status": {"$in": sorted(_FINAL)},
                }
                if after is not None:
                    query["_id"] = {"$gt": after}
                batch = await runs.find(query, fields).sort("_id", 1).limit(1_000).to_list()
                for raw in batch:
                    day_changes(raw, changes=changes)
                counted += len(batch)
                if len(batch) < 1_000:
                    break
                after = batch[-1]["_id"]
            await days.delete_many({"day": day.isoformat()})
            if changes:
                await days.insert_many(list(_documents(changes)))
        return counted


def _documents(changes: Changes) -> Iterable[dict[str, Any]]:
    for key, inc in changes.items():
        day, dimension, name = key.split("/", 2)
        document: dict[str, Any] = {"_id": key, "day": day, "dimension": dimension, "key": name}
        for path, amount in inc.items():
            if path.startswith("hist."):
                document.setdefault("hist", {})[path[5:]] = int(amount)
            else:
                document[path] = amount
        yield document


def _range(since: date, until: date) -> tuple[date, date]:
    for name, value in (("since", since), ("until", until)):
        if not isinstance(value, date):
            raise InvalidInputError(name, "must be a date")
    first = since.date() if isinstance(since, datetime) else since
    last = until.date() if isinstance(until, datetime) else until
    if last < first:
        raise InvalidInputError("until", "must not be before since")
    if (last - first).days >= MAX_OVERVIEW_DAYS:
        raise InvalidInputError("since", f"the range must be at most {MAX_OVERVIEW_DAYS} days")
    return first, last


def _each_day(first: date, last: date) -> Sequence[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _day_totals(day: str, total: _Sum) -> DayTotals:
    return DayTotals(
        day=day,
        runs=total.count,
        failed=total.failed,
        tokens=total.tokens,
        cost=total.cost,
        p50_ms=total.percentile(0.5),
        p95_ms=total.percentile(0.95),
    )


def _ranked(sums: Mapping[str, _Sum], labels: Mapping[str, str]) -> list[KeyTotals]:
    rows = [
        KeyTotals(
            key=key,
            label=labels.get(key) or key,
            count=total.count,
            failed=total.failed,
            tokens=total.tokens,
            cost=total.cost,
            p50_ms=total.percentile(0.5),
            p95_ms=total.percentile(0.95),
        )
        for key, total in sums.items()
    ]
    rows.sort(key=lambda row: (-row.cost, -row.count, row.label))
    return rows
