"""The p50/p99 chart drawn as text: log-scale heights, gaps for idle seconds, the latest on the
right, and a scale that fits its column."""

from __future__ import annotations

from tui.widgets.latency_chart import column_levels, render_chart, short_ms


def test_levels_are_log_scaled_between_the_lowest_p50_and_the_highest_p99():
    levels = column_levels(((1.0, 10.0), None, (10.0, 100.0)), height=4, low=1.0, high=100.0)
    assert levels == [(1, 16), None, (16, 32)]  # 10 ms is half-way up a log scale to 100


def test_chart_has_its_size_the_latest_second_on_the_right_and_gaps():
    series = ((1.0, 4.0), None, (2.0, 250.0))
    lines = render_chart(series, width=20, height=4).plain.split("\n")
    assert len(lines) == 4 and all(len(line) == 20 for line in lines)
    assert lines[0].startswith(" 250ms ") and lines[3].startswith(" 1.0ms ")
    assert lines[0][-1] == "█"  # the slow p99, in the latest column, reaches the top
    assert lines[3][-2] == " "  # the idle second is a gap
    assert lines[3][-3] != " "


def test_more_seconds_than_columns_shows_the_latest():
    series = tuple((float(i), float(i)) for i in range(1, 101))
    text = render_chart(series, width=17, height=2)
    assert len(text.plain.split("\n")[0]) == 17
    assert text.plain.split("\n")[0].startswith(" 100ms ")
    assert text.plain.split("\n")[1].startswith("  91ms ")


def test_no_requests_says_so():
    assert "no requests" in render_chart((None, None), width=40, height=3).plain


def test_scale_labels_fit_six_characters():
    assert [short_ms(v) for v in (0.25, 9.99, 12.0, 999.0, 1500.0, 65000.0)] == [
        "0.2ms",
        "10.0ms",
        "12ms",
        "999ms",
        "1.5s",
        "65.0s",
    ]
