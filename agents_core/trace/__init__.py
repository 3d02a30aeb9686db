"""Seeing a run: the turns and timelines of ``model``, the terminal tree of ``tree``, and
(behind their extras) the OpenTelemetry export ``agents_core.trace.otel`` and the local web view
``agents_core.trace.web``.

Usage::

    from rich.console import Console
    from agents_core.trace import render_session_tree, run_timeline

    Console().print(render_session_tree(session, runs))
    timeline = run_timeline(run)

Importing this package imports neither the web framework nor OpenTelemetry.
"""

from agents_core.trace.model import (
    Bar,
    BarKind,
    Step,
    StepKind,
    Timeline,
    Turn,
    call_duration_ms,
    format_ms,
    format_score,
    group_turns,
    ms_between,
    run_duration_ms,
    run_timeline,
    step_name,
    turn_steps,
)
from agents_core.trace.tree import (
    BAR_COLUMNS,
    EXCERPT,
    excerpt,
    render_session_tree,
    render_summary,
    status_style,
    visible,
)

__all__ = [
    "BAR_COLUMNS",
    "EXCERPT",
    "Bar",
    "BarKind",
    "Step",
    "StepKind",
    "Timeline",
    "Turn",
    "call_duration_ms",
    "excerpt",
    "format_ms",
    "format_score",
    "group_turns",
    "ms_between",
    "render_session_tree",
    "render_summary",
    "run_duration_ms",
    "run_timeline",
    "status_style",
    "step_name",
    "turn_steps",
    "visible",
]
