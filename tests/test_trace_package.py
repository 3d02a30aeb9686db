"""The face of ``agents_core.trace``: the names users import, and the extras it never loads."""

from __future__ import annotations

import agents_core.trace as trace
from tests.helpers import modules_loaded_by

#: What ``agents_core/trace.py`` offered before it became a package (``__all__`` and its other
#: public names): ``from agents_core.trace import X`` keeps working for each.
FORMER_MODULE_NAMES = (
    "BAR_COLUMNS",
    "EXCERPT",
    "Bar",
    "BarKind",
    "Step",
    "StepKind",
    "Timeline",
    "Turn",
    "call_duration_ms",
    "format_ms",
    "group_turns",
    "render_session_tree",
    "render_summary",
    "run_duration_ms",
    "run_timeline",
    "turn_steps",
)

#: The optional extras behind ``agents_core.trace.web`` and ``agents_core.trace.otel``.
EXTRAS = ("starlette", "jinja2", "uvicorn", "opentelemetry")


def test_every_name_of_the_former_module_is_offered() -> None:
    assert [name for name in FORMER_MODULE_NAMES if name not in trace.__all__] == []
    assert all(hasattr(trace, name) for name in trace.__all__)


def test_the_package_loads_neither_the_web_nor_the_otel_extra() -> None:
    loaded = modules_loaded_by("agents_core.trace")
    assert "agents_core.trace.tree" in loaded  # the check sees what the import loads
    assert sorted(name for name in loaded if name.split(".")[0] in EXTRAS) == []
    assert sorted(name for name in loaded if name.startswith("agents_core.trace.")) == [
        "agents_core.trace.model",
        "agents_core.trace.tree",
    ]
