"""Glidein job status classification (the reference §4.5).

HTCondor reports a job's ``JobStatus`` and, for grid jobs, the remote ``GridJobStatus``. The
factory counts glideins by a *detailed* status derived from both; the quirks are deliberate and
match glideinWMS: a running job whose grid status is unknown counts as idle, stage-out counts as
neither idle nor running, removed and completed jobs are ignored by every counter.
"""

from __future__ import annotations

import enum


class JobStatus(enum.IntEnum):
    """HTCondor's JobStatus attribute."""

    IDLE = 1
    RUNNING = 2
    REMOVED = 3
    COMPLETED = 4
    HELD = 5
    TRANSFERRING_OUTPUT = 6
    SUSPENDED = 7


class GlideinStatus(enum.IntEnum):
    """The detailed status the factory counts by (glideinWMS ``hash_status`` codes)."""

    WAIT = 1001  # idle in the local queue, not yet submitted to the site
    PENDING = 1002  # queued at the site
    STAGE_IN = 1010
    IDLE_OTHER = 1100  # idle with an unrecognised grid status, or running with one
    RUNNING = 2
    STAGE_OUT = 4010
    REMOVED = 3
    COMPLETED = 4
    HELD = 5
    TRANSFERRING_OUTPUT = 6
    SUSPENDED = 7

    @property
    def is_idle(self) -> bool:
        """Idle for every count and limit: all the 1xxx codes."""
        return 1000 <= self.value <= 1100

    @property
    def is_running(self) -> bool:
        return self is GlideinStatus.RUNNING

    @property
    def is_held(self) -> bool:
        return self is GlideinStatus.HELD


_PENDING = frozenset(
    {
        "PENDING",
        "INLRMS: Q",
        "INLRMS:Q",
        "PREPARED",
        "SUBMITTING",
        "IDLE",
        "SUSPENDED",
        "REGISTERED",
        "QUEUING",
    }
)
_STAGE_IN = frozenset({"STAGE_IN", "PREPARING", "ACCEPTING", "ACCEPTED"})
_RUNNING = frozenset({"ACTIVE", "REALLY-RUNNING", "INLRMS: R", "INLRMS:R", "RUNNING"})
_STAGE_OUT = frozenset(
    {"STAGE_OUT", "INLRMS: E", "INLRMS:E", "EXECUTED", "FINISHING", "FINISHED", "DONE", "COMPLETED"}
)


def classify(job_status: int, grid_job_status: str | None) -> GlideinStatus:
    """Detailed status of one glidein from its JobStatus and GridJobStatus.

    Args:
        job_status: HTCondor JobStatus (1..7).
        grid_job_status: the remote status string, or None when the job has none yet.

    Returns:
        The detailed status. Unknown JobStatus values raise ValueError.
    """
    status = job_status if type(job_status) is JobStatus else JobStatus(job_status)
    if status is JobStatus.IDLE:
        if not grid_job_status:
            return GlideinStatus.WAIT
        return _IDLE_BY_GRID.get(grid_job_status.upper(), GlideinStatus.IDLE_OTHER)
    if status is JobStatus.RUNNING:
        if not grid_job_status:
            return GlideinStatus.RUNNING
        return _RUNNING_BY_GRID.get(grid_job_status.upper(), GlideinStatus.IDLE_OTHER)
    return _OTHER_BY_JOB_STATUS[status]


_IDLE_BY_GRID = {g: GlideinStatus.PENDING for g in _PENDING} | {
    g: GlideinStatus.STAGE_IN for g in _STAGE_IN
}
_RUNNING_BY_GRID = {g: GlideinStatus.RUNNING for g in _RUNNING} | {
    g: GlideinStatus.STAGE_OUT for g in _STAGE_OUT
}
_OTHER_BY_JOB_STATUS = {
    status: GlideinStatus(status.value)
    for status in JobStatus
    if status not in (JobStatus.IDLE, JobStatus.RUNNING)
}
