"""Stale and held glidein handling (the reference §3.6).

Each cycle the entry's queue is swept, in this order: glideins idle too long and running too
long are removed; held glideins that cannot recover are removed (with ``-forcex`` once held more
than ``forcex_after`` times); held glideins that can recover are released, with a back-off that
grows with the number of system holds. A held glidein can recover when its HoldReasonCode (and
HoldReasonSubCode, if the policy lists subcodes for that code) is in the configured policy and it
has been held at most ``max_releases`` times; the default policy is empty, so by default every
held glidein is removed.

Each removal kind is capped at ``max_remove_per_cycle`` and releases at
``max_release_per_cycle`` (strictly: the reference lets one extra release through); what a cap
leaves is counted in ``deferred`` and handled in a later cycle.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gwms_tasks.core.limits import EntryLimits, HeldPolicy, StaleAges
from gwms_tasks.core.model import Glidein
from gwms_tasks.core.status import JobStatus


class JobAction(enum.StrEnum):
    """What to do to one glidein."""

    REMOVE = "remove"
    REMOVE_FORCEX = "remove_forcex"  # condor_rm, then condor_rm -forcex
    RELEASE = "release"


class SanitizeReason(enum.StrEnum):
    """Why a glidein is removed or released."""

    STALE_IDLE = "stale_idle"
    STALE_RUNNING = "stale_running"
    HELD_FORCEX = "held_forcex"  # unrecoverable and held more than forcex_after times
    HELD_UNRECOVERABLE = "held_unrecoverable"  # hold code not in the recoverable policy
    HELD_TOO_OFTEN = "held_too_often"  # recoverable code, but held more than max_releases times
    HELD_RECOVERABLE = "held_recoverable"

    @property
    def action(self) -> JobAction:
        """The action this reason calls for."""
        if self is SanitizeReason.HELD_RECOVERABLE:
            return JobAction.RELEASE
        if self is SanitizeReason.HELD_FORCEX:
            return JobAction.REMOVE_FORCEX
        return JobAction.REMOVE


@dataclass(frozen=True, slots=True)
class SanitizeAction:
    """One glidein to remove or release, and why."""

    job_id: str
    reason: SanitizeReason

    @property
    def action(self) -> JobAction:
        return self.reason.action


@dataclass(frozen=True, slots=True)
class SanitizeDecision:
    """What to remove and release on one entry this cycle.

    Attributes:
        actions: the glideins to act on, in sweep order.
        deferred: by reason, glideins that qualified but were left by a per-cycle cap.
        backing_off: recoverable held glideins not yet held long enough to be released.
    """

    actions: tuple[SanitizeAction, ...] = ()
    deferred: Mapping[SanitizeReason, int] = field(default_factory=dict)
    backing_off: tuple[str, ...] = ()

    def job_ids(self, action: JobAction) -> tuple[str, ...]:
        """The glideins to act on with one action, in sweep order."""
        return tuple(item.job_id for item in self.actions if item.action is action)

    def explain(self) -> str:
        """One sentence, e.g. ``remove 2 (stale_idle 2), release 1; 3 held in back-off``."""
        tally: dict[SanitizeReason, int] = {}
        for item in self.actions:
            tally[item.reason] = tally.get(item.reason, 0) + 1
        parts = [
            f"{verb} {len(self.job_ids(action))}{_by_reason(tally, action)}"
            for action, verb in _VERBS.items()
        ]
        text = "sanitize: " + ", ".join(parts)
        if self.backing_off:
            text += f"; {len(self.backing_off)} held in back-off"
        if self.deferred:
            text += f"; {sum(self.deferred.values())} left for later cycles by per-cycle caps"
        return text

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict of the decision and its explanation."""
        return {
            "actions": [
                {"job_id": item.job_id, "action": item.action.value, "reason": item.reason.value}
                for item in self.actions
            ],
            "deferred": {reason.value: count for reason, count in self.deferred.items()},
            "backing_off": list(self.backing_off),
            "explanation": self.explain(),
        }


def decide_sanitize(
    glideins: Sequence[Glidein],
    stale: StaleAges,
    held: HeldPolicy,
    limits: EntryLimits,
    now: float,
    already_removed: frozenset[str] = frozenset(),
) -> SanitizeDecision:
    """Which glideins of an entry to remove or release this cycle (the reference §3.6).

    Args:
        glideins: the entry's queue, in queue order.
        stale: ages after which idle and running glideins are stale.
        held: the held-glidein policy.
        limits: the entry's limits (removal and release caps).
        now: current time, used for ages when the backend gave no server time.
        already_removed: job ids other decisions of this cycle already remove; left alone.

    Returns:
        The actions with their reasons, what the caps deferred, and what is in back-off.
    """
    found: list[SanitizeAction] = []
    backing_off: list[str] = []
    for glidein in glideins:
        if glidein.job_id in already_removed:
            continue
        reason = _reason_for(glidein, stale, held, now)
        if reason is SanitizeReason.HELD_RECOVERABLE and not _backoff_over(glidein, held, now):
            backing_off.append(glidein.job_id)
        elif reason is not None:
            found.append(SanitizeAction(glidein.job_id, reason))
    actions, deferred = _apply_caps(found, limits)
    return SanitizeDecision(actions=actions, deferred=deferred, backing_off=tuple(backing_off))


def held_disposition(glidein: Glidein, policy: HeldPolicy) -> SanitizeReason:
    """What a held glidein deserves under the policy (release, remove, or remove with forcex)."""
    listed = _code_listed(glidein, policy)
    holds = glidein.num_system_holds
    if listed and holds <= policy.max_releases:
        return SanitizeReason.HELD_RECOVERABLE
    if holds > policy.forcex_after:
        return SanitizeReason.HELD_FORCEX
    return SanitizeReason.HELD_TOO_OFTEN if listed else SanitizeReason.HELD_UNRECOVERABLE


def _reason_for(
    glidein: Glidein, stale: StaleAges, held: HeldPolicy, now: float
) -> SanitizeReason | None:
    if glidein.job_status is JobStatus.IDLE and glidein.age(now) > stale.idle:
        return SanitizeReason.STALE_IDLE
    if glidein.job_status is JobStatus.RUNNING and glidein.age(now) > stale.running:
        return SanitizeReason.STALE_RUNNING
    if glidein.job_status is JobStatus.HELD:
        return held_disposition(glidein, held)
    return None


def _code_listed(glidein: Glidein, policy: HeldPolicy) -> bool:
    if glidein.hold_reason_code is None:
        return False
    subcodes = policy.recoverable.get(glidein.hold_reason_code)
    if subcodes is None:
        return False
    return not subcodes or glidein.hold_reason_subcode in subcodes


def _backoff_over(glidein: Glidein, policy: HeldPolicy, now: float) -> bool:
    """Held at least ``NumSystemHolds x release_backoff`` seconds: repeat offenders wait longer."""
    return glidein.age(now) >= glidein.num_system_holds * policy.release_backoff


def _apply_caps(
    found: Sequence[SanitizeAction], limits: EntryLimits
) -> tuple[tuple[SanitizeAction, ...], dict[SanitizeReason, int]]:
    """Keep at most the cap of each batch (one batch = one condor_rm or condor_release call)."""
    kept: list[SanitizeAction] = []
    deferred: dict[SanitizeReason, int] = {}
    for batch in _BATCHES:
        members = [item for item in found if item.reason in batch]
        releases = SanitizeReason.HELD_RECOVERABLE in batch
        cap = max(limits.max_release_per_cycle if releases else limits.max_remove_per_cycle, 0)
        kept.extend(members[:cap])
        for item in members[cap:]:
            deferred[item.reason] = deferred.get(item.reason, 0) + 1
    return tuple(kept), deferred


def _by_reason(tally: Mapping[SanitizeReason, int], action: JobAction) -> str:
    mine = [f"{reason.value} {count}" for reason, count in tally.items() if reason.action is action]
    return f" ({', '.join(mine)})" if mine else ""


# The reference's calls, in sweep order. Unrecoverable and too-often-held glideins go in one
# condor_rm call there, so they share one cap.
_BATCHES: tuple[frozenset[SanitizeReason], ...] = (
    frozenset({SanitizeReason.STALE_IDLE}),
    frozenset({SanitizeReason.STALE_RUNNING}),
    frozenset({SanitizeReason.HELD_FORCEX}),
    frozenset({SanitizeReason.HELD_UNRECOVERABLE, SanitizeReason.HELD_TOO_OFTEN}),
    frozenset({SanitizeReason.HELD_RECOVERABLE}),
)

_VERBS: dict[JobAction, str] = {
    JobAction.REMOVE: "remove",
    JobAction.REMOVE_FORCEX: "remove with forcex",
    JobAction.RELEASE: "release",
}
