"""A parametrised model of a CE and its batch system, behind the simulated grid backend.

A glidein goes through the phases WAIT (in the local queue, no GridJobStatus) -> PENDING (at
the site for its queue time) -> READY (still pending, waiting for a free slot) -> RUNNING (for
its run time) -> gone (completed). With probability ``hold_rate`` it is held when it reaches the
site instead, and stays held until released (back to WAIT) or removed; with probability
``failure_rate`` it fails: it runs for ``failure_time`` only.

Built for 100,000 glideins: the state of a glidein is one small tuple; event times sit in a heap
with lazy deletion, so ``advance(now)`` costs O(due events x log n) and an advance with nothing
due is O(1); the ``Glidein`` views that ``glideins()`` hands out are cached and rebuilt only for
the glideins that changed. Randomness comes from the ``random.Random`` passed in, time from the
``now`` arguments. With ``track_changes`` the model also records what changed, so that an
adapter can persist only that (see ``take_changes``).
"""

from __future__ import annotations

import enum
import heapq
import math
import random
import re
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gwms_tasks.core.model import Glidein
from gwms_tasks.core.status import JobStatus
from gwms_tasks.errors import ConfigError, PermanentError
from gwms_tasks.ports import GlideinTags

_SOURCE = "simulation parameters"
_JOB_ID = re.compile(r"^(\d+)\.(\d+)$")
NO_EVENT = -1
"""``due`` of a job without a pending event (held)."""
_NUM_BITS = 40
"""Heap keys are ``due << _NUM_BITS | num``: plain ints, about 3x faster to heap than tuples."""
_NUM_MASK = (1 << _NUM_BITS) - 1


def _ms(seconds: float) -> int:
    """Times inside the model are integer milliseconds: exact to compare and to store."""
    return math.floor(seconds * 1000)


def _require(ok: bool, problem: str) -> None:
    if not ok:
        raise ConfigError(_SOURCE, [problem])


@dataclass(frozen=True, slots=True)
class Fixed:
    """Always ``value`` seconds."""

    value: float

    def __post_init__(self) -> None:
        _require(self.value >= 0, f"fixed: expected seconds >= 0, got {self.value}")

    def sample(self, rng: random.Random) -> float:
        return self.value


@dataclass(frozen=True, slots=True)
class Uniform:
    """Uniformly between ``low`` and ``high`` seconds."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _require(0 <= self.low <= self.high, f"uniform: expected 0 <= low <= high, got {self}")

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)


@dataclass(frozen=True, slots=True)
class Exponential:
    """Exponentially distributed with the given mean (memoryless arrivals and durations)."""

    mean: float

    def __post_init__(self) -> None:
        _require(self.mean > 0, f"exp: expected a mean > 0, got {self.mean}")

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean)


Distribution = Fixed | Uniform | Exponential


def parse_distribution(text: str) -> Distribution:
    """Parse ``"60"``, ``"fixed:60"``, ``"uniform:60:600"`` or ``"exp:600"`` (seconds).

    Raises:
        ConfigError: an unknown kind or a bad number.
    """
    kind, *numbers = text.strip().split(":")
    try:
        values = [float(n) for n in numbers] if numbers else [float(kind)]
    except ValueError:
        raise ConfigError(_SOURCE, [f"distribution {text!r}: expected numbers"]) from None
    if not numbers or (kind == "fixed" and len(values) == 1):
        return Fixed(values[0])
    if kind == "uniform" and len(values) == 2:
        return Uniform(values[0], values[1])
    if kind == "exp" and len(values) == 1:
        return Exponential(values[0])
    raise ConfigError(_SOURCE, [f"distribution {text!r}: expected fixed:S, uniform:A:B or exp:M"])


@dataclass(frozen=True, slots=True)
class SiteParameters:
    """How the simulated site behaves.

    Attributes:
        slots: how many glideins can run at once (the site's capacity).
        submit_delay: time in the local queue before the glidein reaches the site.
        queue_time: time at the site before the glidein may take a free slot.
        run_time: how long a glidein runs.
        hold_rate: probability that the site refuses a glidein, which is then held.
        failure_rate: probability that a started glidein fails.
        failure_time: how long a failing glidein runs.
        hold_reason_code / hold_reason_subcode / hold_reason: what held glideins report
            (HTCondor's code 0 is "unspecified").
    """

    slots: int = 100
    submit_delay: Distribution = Fixed(0.0)
    queue_time: Distribution = Fixed(0.0)
    run_time: Distribution = Fixed(3600.0)
    hold_rate: float = 0.0
    failure_rate: float = 0.0
    failure_time: Distribution = Fixed(60.0)
    hold_reason_code: int = 0
    hold_reason_subcode: int = 0
    hold_reason: str = "simulated site refused the glidein"

    def __post_init__(self) -> None:
        _require(self.slots >= 0, f"slots: expected an integer >= 0, got {self.slots}")
        for name in ("hold_rate", "failure_rate"):
            rate = getattr(self, name)
            _require(0.0 <= rate <= 1.0, f"{name}: expected a probability in [0, 1], got {rate}")


class Phase(enum.IntEnum):
    """Where a simulated glidein is."""

    WAIT = 0
    PENDING = 1
    READY = 2
    RUNNING = 3
    FAILING = 4
    HELD = 5


class Outcome(enum.StrEnum):
    """Events counted by the model."""

    SUBMITTED = "submitted"
    HELD = "held"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    REMOVED = "removed"


JobRecord = tuple[int, int, int, int, int]
"""The whole state of one glidein: ``(phase, entered, due, holds, cluster)``, read with the
index constants below. A plain tuple because it is cheaper to build and to garbage-collect than
a NamedTuple: at 100,000 glideins an advance is a fifth faster.

Times are epoch milliseconds: ``entered`` is when its JobStatus last changed; ``due`` is the
time of its next event (WAIT, PENDING, RUNNING, FAILING), the time it became READY, or
``NO_EVENT`` when held.
"""
PHASE, ENTERED, DUE, HOLDS, CLUSTER = range(5)


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """The glideins of one submission: procs ``0..count-1`` are job numbers ``first + proc``."""

    first: int
    count: int
    client: str
    security_class: str
    credential_id: str
    frontend: str
    submit_key: str


@dataclass(frozen=True, slots=True)
class SiteState:
    """The state of a model, whole (to rebuild one) or as changes (``take_changes``).

    In changes, None marks a job or cluster that is gone.
    """

    jobs: Mapping[int, JobRecord | None]
    clusters: Mapping[int, ClusterInfo | None]
    next_num: int = 0
    next_cluster: int = 1
    counters: Mapping[str, int] | None = None


_VIEW: dict[int, tuple[JobStatus, str | None]] = {
    Phase.WAIT: (JobStatus.IDLE, None),
    Phase.PENDING: (JobStatus.IDLE, "IDLE"),
    Phase.READY: (JobStatus.IDLE, "IDLE"),
    Phase.RUNNING: (JobStatus.RUNNING, "RUNNING"),
    Phase.FAILING: (JobStatus.RUNNING, "RUNNING"),
    Phase.HELD: (JobStatus.HELD, None),
}
"""JobStatus and GridJobStatus (HTCondor-CE style) reported for each phase."""

_BUSY = (Phase.RUNNING, Phase.FAILING)


class SiteModel:
    """The simulated queue of one entry. Job ids are ``cluster.proc``, one cluster per submit."""

    def __init__(
        self,
        params: SiteParameters,
        entry: str,
        rng: random.Random,
        *,
        track_changes: bool = False,
        state: SiteState | None = None,
    ) -> None:
        self.params, self.entry, self._rng, self._track = params, entry, rng, track_changes
        state = state or SiteState({}, {})
        self._jobs = {num: rec for num, rec in state.jobs.items() if rec is not None}
        self._clusters = {c: info for c, info in state.clusters.items() if info is not None}
        self._next_num, self._next_cluster = state.next_num, state.next_cluster
        self._counts: Counter[str] = Counter(state.counters or {})
        self._live: Counter[int] = Counter(rec[CLUSTER] for rec in self._jobs.values())
        jobs = self._jobs.items()
        self._heap = [r[DUE] << _NUM_BITS | n for n, r in jobs if r[PHASE] not in _WAITING]
        heapq.heapify(self._heap)
        ready = sorted((r[DUE], n) for n, r in jobs if r[PHASE] == Phase.READY)
        self._ready: deque[tuple[int, int]] = deque((n, due) for due, n in ready)
        self._running = sum(r[PHASE] in _BUSY for r in self._jobs.values())
        self._views: dict[int, Glidein] = {}
        self._stale: set[int] = set(self._jobs)
        self._dirty_jobs: set[int] = set()
        self._dirty_clusters: set[int] = set()

    # -- queries -------------------------------------------------------------------------------

    def glideins(self) -> list[Glidein]:
        """Every glidein in the queue (removed and completed ones are gone)."""
        for num in self._stale:
            record = self._jobs.get(num)
            if record is None:
                self._views.pop(num, None)
            else:
                self._views[num] = self._view(num, record)
        self._stale.clear()
        return list(self._views.values())

    @property
    def counters(self) -> dict[str, int]:
        """How many glideins were submitted, held, started, completed, failed, removed."""
        return {outcome.value: self._counts[outcome.value] for outcome in Outcome}

    @property
    def busy_slots(self) -> int:
        return self._running

    # -- actions -------------------------------------------------------------------------------

    def submit(self, tags: GlideinTags, count: int, now: float) -> list[str]:
        """Queue ``count`` glideins in WAIT as one new cluster; return their ids."""
        if count <= 0:
            return []
        if self._next_num + count > _NUM_MASK:
            raise PermanentError("the simulated site ran out of job numbers")
        cluster, first, at = self._next_cluster, self._next_num, _ms(now)
        self._next_cluster += 1
        self._next_num += count
        self._set_cluster(cluster, _cluster_info(tags, first, count))
        delay, rng = self.params.submit_delay, self._rng
        for num in range(first, first + count):
            self._schedule(num, (Phase.WAIT, at, at + _ms(delay.sample(rng)), 0, cluster))
        self._live[cluster] = count
        self._counts[Outcome.SUBMITTED] += count
        return [f"{cluster}.{proc}" for proc in range(count)]

    def advance(self, now: float) -> int:
        """Apply every event due at or before ``now``, in time order; return how many."""
        fired = 0
        heap, jobs = self._heap, self._jobs
        limit = _ms(now) << _NUM_BITS | _NUM_MASK
        while heap and heap[0] <= limit:
            key = heapq.heappop(heap)
            num, due = key & _NUM_MASK, key >> _NUM_BITS
            record = jobs.get(num)
            if record is not None and record[DUE] == due and record[PHASE] not in _WAITING:
                self._fire(num, record, due)
                fired += 1
        return fired

    def release(self, job_ids: Iterable[str], now: float) -> int:
        """Send held glideins back to the local queue (WAIT); return how many."""
        released, at = 0, _ms(now)
        for num in self._numbers(job_ids):
            record = self._jobs[num]
            if record[PHASE] == Phase.HELD:
                due = at + _ms(self.params.submit_delay.sample(self._rng))
                self._schedule(num, (Phase.WAIT, at, due, record[HOLDS], record[CLUSTER]))
                released += 1
        return released

    def hold(self, job_ids: Iterable[str], now: float) -> int:
        """Hold glideins as the site would (counts in NumSystemHolds); return how many."""
        held, at = 0, _ms(now)
        for num in self._numbers(job_ids):
            record = self._jobs[num]
            if record[PHASE] != Phase.HELD:
                self._hold(num, record, at)
                held += 1
        self._fill(at)
        return held

    def remove(self, job_ids: Iterable[str], now: float) -> int:
        """Remove glideins from the queue, freeing their slots; return how many."""
        removed = 0
        for num in self._numbers(job_ids):
            self._running -= self._jobs[num][PHASE] in _BUSY
            self._drop(num)
            self._counts[Outcome.REMOVED] += 1
            removed += 1
        self._fill(_ms(now))
        return removed

    def take_changes(self) -> SiteState:
        """What changed since the last call (needs ``track_changes``), and forget it."""
        changes = SiteState(
            jobs={num: self._jobs.get(num) for num in self._dirty_jobs},
            clusters={c: self._clusters.get(c) for c in self._dirty_clusters},
            next_num=self._next_num,
            next_cluster=self._next_cluster,
            counters=self.counters,
        )
        self._dirty_jobs.clear()
        self._dirty_clusters.clear()
        return changes

    # -- internals -----------------------------------------------------------------------------

    def _fire(self, num: int, record: JobRecord, now: int) -> None:
        if record[PHASE] == Phase.WAIT:
            if self._rng.random() < self.params.hold_rate:
                self._hold(num, record, now)
            else:
                due = now + _ms(self.params.queue_time.sample(self._rng))
                self._schedule(
                    num, (Phase.PENDING, record[ENTERED], due, record[HOLDS], record[CLUSTER])
                )
        elif record[PHASE] == Phase.PENDING:
            self._set(num, (Phase.READY, record[ENTERED], now, record[HOLDS], record[CLUSTER]))
            self._ready.append((num, now))
            self._fill(now)
        else:
            self._running -= 1
            self._drop(num)
            failed = record[PHASE] == Phase.FAILING
            self._counts[Outcome.FAILED if failed else Outcome.COMPLETED] += 1
            self._fill(now)

    def _fill(self, now: int) -> None:
        """Start READY glideins, first come first served, while slots are free."""
        params, ready = self.params, self._ready
        while ready and self._running < params.slots:
            num, since = ready.popleft()
            record = self._jobs.get(num)
            if record is None or record[PHASE] != Phase.READY or record[DUE] != since:
                continue  # removed or held while waiting: a stale entry
            failing = self._rng.random() < params.failure_rate
            duration = _ms((params.failure_time if failing else params.run_time).sample(self._rng))
            phase = Phase.FAILING if failing else Phase.RUNNING
            self._schedule(num, (phase, now, now + duration, record[HOLDS], record[CLUSTER]))
            self._running += 1
            self._counts[Outcome.STARTED] += 1

    def _hold(self, num: int, record: JobRecord, now: int) -> None:
        self._running -= record[PHASE] in _BUSY
        held = (Phase.HELD, now, NO_EVENT, record[HOLDS] + 1, record[CLUSTER])
        self._set(num, held)
        self._counts[Outcome.HELD] += 1

    def _schedule(self, num: int, record: JobRecord) -> None:
        self._set(num, record)
        heapq.heappush(self._heap, record[DUE] << _NUM_BITS | num)

    def _set(self, num: int, record: JobRecord) -> None:
        self._jobs[num] = record
        self._stale.add(num)
        if self._track:
            self._dirty_jobs.add(num)

    def _drop(self, num: int) -> None:
        cluster = self._jobs.pop(num)[CLUSTER]
        self._stale.add(num)
        if self._track:
            self._dirty_jobs.add(num)
        self._live[cluster] -= 1
        if self._live[cluster] <= 0:
            del self._live[cluster]
            self._set_cluster(cluster, None)

    def _set_cluster(self, cluster: int, info: ClusterInfo | None) -> None:
        if info is None:
            self._clusters.pop(cluster, None)
        else:
            self._clusters[cluster] = info
        if self._track:
            self._dirty_clusters.add(cluster)

    def _numbers(self, job_ids: Iterable[str]) -> list[int]:
        """Job numbers of the live glideins among ``job_ids``; unknown ids are ignored.

        Raises:
            PermanentError: an id that is not ``cluster.proc`` (checked before any change).
        """
        numbers = []
        for job_id in job_ids:
            match = _JOB_ID.match(job_id)
            if match is None:
                raise PermanentError(f"invalid job id {job_id!r}: expected cluster.proc")
            info = self._clusters.get(int(match[1]))
            proc = int(match[2])
            if info is not None and proc < info.count and info.first + proc in self._jobs:
                numbers.append(info.first + proc)
        return list(dict.fromkeys(numbers))

    def _view(self, num: int, record: JobRecord) -> Glidein:
        info = self._clusters[record[CLUSTER]]
        status, grid = _VIEW[record[PHASE]]
        held = record[PHASE] == Phase.HELD
        params = self.params
        return Glidein(
            job_id=f"{record[CLUSTER]}.{num - info.first}",
            entry=self.entry,
            client=info.client,
            security_class=info.security_class,
            credential_id=info.credential_id,
            frontend=info.frontend,
            job_status=status,
            grid_job_status=grid,
            entered_current_status=record[ENTERED] / 1000,
            hold_reason_code=params.hold_reason_code if held else None,
            hold_reason_subcode=params.hold_reason_subcode if held else None,
            hold_reason=params.hold_reason if held else None,
            num_system_holds=record[HOLDS],
            submit_key=info.submit_key,
        )


_WAITING = (Phase.READY, Phase.HELD)
"""Phases without a timed event in the heap."""


def _cluster_info(tags: GlideinTags, first: int, count: int) -> ClusterInfo:
    return ClusterInfo(
        first=first,
        count=count,
        client=tags.client,
        security_class=tags.security_class,
        credential_id=tags.credential_id,
        frontend=tags.frontend,
        submit_key=tags.submit_key,
    )
