"""The server-drawn charts carry their figures: bar sizes in proportion, a title per mark, a legend that does not
rely on colour, and the same figures in the chart's table."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from analytics.charts import ForecastPoint, axis_top, forecast, horizontal_bars, lines, stacked_bars
from console import figures
from models.analytics import OrdersSeries, Summary

SVG = "{http://www.w3.org/2000/svg}"


def marks(svg: str, tag: str, kind: str) -> list[ET.Element]:
    return [element for element in ET.fromstring(svg).iter(f"{SVG}{tag}") if element.get("class") == kind]


def title(element: ET.Element) -> str:
    found = element.find(f"{SVG}title")
    assert found is not None and found.text is not None
    return found.text


@pytest.mark.parametrize(("largest", "top"), [(0, 1), (3, 5), (7, 10), (10, 10), (11, 20), (0.3, 0.5), (4200, 5000)])
def test_the_axis_ends_at_the_next_one_two_or_five(largest: float, top: float) -> None:
    assert axis_top(largest) == top


def test_stacked_bars_are_as_tall_as_their_figures_each_titled_and_stacked_bottom_up() -> None:
    chart = stacked_bars(
        "orders", "Orders per day", ["2026-11-01", "2026-11-02"], [("delivered", [4, 1]), ("shipped", [2, 0])], "orders"
    )

    bars = marks(chart.svg, "rect", "bar")
    assert [(bar.get("data-category"), bar.get("data-series"), bar.get("data-value")) for bar in bars] == [
        ("2026-11-01", "delivered", "4"),
        ("2026-11-01", "shipped", "2"),
        ("2026-11-02", "delivered", "1"),
    ]
    assert [title(bar) for bar in bars] == [
        "2026-11-01 · delivered: 4 orders",
        "2026-11-01 · shipped: 2 orders",
        "2026-11-02 · delivered: 1 orders",
    ]
    heights = [float(bar.get("height", "")) for bar in bars]
    # The axis runs to 10: a figure of 4 is 4/10 of the plot, and the bars share one scale.
    assert heights[0] / heights[1] == pytest.approx(2) and heights[0] / heights[2] == pytest.approx(4)
    first, second = bars[0], bars[1]
    assert float(second.get("y", "")) + heights[1] == pytest.approx(float(first.get("y", "")))
    assert chart.table.columns == ["", "delivered", "shipped", "total"]
    assert chart.table.rows == [["2026-11-01", "4", "2", "6"], ["2026-11-02", "1", "0", "1"]]


def test_each_series_has_its_own_pattern_and_a_labelled_legend_entry() -> None:
    names = ["received", "delivered", "shipped", "cancelled"]
    chart = stacked_bars("s", "By status", ["d"], [(name, [1]) for name in names], "orders")

    root = ET.fromstring(chart.svg)
    patterns = [p.get("data-pattern") for p in root.iter(f"{SVG}pattern")]
    legend = [
        text.text
        for group in root.iter(f"{SVG}g")
        if group.get("class") == "legend-item"
        for text in group.iter(f"{SVG}text")
    ]
    assert len(set(patterns)) == len(names)
    assert legend == names
    fills = {bar.get("fill") for bar in marks(chart.svg, "rect", "bar")}
    assert fills == {f"url(#s-p{index})" for index in range(len(names))}


def test_horizontal_bars_are_as_long_as_their_figures_and_write_them() -> None:
    chart = horizontal_bars("top", "Top SKUs by units", ["MUG-001", "TEE-002"], [40, 10], "units")

    bars = marks(chart.svg, "rect", "bar")
    widths = [float(bar.get("width", "")) for bar in bars]
    assert widths[0] / widths[1] == pytest.approx(4)
    assert [title(bar) for bar in bars] == ["MUG-001: 40 units", "TEE-002: 10 units"]
    assert chart.table.rows == [["MUG-001", "40"], ["TEE-002", "10"]]


def test_lines_leave_a_gap_where_a_figure_is_missing_and_differ_by_marker() -> None:
    chart = lines("lead", "Lead time", ["w1", "w2", "w3"], [("p50", [10, None, 20]), ("p90", [30, 40, None])], "hours")

    points = [
        (element.tag.removeprefix(SVG), element.get("data-series"), element.get("data-value"))
        for element in ET.fromstring(chart.svg).iter()
        if element.get("class") == "point"
    ]
    assert points == [
        ("circle", "p50", "10"),
        ("circle", "p50", "20"),
        ("rect", "p90", "30"),
        ("rect", "p90", "40"),
    ]
    assert chart.table.rows == [["w1", "10", "30"], ["w2", "", "40"], ["w3", "20", ""]]


def test_the_forecast_draws_history_the_mean_and_both_intervals() -> None:
    points = [ForecastPoint("2026-12-02", 5, 3, 7, 2, 9.5), ForecastPoint("2026-12-03", 6, 4, 8, 2.5, 10)]
    chart = forecast("fc", "MUG-001", [("2026-11-30", 4), ("2026-12-01", 8)], points)

    root = ET.fromstring(chart.svg)
    bands = {path.get("data-level") for path in root.iter(f"{SVG}path") if path.get("class") == "band"}
    series = {path.get("data-series") for path in root.iter(f"{SVG}path") if path.get("class") == "line"}
    means = marks(chart.svg, "circle", "point")
    assert bands == {"80%", "95%"} and series == {"history", "forecast"}
    assert [title(point) for point in means] == [
        "2026-12-02 forecast: 5 units (80% 3 to 7, 95% 2 to 9.50)",
        "2026-12-03 forecast: 6 units (80% 4 to 8, 95% 2.50 to 10)",
    ]
    assert chart.table.rows[-1] == ["2026-12-03", "", "6", "4 to 8", "2.50 to 10"]


def test_names_are_escaped_so_the_drawing_stays_well_formed() -> None:
    chart = horizontal_bars("x", "A <b> & c", ['<script>"'], [1], "units")

    root = ET.fromstring(chart.svg)
    assert title(marks(chart.svg, "rect", "bar")[0]) == '<script>": 1 units'
    assert root.find(f"{SVG}title") is not None


def test_the_dashboard_stacks_orders_in_the_order_an_order_moves_and_compares_periods() -> None:
    series = OrdersSeries.model_validate(
        {
            "tz": "UTC",
            "bucket": "day",
            "items": [
                {"start": "2026-11-02", "orders": 3, "by_status": {"delivered": 2, "received": 1}, "revenue": []},
                {"start": "2026-11-03", "orders": 1, "by_status": {"cancelled": 1}, "revenue": []},
            ],
        }
    )
    summary = Summary.model_validate(
        {
            "tz": "UTC",
            "current": {
                "first_day": "2026-11-02",
                "last_day": "2026-11-03",
                "orders": 4,
                "by_currency": [{"currency": "EUR", "orders": 3, "revenue": "90.00", "average_order_value": "30.00"}],
            },
            "previous": {"first_day": "2026-10-31", "last_day": "2026-11-01", "orders": 2, "by_currency": []},
            "change": {
                "orders_pct": 100.0,
                "by_currency": [{"currency": "EUR", "revenue_pct": None, "average_order_value_pct": None}],
            },
        }
    )

    chart = figures.orders_chart(series)
    cards = figures.headlines(summary)

    assert chart.table.columns == ["", "received", "delivered", "cancelled", "total"]
    assert chart.table.rows == [["2026-11-02", "1", "2", "0", "3"], ["2026-11-03", "0", "0", "1", "1"]]
    assert [(card.label, card.now, card.before, card.change_pct) for card in cards] == [
        ("Orders", "4", "2", 100.0),
        ("Revenue (EUR)", "90.00 EUR", "none", None),
        ("Average order value (EUR)", "30.00 EUR", "none", None),
    ]
