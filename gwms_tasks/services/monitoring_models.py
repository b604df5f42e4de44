"""The values the monitoring pages, the JSON API and ``/metrics`` show: plain frozen dataclasses.

They are built by :mod:`gwms_tasks.services.monitoring_view` from the state ports and hold
nothing but JSON-ready values (str, int, float, bool, None, lists and dicts of them), so the web
app can hand them to FastAPI as response models and its OpenAPI schema documents them as they
are. No credential content and no task arguments ever get here: only counts, names, reasons and
metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gwms_tasks.core.model import StatusCounts
from gwms_tasks.ports import CompletedGlidein, CompletedStats


@dataclass(frozen=True, slots=True)
class GlideinCounts:
    """Glideins of one scope by detailed status, plus the ``idle`` and ``total`` derived from them.

    ``idle`` is wait + pending + stage_in + idle_other; ``total`` is idle + running + held.
    """

    wait: int = 0
    pending: int = 0
    stage_in: int = 0
    idle_other: int = 0
    running: int = 0
    stage_out: int = 0
    held: int = 0
    idle: int = 0
    total: int = 0

    @classmethod
    def of(cls, counts: StatusCounts) -> GlideinCounts:
        return cls(**counts.to_dict())

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object] | None) -> GlideinCounts:
        """From a stored ``StatusCounts.to_dict()``; anything missing or not an int counts 0."""
        if not raw:
            return cls()
        detailed = {
            name: value
            for name in STATUS_FIELDS
            if isinstance(value := raw.get(name), int) and not isinstance(value, bool)
        }
        return cls.of(StatusCounts(**detailed))

    def status_counts(self) -> StatusCounts:
        return StatusCounts(**{name: getattr(self, name) for name in STATUS_FIELDS})


STATUS_FIELDS = ("wait", "pending", "stage_in", "idle_other", "running", "stage_out", "held")
"""The detailed statuses of :class:`GlideinCounts` (the others are derived)."""


@dataclass(frozen=True, slots=True)
class LimitsView:
    """Bounds on the glideins of one scope (idle, held, idle + running)."""

    max_idle: int
    max_held: int
    max_glideins: int


@dataclass(frozen=True, slots=True)
class DowntimeView:
    """A downtime in force: the reason it gives to requests, and its period."""

    reason: str
    start: float
    end: float | None
    comment: str


@dataclass(frozen=True, slots=True)
class SnapshotView:
    """How fresh the entry's glidein counts are.

    Attributes:
        taken_at: when the last successful glidein query was taken (None: never).
        age_seconds: seconds since then.
        stale: True when older than the freshness bound, never taken, or the last query failed;
            find-work submits nothing for a stale entry (it fails closed).
        error: why the last glidein query failed, if it did.
    """

    taken_at: float | None
    age_seconds: float | None
    stale: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class EntrySummary:
    """One line of the factory overview."""

    name: str
    enabled: bool
    site: str
    backend: str
    counts: GlideinCounts
    requested_idle: int
    requested_max: int
    limits: LimitsView
    completed_last_hour: int
    failed_last_hour: int
    downtime: DowntimeView | None
    limits_triggered: dict[str, str]
    snapshot: SnapshotView


@dataclass(frozen=True, slots=True)
class Overview:
    """The factory overview page: every entry, and factory-wide totals."""

    factory: str
    glidein: str
    generated_at: float
    entries: list[EntrySummary]
    totals: GlideinCounts
    requested_idle: int
    requested_max: int
    completed_last_hour: int
    failed_last_hour: int
    failed_submits: int
    frontends: list[str]


@dataclass(frozen=True, slots=True)
class DecisionInputs:
    """The counts and bounds a submit decision was computed from."""

    wanted: int
    client: GlideinCounts
    frontend: GlideinCounts
    entry: GlideinCounts
    entry_limits: LimitsView
    frontend_limits: LimitsView
    max_per_cycle: int


@dataclass(frozen=True, slots=True)
class DecisionView:
    """The last decision of find-work for one request of an entry.

    Attributes:
        work_key: the request ad's Name.
        client: its ClientName.
        at: when it was decided.
        outcome: ``decided``, ``rejected`` (the request was refused) or ``failed_closed``
            (the glidein query failed, nothing was submitted).
        reason: the reason enum value that decided (a SubmitReason, a rejection reason, or
            ``query_failed``).
        submit: glideins submitted.
        remove: glideins chosen for excess removal.
        explanation: the sentence explaining the decision.
        frontend_key: ``frontend:security_class`` (None for a rejection).
        blocked: why a decided submission could not be sent, if it could not.
        inputs: what the submit arithmetic used (None for rejections and failures).
        current: False when older than a few loops: its request has disappeared, so it no
            longer counts in the requested totals.
    """

    work_key: str
    client: str
    at: float
    outcome: str
    reason: str
    submit: int
    remove: int
    explanation: str
    frontend_key: str | None = None
    security_class: str | None = None
    credential_id: str | None = None
    requested_idle: int = 0
    adjusted_idle: int = 0
    requested_max: int = 0
    removal_explanation: str | None = None
    blocked: str | None = None
    notes: list[str] = field(default_factory=list)
    inputs: DecisionInputs | None = None
    current: bool = True


@dataclass(frozen=True, slots=True)
class CompletedStatsView:
    """Counts over completed glideins of one scope and window (see ports.CompletedStats)."""

    completed: int = 0
    ok: int = 0
    failed: int = 0
    failed_validation: int = 0
    failed_payload: int = 0
    killed: int = 0
    unknown: int = 0
    user_jobs: int = 0
    wall_seconds: float = 0.0
    waste_seconds: float = 0.0
    by_category: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, stats: CompletedStats | None) -> CompletedStatsView:
        """The page's view of completed-glidein counts ("failed" = every outcome but ok)."""
        if stats is None:
            return cls()
        return cls(
            completed=stats.completed,
            ok=stats.ok,
            failed=stats.completed - stats.ok,
            failed_validation=stats.failed_validation,
            failed_payload=stats.failed_payload,
            killed=stats.killed,
            unknown=stats.unknown,
            user_jobs=stats.user_jobs,
            wall_seconds=stats.wall_seconds,
            waste_seconds=stats.waste_seconds,
            by_category=dict(stats.by_category),
        )


@dataclass(frozen=True, slots=True)
class ClientView:
    """One client (frontend group) of an entry: its glideins, requests and completions."""

    client: str
    counts: GlideinCounts
    requested_idle: int
    requested_max: int
    decisions: list[DecisionView]
    completed_last_hour: CompletedStatsView


@dataclass(frozen=True, slots=True)
class GlideinRow:
    """One live glidein of an entry."""

    job_id: str
    client: str
    frontend: str
    status: str
    since: float
    hold_reason: str | None
    site: str


@dataclass(frozen=True, slots=True)
class GlideinList:
    """The entry's live glideins, read from its grid backend on demand.

    ``available`` is False (with ``message`` saying why) when this server cannot query the
    backend, or the query failed: the rest of the page still shows.
    """

    available: bool
    message: str | None
    glideins: list[GlideinRow]


@dataclass(frozen=True, slots=True)
class CompletedRow:
    """One completed glidein, as its output told."""

    job_id: str
    client: str
    finished_at: float
    result: str
    exit_code: int | None
    wall_seconds: float
    validation_seconds: float
    payload_seconds: float
    user_jobs: int
    failed_script: str
    failure_category: str
    failure_detail: str

    @classmethod
    def of(cls, outcome: CompletedGlidein) -> CompletedRow:
        """The row of one recorded outcome (its kept log path stays off the page)."""
        return cls(
            job_id=outcome.job_id,
            client=outcome.client,
            finished_at=outcome.finished_at,
            result=outcome.result,
            exit_code=outcome.exit_code,
            wall_seconds=outcome.wall_seconds,
            validation_seconds=outcome.validation_seconds,
            payload_seconds=outcome.payload_seconds,
            user_jobs=outcome.user_jobs,
            failed_script=outcome.failed_script,
            failure_category=outcome.failure_category,
            failure_detail=outcome.failure_detail,
        )


@dataclass(frozen=True, slots=True)
class FailedSubmitRow:
    """A submission that failed for good, waiting for an operator's retry."""

    failed_id: str
    submit_key: str
    entry: str
    client: str
    count: int
    reason: str
    failed_at: float
    retries: int


@dataclass(frozen=True, slots=True)
class EntryDetail:
    """The entry page."""

    summary: EntrySummary
    generated_at: float
    clients: list[ClientView]
    completed_last_hour: CompletedStatsView
    recent_completed: list[CompletedRow]
    failed_submits: list[FailedSubmitRow]


@dataclass(frozen=True, slots=True)
class SeriesView:
    """Time-series samples of an entry, column by column (the layout charting libraries take).

    Attributes:
        range: ``hour``, ``day`` or ``month``.
        resolution: ``minute`` or ``hour`` buckets.
        since: start of the window.
        times: bucket starts, ascending (epoch seconds).
        values: one column per sampled value name (e.g. ``idle``, ``client:<c>:running``),
            aligned with ``times``; None where a sample lacked that value.
    """

    entry: str
    range: str
    resolution: str
    since: float
    times: list[float]
    values: dict[str, list[float | None]]


@dataclass(frozen=True, slots=True)
class FrontendRequest:
    """One request of a frontend on one entry, with the glideins of its security class there."""

    entry: str
    decision: DecisionView
    glideins: GlideinCounts


@dataclass(frozen=True, slots=True)
class CredentialRow:
    """What the factory shows of a credential: metadata, never the content."""

    credential_id: str
    client: str
    security_class: str
    username: str
    kind: str
    received_at: float
    expires_at: float | None
    expires_in_seconds: float | None
    fingerprint: str


@dataclass(frozen=True, slots=True)
class ClientMonitorRow:
    """One ``glidefactoryclient`` ad this factory published for a client of the frontend."""

    entry: str
    client: str
    monitor: dict[str, int]
    limits_triggered: dict[str, str]


@dataclass(frozen=True, slots=True)
class FrontendView:
    """The frontend page: its requests across entries, credentials and published monitoring."""

    name: str
    identity: str
    security_classes: dict[str, str]
    generated_at: float
    requests: list[FrontendRequest]
    credentials: list[CredentialRow]
    client_monitoring: list[ClientMonitorRow]
    monitoring_message: str | None


@dataclass(frozen=True, slots=True)
class FailedSubmitsView:
    """The failed submits page."""

    generated_at: float
    failed: list[FailedSubmitRow]
    retry_enabled: bool
