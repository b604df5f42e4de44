"""The ports of gwms-tasks: small interfaces between services and the outside world.

Each port has a real adapter and an in-memory twin in ``gwms_tasks/adapters``; both are held to
the same contract tests in ``tests/contract``. Guarantees that callers rely on are written in the
docstrings; an adapter that cannot keep one raises instead of pretending.

Errors: adapters raise ``TransientError`` for anything worth retrying (service unreachable,
timeout, lock busy) and ``PermanentError`` for refusals that will not change on retry.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gwms_tasks.core.model import Glidein

AdAttrs = Mapping[str, "int | bool | float | str"]
JsonDict = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Dashboard (the collector)


@dataclass(frozen=True, slots=True)
class AuthenticatedAd:
    """An ad read back from the dashboard with the identity the transport proved.

    Attributes:
        attrs: the ad's attributes as written (plus ``AuthenticatedIdentity`` when known).
        identity: who wrote it, as authenticated by the transport (Redis ACL user, HTCondor
            ``AuthenticatedIdentity``); None when the transport could not prove it. Never taken
            from what the ad says about itself.
    """

    attrs: AdAttrs
    identity: str | None


class Dashboard(Protocol):
    """Advertise, invalidate and query ClassAds by ad type (``GlideinMyType``).

    Guarantees: ``query`` returns only live ads (not expired, not invalidated) of the given type
    matching the constraint, each with the authenticated identity of its writer. An ad advertised
    again under the same ``Name`` replaces the previous one.
    """

    def advertise(self, ad_type: str, ads: Sequence[AdAttrs]) -> None:
        """Publish or refresh ads of one type (each ad must carry ``Name``)."""
        ...

    def invalidate(self, ad_type: str, constraint: str) -> int:
        """Withdraw this writer's ads of a type matching a constraint; return how many."""
        ...

    def query(self, ad_type: str, constraint: str | None = None) -> list[AuthenticatedAd]:
        """Live ads of one type matching the constraint (all of them when None)."""
        ...


class ChangeFeed(Protocol):
    """Notifications that request ads changed, so find-work runs within about a second."""

    def wait_for_changes(self, timeout: float) -> list[str]:
        """Block up to ``timeout`` seconds; return the ``Name``s of request ads that changed."""
        ...


# --------------------------------------------------------------------------------------------
# Grid backends


@dataclass(frozen=True, slots=True)
class GlideinTags:
    """What every submitted glidein is tagged with, so queries and accounting can find it."""

    factory: str
    glidein: str
    entry: str
    client: str
    security_class: str
    credential_id: str
    frontend: str  # "frontend:security_class", the GlideinFrontendName tag
    username: str  # local user owning the credentials (+fename)
    submit_key: str  # idempotency key of the submit task


@dataclass(frozen=True, slots=True)
class Submission:
    """One submit call: ``count`` glideins of one request.

    Attributes:
        tags: the tags every job gets.
        count: how many glideins.
        arguments: glidein_startup.sh arguments (without ``-cluster``/``-subcluster``, which the
            backend appends per job).
        environment: extra environment for the submission (credential file paths etc.).
        idle_lifetime: seconds a glidein may stay idle in the queue (0: unlimited).
    """

    tags: GlideinTags
    count: int
    arguments: Sequence[str]
    environment: Mapping[str, str] = field(default_factory=dict)
    idle_lifetime: int = 0


class GridBackend(Protocol):
    """Submit, query, release and remove the glideins of one entry.

    Guarantees: ``query`` returns every live glidein of the entry this factory submitted (or
    raises ``TransientError``: callers fail closed); each carries its tags, so ``submit_key``
    identifies what an earlier, possibly interrupted, submit already created.
    """

    def submit(self, submission: Submission) -> list[str]:
        """Submit ``submission.count`` glideins; return their job ids."""
        ...

    def query(self) -> list[Glidein]:
        """Every live glidein of this backend's entry (removed and completed ones excluded)."""
        ...

    def release(self, job_ids: Sequence[str]) -> None:
        """Release held glideins."""
        ...

    def remove(self, job_ids: Sequence[str], forcex: bool = False) -> None:
        """Remove glideins (``forcex`` for ones stuck in the removed state)."""
        ...


# --------------------------------------------------------------------------------------------
# State in Redis: several small ports that one Redis adapter (and one memory twin) implement.


@dataclass(frozen=True, slots=True)
class EntrySnapshot:
    """The last successful glidein query of an entry and when it was taken.

    ``counts`` maps a scope key (see gwms_tasks.keys scope helpers: "entry", "client:<c>",
    "frontend:<fe:sc>", "credential:<c>|<sc>|<id>") to status counts as plain dicts.
    """

    entry: str
    taken_at: float
    counts: Mapping[str, Mapping[str, int]]
    glideins: int
    error: str | None = None  # set when the last query failed (then counts are the old ones)


class EntryState(Protocol):
    """Per-entry state: last glidein snapshot (for fail-closed freshness) and decisions."""

    def put_snapshot(self, snapshot: EntrySnapshot) -> None: ...

    def get_snapshot(self, entry: str) -> EntrySnapshot | None: ...

    def record_query_failure(self, entry: str, error: str, now: float) -> None: ...

    def put_decision(self, entry: str, client: str, decision: JsonDict) -> None:
        """Store the last decision for (entry, client): result, reason and inputs."""
        ...

    def get_decision(self, entry: str, client: str) -> JsonDict | None: ...

    def decisions(self, entry: str) -> dict[str, JsonDict]:
        """Last decision of every client of an entry."""
        ...


class LedgerState(enum.StrEnum):
    """Where a submission identified by its submit key stands."""

    CLAIMED = "claimed"
    SUBMITTED = "submitted"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """What the submit ledger knows about one idempotency key."""

    submit_key: str
    entry: str
    count: int
    state: LedgerState
    job_ids: tuple[str, ...] = ()
    claimed_at: float = 0.0
    detail: str = ""


class SubmitLedger(Protocol):
    """Idempotency of submissions.

    Guarantees: ``claim`` is atomic: for one key exactly one caller ever gets ``True``; later
    callers get ``False`` and can read the record to learn what happened.
    """

    def claim(self, submit_key: str, entry: str, count: int, now: float) -> bool: ...

    def get(self, submit_key: str) -> LedgerRecord | None: ...

    def mark_submitted(self, submit_key: str, job_ids: Sequence[str]) -> None: ...

    def mark_failed(self, submit_key: str, detail: str) -> None: ...


@dataclass(frozen=True, slots=True)
class FailedSubmit:
    """A submission that failed for good, kept for operators to inspect and retry."""

    failed_id: str
    submit_key: str
    entry: str
    client: str
    count: int
    reason: str
    failed_at: float
    task_args: JsonDict  # what is needed to send the task again (no secrets)
    retries: int = 0


class FailedSubmits(Protocol):
    def add(self, failed: FailedSubmit) -> None: ...

    def list(self) -> list[FailedSubmit]: ...

    def get(self, failed_id: str) -> FailedSubmit | None: ...

    def remove(self, failed_id: str) -> bool: ...


class Locks(Protocol):
    """Short exclusive locks with expiry (one find-work per entry at a time)."""

    def acquire(self, name: str, ttl: float, owner: str = "") -> str | None:
        """Return a token if acquired, None if someone else holds it.

        ``owner`` (no ``/``) is put at the head of the token, ``<owner>/<random>``, so that a
        contender can read who holds the lock (:meth:`holder`) and break it when that holder
        is provably dead (e.g. a process of this host that no longer exists).
        """
        ...

    def holder(self, name: str) -> str | None:
        """The token of the live holder of ``name``, or None."""
        ...

    def release(self, name: str, token: str) -> bool:
        """Release only if ``token`` still owns the lock."""
        ...


class TimeSeries(Protocol):
    """Per-entry monitoring samples in ring buffers at two resolutions.

    Guarantees: ``add`` keeps at most one point per resolution bucket (the latest wins) and
    drops points older than the resolution's span.
    """

    def add(self, entry: str, now: float, values: Mapping[str, float]) -> None: ...

    def series(
        self, entry: str, resolution: str, since: float
    ) -> list[tuple[float, dict[str, float]]]:
        """Points ``(bucket_start, values)`` in time order; resolution is "minute" or "hour"."""
        ...


@dataclass(frozen=True, slots=True)
class InflightSubmit:
    """A submit task sent to a user queue and not yet finished.

    Until it finishes, its glideins count as idle (waiting) for the decisions, so that a quick
    second find-work cannot submit them again.
    """

    submit_key: str
    entry: str
    client: str
    security_class: str
    credential_id: str
    frontend: str
    count: int
    queued_at: float


class InflightSubmits(Protocol):
    def add(self, record: InflightSubmit) -> None: ...

    def list(self, entry: str) -> list[InflightSubmit]: ...

    def done(self, entry: str, submit_key: str) -> None: ...


class StateStore(Protocol):
    """All the state ports of one store (Redis, or the in-memory twin).

    Their method names overlap (``get``, ``add``), so each port is an attribute.
    """

    @property
    def entries(self) -> EntryState: ...

    @property
    def ledger(self) -> SubmitLedger: ...

    @property
    def failed(self) -> FailedSubmits: ...

    @property
    def locks(self) -> Locks: ...

    @property
    def series(self) -> TimeSeries: ...

    @property
    def inflight(self) -> InflightSubmits: ...

    @property
    def completed(self) -> CompletedGlideins: ...

    @property
    def counters(self) -> Counters: ...


# --------------------------------------------------------------------------------------------
# Sending work to the per-user queues, and the keys of the user workers


class TaskDispatcher(Protocol):
    """Send orders to the queue of one local user (consumed by that user's worker only).

    Orders are plain JSON dicts (see gwms_tasks/services/orders.py); they carry no secret in
    clear: credentials travel sealed for the user worker's own key.

    Errors: ``TransientError`` when the broker cannot take the order now (unreachable, timing
    out), ``PermanentError`` for an order that can never be sent (an unknown job action, a user
    name that cannot be a queue, content that is not JSON).
    """

    def send_submit(self, username: str, order: JsonDict) -> None: ...

    def send_job_action(self, username: str, order: JsonDict) -> None: ...

    def send_credential(self, username: str, order: JsonDict) -> None: ...


class UserKeys(Protocol):
    """Public keys that user workers publish at their first start.

    Guarantees: a published key is never replaced by ``publish``: every user worker connects
    with the same credentials, so a worker that could overwrite another user's key would
    receive that user's sealed credentials. Only an operator's ``remove`` clears it.
    """

    def publish(self, username: str, public_pem: bytes) -> bool:
        """Publish ``username``'s key if none is; False when one was already published."""
        ...

    def public_pem(self, username: str) -> bytes | None: ...

    def remove(self, username: str) -> bool:
        """Forget ``username``'s published key; False when there was none."""
        ...


# --------------------------------------------------------------------------------------------
# Completed glideins: what the factory learnt from the output of glideins that ended


@dataclass(frozen=True, slots=True)
class CompletedGlidein:
    """One glidein that ended, as its output told (see gwms_tasks/core/glidein_log.py).

    Attributes:
        job_id: the backend's job id (unique per entry; recording it twice changes nothing).
        entry / client: where it ran and for whom (``client`` is the request's ClientName).
        security_class / frontend: the request's security class, and ``frontend:sc``.
        finished_at: epoch seconds when the backend saw it end.
        result: a ``GlideinResult`` value (ok, validation_failed, payload_failed, killed, unknown).
        exit_code: the glidein's exit code, when known.
        wall_seconds: from start to end of ``glidein_startup.sh``.
        validation_seconds: time spent before the payload started.
        payload_seconds: time the payload ran.
        user_jobs: user jobs (tasks) the payload reported having run.
        failed_script / failure_category / failure_detail: the failing validation script and
            its category (``WN_Resource``, ``Network``, ``Config``, ...), when one failed.
        log_path: where the kept raw stdout/stderr are (empty when not kept).
    """

    job_id: str
    entry: str
    client: str
    security_class: str
    frontend: str
    finished_at: float
    result: str
    exit_code: int | None = None
    wall_seconds: float = 0.0
    validation_seconds: float = 0.0
    payload_seconds: float = 0.0
    user_jobs: int = 0
    failed_script: str = ""
    failure_category: str = ""
    failure_detail: str = ""
    log_path: str = ""


@dataclass(frozen=True, slots=True)
class CompletedStats:
    """Counts over completed glideins of one scope (an entry, or one client of an entry).

    ``waste_seconds`` is the wall time of glideins that ran no user job (validation failures
    and idle pilots), glideinWMS's "badput".
    """

    completed: int = 0
    ok: int = 0
    failed_validation: int = 0
    failed_payload: int = 0
    killed: int = 0
    unknown: int = 0
    user_jobs: int = 0
    wall_seconds: float = 0.0
    waste_seconds: float = 0.0
    by_category: Mapping[str, int] = field(default_factory=dict)


class CompletedGlideins(Protocol):
    """Completed-glidein outcomes and their statistics, per entry and client.

    Guarantees: ``record`` is idempotent per (entry, job_id); ``stats`` counts each recorded
    glidein once in every window that contains its ``finished_at``; ``recent`` keeps at least
    the last ``keep`` outcomes of an entry, newest first.
    """

    def record(self, outcome: CompletedGlidein) -> bool:
        """Store one outcome; False when that job was already recorded (nothing changed)."""
        ...

    def recent(self, entry: str, limit: int = 50) -> list[CompletedGlidein]:
        """The newest outcomes of an entry, newest first."""
        ...

    def stats(self, entry: str, since: float) -> dict[str, CompletedStats]:
        """Counts of glideins finished at or after ``since``: ``"entry"`` and ``"client:<c>"``."""
        ...

    def totals(self, entry: str) -> dict[str, CompletedStats]:
        """Counts since the factory started recording (monotonic; for Prometheus counters)."""
        ...

    def last_finished(self, entry: str) -> float | None:
        """``finished_at`` of the newest outcome recorded for the entry (None before any).

        The monitor reads the backend's finished glideins from there on, so each is read once
        (one at exactly that time may be offered again; ``record`` ignores it).
        """
        ...


# --------------------------------------------------------------------------------------------
# Counters for monitoring (Prometheus) and credentials known to the factory


class Counters(Protocol):
    """Monotonic per-entry counters (submits, removals, decisions by reason, cycle times).

    Field names are plain (``submitted``, ``removed``, ``released``, ``failed_submits``,
    ``decision:<reason>``, ``cycle_seconds:<task>``, ``cycles:<task>``) or per client
    (``client:<client>:<name>``). Guarantees: ``add`` is atomic per field; values only grow.
    """

    def add(self, entry: str, values: Mapping[str, float]) -> None: ...

    def read(self, entry: str) -> dict[str, float]: ...


@dataclass(frozen=True, slots=True)
class KnownCredential:
    """What the factory may show about a credential it received; never its content.

    Attributes:
        client: the ClientName that shipped it; frontend: its SecurityName.
        security_class: its security class; username: the local user it was stored for.
        credential_id: the id the requests name it by.
        kind: ``proxy``, ``scitoken``, ``idtoken`` or ``file`` (as far as it can be told).
        received_at: epoch seconds of the last time it was received.
        expires_at: epoch seconds of expiry when it can be read (JWT ``exp``, X.509 notAfter).
        fingerprint: the first 16 hex digits of its SHA-256, to tell versions apart.
    """

    client: str
    frontend: str
    security_class: str
    username: str
    credential_id: str
    kind: str
    received_at: float
    expires_at: float | None = None
    fingerprint: str = ""


class CredentialIndex(Protocol):
    """Credentials received from frontends, by (client, credential id); metadata only."""

    def put(self, credential: KnownCredential) -> None: ...

    def list(self, frontend: str | None = None) -> list[KnownCredential]: ...
