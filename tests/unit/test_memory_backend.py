"""The in-memory GridBackend twin: the levers that service tests use to move glideins."""

from __future__ import annotations

import pytest

from gwms_tasks.adapters.memory_backend import MemoryGridBackend, Operation
from gwms_tasks.core.model import StatusCounts
from gwms_tasks.core.status import GlideinStatus
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.ports import GlideinTags, Submission

TAGS = GlideinTags("fact", "gi", "ce1", "fe.main", "sc1", "cred1", "fe:sc1", "u", "k1")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend(clock: Clock) -> MemoryGridBackend:
    return MemoryGridBackend("fact", "gi", "ce1", clock=clock)


def test_helpers_move_glideins_through_every_counted_status(
    backend: MemoryGridBackend, clock: Clock
) -> None:
    ids = backend.submit(Submission(TAGS, 5, ["-v", "std"]))
    clock.now = 200.0
    backend.set_pending(ids[1])
    backend.run(ids[2])
    backend.hold(ids[3], code=30, subcode=2, reason="no proxy")
    backend.complete(ids[4])
    assert StatusCounts.of(backend.query()) == StatusCounts(wait=1, pending=1, running=1, held=1)
    held = backend.glidein(ids[3])
    assert (held.hold_reason_code, held.hold_reason_subcode, held.hold_reason) == (
        30,
        2,
        "no proxy",
    )
    assert held.entered_current_status == 200.0
    assert backend.glidein(ids[1]).entered_current_status == 100.0  # still idle: same JobStatus


def test_running_with_an_unknown_grid_status_counts_as_idle(backend: MemoryGridBackend) -> None:
    (job_id,) = backend.submit(Submission(TAGS, 1, ["-v"]))
    backend.run(job_id, grid_job_status="SOMETHING_ODD")
    assert backend.glidein(job_id).status is GlideinStatus.IDLE_OTHER


def test_each_hold_counts_as_one_more_system_hold(backend: MemoryGridBackend) -> None:
    (job_id,) = backend.submit(Submission(TAGS, 1, ["-v"]))
    for _ in range(3):
        backend.hold(job_id)
        backend.release([job_id])
    assert backend.glidein(job_id).num_system_holds == 3
    assert backend.released == [job_id] * 3


def test_an_injected_failure_hits_the_next_call_only(backend: MemoryGridBackend) -> None:
    backend.fail_next(Operation.QUERY, TransientError("schedd down"))
    with pytest.raises(TransientError, match="schedd down"):
        backend.query()
    assert backend.query() == []


def test_a_failed_submit_records_and_queues_nothing(backend: MemoryGridBackend) -> None:
    backend.fail_next(Operation.SUBMIT, PermanentError("refused"))
    with pytest.raises(PermanentError):
        backend.submit(Submission(TAGS, 2, ["-v"]))
    assert (backend.submissions, backend.query()) == ([], [])


def test_accepted_submissions_and_removals_are_recorded(backend: MemoryGridBackend) -> None:
    submission = Submission(TAGS, 2, ["-v"])
    ids = backend.submit(submission)
    backend.remove(ids + ids)
    assert backend.submissions == [submission]
    assert backend.removed == ids
