"""Small charts as inline SVG, drawn on the server: no JavaScript, no library, no network.

Each chart is an ``<svg role="img">`` with a text alternative that states the figures, so a
screen reader hears the numbers the picture shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

from provisiond.services.monitoring import LatencyPoint

WIDTH, BAR_HEIGHT, GAP, LABEL = 320, 18, 6, 110
COLOURS = {"provisioned": "#2e7d32", "pending": "#1565c0", "failed": "#c62828"}


def bar_chart(title: str, items: Sequence[tuple[str, int]]) -> Markup:
    """Horizontal bars, one per (label, value)."""
    top = max([value for _, value in items] + [1])
    height = len(items) * (BAR_HEIGHT + GAP) + GAP
    summary = ", ".join(f"{label}: {value}" for label, value in items)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" aria-label="{escape(title)}: {escape(summary)}">'
    ]
    for index, (label, value) in enumerate(items):
        y = GAP + index * (BAR_HEIGHT + GAP)
        length = round((WIDTH - LABEL - 40) * value / top)
        colour = COLOURS.get(label, "#455a64")
        parts.append(
            f'<text x="0" y="{y + 13}" class="chart-label">{escape(label)}</text>'
            f'<rect x="{LABEL}" y="{y}" width="{max(length, 1)}" height="{BAR_HEIGHT}" '
            f'fill="{colour}"></rect>'
            f'<text x="{LABEL + max(length, 1) + 4}" y="{y + 13}" class="chart-value">{value}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def latency_chart(title: str, points: Sequence[LatencyPoint]) -> Markup:
    """Deprovisioning latency over time: one dot per deprovisioning, joined by a line."""
    if not points:
        return Markup('<p class="muted">No deprovisioning yet.</p>')
    width, height, pad = 320, 120, 28
    top = max(max(p.seconds for p in points), 0.001)
    start, end = points[0].time, points[-1].time
    span = max((end - start).total_seconds(), 1e-9)

    def x(index: int) -> float:
        seconds = (points[index].time - start).total_seconds()
        return pad + (width - 2 * pad) * (seconds / span if len(points) > 1 else 0.5)

    def y(value: float) -> float:
        return height - pad + 10 - (height - pad - 4) * value / top

    coords = [(x(i), y(p.seconds)) for i, p in enumerate(points)]
    line = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
    slowest = max(p.seconds for p in points)
    median = sorted(p.seconds for p in points)[len(points) // 2]
    label = (
        f"{title}: {len(points)} deprovisionings from {start:%Y-%m-%d %H:%M} to "
        f"{end:%Y-%m-%d %H:%M} UTC, median {median:.3f} s, slowest {slowest:.3f} s"
    )
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="{escape(label)}">',
        f'<line x1="{pad}" y1="{height - pad + 10}" x2="{width - pad}" y2="{height - pad + 10}" '
        'class="axis"></line>',
        f'<line x1="{pad}" y1="6" x2="{pad}" y2="{height - pad + 10}" class="axis"></line>',
        f'<text x="0" y="14" class="chart-value">{top:.2f}s</text>',
        f'<text x="0" y="{height - pad + 10}" class="chart-value">0</text>',
        f'<text x="{pad}" y="{height - 2}" class="chart-value">{start:%H:%M}</text>',
        f'<text x="{width - pad - 30}" y="{height - 2}" class="chart-value">{end:%H:%M}</text>',
        f'<polyline points="{line}" class="latency-line"></polyline>',
    ]
    parts += [f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.5"></circle>' for cx, cy in coords]
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers and escaped text only
