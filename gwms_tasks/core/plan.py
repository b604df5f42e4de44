"""One find-work cycle of one entry: every submit, removal and sanitize decision (§3.2-§3.6).

:func:`plan_entry` takes the entry's queue snapshot and the validated demands addressed to it and
returns an :class:`EntryPlan`. For each demand, in the order given, it decides how many glideins
to submit and, only when that is none, which excess glideins to remove; then it sweeps the whole
queue for stale and held glideins. (What the advertise step publishes, the per-client numbers and
the triggered limits, it reads from the stored decisions: gwms_tasks/services/advertise.py.)

Deliberate differences from the reference:

* **Running totals.** The reference rebuilds the entry and frontend totals from the queue
  snapshot for every request, so submissions made earlier in the same cycle are not counted and
  several requests together can overshoot an entry or frontend limit. Here every submission is
  added (as unsubmitted idle) to the entry, frontend:security-class and credential totals before
  the next demand is decided, so no limit is ever overshot within a cycle. The flip side is that
  order matters when a limit binds: earlier demands are served first, so a caller wanting
  fairness rotates the order from cycle to cycle. Removals are *not* subtracted: a removal may
  fail, and counting it early could let a later submission overshoot.
* **Sanitize every cycle.** The reference sweeps stale and held glideins only in cycles where the
  entry neither submitted nor removed anything, so a busy entry that submits every cycle never
  releases or removes its held glideins; they pile up until the held limit blocks the entry.
  Here the sweep runs every cycle on the whole queue, leaving alone the glideins already chosen
  for excess removal, with its own per-cycle caps.
* **Removal when the frontend held limit blocks.** The reference only sweeps in that case; here
  the demand is treated like any other that submits nothing, so excess removal still runs.

Every glidein is grouped and counted once per pass (its status is classified once, when the
:class:`~gwms_tasks.core.model.Glidein` is made): the per-demand counts and the entry totals at
cycle start are the running totals' starting values.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from gwms_tasks.core.decisions import Demand, DownReason, SubmitDecision, decide_submit
from gwms_tasks.core.limits import EntryLimits, HeldPolicy, StaleAges
from gwms_tasks.core.model import Glidein, StatusCounts
from gwms_tasks.core.removal import RemovalDecision, decide_removal
from gwms_tasks.core.sanitize import SanitizeDecision, decide_sanitize
from gwms_tasks.errors import PermanentError

_Item = TypeVar("_Item")
_Key = TypeVar("_Key", bound=Hashable)


@dataclass(frozen=True, slots=True)
class DemandPlan:
    """The decisions for one demand.

    Attributes:
        demand: the request.
        counts: the glideins of its client, security class and credential at cycle start.
        submit: how many to submit, and why.
        removal: which excess glideins to remove; None when the demand submits.
    """

    demand: Demand
    counts: StatusCounts
    submit: SubmitDecision
    removal: RemovalDecision | None

    def to_dict(self) -> dict[str, object]:
        return {
            "work_key": self.demand.work_key,
            "client": self.demand.client,
            "security_class": self.demand.security_class,
            "credential_id": self.demand.credential_id,
            "frontend_key": self.demand.frontend_key,
            "counts": self.counts.to_dict(),
            "submit": self.submit.to_dict(),
            "removal": None if self.removal is None else self.removal.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class EntryPlan:
    """Every decision of one entry for one cycle.

    Attributes:
        entry_down: factory or entry downtime, if any.
        limits: the entry's limits.
        entry_counts: every glidein of the entry at cycle start.
        final_entry_counts: the same after this cycle's submissions.
        demands: the per-demand decisions, in the order decided.
        sanitize: the stale/held sweep of the whole entry.
    """

    entry_down: DownReason | None
    limits: EntryLimits
    entry_counts: StatusCounts
    final_entry_counts: StatusCounts
    demands: tuple[DemandPlan, ...]
    sanitize: SanitizeDecision

    @property
    def submitted(self) -> int:
        """Glideins submitted on the entry this cycle."""
        return sum(plan.submit.count for plan in self.demands)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict of the whole plan."""
        return {
            "entry_down": None if self.entry_down is None else self.entry_down.value,
            "entry_counts": self.entry_counts.to_dict(),
            "final_entry_counts": self.final_entry_counts.to_dict(),
            "submitted": self.submitted,
            "demands": [plan.to_dict() for plan in self.demands],
            "sanitize": self.sanitize.to_dict(),
        }


def plan_entry(
    glideins: Sequence[Glidein],
    demands: Sequence[Demand],
    limits: EntryLimits,
    held_policy: HeldPolicy,
    stale_ages: StaleAges,
    entry_down: DownReason | None,
    now: float,
) -> EntryPlan:
    """Decide everything one entry does this cycle.

    Args:
        glideins: the entry's queue snapshot, in queue order.
        demands: the validated requests for the entry (served fairest first, see
            :func:`serve_order`; the plan lists them in the given order).
        limits: the entry's limits.
        held_policy: when held glideins are released rather than removed.
        stale_ages: when idle and running glideins are stale.
        entry_down: factory or entry downtime (blocks every demand's submissions).
        now: current time, epoch seconds.

    Returns:
        The plan.

    Raises:
        PermanentError: two demands share a work key.
    """
    _check_unique(demands)
    by_credential = _group(glideins, _credential_key)
    totals = _RunningTotals(glideins, by_credential)
    start = _Start(totals.entry, dict(totals.credentials))
    planned = {
        d.work_key: _plan_demand(d, totals, start, by_credential, limits, entry_down)
        for d in serve_order(demands, totals.frontends)
    }
    plans = [planned[d.work_key] for d in demands]
    removed = frozenset(job_id for plan in plans if plan.removal for job_id in plan.removal.job_ids)
    return EntryPlan(
        entry_down=entry_down,
        limits=limits,
        entry_counts=start.entry,
        final_entry_counts=totals.entry,
        demands=tuple(plans),
        sanitize=decide_sanitize(glideins, stale_ages, held_policy, limits, now, removed),
    )


def serve_order(
    demands: Sequence[Demand], frontend_counts: Mapping[str, StatusCounts]
) -> list[Demand]:
    """The order demands are served in when the entry's limits cannot satisfy them all.

    The frontend (``frontend:security_class``) with the fewest glideins at the entry goes
    first, so that one frontend's large request cannot keep another out cycle after cycle;
    ties by work key, so a decision never depends on the order ads were read in.
    """
    return sorted(
        demands,
        key=lambda d: (frontend_counts.get(d.frontend_key, StatusCounts()).total, d.work_key),
    )


_CredentialKey = tuple[str, str, str]


class _RunningTotals:
    """Counts of the entry, its frontends and credentials, plus this cycle's submissions."""

    def __init__(
        self, glideins: Sequence[Glidein], by_credential: Mapping[_CredentialKey, list[Glidein]]
    ) -> None:
        self.frontends: defaultdict[str, StatusCounts] = defaultdict(StatusCounts)
        self.frontends.update(_count_by(glideins, lambda g: g.frontend))
        self.entry = StatusCounts()  # each glidein has one frontend: the sum of its frontends
        for counts in self.frontends.values():
            self.entry = self.entry.plus(counts)
        self.credentials: defaultdict[_CredentialKey, StatusCounts] = defaultdict(StatusCounts)
        self.credentials.update((k, StatusCounts.of(g)) for k, g in by_credential.items())

    def add_submitted(self, demand: Demand, count: int) -> None:
        """New glideins are idle, not yet submitted to the site, under the demand's tags."""
        new = StatusCounts(wait=count)
        self.entry = self.entry.plus(new)
        self.frontends[demand.frontend_key] = self.frontends[demand.frontend_key].plus(new)
        key = demand.credential_key
        self.credentials[key] = self.credentials[key].plus(new)


@dataclass(frozen=True, slots=True)
class _Start:
    """The running totals as they were at cycle start, before any submission was added."""

    entry: StatusCounts
    credentials: Mapping[_CredentialKey, StatusCounts]


def _plan_demand(
    demand: Demand,
    totals: _RunningTotals,
    start: _Start,
    by_credential: Mapping[_CredentialKey, list[Glidein]],
    limits: EntryLimits,
    entry_down: DownReason | None,
) -> DemandPlan:
    key = demand.credential_key
    mine = by_credential.get(key, [])
    frontend = totals.frontends[demand.frontend_key]
    submit = decide_submit(
        demand,
        totals.credentials[key],
        frontend,
        totals.entry,
        limits,
        entry_down,
    )
    removal = None
    if submit.count > 0:
        totals.add_submitted(demand, submit.count)
    else:
        removal = decide_removal(demand, mine, frontend, limits)
    return DemandPlan(demand, start.credentials.get(key, StatusCounts()), submit, removal)


def _check_unique(demands: Sequence[Demand]) -> None:
    seen: set[str] = set()
    for demand in demands:
        if demand.work_key in seen:
            raise PermanentError(f"two demands for one entry share the work key {demand.work_key}")
        seen.add(demand.work_key)


def _credential_key(glidein: Glidein) -> _CredentialKey:
    return (glidein.client, glidein.security_class, glidein.credential_id)


def _group(items: Iterable[_Item], key: Callable[[_Item], _Key]) -> dict[_Key, list[_Item]]:
    groups: dict[_Key, list[_Item]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def _count_by(
    glideins: Sequence[Glidein], key: Callable[[Glidein], _Key]
) -> dict[_Key, StatusCounts]:
    return {k: StatusCounts.of(members) for k, members in _group(glideins, key).items()}
