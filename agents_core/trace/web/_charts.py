"""Server-rendered SVG charts of the overview: bars per day, bars per key, latency bars.

Each chart is an ``<svg role="img">`` with a ``<title>`` naming it; each bar is a ``<rect>``
whose ``data-label`` and ``data-value`` carry what it stands for (the browser tests compare them
with ``/api/overview``) and whose ``<title>`` shows it on hover. Every text is escaped here
(``markupsafe.escape``): the charts are built as markup, not through a template. Heights and
widths are in proportion to the values, on an axis from 0 to the largest value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["Bar", "LatencyBar", "day_chart", "key_chart", "latency_chart"]

WIDTH = 640
DAY_HEIGHT = 200
#: Room for the axis labels around a plot.
LEFT = 64
BOTTOM = 28
TOP = 12
ROW_HEIGHT = 24
LABEL_WIDTH = 180
NOTE_WIDTH = 110
LABEL_CHARS = 24
COLOUR = "#2563eb"
ERROR_COLOUR = "#dc2626"
LIGHT = "#93c5fd"


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float


@dataclass(frozen=True, slots=True)
class LatencyBar:
    label: str
    p50: float | None
    p95: float | None


def _number(value: float) -> str:
    """A value as ``data-value`` carries it: the shortest text that reads back as the same
    float (what the API's JSON carries too)."""
    return repr(float(value))


def _cut(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _svg(name: str, width: float, height: float, body: list[str]) -> Markup:
    title = escape(name)
    head = (
        f'<svg class="chart" role="img" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" xmlns="http://www.w3.org/2000/svg" '
        f'data-chart="{title}"><title>{title}</title>'
    )
    return Markup(head + "".join(body) + "</svg>")


def day_chart(
    name: str,
    bars: Sequence[Bar],
    formatted: Callable[[float], str],
    *,
    colour: str = COLOUR,
) -> Markup:
    """One vertical bar per day, oldest on the left; the largest value labels the axis."""
    plot_width = WIDTH - LEFT - 8
    plot_height = DAY_HEIGHT - TOP - BOTTOM
    top = max((bar.value for bar in bars), default=0.0)
    slot = plot_width / max(len(bars), 1)
    body = [
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_height}" x2="{WIDTH - 8}" '
        f'y2="{TOP + plot_height}" stroke="#9ca3af"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end">{escape(formatted(top))}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_height}" text-anchor="end">0</text>',
    ]
    every = max(1, round(len(bars) / 8))
    for index, bar in enumerate(bars):
        height = 0.0 if top <= 0 else plot_height * bar.value / top
        x = LEFT + index * slot + slot * 0.15
        y = TOP + plot_height - height
        label = escape(bar.label)
        body.append(
            f'<rect class="bar" x="{x:.2f}" y="{y:.2f}" width="{slot * 0.7:.2f}" '
            f'height="{height:.2f}" fill="{colour}" data-label="{label}" '
            f'data-value="{_number(bar.value)}"><title>{label}: '
            f"{escape(formatted(bar.value))}</title></rect>"
        )
        if index % every == 0:
            body.append(
                f'<text x="{x + slot * 0.35:.2f}" y="{DAY_HEIGHT - 8}" '
                f'text-anchor="middle">{escape(bar.label[5:])}</text>'
            )
    return _svg(name, WIDTH, DAY_HEIGHT, body)


def key_chart(
    name: str,
    bars: Sequence[Bar],
    formatted: Callable[[float], str],
    *,
    colour: str = COLOUR,
) -> Markup:
    """One horizontal bar per key (an agent, a model), in the order given."""
    plot = WIDTH - LABEL_WIDTH - NOTE_WIDTH
    top = max((bar.value for bar in bars), default=0.0)
    height = TOP + ROW_HEIGHT * max(len(bars), 1) + 4
    body: list[str] = []
    for index, bar in enumerate(bars):
        y = TOP + index * ROW_HEIGHT
        width = 0.0 if top <= 0 else plot * bar.value / top
        label = escape(bar.label)
        body.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">'
            f"{escape(_cut(bar.label))}</text>"
            f'<rect class="bar" x="{LABEL_WIDTH}" y="{y + 4}" width="{width:.2f}" height="14" '
            f'fill="{colour}" data-label="{label}" data-value="{_number(bar.value)}">'
            f"<title>{label}: {escape(formatted(bar.value))}</title></rect>"
            f'<text x="{LABEL_WIDTH + width + 6:.2f}" y="{y + 15}">'
            f"{escape(formatted(bar.value))}</text>"
        )
    if not bars:
        body.append(f'<text x="{LABEL_WIDTH}" y="{TOP + 14}">nothing in this range</text>')
    return _svg(name, WIDTH, height, body)


def latency_chart(
    name: str, bars: Sequence[LatencyBar], formatted: Callable[[float], str]
) -> Markup:
    """For each key, its p95 as a light bar with its p50 drawn over it, on one axis."""
    plot = WIDTH - LABEL_WIDTH - NOTE_WIDTH - 40
    top = max((bar.p95 or 0.0 for bar in bars), default=0.0)
    height = TOP + ROW_HEIGHT * max(len(bars), 1) + 4
    body: list[str] = []
    for index, bar in enumerate(bars):
        y = TOP + index * ROW_HEIGHT
        label = escape(bar.label)
        body.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">'
            f"{escape(_cut(bar.label))}</text>"
        )
        for kind, value, fill in (("p95", bar.p95, LIGHT), ("p50", bar.p50, COLOUR)):
            if value is None:
                continue
            width = 0.0 if top <= 0 else plot * value / top
            body.append(
                f'<rect class="bar" x="{LABEL_WIDTH}" y="{y + 4}" width="{width:.2f}" '
                f'height="14" fill="{fill}" data-label="{label}" data-kind="{kind}" '
                f'data-value="{_number(value)}"><title>{label} {kind}: '
                f"{escape(formatted(value))}</title></rect>"
            )
        if bar.p50 is not None and bar.p95 is not None:
            note = f"{formatted(bar.p50)} / {formatted(bar.p95)}"
            width = 0.0 if top <= 0 else plot * bar.p95 / top
            body.append(
                f'<text x="{LABEL_WIDTH + width + 6:.2f}" y="{y + 15}">{escape(note)}</text>'
            )
    if not bars:
        body.append(f'<text x="{LABEL_WIDTH}" y="{TOP + 14}">nothing in this range</text>')
    return _svg(name, WIDTH, height, body)
