"""The geometry of a run's waterfall: one SVG bar per model call, tool call and step.

A bar's ``x`` is its start offset from the run's start and its ``width`` its recorded duration,
both scaled by the same factor (``PLOT_WIDTH`` pixels for the whole axis), so widths are in
proportion to durations exactly; a bar too thin to see gets a separate 2-pixel tick beside it
rather than a wider bar.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents_core.trace import Bar, Timeline, format_ms

__all__ = ["BarBox", "Chart", "chart"]

WIDTH = 1000
LABEL_WIDTH = 200
PLOT_WIDTH = 560
NOTE_X = LABEL_WIDTH + PLOT_WIDTH + 10
ROW_HEIGHT = 28
BAR_HEIGHT = 16
TOP = 30
#: Below this width a bar also gets a visible tick.
MIN_VISIBLE = 2.0
LABEL_CHARS = 28
#: Estimated width of one character of the notes (12 px monospace).
CHAR_WIDTH = 7.3

COLOURS = {
    ("model", "success"): "#2563eb",
    ("tool", "success"): "#059669",
    ("model", "error"): "#dc2626",
    ("tool", "error"): "#dc2626",
    ("tool", "pending"): "#d97706",
    ("step", "success"): "#7c3aed",
    ("step", "error"): "#dc2626",
}


@dataclass(frozen=True, slots=True)
class BarBox:
    bar: Bar
    index: int
    x: float
    y: float
    width: float
    label: str
    note: str
    colour: str

    @property
    def thin(self) -> bool:
        return self.width < MIN_VISIBLE

    @property
    def text_y(self) -> float:
        return self.y + BAR_HEIGHT - 4

    @property
    def note_after(self) -> bool:
        """Whether the note fits after the bar's end (else it goes before its start)."""
        end = self.x + max(self.width, MIN_VISIBLE) + 6
        return end + len(self.note) * CHAR_WIDTH <= WIDTH or self.x - LABEL_WIDTH < end - self.x

    @property
    def note_x(self) -> float:
        return self.x + max(self.width, MIN_VISIBLE) + 6 if self.note_after else self.x - 6


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    timeline: Timeline
    boxes: list[BarBox]
    ticks: list[Tick]
    height: int
    width: int = WIDTH
    label_width: int = LABEL_WIDTH
    plot_width: int = PLOT_WIDTH
    top: int = TOP
    bar_height: int = BAR_HEIGHT
    #: The length of the axis, in milliseconds (the timeline's, or a longer one shared).
    axis_ms: float = 0.0

    @property
    def scale(self) -> float:
        """Pixels per millisecond."""
        return PLOT_WIDTH / self.axis_ms if self.axis_ms > 0 else 0.0


def _note(bar: Bar) -> str:
    parts = [format_ms(bar.duration_ms) if bar.status != "pending" else "pending"]
    if bar.kind == "model":
        parts.append(f"{bar.tokens:,} tok")
        parts.append(f"${bar.cost:.6f}")
    if bar.error:
        flat = " ".join(bar.error.split())
        parts.append("error: " + (flat if len(flat) <= 60 else flat[:59] + "…"))
    return " · ".join(parts)


def _label(bar: Bar) -> str:
    prefix = {"model": "chat ", "tool": "tool ", "step": ""}[bar.kind]  # a step names its kind
    text = prefix + bar.name
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def chart(timeline: Timeline, *, axis_ms: float | None = None) -> Chart:
    """Place every bar of ``timeline`` on the chart, whose axis spans ``axis_ms`` (default: the
    timeline's length; two runs compared share the longer one's)."""
    total = max(timeline.total_ms, axis_ms or 0.0)
    scale = PLOT_WIDTH / total if total > 0 else 0.0
    boxes = [
        BarBox(
            bar=bar,
            index=index,
            x=LABEL_WIDTH + bar.offset_ms * scale,
            y=TOP + index * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2,
            width=bar.duration_ms * scale,
            label=_label(bar),
            note=_note(bar),
            colour=COLOURS.get((bar.kind, bar.status), "#6b7280"),
        )
        for index, bar in enumerate(timeline.bars)
    ]
    ticks = [
        Tick(LABEL_WIDTH + PLOT_WIDTH * step / 4, format_ms(total * step / 4)) for step in range(5)
    ]
    height = TOP + max(len(boxes), 1) * ROW_HEIGHT + 10
    return Chart(timeline=timeline, boxes=boxes, ticks=ticks, height=height, axis_ms=total)
