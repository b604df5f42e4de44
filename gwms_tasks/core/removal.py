"""Removal of excess glideins when a request wants fewer than it has (the reference §3.5).

The request's ``ReqRemoveExcess`` sets how far removal may go: WAIT removes glideins not yet
submitted to the site, IDLE also those queued there, ALL also running and held ones. Removal is
triggered by *frontend:security-class* counts on the entry but picks its candidates among the
glideins of the request's own client, class and credential; the comparison uses the frontend's
*original* requested idle, so downtime or factory limits (which zero the adjusted idle) never
cause idle glideins to be removed. Only one stage runs per cycle: the first with any candidate.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from gwms_tasks.core.decisions import Demand, RemoveExcess
from gwms_tasks.core.limits import EntryLimits
from gwms_tasks.core.model import Glidein, StatusCounts
from gwms_tasks.core.status import GlideinStatus, JobStatus


class RemovalStage(enum.StrEnum):
    """Which glideins a removal picked (one stage per cycle)."""

    NONE = "none"
    UNSUBMITTED = "unsubmitted"  # idle, not yet at the site (1001)
    QUEUED_IDLE = "queued_idle"  # idle at the site (1002, 1010, 1100)
    RUNNING_AND_HELD = "running_and_held"  # JobStatus 2, plus every held glidein
    HELD = "held"  # every held glidein, when the request wants no glideins at all


class RemovalReason(enum.StrEnum):
    """Why removal was (or was not) wanted: the comparison that decided."""

    NOT_REQUESTED = "not_requested"  # ReqRemoveExcess NO
    WITHIN_REQUEST = "within_request"  # counts within request + margin
    IDLE_EXCESS = "idle_excess"  # class idle > requested idle + margin
    GLIDEIN_EXCESS = "glidein_excess"  # ALL: class idle + running > requested max + margin
    UNWANTED_HELD = "unwanted_held"  # ALL, requested max 0, class has held glideins


@dataclass(frozen=True, slots=True)
class RemovalDecision:
    """Which glideins of one request to remove this cycle, and why.

    Attributes:
        job_ids: the glideins to remove, at most ``max_per_cycle``.
        stage: which kind of glideins were picked.
        reason: the comparison that decided.
        mode: the request's ReqRemoveExcess.
        wanted: how many the comparison asked to remove (before the per-cycle cap).
        capped: True when the per-cycle cap left candidates for a later cycle.
        requested_idle / requested_max / margin: the request's values used.
        frontend_key: ``frontend:security_class`` whose counts were compared.
        frontend: those counts.
        max_per_cycle: the removal batch cap.
    """

    job_ids: tuple[str, ...]
    stage: RemovalStage
    reason: RemovalReason
    mode: RemoveExcess
    wanted: int
    capped: bool
    requested_idle: int
    requested_max: int
    margin: int
    frontend_key: str
    frontend: StatusCounts
    max_per_cycle: int

    def explain(self) -> str:
        """One sentence, e.g. ``remove 2 unsubmitted: fe:sc idle=7 > requested idle 5 + margin 0``.

        Returns:
            The sentence shown in logs, on the web page and by ``gwms explain``.
        """
        picked = f"remove {len(self.job_ids)}"
        if self.stage is not RemovalStage.NONE:
            picked += " " + _STAGE_WORDS[self.stage]
        text = f"{picked}: {_reason_text(self)}"
        if self.capped:
            text += f" (capped at {self.max_per_cycle} per cycle)"
        elif not self.job_ids and self.reason in _WANTS_REMOVAL:
            text += ", but this client has no glidein to remove"
        return text

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict of the decision, its inputs and its explanation."""
        return {
            "job_ids": list(self.job_ids),
            "stage": self.stage.value,
            "reason": self.reason.value,
            "mode": self.mode.value,
            "wanted": self.wanted,
            "capped": self.capped,
            "requested_idle": self.requested_idle,
            "requested_max": self.requested_max,
            "margin": self.margin,
            "frontend_key": self.frontend_key,
            "frontend": self.frontend.to_dict(),
            "max_per_cycle": self.max_per_cycle,
            "explanation": self.explain(),
        }


def decide_removal(
    demand: Demand,
    client_glideins: Sequence[Glidein],
    frontend_counts: StatusCounts,
    limits: EntryLimits,
) -> RemovalDecision:
    """Which of the request's glideins to remove this cycle (the reference §3.5).

    Args:
        demand: the request (its original requested idle, max, mode and margin are used).
        client_glideins: candidates, in queue order; any glidein not of the demand's client,
            security class and credential id is ignored.
        frontend_counts: glideins of the demand's frontend:security-class on the entry.
        limits: the entry's limits (``max_remove_per_cycle`` caps the batch).

    Returns:
        The decision; empty ``job_ids`` when nothing is to be removed.
    """
    mine = [glidein for glidein in client_glideins if demand.owns(glidein)]
    reason, wanted = _compare(demand, frontend_counts)
    stage, candidates = _pick(demand.remove_excess, reason, wanted, mine)
    cap = max(limits.max_remove_per_cycle, 0)
    return RemovalDecision(
        job_ids=tuple(glidein.job_id for glidein in candidates[:cap]),
        stage=stage,
        reason=reason,
        mode=demand.remove_excess,
        wanted=wanted,
        capped=len(candidates) > cap,
        requested_idle=demand.req_idle,
        requested_max=demand.req_max,
        margin=demand.remove_margin,
        frontend_key=demand.frontend_key,
        frontend=frontend_counts,
        max_per_cycle=limits.max_remove_per_cycle,
    )


def _compare(demand: Demand, fe: StatusCounts) -> tuple[RemovalReason, int]:
    """The deciding comparison and how many it asks to remove.

    Every mode but NO includes the idle test. Under ALL the glidein test also applies, and its
    larger count replaces the idle one once running glideins alone (with the requested idle)
    exceed the requested max. Whenever a test fires the count is positive, since margins are
    never negative.
    """
    mode, margin = demand.remove_excess, demand.remove_margin
    if mode is RemoveExcess.NO:
        return RemovalReason.NOT_REQUESTED, 0
    idle_excess = fe.idle > demand.req_idle + margin
    glidein_excess = mode is RemoveExcess.ALL and fe.running + fe.idle > demand.req_max + margin
    if glidein_excess and fe.running + demand.req_idle > demand.req_max:
        return RemovalReason.GLIDEIN_EXCESS, fe.running + fe.idle - demand.req_max - margin
    if idle_excess or glidein_excess:
        return RemovalReason.IDLE_EXCESS, fe.idle - demand.req_idle - margin
    if mode is RemoveExcess.ALL and demand.req_max == 0 and fe.held > 0:
        return RemovalReason.UNWANTED_HELD, fe.held
    return RemovalReason.WITHIN_REQUEST, 0


def _pick(
    mode: RemoveExcess, reason: RemovalReason, wanted: int, mine: list[Glidein]
) -> tuple[RemovalStage, list[Glidein]]:
    """The first stage with any candidate, and its candidates (before the per-cycle cap)."""
    held = [glidein for glidein in mine if glidein.job_status is JobStatus.HELD]
    if reason is RemovalReason.UNWANTED_HELD:
        return (RemovalStage.HELD, held) if held else (RemovalStage.NONE, [])
    if reason not in _TRIGGERS:
        return RemovalStage.NONE, []
    unsubmitted = [glidein for glidein in mine if glidein.status is GlideinStatus.WAIT]
    if unsubmitted:
        return RemovalStage.UNSUBMITTED, unsubmitted[:wanted]
    queued = [glidein for glidein in mine if glidein.status in _QUEUED_IDLE]
    if mode.removes_queued_idle and queued:
        return RemovalStage.QUEUED_IDLE, queued[:wanted]
    running = [glidein for glidein in mine if glidein.job_status is JobStatus.RUNNING]
    if mode is RemoveExcess.ALL and (running or held):
        return RemovalStage.RUNNING_AND_HELD, running[:wanted] + held
    return RemovalStage.NONE, []


def _reason_text(decision: RemovalDecision) -> str:
    fe, counts, margin = decision.frontend_key, decision.frontend, decision.margin
    idle_vs = f"requested idle {decision.requested_idle} + margin {margin}"
    match decision.reason:
        case RemovalReason.NOT_REQUESTED:
            return "removal not requested (NO)"
        case RemovalReason.IDLE_EXCESS:
            return f"{fe} idle={counts.idle} > {idle_vs}"
        case RemovalReason.GLIDEIN_EXCESS:
            return (
                f"{fe} idle+running={counts.idle + counts.running} > "
                f"requested max {decision.requested_max} + margin {margin}"
            )
        case RemovalReason.UNWANTED_HELD:
            return f"requested max is 0 and {fe} has held={counts.held}"
        case _ if decision.mode is RemoveExcess.ALL:
            return (
                f"{fe} within request (idle={counts.idle} <= {idle_vs}; idle+running="
                f"{counts.idle + counts.running} <= requested max {decision.requested_max} + margin"
                f" {margin})"
            )
        case _:
            return f"{fe} within request (idle={counts.idle} <= {idle_vs})"


_QUEUED_IDLE = frozenset({GlideinStatus.PENDING, GlideinStatus.STAGE_IN, GlideinStatus.IDLE_OTHER})

_TRIGGERS = frozenset({RemovalReason.IDLE_EXCESS, RemovalReason.GLIDEIN_EXCESS})

_WANTS_REMOVAL = _TRIGGERS | {RemovalReason.UNWANTED_HELD}

_STAGE_WORDS: dict[RemovalStage, str] = {
    RemovalStage.UNSUBMITTED: "unsubmitted",
    RemovalStage.QUEUED_IDLE: "queued idle",
    RemovalStage.RUNNING_AND_HELD: "running/held",
    RemovalStage.HELD: "held",
}
