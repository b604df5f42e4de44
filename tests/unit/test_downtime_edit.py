"""Editing stored downtimes: times from the command line, adding and ending periods."""

from __future__ import annotations

import pytest

from gwms_tasks.core.downtime_edit import (
    ScopeFilter,
    add_period,
    end_periods,
    matching,
    parse_moment,
    status_at,
)
from gwms_tasks.core.downtimes import Downtime, DowntimeScope, parse_downtimes
from gwms_tasks.errors import ConfigError

NOW = 1_700_000_000.75  # 2023-11-14T22:13:20.75Z
T0 = "2023-11-14T22:13:20+00:00"


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("now", 1_700_000_000.0),
        (" NOW ", 1_700_000_000.0),
        ("1700000000", 1_700_000_000.0),
        ("1700000000.5", 1_700_000_000.5),
        ("2023-11-14T22:13:20", 1_700_000_000.0),  # no offset: UTC
        ("2023-11-14T23:13:20+01:00", 1_700_000_000.0),
        ("2023-11-14 22:13:20Z", 1_700_000_000.0),
    ],
)
def test_times_are_now_epoch_seconds_or_iso(word: str, expected: float) -> None:
    assert parse_moment(word, NOW) == expected


@pytest.mark.parametrize(
    "word",
    [
        "tomorrow",
        "",
        "inf",
        "nan",
        "2023-13-01T00:00:00",
        "1e300",
        "-1e300",
        "253402300800",  # year 10000
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    ],
)
def test_anything_else_is_refused_with_the_formats_expected(word: str) -> None:
    with pytest.raises(ValueError, match="expected 'now', epoch seconds or an ISO-8601 time"):
        parse_moment(word, NOW)


def test_a_period_is_appended_as_one_valid_line() -> None:
    text = f"{T0} None ce1 All All"  # no final newline
    period = Downtime(NOW - 10, None, DowntimeScope("ce2", "fe1"), "disk  full")
    new = add_period(text, period, "test")
    assert new.splitlines()[1] == "2023-11-14T22:13:10.750000+00:00 None ce2 fe1 All # disk full"
    assert len(parse_downtimes(new, "test").periods) == 2


def test_appending_to_a_broken_text_raises_naming_the_bad_line() -> None:
    period = Downtime(NOW, None)
    with pytest.raises(ConfigError) as caught:
        add_period("garbage\n", period, "redis:downtimes")
    assert caught.value.source == "redis:downtimes"
    assert caught.value.problems[0].startswith("line 1: expected ")


def test_ending_cuts_matching_periods_in_force_at_the_current_second() -> None:
    text = (
        "2023-01-01T00:00:00 None ce1 # one\n"
        "2023-01-01T00:00:00 None ce2\n"
        "2099-01-01T00:00:00 None ce1 # later\n"
        "2023-01-01T00:00:00 2023-02-01T00:00:00 ce1 # over\n"
    )
    new, ended = end_periods(text, NOW, ScopeFilter(entry="ce1"), "test")
    assert [p.comment for p in ended] == ["one"]
    assert new.splitlines() == [
        f"2023-01-01T00:00:00+00:00 {T0} ce1 All All # one",
        "2023-01-01T00:00:00+00:00 None ce2 All All",
        "2099-01-01T00:00:00+00:00 None ce1 All All # later",
        "2023-01-01T00:00:00+00:00 2023-02-01T00:00:00+00:00 ce1 All All # over",
    ]


def test_a_period_that_started_this_second_is_dropped_rather_than_made_empty() -> None:
    text = f"{T0} None factory\n"
    new, ended = end_periods(text, NOW, ScopeFilter(), "test")
    assert (new, len(ended)) == ("", 1)


def test_nothing_matching_changes_nothing() -> None:
    text = "2023-01-01T00:00:00+00:00 None ce1 All All\n"
    new, ended = end_periods(text, NOW, ScopeFilter(frontend="fe1"), "test")
    assert (new, ended) == (text, [])


@pytest.mark.parametrize(
    ("match", "selected"),
    [
        (ScopeFilter(), True),
        (ScopeFilter(entry="ce1"), True),
        (ScopeFilter(entry="ce1", frontend="fe1"), True),
        (ScopeFilter(frontend="All"), False),
        (ScopeFilter(security_class="main"), False),
        (ScopeFilter(entry="All"), False),
    ],
)
def test_a_filter_selects_by_the_fields_given(match: ScopeFilter, selected: bool) -> None:
    period = Downtime(0.0, None, DowntimeScope("ce1", "fe1", "All"))
    assert bool(matching([period], NOW, match)) is selected


def test_status_of_a_period() -> None:
    assert status_at(Downtime(0.0, None), NOW) == "in force"
    assert status_at(Downtime(NOW + 1, None), NOW) == "scheduled"
    assert status_at(Downtime(0.0, 1.0), NOW) == "ended"
    assert ScopeFilter(entry="ce1", security_class="x").describe() == "entry ce1, security class x"
