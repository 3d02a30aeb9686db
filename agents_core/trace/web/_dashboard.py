"""The trace view's pages across sessions: the overview, the run listing, a run beside its replay.

What each page shows is built here from the reads (``StatsRepository.overview``,
``TraceReads.runs``, two runs and their turns); ``app.py`` only routes. The API answers carry
the same figures the pages draw (``overview_json``), so a test can hold a chart's bars against
them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from markupsafe import Markup, escape

from agents_core.db import InvalidIdError, InvalidInputError, Message, Run, RunStatus
from agents_core.db import validation as check
from agents_core.db.repositories import DayTotals, KeyTotals, Overview
from agents_core.trace import format_ms, run_duration_ms, run_timeline
from agents_core.trace.web._charts import (
    ERROR_COLOUR,
    Bar,
    LatencyBar,
    day_chart,
    key_chart,
    latency_chart,
)
from agents_core.trace.web._reads import RUN_SORTS, RunFilter, RunRow, RunSort
from agents_core.trace.web._timeline import Chart, chart

__all__ = [
    "OVERVIEW_RANGES",
    "compare_context",
    "overview_context",
    "overview_json",
    "parse_day",
    "run_filter",
    "run_row_json",
]

#: The ranges the overview offers, in days (the default first).
OVERVIEW_RANGES = (14, 7, 30, 90, 365)


def money(value: float) -> str:
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def parse_day(raw: str | None, name: str) -> date | None:
    """A ``YYYY-MM-DD`` parameter (``InvalidInputError`` for anything else)."""
    if raw is None or raw == "":
        return None
    if len(raw) != 10 or not raw.isascii():
        raise InvalidInputError(name, "must be a day, YYYY-MM-DD")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInputError(name, "must be a day, YYYY-MM-DD") from None


def today() -> date:
    return datetime.now(UTC).date()


# ---------------------------------------------------------------------------------------------
# The overview


def overview_context(overview: Overview, days: int | None) -> dict[str, Any]:
    """What ``overview.html`` draws: the charts and the tables beside them."""
    series = overview.days
    return {
        "overview": overview,
        "range_days": days,
        "ranges": OVERVIEW_RANGES,
        "money": money,
        "cost_chart": day_chart("Cost per day", [Bar(d.day, d.cost) for d in series], money),
        "runs_chart": day_chart(
            "Runs per day", [Bar(d.day, d.runs) for d in series], lambda v: f"{v:,.0f}"
        ),
        "tokens_chart": day_chart(
            "Tokens per day", [Bar(d.day, d.tokens) for d in series], lambda v: f"{v:,.0f}"
        ),
        "errors_chart": day_chart(
            "Error rate per day",
            [Bar(d.day, d.error_rate * 100) for d in series],
            lambda v: f"{v:.1f} %",
            colour=ERROR_COLOUR,
        ),
        "agents_chart": key_chart(
            "Cost by agent", [Bar(a.label, a.cost) for a in overview.agents], money
        ),
        "models_chart": key_chart(
            "Cost by model", [Bar(m.label, m.cost) for m in overview.models], money
        ),
        "model_latency_chart": latency_chart(
            "Model call duration, p50 and p95",
            [LatencyBar(m.label, m.p50_ms, m.p95_ms) for m in overview.models],
            format_ms,
        ),
        "tool_latency_chart": latency_chart(
            "Tool call duration, p50 and p95",
            [LatencyBar(t.label, t.p50_ms, t.p95_ms) for t in overview.tools],
            format_ms,
        ),
    }


def _day_json(day: DayTotals) -> dict[str, Any]:
    return {
        "day": day.day,
        "runs": day.runs,
        "failed": day.failed,
        "error_rate": day.error_rate,
        "tokens": day.tokens,
        "cost": day.cost,
        "p50_ms": day.p50_ms,
        "p95_ms": day.p95_ms,
    }


def _key_json(row: KeyTotals) -> dict[str, Any]:
    return {
        "key": row.key,
        "label": row.label,
        "count": row.count,
        "failed": row.failed,
        "error_rate": row.error_rate,
        "tokens": row.tokens,
        "cost": row.cost,
        "p50_ms": row.p50_ms,
        "p95_ms": row.p95_ms,
    }


def overview_json(overview: Overview) -> dict[str, Any]:
    return {
        "since": overview.since.isoformat(),
        "until": overview.until.isoformat(),
        "total": _day_json(overview.total),
        "days": [_day_json(day) for day in overview.days],
        "agents": [_key_json(row) for row in overview.agents],
        "models": [_key_json(row) for row in overview.models],
        "tools": [_key_json(row) for row in overview.tools],
    }


def overview_range(
    days: int | None, since: date | None, until: date | None
) -> tuple[date, date, int | None]:
    """The days an overview covers: ``since``..``until`` when given, else the last ``days``
    (default 14) up to today (UTC)."""
    last = until or today()
    if since is not None:
        return since, last, None
    count = OVERVIEW_RANGES[0] if days is None else days
    if not 1 <= count <= 366:
        raise InvalidInputError("days", "must be from 1 to 366")
    return last - timedelta(days=count - 1), last, count


# ---------------------------------------------------------------------------------------------
# The run listing


def run_filter(params: Mapping[str, str | None]) -> tuple[RunFilter, RunSort]:
    """The listing's filter and order from the page's parameters (``None``: not given)."""
    agent = params.get("agent")
    status = params.get("status")
    sort = params.get("sort") or "newest"
    chosen: RunSort | None = next((s for s in RUN_SORTS if s == sort), None)
    if chosen is None:
        raise InvalidInputError("sort", f"must be one of {', '.join(RUN_SORTS)}")
    try:
        agent_id = None if agent is None else check.object_id(agent, "agent")
    except InvalidIdError:  # a parameter, not a path: the request is wrong, nothing is missing
        raise InvalidInputError("agent", "must be an agent's id (24 hex digits)") from None
    where = RunFilter(
        agent_id=agent_id,
        model=params.get("model"),
        status=None if status is None else check.enum(RunStatus, status, "status"),
        user_id=params.get("user"),
        since=parse_day(params.get("since"), "since"),
        until=parse_day(params.get("until"), "until"),
    )
    return where, chosen


def run_row_json(row: RunRow) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "session_id": str(row.session_id),
        "session_title": row.session_title,
        "agent_id": str(row.agent_id),
        "agent": row.agent_name,
        "status": row.status.value,
        "error": row.error,
        "started_at": row.started_at.isoformat(),
        "duration_ms": row.duration_ms,
        "tokens": row.tokens,
        "cost": row.cost,
        "models": row.models,
        "tool_calls": row.tool_calls,
        "failed_tool_calls": row.failed_tool_calls,
        "source": row.source,
        "replay_of": None if row.replay_of is None else str(row.replay_of),
    }


# ---------------------------------------------------------------------------------------------
# A run beside its replay


@dataclass(frozen=True, slots=True)
class Delta:
    name: str
    left: str
    right: str
    change: str
    #: ``better``, ``worse`` or ``same`` (lower is better for each of these figures).
    verdict: str


@dataclass(frozen=True, slots=True)
class MessagePair:
    left: Message | None
    right: Message | None
    #: The two contents with what differs marked (``<del>`` left, ``<ins>`` right).
    left_marked: Markup
    right_marked: Markup
    same: bool


def _delta(name: str, left: float | None, right: float | None, shown: Any) -> Delta:
    if left is None or right is None:
        return Delta(name, shown(left), shown(right), "—", "same")
    diff = right - left
    if diff == 0:
        return Delta(name, shown(left), shown(right), "±0", "same")
    sign = "+" if diff > 0 else "-"
    share = f" ({diff / left * 100:+.0f} %)" if left else ""
    return Delta(
        name,
        shown(left),
        shown(right),
        f"{sign}{shown(abs(diff))}{share}",
        "worse" if diff > 0 else "better",
    )


def _marked(left: str, right: str) -> tuple[Markup, Markup]:
    """The two texts, word by word, with the words only one of them has marked."""
    a, b = left.split(" "), right.split(" ")
    out_a: list[str] = []
    out_b: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        part_a, part_b = " ".join(a[i1:i2]), " ".join(b[j1:j2])
        if op == "equal":
            out_a.append(str(escape(part_a)))
            out_b.append(str(escape(part_b)))
            continue
        if part_a:
            out_a.append(f"<del>{escape(part_a)}</del>")
        if part_b:
            out_b.append(f"<ins>{escape(part_b)}</ins>")
    return Markup(" ".join(out_a)), Markup(" ".join(out_b))


#: Characters of one message compared word by word (beyond: compared, shown cut).
COMPARE_CHARS = 4_000


def _pairs(left: Sequence[Message], right: Sequence[Message]) -> list[MessagePair]:
    pairs = []
    for index in range(max(len(left), len(right))):
        one = left[index] if index < len(left) else None
        two = right[index] if index < len(right) else None
        text_one = "" if one is None else one.content[:COMPARE_CHARS]
        text_two = "" if two is None else two.content[:COMPARE_CHARS]
        same = one is not None and two is not None and one.content == two.content
        if same:
            marked_one = marked_two = Markup(escape(text_one))
        else:
            marked_one, marked_two = _marked(text_one, text_two)
        pairs.append(MessagePair(one, two, marked_one, marked_two, same))
    return pairs


def compare_context(
    left: Run, right: Run, left_turn: Sequence[Message], right_turn: Sequence[Message]
) -> dict[str, Any]:
    """Two runs on one time axis, their turns' messages side by side, and their deltas."""
    one, two = run_timeline(left), run_timeline(right)
    axis = max(one.total_ms, two.total_ms)
    charts: tuple[Chart, Chart] = (chart(one, axis_ms=axis), chart(two, axis_ms=axis))
    deltas = [
        _delta("Tokens", left.tokens, right.tokens, lambda v: "—" if v is None else f"{v:,}"),
        _delta("Cost", left.cost, right.cost, lambda v: "—" if v is None else money(v)),
        _delta(
            "Duration",
            run_duration_ms(left),
            run_duration_ms(right),
            lambda v: "—" if v is None else format_ms(v),
        ),
        _delta("Model calls", len(left.model_calls), len(right.model_calls), str),
        _delta("Tool calls", len(left.tool_calls), len(right.tool_calls), str),
    ]
    return {
        "left": left,
        "right": right,
        "charts": charts,
        "deltas": deltas,
        "pairs": _pairs(left_turn, right_turn),
    }
