"""Parsing the output of completed glideins into outcomes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.core.glidein_log import (
    FailureCategory,
    GlideinOutcome,
    GlideinResult,
    PayloadFailure,
    ValidationFailure,
    parse_glidein_output,
)

START = "=== Glidein starting Mon Jan  1 00:00:00 UTC 2024 (1000) ==="
LAST = "=== Last script starting Mon Jan  1 00:01:00 UTC 2024 (1060) after validating for 60 ==="
PAYLOAD_START = "=== Payload starting Mon Jan  1 00:01:01 UTC 2024 (1061) ==="
STATS = [
    "=== Stats of main ===",
    "Slot 1: Total jobs 3 utilization 80.5",
    "Total jobs 4 utilization 75.25",
    "=== End Stats of main ===",
]
PAYLOAD_END = "=== Payload ended Mon Jan  1 01:01:01 UTC 2024 (4661) after 3600 ==="


def _end(code: int, at: int = 4662) -> str:
    date = "Mon Jan  1 01:01:02 UTC 2024"
    return f"=== Glidein ending {date} ({at}) with code {code} after {at - 1000} ==="


def _log(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def test_a_successful_glidein_yields_timings_and_payload_stats() -> None:
    outcome = parse_glidein_output(
        _log(START, "noise", LAST, PAYLOAD_START, *STATS, PAYLOAD_END, _end(0))
    )
    assert outcome == GlideinOutcome(
        result=GlideinResult.OK,
        exit_code=0,
        started_at=1000.0,
        ended_at=4662.0,
        duration=3662.0,
        validation_seconds=60.0,
        payload_started_at=1061.0,
        payload_ended_at=4661.0,
        payload_seconds=3600.0,
        jobs_run=3,
        utilization=80.5,
    )


def test_a_failed_validation_reports_script_category_code_and_detail() -> None:
    outcome = parse_glidein_output(
        _log(
            START,
            "Running validate_disk.sh (main)",
            "=== Validation failure Mon Jan  1 00:00:07 UTC 2024 (1007) ===",
            "GLIDEIN_FAILED_SCRIPT validate_disk.sh",
            "GLIDEIN_FAILURE_CATEGORY WN_Resource",
            "GLIDEIN_FAILURE_CODE 1",
            "GLIDEIN_FAILURE_DETAIL Only 12 MB free in /scratch, 200 MB required",
            "=== End validation failure ===",
            _end(1, at=2207),
        )
    )
    assert outcome.result is GlideinResult.VALIDATION_FAILED
    assert outcome.failure == ValidationFailure(
        script="validate_disk.sh",
        category=FailureCategory.WN_RESOURCE,
        code=1,
        detail="Only 12 MB free in /scratch, 200 MB required",
    )
    assert outcome.exit_code == 1
    assert outcome.validation_seconds == 7.0
    assert outcome.payload_started_at is None
    assert outcome.payload_seconds is None


def test_a_category_outside_the_list_is_unknown_not_an_error() -> None:
    outcome = parse_glidein_output(
        _log(
            START,
            "=== Validation failure x (1001) ===",
            "GLIDEIN_FAILED_SCRIPT odd.sh",
            "GLIDEIN_FAILURE_CATEGORY Cosmic_Rays",
            "GLIDEIN_FAILURE_CODE many",
            "=== End validation failure ===",
        )
    )
    assert outcome.failure is not None
    assert outcome.failure.category is FailureCategory.UNKNOWN
    assert outcome.failure.code is None
    assert outcome.result is GlideinResult.VALIDATION_FAILED


def test_a_payload_exiting_non_zero_is_a_payload_failure() -> None:
    outcome = parse_glidein_output(_log(START, LAST, PAYLOAD_START, _end(5)))
    assert outcome.result is GlideinResult.PAYLOAD_FAILED
    assert outcome.exit_code == 5
    assert outcome.payload_ended_at == 4662.0  # no payload end marker: the glidein's end


def test_a_signalled_glidein_is_killed_whatever_its_exit_code() -> None:
    outcome = parse_glidein_output(
        _log(
            START,
            LAST,
            PAYLOAD_START,
            "=== Glidein received signal TERM Mon Jan  1 00:30:00 UTC 2024 (2800) ===",
            _end(0),
        )
    )
    assert outcome.result is GlideinResult.KILLED
    assert outcome.signal == "TERM"


def test_a_signal_during_the_failure_sleep_leaves_a_validation_failure() -> None:
    outcome = parse_glidein_output(
        _log(
            START,
            "=== Validation failure x (1002) ===",
            "GLIDEIN_FAILED_SCRIPT validate_disk.sh",
            "GLIDEIN_FAILURE_CATEGORY WN_Resource",
            "GLIDEIN_FAILURE_CODE 1",
            "=== End validation failure ===",
            "=== Glidein received signal TERM x (1100) ===",
            _end(1, at=1101),
        )
    )
    assert outcome.result is GlideinResult.VALIDATION_FAILED
    assert outcome.signal == "TERM"


def test_a_log_cut_before_the_end_is_unknown_with_what_it_shows() -> None:
    outcome = parse_glidein_output(
        _log(START, LAST, PAYLOAD_START, "=== Stats of main ===", "Total jobs 9")
    )
    assert outcome.result is GlideinResult.UNKNOWN
    assert outcome.started_at == 1000.0
    assert outcome.validation_seconds == 60.0
    assert outcome.exit_code is None
    assert outcome.jobs_run is None  # an unterminated stats block is not trusted


def test_glideinwms_condor_markers_count_as_the_payload() -> None:
    outcome = parse_glidein_output(
        _log(
            START,
            LAST,
            "=== Condor starting Mon Jan  1 00:01:05 UTC 2024 (1065) ===",
            "=== Condor ended Mon Jan  1 00:11:05 UTC 2024 (1665) after 600 ===",
            _end(0),
        )
    )
    assert (outcome.payload_started_at, outcome.payload_ended_at) == (1065.0, 1665.0)
    assert outcome.payload_seconds == 600.0


def test_payload_markers_naming_their_kind_give_kind_and_times() -> None:
    outcome = parse_glidein_output(
        _log(
            START,
            LAST,
            "=== Payload celery starting Mon Jan  1 00:01:02 UTC 2024 (1062) ===",
            "=== Payload celery ended Mon Jan  1 00:11:02 UTC 2024 (1662) after 600 ===",
            "=== Stats of main ===",
            "Total jobs 12 utilization 0.75",
            "=== End Stats of main ===",
            _end(0),
        )
    )
    assert outcome.payload_kind == "celery"
    assert (outcome.payload_started_at, outcome.payload_seconds) == (1062.0, 600.0)
    assert (outcome.jobs_run, outcome.utilization) == (12, 0.75)


def test_a_payload_failure_line_gives_its_category_and_detail() -> None:
    outcome = parse_glidein_output(
        _log(
            START,
            LAST,
            "=== Payload condor starting x (1061) ===",
            "=== Payload condor failed: WN_Resource: no HTCondor release (CONDOR_DIR unset) ===",
            "=== Payload condor ended x (1062) after 1 ===",
            _end(1),
        )
    )
    assert outcome.result is GlideinResult.PAYLOAD_FAILED
    assert outcome.payload_failure == PayloadFailure(
        "condor", FailureCategory.WN_RESOURCE, "no HTCondor release (CONDOR_DIR unset)"
    )
    assert outcome.failure is None


def test_markers_printed_on_stderr_are_read_too() -> None:
    outcome = parse_glidein_output(_log(START, LAST, _end(0)), stderr=_log(*STATS))
    assert outcome.jobs_run == 3


def test_carriage_returns_do_not_hide_markers() -> None:
    outcome = parse_glidein_output(_log(START, LAST, _end(0)).replace("\n", "\r\n"))
    assert outcome.result is GlideinResult.OK


@pytest.mark.parametrize("text", ["", "garbage\x00\n=== \n=== Glidein ending (x) ===\n", "\n" * 5])
def test_empty_or_garbage_output_is_unknown(text: str) -> None:
    assert parse_glidein_output(text).result is GlideinResult.UNKNOWN


@pytest.mark.parametrize("code", ["--5", "\u00b2", "-\u00b2", "1" * 5000])
def test_a_failure_code_that_is_not_a_plain_integer_is_left_out(code: str) -> None:
    outcome = parse_glidein_output(
        _log(START, "=== Validation failure x (1001) ===", f"GLIDEIN_FAILURE_CODE {code}")
    )
    assert outcome.failure is not None
    assert outcome.failure.code is None
    assert outcome.result is GlideinResult.VALIDATION_FAILED


def test_numbers_too_long_or_not_ascii_are_not_read_and_do_not_raise() -> None:
    huge = "9" * 5000
    outcome = parse_glidein_output(
        _log(
            f"=== Glidein starting x ({huge}) ===",
            "=== Glidein starting x (\u0661\u0662) ===",  # Arabic-Indic digits
            f"=== Glidein ending x (4662) with code {huge} after 10 ===",
            "=== Stats of main ===",
            f"Total jobs {huge}",
            "=== End Stats of main ===",
        )
    )
    assert (outcome.started_at, outcome.exit_code, outcome.jobs_run) == (None, None, None)
    assert outcome.result is GlideinResult.UNKNOWN


@given(
    st.lists(
        st.sampled_from(
            [
                START,
                LAST,
                PAYLOAD_START,
                *STATS,
                _end(0),
                "=== Validation failure (1) ===",
                "GLIDEIN_FAILURE_CODE 3",
                "GLIDEIN_FAILURE_CODE --5",
                "GLIDEIN_FAILURE_CODE \u00b2",
                f"=== Glidein ending (1) with code {'9' * 5000} after 1 ===",
                "x",
            ]
        )
        | st.text()
    )
)
def test_the_parser_never_raises_on_any_mix_of_lines(lines: list[str]) -> None:
    outcome = parse_glidein_output("\n".join(lines))
    assert isinstance(outcome.result, GlideinResult)
