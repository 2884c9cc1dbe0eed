"""Server-rendered SVG charts for the console: pain over time and the PSFS beside it.

Readable without colour: every series has its own marker shape and line pattern, every point
carries its value as a label, and the template shows the same numbers in a table. The
smallest PSFS change that matters (:data:`MEANINGFUL_PSFS_CHANGE`, 2 points from the first
score) is marked on the point where it is reached, with a ring and a "+2"/"-2" label.
Each point is a ``<g class="point" data-series data-date data-value>`` (tests read those).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

from booking_service.exercises.progress import MEANINGFUL_PSFS_CHANGE

WIDTH, HEIGHT = 380, 200
LEFT, RIGHT, TOP, BOTTOM = 34, 14, 16, 30
MARKERS = ("circle", "square", "triangle")
DASHES = ("", "6 3", "2 3")
INK = "#1f2929"


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[date, int]]


def _x(day: date, first: date, last: date) -> float:
    span = (last - first).days or 1
    return LEFT + (WIDTH - LEFT - RIGHT) * ((day - first).days / span if last != first else 0.5)


def _y(value: int, top: int) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)


def _marker(shape: str, x: float, y: float) -> str:
    if shape == "square":
        return f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{INK}"/>'
    if shape == "triangle":
        return f'<polygon points="{x:.1f},{y - 5:.1f} {x + 5:.1f},{y + 4:.1f} {x - 5:.1f},{y + 4:.1f}" fill="{INK}"/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{INK}"/>'


def line_chart(
    series: list[Series], *, title: str, chart_id: str, y_label: str, mark_change: bool = False, top: int = 10
) -> Markup:
    """An SVG line chart of 0-``top`` scores over dates. ``mark_change`` marks, per series, the
    first point :data:`MEANINGFUL_PSFS_CHANGE` or more from the series' first score."""
    days = sorted({day for s in series for day, _ in s.points})
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' role="img" aria-labelledby="{escape(chart_id)}-title">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
    ]
    for value in (0, top // 2, top):
        y = _y(value, top)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#c8d0d0"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{value}</text>')
    parts.append(
        f'<text x="10" y="{TOP + (HEIGHT - TOP - BOTTOM) / 2:.0f}" font-size="11" text-anchor="middle"'
        f' transform="rotate(-90 10 {TOP + (HEIGHT - TOP - BOTTOM) / 2:.0f})">{escape(y_label)}</text>'
    )
    if not days:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="13">No scores yet</text>')
        return Markup("".join(parts) + "</svg>")
    first, last = days[0], days[-1]
    for label_day in sorted({first, last}):
        x = _x(label_day, first, last)
        anchor = "start" if label_day == first and first != last else "end" if label_day == last else "middle"
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" font-size="11">'
            f"{label_day:%b} {label_day.day}</text>"
        )
    for index, s in enumerate(series):
        shape, dash = MARKERS[index % len(MARKERS)], DASHES[index % len(DASHES)]
        coords = [(_x(day, first, last), _y(value, top), day, value) for day, value in s.points]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in coords)
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(f'<polyline points="{path}" fill="none" stroke="{INK}" stroke-width="1.5"{dash_attr}/>')
        marked = False
        start = s.points[0][1] if s.points else None
        for x, y, day, value in coords:
            parts.append(
                f'<g class="point" data-series="{escape(s.name)}" data-date="{day.isoformat()}" data-value="{value}">'
            )
            parts.append(_marker(shape, x, y))
            parts.append(f'<text x="{x:.1f}" y="{y - 8:.1f}" text-anchor="middle" font-size="10">{value}</text>')
            if mark_change and not marked and start is not None and abs(value - start) >= MEANINGFUL_PSFS_CHANGE:
                marked = True
                sign = "+" if value > start else "-"
                parts.append(
                    f'<circle class="change" cx="{x:.1f}" cy="{y:.1f}" r="9" fill="none" stroke="{INK}"'
                    f' stroke-width="1.5"/><text class="change" x="{x + 11:.1f}" y="{y + 4:.1f}" font-size="10"'
                    f' font-weight="bold">{sign}{MEANINGFUL_PSFS_CHANGE}</text>'
                )
            parts.append("</g>")
    if len(series) > 1 or mark_change:
        legend_y = TOP - 4
        x = LEFT
        for index, s in enumerate(series):
            parts.append(_marker(MARKERS[index % len(MARKERS)], x + 4, legend_y - 4))
            parts.append(f'<text x="{x + 12}" y="{legend_y}" font-size="10">{escape(s.name[:28])}</text>')
            x += 120
    return Markup("".join(parts) + "</svg>")


def pain_chart(points: list[tuple[date, int]], *, chart_id: str = "pain-chart") -> Markup:
    return line_chart([Series("Pain", points)], title="Pain (0-10) by day", chart_id=chart_id, y_label="Pain")


def function_chart(series: dict[str, list[tuple[date, int]]], *, chart_id: str = "psfs-chart") -> Markup:
    return line_chart(
        [Series(name, points) for name, points in series.items()],
        title=f"Function (PSFS, 0-10) by activity; a change of {MEANINGFUL_PSFS_CHANGE} points is marked",
        chart_id=chart_id,
        y_label="Function",
        mark_change=True,
    )


def change_reached(points: list[tuple[date, int]]) -> date | None:
    """The first day a PSFS series is :data:`MEANINGFUL_PSFS_CHANGE` or more from its start."""
    if not points:
        return None
    start = points[0][1]
    return next((day for day, value in points if abs(value - start) >= MEANINGFUL_PSFS_CHANGE), None)
