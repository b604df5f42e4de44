"""Downtimes: the file format, the scoping rules of glideinWMS, and writing them back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.core.decisions import DownReason
from gwms_tasks.core.downtimes import (
    ALL,
    FACTORY,
    Downtime,
    Downtimes,
    DowntimeScope,
    entry_down_reason,
    format_downtime,
    format_downtimes,
    parse_downtimes,
    request_down_reason,
)
from gwms_tasks.errors import ConfigError


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


MAY_1 = at("2024-05-01T10:00:00")
NOON = at("2024-05-01T12:00:00")


def test_a_line_without_scope_is_a_factory_downtime_and_a_comment_is_kept() -> None:
    (period,) = parse_downtimes("2024-05-01T10:00:00 2024-05-02T10:00:00 # move\n", "d").periods
    assert period == Downtime(
        MAY_1, at("2024-05-02T10:00:00"), DowntimeScope(FACTORY, ALL, ALL), "move"
    )


def test_times_without_an_offset_are_utc_and_offsets_are_honoured() -> None:
    text = "2024-05-01T10:00:00 None\n2024-05-01T12:00:00+02:00 None\n2024-05-01T10:00:00Z None\n"
    starts = [p.start for p in parse_downtimes(text, "d").periods]
    assert starts == [MAY_1, MAY_1, MAY_1]


def test_blank_and_comment_lines_are_skipped_and_end_none_is_open_ended() -> None:
    text = "\n# planned work\n   \n2024-05-01T10:00:00 None ce1 fe_cms analysis #  CE  move \n"
    (period,) = parse_downtimes(text, "d").periods
    assert period.end is None
    assert period.scope == DowntimeScope("ce1", "fe_cms", "analysis")
    assert period.comment == "CE move"


BAD_LINES = [
    ("2024-05-01T10:00:00", "line 2: expected 'START END [ENTRY [FRONTEND [SECURITY_CLASS]]] "),
    ("2024-05-01T10:00:00 None a b c d", "line 2: expected 'START END [ENTRY [FRONTEND "),
    ("soon None", "line 2: START: expected an ISO-8601 time like 2024-05-01T10:00:00+00:00, "),
    ("2024-05-01T10:00:00 never", "line 2: END: expected an ISO-8601 time like "),
    (
        "2024-05-02T10:00:00 2024-05-01T10:00:00",
        "line 2: END 2024-05-01T10:00:00 is not after START 2024-05-02T10:00:00",
    ),
    ("2024-05-01T10:00:00 None ce/1", "line 2: expected a name of letters, digits, '.', '_'"),
    ("None None", "line 2: START: expected an ISO-8601 time"),
    ("9999-12-31T23:59:59.999999 None", "line 2: START: expected an ISO-8601 time"),
]


@pytest.mark.parametrize(("line", "problem"), BAD_LINES)
def test_bad_lines_are_named_by_their_line_number(line: str, problem: str) -> None:
    text = f"# header\n{line}\n"
    with pytest.raises(ConfigError) as caught:
        parse_downtimes(text, "/etc/gwms/downtimes")
    assert caught.value.source == "/etc/gwms/downtimes"
    (found,) = caught.value.problems
    assert found.startswith(problem)


def test_every_bad_line_is_reported_at_once() -> None:
    text = "x None\n2024-05-01T10:00:00 None\ny None\n"
    with pytest.raises(ConfigError) as caught:
        parse_downtimes(text, "d")
    assert [p.split(":")[0] for p in caught.value.problems] == ["line 1", "line 3"]


DOWNTIMES = parse_downtimes(
    "\n".join(
        [
            "2024-05-01T10:00:00 2024-05-01T11:00:00 factory",
            "2024-05-01T10:00:00 None ce_down",
            "2024-05-01T10:00:00 None All fe_dune",
            "2024-05-01T10:00:00 None ce_fe fe_cms",
            "2024-05-01T10:00:00 None ce_sc fe_cms pilot",
        ]
    ),
    "d",
)

SCOPING = [
    # now, entry, frontend, security class -> index of the matching line or None
    (NOON, FACTORY, ALL, ALL, None),  # the factory line ended at 11:00
    (MAY_1 + 60, FACTORY, ALL, ALL, 0),
    (MAY_1 + 60, "ce_ok", ALL, ALL, None),  # a factory line is not an entry downtime
    (NOON, "ce_down", ALL, ALL, 1),
    (NOON, "ce_down", "fe_cms", "analysis", 1),  # an entry downtime covers every frontend
    (NOON, FACTORY, "fe_dune", ALL, None),  # an "All entries" line skips the factory check
    (NOON, "ce_ok", "fe_dune", "main", 2),  # ... but covers each entry for its frontend
    (NOON, "ce_ok", ALL, ALL, None),  # an entry-level check ignores frontend-scoped lines
    (NOON, "ce_fe", ALL, ALL, None),
    (NOON, "ce_fe", "fe_cms", "analysis", 3),
    (NOON, "ce_fe", "fe_dune", "main", 2),
    (NOON, "ce_sc", "fe_cms", "analysis", None),
    (NOON, "ce_sc", "fe_cms", "pilot", 4),
    (NOON, "ce_sc", "fe_cms", ALL, None),
    (MAY_1 - 1, "ce_down", ALL, ALL, None),  # not started yet
]


@pytest.mark.parametrize(("now", "entry", "frontend", "security_class", "index"), SCOPING)
def test_downtime_scoping_follows_glideinwms(
    now: float, entry: str, frontend: str, security_class: str, index: int | None
) -> None:
    expected = None if index is None else DOWNTIMES.periods[index]
    assert DOWNTIMES.down_at(now, entry, frontend, security_class) == expected


def test_a_downtime_covers_its_start_but_not_its_end() -> None:
    (period,) = parse_downtimes("2024-05-01T10:00:00 2024-05-01T11:00:00 ce1", "d").periods
    downtimes = Downtimes((period,))
    assert downtimes.down_at(MAY_1, "ce1") == period
    assert downtimes.down_at(MAY_1 + 3599.5, "ce1") == period
    assert downtimes.down_at(MAY_1 + 3600, "ce1") is None


def test_a_factory_downtime_blocks_every_request_and_a_frontend_one_only_its_own() -> None:
    downtimes = parse_downtimes(
        "2024-05-01T10:00:00 2024-05-01T11:00:00\n2024-05-01T10:00:00 None ce1 fe_cms\n", "d"
    )
    factory, frontend = downtimes.periods
    assert downtimes.blocking(MAY_1, "ce2", "fe_dune", "main") == factory
    assert downtimes.blocking(NOON, "ce1", "fe_cms", "pilot") == frontend
    assert downtimes.blocking(NOON, "ce1", "fe_dune", "main") is None
    assert downtimes.blocking(NOON, "ce2", "fe_cms", "pilot") is None


def test_no_downtimes_means_nothing_is_down() -> None:
    assert Downtimes().down_at(NOON) is None
    assert parse_downtimes("", "d") == Downtimes()


def test_a_formatted_downtime_is_one_line_in_utc_with_its_full_scope() -> None:
    period = Downtime(MAY_1, None, DowntimeScope("ce1"), "new\nCE  firmware")
    assert format_downtime(period) == "2024-05-01T10:00:00+00:00 None ce1 All All # new CE firmware"
    assert format_downtime(Downtime(MAY_1, NOON)) == (
        "2024-05-01T10:00:00+00:00 2024-05-01T12:00:00+00:00 factory All All"
    )


def test_impossible_downtimes_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="must end after it starts"):
        Downtime(NOON, MAY_1)
    with pytest.raises(ValueError, match="scope names"):
        DowntimeScope("ce 1")


@pytest.mark.parametrize("moment", [1e300, -1e300, float("inf"), float("nan"), 253402300800.0])
def test_a_downtime_at_a_time_no_file_can_hold_is_a_config_error(moment: float) -> None:
    with pytest.raises(ConfigError, match="is not a time of the years 1 to 9999"):
        Downtime(moment, None)
    with pytest.raises(ConfigError, match="end: "):
        Downtime(MAY_1, moment)


_NAMES = st.text(alphabet="abcXYZ019._-", min_size=1, max_size=8)
_SECONDS = st.integers(0, 4_000_000_000)


@st.composite
def downtimes(draw: st.DrawFn) -> Downtime:
    start = draw(_SECONDS)
    end = draw(st.none() | st.integers(start + 1, start + 10**8))
    scope = DowntimeScope(
        draw(_NAMES | st.just(ALL) | st.just(FACTORY)),
        draw(_NAMES | st.just(ALL)),
        draw(_NAMES | st.just(ALL)),
    )
    comment = " ".join(draw(st.text(alphabet="ab #c\t", max_size=12)).split())
    return Downtime(float(start), None if end is None else float(end), scope, comment)


@given(st.lists(downtimes(), max_size=5))
def test_written_downtimes_read_back_the_same(periods: list[Downtime]) -> None:
    written = Downtimes(tuple(periods))
    assert parse_downtimes(format_downtimes(written), "d") == written


@given(st.text(max_size=120))
def test_any_text_is_downtimes_or_a_config_error(text: str) -> None:
    try:
        parse_downtimes(text, "d")
    except ConfigError as exc:
        assert all(problem.startswith("line ") for problem in exc.problems)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("2020-01-01T00:00:00 None", DownReason.FACTORY_DOWNTIME),
        ("2020-01-01T00:00:00 None ce1", DownReason.ENTRY_DOWNTIME),
        ("2020-01-01T00:00:00 None All", DownReason.ENTRY_DOWNTIME),
        ("2020-01-01T00:00:00 None ce1 fe1", DownReason.FRONTEND_DOWNTIME),
        ("2020-01-01T00:00:00 None ce1 fe1 sc1", DownReason.SECURITY_CLASS_DOWNTIME),
    ],
)
def test_a_request_stopped_by_a_downtime_is_told_its_narrowest_scope(
    line: str, reason: DownReason
) -> None:
    downtimes = parse_downtimes(line + "\n", "test")
    now = 1_700_000_000.0
    assert request_down_reason(downtimes, now, "ce1", "fe1", "sc1") is reason
    assert request_down_reason(downtimes, now, "ce2", "fe2", "sc2") in (
        None,
        DownReason.FACTORY_DOWNTIME,
        DownReason.ENTRY_DOWNTIME,
    )


def test_frontend_scoped_downtime_does_not_put_the_entry_down() -> None:
    downtimes = parse_downtimes("2020-01-01T00:00:00 None ce1 fe1\n", "test")
    assert entry_down_reason(downtimes, 1_700_000_000.0, "ce1") is None
    assert (
        entry_down_reason(
            parse_downtimes("2020-01-01T00:00:00 None ce1\n", "t"), 1_700_000_000.0, "ce1"
        )
        is DownReason.ENTRY_DOWNTIME
    )
