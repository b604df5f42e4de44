"""Value objects shared by the core: one glidein of an entry's queue, and counts of them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gwms_tasks.core.status import GlideinStatus, JobStatus, classify


def frontend_key(frontend: str, security_class: str) -> str:
    """The ``frontend:security_class`` key that per-frontend limits are counted by."""
    return f"{frontend}:{security_class}"


@dataclass(frozen=True, slots=True)
class Glidein:
    """One glidein (grid job) as the grid backend reports it, with the factory's tags.

    Attributes:
        job_id: backend id, ``cluster.proc`` for Condor-G.
        entry: GlideinEntryName tag.
        client: GlideinClient tag (the frontend's ClientName, ``frontend.group``).
        security_class: GlideinSecurityClass tag.
        credential_id: GlideinCredentialIdentifier tag.
        frontend: GlideinFrontendName tag, ``frontend:security_class`` (configured frontend name).
        job_status: HTCondor JobStatus.
        grid_job_status: remote status string or None.
        entered_current_status: epoch seconds when the job entered its JobStatus.
        server_time: the backend's clock at query time, if it reports one.
        hold_reason_code / hold_reason_subcode / hold_reason: set while held.
        num_system_holds: how many times the system held the job.
        submit_key: the idempotency key of the submit task that created the job.
        status: the detailed status, classified from job_status and grid_job_status once, when
            the glidein is made (every count and decision of a pass reads it, often many times).
    """

    job_id: str
    entry: str
    client: str
    security_class: str
    credential_id: str
    frontend: str
    job_status: JobStatus
    grid_job_status: str | None = None
    entered_current_status: float = 0.0
    server_time: float | None = None
    hold_reason_code: int | None = None
    hold_reason_subcode: int | None = None
    hold_reason: str | None = None
    num_system_holds: int = 0
    submit_key: str | None = None
    status: GlideinStatus = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", classify(self.job_status, self.grid_job_status))

    def age(self, now: float) -> float:
        """Seconds in the current JobStatus, by the backend's clock when it gave one."""
        return (self.server_time if self.server_time is not None else now) - (
            self.entered_current_status
        )


@dataclass(frozen=True, slots=True)
class StatusCounts:
    """Glideins of some scope counted by detailed status."""

    wait: int = 0
    pending: int = 0
    stage_in: int = 0
    idle_other: int = 0
    running: int = 0
    stage_out: int = 0
    held: int = 0

    @property
    def idle(self) -> int:
        return self.wait + self.pending + self.stage_in + self.idle_other

    @property
    def total(self) -> int:
        """Idle + running + held: what is in the queue and alive."""
        return self.idle + self.running + self.held

    @classmethod
    def of(cls, glideins: Iterable[Glidein]) -> StatusCounts:
        tally = dict.fromkeys(_FIELDS.values(), 0)
        for glidein in glideins:
            name = _FIELDS.get(glidein.status)
            if name is not None:
                tally[name] += 1
        return cls(**tally)

    def to_dict(self) -> dict[str, int]:
        """Counts by status plus the derived ``idle`` and ``total``, for JSON and web pages."""
        counts = {name: getattr(self, name) for name in _FIELDS.values()}
        return counts | {"idle": self.idle, "total": self.total}

    def plus(self, other: StatusCounts) -> StatusCounts:
        return StatusCounts(
            **{name: getattr(self, name) + getattr(other, name) for name in _FIELDS.values()}
        )


_FIELDS: dict[GlideinStatus, str] = {
    GlideinStatus.WAIT: "wait",
    GlideinStatus.PENDING: "pending",
    GlideinStatus.STAGE_IN: "stage_in",
    GlideinStatus.IDLE_OTHER: "idle_other",
    GlideinStatus.RUNNING: "running",
    GlideinStatus.STAGE_OUT: "stage_out",
    GlideinStatus.HELD: "held",
}
