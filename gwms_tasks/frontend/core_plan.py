"""How many glideins a group asks of each entry: ReqIdleGlideins, ReqMaxGlideins, ReqRemoveExcess.

The factory keeps ``ReqIdleGlideins`` glideins idle in an entry's queue: it submits
``ReqIdleGlideins - idle glideins`` (reference §3.4), so the request is the *level* of idle
glideins wanted, not the number of new ones, and the glideins already idle are never
subtracted here (that would count them twice). Per entry, in order:

1. ``matched``: idle jobs the match expression gave this entry (see ``core_match``);
2. ``unclaimed``: running glideins that run no job yet (starting up, validating, or a worker
   waiting for a task) will take waiting jobs first. The group's running glideins minus its
   running jobs are shared out among the entries by their running glideins; ``wanted`` is
   ``matched - unclaimed`` (never below 0). This is what keeps the frontend from asking for a
   second round of glideins while the first one is still starting;
3. curbs: at most ``max_idle_per_entry``; ramp-up: at most ``max_new_idle_per_cycle`` new
   glideins on top of the idle ones; at most ``max_glideins_per_entry`` minus the running ones;
4. the group's budget: ``max_glideins_total`` minus every glidein (idle + running) of the
   group; when the entries want more new glideins than that, the budget is shared out by
   what they want;
5. ``ReqMaxGlideins`` = the entry's glideins + the new ones allowed (at most
   ``max_glideins_per_entry``), so the factory can never go past the group's budget;
6. ``ReqRemoveExcess``: the configured mode once the entry has had no matched idle job for
   ``after_cycles`` cycles in a row, NO otherwise. With ALL, ReqMaxGlideins drops to the
   glideins that run jobs, so the factory may remove the unclaimed running ones too.

An entry in downtime gets no jobs and a zero request; a job source that could not be read
zeroes every request (fail closed: never ask for glideins on numbers we do not have).
Every number carries the reason (an enum) naming the bound that decided it, and the steps.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from gwms_tasks.frontend.core_config import GroupLimits, RemoveExcessConfig, RemoveMode


class IdleReason(enum.StrEnum):
    """The bound that decided ReqIdleGlideins."""

    DEMAND = "demand"
    NO_DEMAND = "no_demand"
    MAX_IDLE_PER_ENTRY = "max_idle_per_entry"
    RAMP_UP = "ramp_up"
    MAX_GLIDEINS_PER_ENTRY = "max_glideins_per_entry"
    MAX_GLIDEINS_TOTAL = "max_glideins_total"
    ENTRY_IN_DOWNTIME = "entry_in_downtime"
    JOB_SOURCE_FAILED = "job_source_failed"


class MaxReason(enum.StrEnum):
    """The bound that decided ReqMaxGlideins."""

    CURRENT_PLUS_NEW = "current_plus_new"
    MAX_GLIDEINS_PER_ENTRY = "max_glideins_per_entry"
    BUSY_ONLY = "busy_only"


class RemoveReason(enum.StrEnum):
    """Why ReqRemoveExcess is what it is."""

    JOBS_WAITING = "jobs_waiting"
    WAITING_CYCLES = "waiting_cycles"
    DEMAND_VANISHED = "demand_vanished"
    DISABLED = "disabled"
    JOB_SOURCE_FAILED = "job_source_failed"


@dataclass(frozen=True, slots=True)
class GlideinCounts:
    """The group's glideins at one entry, as the factory reports them (glidefactoryclient)."""

    idle: int = 0
    running: int = 0
    held: int = 0

    @property
    def total(self) -> int:
        """Idle + running: what ReqMaxGlideins caps (held ones are not counted, §3.3)."""
        return self.idle + self.running


@dataclass(frozen=True, slots=True)
class EntryDemand:
    """What the plan needs to know about one entry.

    Attributes:
        key: the entry's ReqName (``entry@glidein@factory``).
        glideins: the group's glideins there.
        matched: idle jobs the split gave it.
        in_downtime: the factory says the entry is in downtime.
        zero_demand_cycles: cycles in a row, before this one, with no matched idle job.
    """

    key: str
    glideins: GlideinCounts = GlideinCounts()
    matched: int = 0
    in_downtime: bool = False
    zero_demand_cycles: int = 0


@dataclass(frozen=True, slots=True)
class EntryRequest:
    """The request for one entry and how each number came about."""

    key: str
    idle: int
    max_glideins: int
    remove_excess: RemoveMode
    remove_margin: int
    idle_reason: IdleReason
    max_reason: MaxReason
    remove_reason: RemoveReason
    matched: int
    unclaimed: int
    wanted: int
    new_glideins: int
    glideins: GlideinCounts
    zero_demand_cycles: int
    steps: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """Every entry's request and the group-wide numbers they came from."""

    requests: tuple[EntryRequest, ...]
    running_jobs: int
    running_glideins: int
    unclaimed: int
    glideins_total: int
    budget: int

    def request(self, key: str) -> EntryRequest | None:
        return next((r for r in self.requests if r.key == key), None)


def share(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """``total`` in whole parts proportional to ``weights`` (largest remainder, ties by key).

    ``total`` is clipped to the sum of the weights, so no key gets more than its weight.
    """
    keys = sorted(weights)
    whole = sum(max(0, weights[k]) for k in keys)
    amount = max(0, min(total, whole))
    if whole == 0:
        return dict.fromkeys(keys, 0)
    parts = {k: amount * max(0, weights[k]) // whole for k in keys}
    rest = amount - sum(parts.values())
    order = sorted(keys, key=lambda k: (-(amount * max(0, weights[k]) % whole), k))
    for key in order[:rest]:
        parts[key] += 1
    return parts


def plan_group(
    entries: Sequence[EntryDemand],
    running_jobs: int,
    limits: GroupLimits,
    removal: RemoveExcessConfig,
    *,
    job_source_ok: bool = True,
) -> GroupPlan:
    """The request of every entry of a group (see the module docstring for the rules)."""
    running_glideins = sum(e.glideins.running for e in entries)
    unclaimed_total = max(0, running_glideins - running_jobs) if job_source_ok else 0
    unclaimed = share(unclaimed_total, {e.key: e.glideins.running for e in entries})
    drafts = [_draft(e, unclaimed[e.key], limits, job_source_ok) for e in entries]
    glideins_total = sum(e.glideins.total for e in entries)
    budget = max(0, limits.max_glideins_total - glideins_total)
    drafts = _within_budget(drafts, budget, limits.max_glideins_total)
    requests = tuple(
        _finish(draft, entry, limits, removal, job_source_ok)
        for draft, entry in zip(drafts, entries, strict=True)
    )
    return GroupPlan(
        requests, running_jobs, running_glideins, unclaimed_total, glideins_total, budget
    )


def _draft(
    entry: EntryDemand, unclaimed: int, limits: GroupLimits, job_source_ok: bool
) -> EntryRequest:
    """The idle request of one entry before the group budget."""
    counts = entry.glideins
    wanted = max(0, entry.matched - unclaimed)
    steps = [
        f"{entry.matched} idle job(s) matched, {unclaimed} unclaimed running glidein(s) "
        f"will take some: {wanted} wanted"
    ]
    if not job_source_ok:
        idle, reason = 0, IdleReason.JOB_SOURCE_FAILED
        steps.append("the job source could not be read: asking for nothing (fail closed)")
    elif entry.in_downtime:
        idle, reason = 0, IdleReason.ENTRY_IN_DOWNTIME
        steps.append("the entry is in downtime: asking for nothing")
    elif wanted == 0:
        idle, reason = 0, IdleReason.NO_DEMAND
    else:
        idle, reason = wanted, IdleReason.DEMAND
        for bound, cap, what in (
            (IdleReason.MAX_IDLE_PER_ENTRY, limits.max_idle_per_entry, "max_idle_per_entry"),
            (
                IdleReason.RAMP_UP,
                counts.idle + limits.max_new_idle_per_cycle,
                f"ramp-up ({counts.idle} idle + {limits.max_new_idle_per_cycle} new)",
            ),
            (
                IdleReason.MAX_GLIDEINS_PER_ENTRY,
                max(0, limits.max_glideins_per_entry - counts.running),
                f"max_glideins_per_entry {limits.max_glideins_per_entry} - "
                f"{counts.running} running",
            ),
        ):
            if idle > cap:
                idle, reason = cap, bound
                steps.append(f"capped by {what}: {cap}")
    new = max(0, idle - counts.idle)
    return EntryRequest(
        entry.key, idle, 0, RemoveMode.NO, 0, reason, MaxReason.CURRENT_PLUS_NEW,
        RemoveReason.JOBS_WAITING, entry.matched, unclaimed, wanted, new, counts,
        entry.zero_demand_cycles, tuple(steps),
    )  # fmt: skip


def _within_budget(drafts: list[EntryRequest], budget: int, cap: int) -> list[EntryRequest]:
    wanted = {d.key: d.new_glideins for d in drafts}
    if sum(wanted.values()) <= budget:
        return drafts
    allowed = share(budget, wanted)
    cut = []
    for draft in drafts:
        granted = allowed[draft.key]
        if granted >= draft.new_glideins:
            cut.append(draft)
            continue
        step = (
            f"max_glideins_total {cap}: the group may add {budget} glidein(s), "
            f"{granted} of them here"
        )
        cut.append(
            replace(
                draft,
                idle=draft.glideins.idle + granted,
                idle_reason=IdleReason.MAX_GLIDEINS_TOTAL,
                new_glideins=granted,
                steps=(*draft.steps, step),
            )
        )
    return cut


def _finish(
    draft: EntryRequest,
    entry: EntryDemand,
    limits: GroupLimits,
    removal: RemoveExcessConfig,
    job_source_ok: bool,
) -> EntryRequest:
    """Add ReqMaxGlideins and ReqRemoveExcess to a draft."""
    mode, remove_reason, zero = _removal(entry, removal, job_source_ok)
    counts = draft.glideins
    max_glideins, max_reason = counts.total + draft.new_glideins, MaxReason.CURRENT_PLUS_NEW
    if max_glideins > limits.max_glideins_per_entry:
        max_glideins, max_reason = limits.max_glideins_per_entry, MaxReason.MAX_GLIDEINS_PER_ENTRY
    if mode is RemoveMode.ALL:
        busy = max(0, counts.running - draft.unclaimed)
        max_glideins, max_reason = min(busy, max_glideins), MaxReason.BUSY_ONLY
    steps = [
        f"ReqIdleGlideins {draft.idle} ({draft.idle_reason}): the factory adds "
        f"{draft.new_glideins} to the {counts.idle} idle",
        f"ReqMaxGlideins {max_glideins} ({max_reason})",
        f"ReqRemoveExcess {mode} ({remove_reason}; {zero} cycle(s) without matched jobs)",
    ]
    return replace(
        draft,
        max_glideins=max_glideins,
        max_reason=max_reason,
        remove_excess=mode,
        remove_margin=removal.margin,
        remove_reason=remove_reason,
        zero_demand_cycles=zero,
        steps=(*draft.steps, *steps),
    )


def _removal(
    entry: EntryDemand, removal: RemoveExcessConfig, job_source_ok: bool
) -> tuple[RemoveMode, RemoveReason, int]:
    if not job_source_ok:
        return RemoveMode.NO, RemoveReason.JOB_SOURCE_FAILED, entry.zero_demand_cycles
    zero = 0 if entry.matched > 0 else entry.zero_demand_cycles + 1
    if removal.mode is RemoveMode.NO:
        return RemoveMode.NO, RemoveReason.DISABLED, zero
    if entry.matched > 0:
        return RemoveMode.NO, RemoveReason.JOBS_WAITING, zero
    if zero < removal.after_cycles:
        return RemoveMode.NO, RemoveReason.WAITING_CYCLES, zero
    return removal.mode, RemoveReason.DEMAND_VANISHED, zero
