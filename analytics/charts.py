"""Charts drawn by the server as SVG: pure functions from figures to markup, each with the same figures as a table.

Every mark carries its figure in a `<title>` (shown on hover, read by screen readers) and in
`data-value`; stacked series differ by pattern and legend label as well as by colour, lines by dash
and marker shape, so no chart depends on colour alone. Sizes are in viewBox units: the page scales
the drawing to its width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 20, 32
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
# Colour-blind safe (Okabe-Ito, then grey and brown), each paired with a pattern drawn over it: one per order status.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000", "#999999", "#7A4A1E")
PATTERNS = ("solid", "stripes", "dots", "cross", "rows", "columns", "back-stripes", "grid", "checks", "rings")


@dataclass(frozen=True)
class Table:
    """A chart's figures as rows, for the HTML table beside it."""

    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    svg: str
    table: Table


def number(value: float) -> str:
    """A figure as the chart and its table show it: whole numbers bare, others to two decimals."""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def axis_top(largest: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `largest` (1 for nothing to show)."""
    if largest <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(largest))
    return float(next(step * power for step in (1, 2, 5, 10) if step * power >= largest))


def _svg(key: str, title: str, body: list[str], height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{key}-title" id="{key}-chart"><title id="{key}-title">{escape(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _patterns(key: str, styles: Sequence[int]) -> str:
    """A fill per series, `{key}-p{n}` for the n-th: the colour and pattern of its style number."""
    shapes = {
        "solid": "",
        "stripes": '<path d="M0 8L8 0" stroke="#fff" stroke-width="2"/>',
        "dots": '<circle cx="4" cy="4" r="1.6" fill="#fff"/>',
        "cross": '<path d="M0 8L8 0M0 0L8 8" stroke="#fff" stroke-width="1.2"/>',
        "rows": '<path d="M0 4H8" stroke="#fff" stroke-width="2"/>',
        "columns": '<path d="M4 0V8" stroke="#fff" stroke-width="2"/>',
        "back-stripes": '<path d="M0 0L8 8" stroke="#fff" stroke-width="2"/>',
        "grid": '<path d="M0 4H8M4 0V8" stroke="#fff" stroke-width="1"/>',
        "checks": '<path d="M0 0H4V4H0ZM4 4H8V8H4Z" fill="#fff"/>',
        "rings": '<circle cx="4" cy="4" r="2.4" fill="none" stroke="#fff" stroke-width="1"/>',
    }
    defs = []
    for index, style in enumerate(styles):
        colour, pattern = COLOURS[style % len(COLOURS)], PATTERNS[style % len(PATTERNS)]
        defs.append(
            f'<pattern id="{key}-p{index}" data-pattern="{pattern}" width="8" height="8" '
            f'patternUnits="userSpaceOnUse"><rect width="8" height="8" fill="{colour}"/>{shapes[pattern]}</pattern>'
        )
    return "<defs>" + "".join(defs) + "</defs>"


def _y_axis(top: float, unit: str) -> list[str]:
    # Whole steps for small counts (an axis to 2 reads 0, 1, 2), else quarters.
    steps = int(top) if top <= 4 and float(top).is_integer() else 4
    parts = []
    for step in range(steps + 1):
        value = top * step / steps
        y = TOP + PLOT_H - PLOT_H * step / steps
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{number(value)}</text>'
        )
    parts.append(f'<g class="unit"><text x="4" y="11" font-size="11">{escape(unit)}</text></g>')
    return parts


def _x_labels(categories: Sequence[str], centre: list[float]) -> list[str]:
    every = max(1, math.ceil(len(categories) / 8))
    return [
        f'<text x="{x:.1f}" y="{TOP + PLOT_H + 14}" text-anchor="middle" font-size="11">{escape(label[-5:])}</text>'
        for index, (label, x) in enumerate(zip(categories, centre, strict=True))
        if index % every == 0
    ]


def _legend(key: str, names: Sequence[str], y: float) -> list[str]:
    parts, x = [], float(LEFT)
    for index, name in enumerate(names):
        parts.append(
            f'<g class="legend-item"><rect x="{x:.1f}" y="{y - 9:.1f}" width="12" height="12" '
            f'fill="url(#{key}-p{index})" stroke="#333" stroke-width="0.5"/>'
            f'<text x="{x + 16:.1f}" y="{y + 1:.1f}" font-size="11">{escape(name)}</text></g>'
        )
        x += 28 + 6.5 * len(name)
    return parts


def stacked_bars(
    key: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    unit: str,
    styles: Sequence[int] | None = None,
) -> Chart:
    """A bar per category, stacked by series (bottom first), with a legend; one series makes plain bars.

    `styles` numbers each series' colour and pattern (its position by default), so that a series keeps
    its look from one chart to the next whichever others are present.
    """
    totals = [sum(values[index] for _, values in series) for index in range(len(categories))]
    top = axis_top(max(totals, default=0))
    slot = PLOT_W / max(len(categories), 1)
    width = max(slot * 0.7, 1)
    body = [_patterns(key, styles or range(len(series))), *_y_axis(top, unit)]
    centres = []
    for index, category in enumerate(categories):
        x = LEFT + slot * index + (slot - width) / 2
        centres.append(x + width / 2)
        base = float(TOP + PLOT_H)
        for number_, (name, values) in enumerate(series):
            value = values[index]
            if value <= 0:
                continue
            bar_h = PLOT_H * value / top
            base -= bar_h
            label = (
                f"{category} · {name}: {number(value)} {unit}"
                if len(series) > 1
                else f"{category}: {number(value)} {unit}"
            )
            body.append(
                f'<rect class="bar" x="{x:.2f}" y="{base:.2f}" width="{width:.2f}" height="{bar_h:.2f}" '
                f'fill="url(#{key}-p{number_})" data-category="{escape(category)}" data-series="{escape(name)}" '
                f'data-value="{number(value)}"><title>{escape(label)}</title></rect>'
            )
    body += _x_labels(categories, centres)
    height = HEIGHT
    if len(series) > 1:
        body += _legend(key, [name for name, _ in series], HEIGHT + 6)
        height += 18
    names = [name for name, _ in series]
    rows = [
        [
            category,
            *(number(values[index]) for _, values in series),
            *([number(totals[index])] if len(series) > 1 else []),
        ]
        for index, category in enumerate(categories)
    ]
    columns = ["", *names, *(["total"] if len(series) > 1 else [])]
    return Chart(key=key, title=title, svg=_svg(key, title, body, height), table=Table(columns=columns, rows=rows))


def horizontal_bars(key: str, title: str, labels: Sequence[str], values: Sequence[float], unit: str) -> Chart:
    """A bar per label, longest first as given, its figure written at its end."""
    row_h = 22
    height = TOP + row_h * max(len(labels), 1) + 8
    left = 120
    span = WIDTH - left - 60
    top = axis_top(max(values, default=0))
    body = []
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = TOP + row_h * index
        length = span * value / top
        body.append(
            f'<text x="{left - 6}" y="{y + 15}" text-anchor="end" font-size="12">{escape(label)}</text>'
            f'<rect class="bar" x="{left}" y="{y + 3}" width="{length:.2f}" height="{row_h - 6}" fill="{COLOURS[0]}" '
            f'data-category="{escape(label)}" data-value="{number(value)}">'
            f"<title>{escape(label)}: {number(value)} {escape(unit)}</title></rect>"
            f'<text x="{left + length + 4:.2f}" y="{y + 15}" font-size="12">{number(value)}</text>'
        )
    if not labels:
        body.append(f'<text x="{left}" y="{TOP + 15}" font-size="12">nothing to show</text>')
    rows = [[label, number(value)] for label, value in zip(labels, values, strict=True)]
    return Chart(key=key, title=title, svg=_svg(key, title, body, height), table=Table(columns=["", unit], rows=rows))


def _path(points: Sequence[tuple[float, float]]) -> str:
    return "M" + "L".join(f"{x:.2f} {y:.2f}" for x, y in points) if points else ""


def lines(
    key: str, title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], unit: str
) -> Chart:
    """A line per series, each with its own dash and marker shape; a gap where a figure is missing."""
    top = axis_top(max((v for _, values in series for v in values if v is not None), default=0))
    slot = PLOT_W / max(len(categories), 1)
    xs = [LEFT + slot * (index + 0.5) for index in range(len(categories))]
    body = [_patterns(key, range(len(series))), *_y_axis(top, unit)]
    dashes = ("", "6 4", "2 3", "8 3 2 3")
    for number_, (name, values) in enumerate(series):
        colour = COLOURS[number_ % len(COLOURS)]
        points = [(x, TOP + PLOT_H - PLOT_H * v / top) for x, v in zip(xs, values, strict=True) if v is not None]
        body.append(
            f'<path class="line" d="{_path(points)}" fill="none" stroke="{colour}" stroke-width="2" '
            f'stroke-dasharray="{dashes[number_ % len(dashes)]}" data-series="{escape(name)}"/>'
        )
        for category, x, value in zip(categories, xs, values, strict=True):
            if value is None:
                continue
            y = TOP + PLOT_H - PLOT_H * value / top
            tip = f"<title>{escape(category)} · {escape(name)}: {number(value)} {escape(unit)}</title>"
            attrs = (
                f'class="point" data-category="{escape(category)}" data-series="{escape(name)}" '
                f'data-value="{number(value)}"'
            )
            if number_ % 2 == 0:
                body.append(f'<circle {attrs} cx="{x:.2f}" cy="{y:.2f}" r="3.5" fill="{colour}">{tip}</circle>')
            else:
                body.append(
                    f'<rect {attrs} x="{x - 3.5:.2f}" y="{y - 3.5:.2f}" width="7" height="7" '
                    f'fill="{colour}">{tip}</rect>'
                )
    if all(value is None for _, values in series for value in values):
        body.append(f'<text x="{LEFT + 8}" y="{TOP + PLOT_H / 2:.0f}" font-size="12">nothing in this period</text>')
    body += _x_labels(categories, xs)
    body += _legend(key, [name for name, _ in series], HEIGHT + 6)
    rows = [
        [category, *("" if values[index] is None else number(values[index] or 0) for _, values in series)]
        for index, category in enumerate(categories)
    ]
    return Chart(
        key=key,
        title=title,
        svg=_svg(key, title, body, HEIGHT + 18),
        table=Table(columns=["", *(name for name, _ in series)], rows=rows),
    )


@dataclass(frozen=True)
class ForecastPoint:
    day: str
    mean: float
    lo80: float
    hi80: float
    lo95: float
    hi95: float


def forecast(key: str, title: str, history: Sequence[tuple[str, float]], points: Sequence[ForecastPoint]) -> Chart:
    """Demand so far as a solid line, the forecast as a dashed one, with its 95% and 80% intervals as bands."""
    days = [day for day, _ in history] + [point.day for point in points]
    top = axis_top(max([q for _, q in history] + [p.hi95 for p in points], default=0))
    step = PLOT_W / max(len(days) - 1, 1)

    def x(index: int) -> float:
        return LEFT + step * index

    def y(value: float) -> float:
        return TOP + PLOT_H - PLOT_H * value / top

    body = [*_y_axis(top, "units")]
    offset = len(history)
    for level, lo, hi, shade in (("95%", "lo95", "hi95", "#cfe3f3"), ("80%", "lo80", "hi80", "#8fbfe0")):
        upper = [(x(offset + i), y(getattr(p, hi))) for i, p in enumerate(points)]
        lower = [(x(offset + i), y(getattr(p, lo))) for i, p in enumerate(points)][::-1]
        if points:
            body.append(
                f'<path class="band" data-level="{level}" d="{_path(upper + lower)}Z" fill="{shade}" stroke="none">'
                f"<title>{level} interval</title></path>"
            )
    body.append(
        f'<path class="line" data-series="history" d="{_path([(x(i), y(q)) for i, (_, q) in enumerate(history)])}" '
        f'fill="none" stroke="#333" stroke-width="1.5"/>'
    )
    body.append(
        f'<path class="line" data-series="forecast" '
        f'd="{_path([(x(offset + i), y(p.mean)) for i, p in enumerate(points)])}" '
        f'fill="none" stroke="{COLOURS[0]}" stroke-width="2" stroke-dasharray="6 4"/>'
    )
    for index, point in enumerate(points):
        body.append(
            f'<circle class="point" cx="{x(offset + index):.2f}" cy="{y(point.mean):.2f}" r="2" fill="{COLOURS[0]}" '
            f'data-category="{point.day}" data-value="{number(round(point.mean, 2))}">'
            f"<title>{point.day} forecast: {number(round(point.mean, 2))} units (80% {number(round(point.lo80, 2))}"
            f" to {number(round(point.hi80, 2))}, 95% {number(round(point.lo95, 2))} to {number(round(point.hi95, 2))})"
            f"</title></circle>"
        )
    if points:
        body.append(
            f'<line x1="{x(offset):.2f}" x2="{x(offset):.2f}" y1="{TOP}" y2="{TOP + PLOT_H}" stroke="#999" '
            f'stroke-dasharray="2 2"/><text x="{x(offset) + 4:.2f}" y="{TOP + 10}" font-size="11">forecast</text>'
        )
    body += _x_labels(days, [x(i) for i in range(len(days))])
    body.append(
        f'<g class="legend-item"><line x1="{LEFT}" x2="{LEFT + 20}" y1="{HEIGHT + 2}" y2="{HEIGHT + 2}" stroke="#333"/>'
        f'<text x="{LEFT + 24}" y="{HEIGHT + 6}" font-size="11">demand</text></g>'
        f'<g class="legend-item"><line x1="{LEFT + 90}" x2="{LEFT + 110}" y1="{HEIGHT + 2}" y2="{HEIGHT + 2}" '
        f'stroke="{COLOURS[0]}" stroke-width="2" stroke-dasharray="6 4"/>'
        f'<text x="{LEFT + 114}" y="{HEIGHT + 6}" font-size="11">forecast (bands: 80% dark, 95% light)</text></g>'
    )
    rows = [[day, number(q), "", "", ""] for day, q in history[-14:]] + [
        [
            p.day,
            "",
            number(round(p.mean, 2)),
            f"{number(round(p.lo80, 2))} to {number(round(p.hi80, 2))}",
            f"{number(round(p.lo95, 2))} to {number(round(p.hi95, 2))}",
        ]
        for p in points
    ]
    table = Table(columns=["day", "demand", "forecast", "80% interval", "95% interval"], rows=rows)
    return Chart(key=key, title=title, svg=_svg(key, title, body, HEIGHT + 18), table=table)
