"""Glidein status classification (the reference §4.5), including its deliberate quirks."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.core.model import Glidein, StatusCounts
from gwms_tasks.core.status import GlideinStatus, JobStatus, classify


@pytest.mark.parametrize(
    ("job_status", "grid", "expected"),
    [
        (1, None, GlideinStatus.WAIT),
        (1, "", GlideinStatus.WAIT),
        (1, "PENDING", GlideinStatus.PENDING),
        (1, "inlrms: q", GlideinStatus.PENDING),
        (1, "INLRMS:Q", GlideinStatus.PENDING),
        (1, "REGISTERED", GlideinStatus.PENDING),
        (1, "STAGE_IN", GlideinStatus.STAGE_IN),
        (1, "ACCEPTED", GlideinStatus.STAGE_IN),
        (1, "SOMETHING_NEW", GlideinStatus.IDLE_OTHER),
        (2, None, GlideinStatus.RUNNING),
        (2, "REALLY-RUNNING", GlideinStatus.RUNNING),
        (2, "INLRMS: R", GlideinStatus.RUNNING),
        (2, "STAGE_OUT", GlideinStatus.STAGE_OUT),
        (2, "DONE", GlideinStatus.STAGE_OUT),
        (2, "PENDING", GlideinStatus.IDLE_OTHER),
        (3, None, GlideinStatus.REMOVED),
        (4, "DONE", GlideinStatus.COMPLETED),
        (5, "PENDING", GlideinStatus.HELD),
    ],
)
def test_classification_table(job_status: int, grid: str | None, expected: GlideinStatus) -> None:
    assert classify(job_status, grid) is expected


def test_running_job_with_unknown_grid_status_counts_as_idle() -> None:
    assert classify(JobStatus.RUNNING, "WEIRD").is_idle


def test_stage_out_is_neither_idle_nor_running() -> None:
    status = classify(JobStatus.RUNNING, "FINISHED")
    assert not status.is_idle
    assert not status.is_running


def test_unknown_job_status_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError):
        classify(9, None)


def _glidein(job_id: str, job_status: JobStatus, grid: str | None = None) -> Glidein:
    return Glidein(job_id, "ce1", "fe.main", "sc", "cred1", "fe:sc", job_status, grid)


def test_counts_ignore_removed_and_completed_glideins() -> None:
    counts = StatusCounts.of(
        [
            _glidein("1.0", JobStatus.IDLE),
            _glidein("1.1", JobStatus.IDLE, "PENDING"),
            _glidein("1.2", JobStatus.RUNNING),
            _glidein("1.3", JobStatus.RUNNING, "FINISHED"),
            _glidein("1.4", JobStatus.HELD),
            _glidein("1.5", JobStatus.REMOVED),
            _glidein("1.6", JobStatus.COMPLETED),
        ]
    )
    assert (counts.idle, counts.running, counts.held, counts.stage_out) == (2, 1, 1, 1)
    assert counts.total == 4


@given(st.lists(st.sampled_from(list(JobStatus)), max_size=50))
def test_counts_add_up_and_plus_is_a_sum(statuses: list[JobStatus]) -> None:
    glideins = [_glidein(str(i), s) for i, s in enumerate(statuses)]
    half = len(glideins) // 2
    whole = StatusCounts.of(glideins)
    assert StatusCounts.of(glideins[:half]).plus(StatusCounts.of(glideins[half:])) == whole
    live = sum(s in (JobStatus.IDLE, JobStatus.RUNNING, JobStatus.HELD) for s in statuses)
    assert whole.total == live


def test_age_prefers_the_backend_clock() -> None:
    glidein = Glidein(
        "1.0",
        "ce1",
        "c",
        "sc",
        "id",
        "fe:sc",
        JobStatus.IDLE,
        entered_current_status=100.0,
        server_time=400.0,
    )
    assert glidein.age(now=10_000.0) == 300.0
    no_server = Glidein(
        "1.0", "ce1", "c", "sc", "id", "fe:sc", JobStatus.IDLE, entered_current_status=100.0
    )
    assert no_server.age(now=1_000.0) == 900.0


def test_a_glideins_status_is_classified_when_made_and_follows_a_replaced_status() -> None:
    glidein = _glidein("1.0", JobStatus.RUNNING, "PENDING")
    assert glidein.status is GlideinStatus.IDLE_OTHER
    held = dataclasses.replace(glidein, job_status=JobStatus.HELD)
    assert held.status is GlideinStatus.HELD
    assert dataclasses.replace(glidein, grid_job_status=None).status is GlideinStatus.RUNNING
    assert glidein == _glidein("1.0", JobStatus.RUNNING, "PENDING")
    with pytest.raises(ValueError):
        _glidein("1.1", 9)  # type: ignore[arg-type]
