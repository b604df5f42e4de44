"""How many glideins to submit for one request, and why (the reference §3.3, §3.4, §3.8).

A frontend request (``glideclient`` ad), once validated, becomes a :class:`Demand` on one entry.
:func:`decide_submit` turns a demand and the glidein counts of the entry into a
:class:`SubmitDecision`: the number to submit and the :class:`SubmitReason` naming the bound that
decided it, with every input it used so the decision can be stored, advertised and explained.

The arithmetic is glideinWMS's ``keepIdleGlideins`` with the ``can_add`` clipping of
``GlideinTotals``: ``add = req_idle - q_idle``, clamped by ``req_max - q_idle - q_running``, then by
the entry and frontend:security-class idle and glidein limits, then by the per-cycle maximum.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from gwms_tasks.core import model
from gwms_tasks.core.ads_monitor import limit_text
from gwms_tasks.core.limits import EntryLimits, GlideinLimits
from gwms_tasks.core.model import Glidein, StatusCounts
from gwms_tasks.errors import PermanentError


class DownReason(enum.StrEnum):
    """Why new submissions are blocked for a request (downtime or whitelist, §3.8, §2.4)."""

    FACTORY_DOWNTIME = "factory_downtime"
    ENTRY_DOWNTIME = "entry_downtime"
    FRONTEND_DOWNTIME = "frontend_downtime"
    SECURITY_CLASS_DOWNTIME = "security_class_downtime"
    NOT_WHITELISTED = "not_whitelisted"


class RemoveExcess(enum.StrEnum):
    """The request's ``ReqRemoveExcess``: how far the factory may go removing excess glideins."""

    NO = "NO"
    WAIT = "WAIT"
    IDLE = "IDLE"
    ALL = "ALL"

    @classmethod
    def parse(cls, raw: str | None) -> tuple[RemoveExcess, str | None]:
        """Parse the ad value; anything unknown (``UNREG`` included) is NO, with a note saying so.

        Args:
            raw: the ``ReqRemoveExcess`` string, or None when the ad has none (means NO).

        Returns:
            The mode, and a note for the log when the value was not taken as given.
        """
        if raw is None:
            return cls.NO, None
        try:
            return cls(raw), None
        except ValueError:
            why = "is not supported by this factory" if raw == "UNREG" else "is not a known mode"
            return cls.NO, f"ReqRemoveExcess {raw!r} {why}; treated as NO"

    @property
    def removes_queued_idle(self) -> bool:
        """Whether idle glideins already queued at the site may be removed (IDLE and ALL)."""
        return self in (RemoveExcess.IDLE, RemoveExcess.ALL)


class SubmitReason(enum.StrEnum):
    """The bound that decided how many glideins a request gets this cycle."""

    SUBMITTING_REQUESTED = "submitting_requested"
    REQUEST_MET = "request_met"
    REQUEST_ZERO = "request_zero"
    MAX_GLIDEINS_REQUESTED = "max_glideins_requested"
    ENTRY_MAX_IDLE = "entry_max_idle"
    ENTRY_MAX_GLIDEINS = "entry_max_glideins"
    ENTRY_MAX_HELD = "entry_max_held"
    FRONTEND_MAX_IDLE = "frontend_max_idle"
    FRONTEND_MAX_GLIDEINS = "frontend_max_glideins"
    FRONTEND_MAX_HELD = "frontend_max_held"
    MAX_PER_CYCLE = "max_per_cycle"
    FACTORY_DOWNTIME = DownReason.FACTORY_DOWNTIME.value
    ENTRY_DOWNTIME = DownReason.ENTRY_DOWNTIME.value
    FRONTEND_DOWNTIME = DownReason.FRONTEND_DOWNTIME.value
    SECURITY_CLASS_DOWNTIME = DownReason.SECURITY_CLASS_DOWNTIME.value
    NOT_WHITELISTED = DownReason.NOT_WHITELISTED.value

    @classmethod
    def of_down(cls, down: DownReason) -> SubmitReason:
        """The downtime variant for a DownReason (same value)."""
        return cls(down.value)


@dataclass(frozen=True, slots=True)
class Demand:
    """What one validated request asks of one entry.

    Attributes:
        work_key: the request ad's Name (one per client, entry and credential).
        client: ClientName, ``frontend.group``.
        security_class: the request's security class.
        credential_id: the credential identifier the glideins are tagged with.
        frontend: configured frontend name (found by identity); with the security class it
            forms the ``frontend:security_class`` limits key.
        req_idle: the frontend's original ReqIdleGlideins.
        req_max: ReqMaxGlideins.
        remove_excess: the parsed ReqRemoveExcess.
        remove_margin: ReqRemoveExcessMargin.
        down: why new submissions are blocked for this request, or None.

    Raises:
        PermanentError: a count or the margin is negative.
    """

    work_key: str
    client: str
    security_class: str
    credential_id: str
    frontend: str
    req_idle: int
    req_max: int
    remove_excess: RemoveExcess = RemoveExcess.NO
    remove_margin: int = 0
    down: DownReason | None = None

    def __post_init__(self) -> None:
        for name in ("req_idle", "req_max", "remove_margin"):
            value = getattr(self, name)
            if value < 0:
                raise PermanentError(
                    f"request {self.work_key}: {name} must be an integer >= 0, got {value}"
                )

    @property
    def frontend_key(self) -> str:
        """The ``frontend:security_class`` key of the per-frontend limits and counts."""
        return model.frontend_key(self.frontend, self.security_class)

    @property
    def credential_key(self) -> tuple[str, str, str]:
        """(client, security class, credential id): the glideins this request accounts for."""
        return (self.client, self.security_class, self.credential_id)

    def owns(self, glidein: Glidein) -> bool:
        """Whether a glidein was submitted for this request's client, class and credential."""
        return (glidein.client, glidein.security_class, glidein.credential_id) == (
            self.credential_key
        )


@dataclass(frozen=True, slots=True)
class SubmitDecision:
    """How many glideins to submit for one demand, the bound that decided, and the inputs used.

    Attributes:
        count: glideins to submit (never negative).
        reason: the bound that decided ``count``.
        down: the downtime that blocked submissions, if any.
        requested_idle: the frontend's ReqIdleGlideins.
        adjusted_idle: requested idle after downtime and entry limits (0 when blocked).
        requested_max: ReqMaxGlideins.
        wanted: ``adjusted_idle`` minus the client's idle, before any clamping (may be <= 0).
        frontend_key: ``frontend:security_class`` of the demand.
        client: counts of the client's glideins (this class and credential).
        frontend: counts of the frontend:security-class glideins of the entry.
        entry: counts of every glidein of the entry.
        entry_limits / frontend_limits: the bounds that applied.
        max_per_cycle: the per-request, per-cycle submit maximum.
    """

    count: int
    reason: SubmitReason
    down: DownReason | None
    requested_idle: int
    adjusted_idle: int
    requested_max: int
    wanted: int
    frontend_key: str
    client: StatusCounts
    frontend: StatusCounts
    entry: StatusCounts
    entry_limits: GlideinLimits
    frontend_limits: GlideinLimits
    max_per_cycle: int

    def explain(self) -> str:
        """One sentence, e.g. ``submit 3: limited by entry max idle (count=1997, limit=2000)``."""
        text = _PHRASES[self.reason].format(fe=self.frontend_key)
        if self.reason in _LIMIT_REASONS:
            text = ("limited by " if self.count > 0 else "blocked by ") + text
        detail = _DETAILS.get(self.reason)
        suffix = "" if detail is None else f" ({detail(self)})"
        return f"submit {self.count}: {text}{suffix}"

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict of the decision, its inputs and its explanation."""
        return {
            "count": self.count,
            "reason": self.reason.value,
            "down": None if self.down is None else self.down.value,
            "requested_idle": self.requested_idle,
            "adjusted_idle": self.adjusted_idle,
            "requested_max": self.requested_max,
            "wanted": self.wanted,
            "frontend_key": self.frontend_key,
            "client": self.client.to_dict(),
            "frontend": self.frontend.to_dict(),
            "entry": self.entry.to_dict(),
            "entry_limits": self.entry_limits.to_dict(),
            "frontend_limits": self.frontend_limits.to_dict(),
            "max_per_cycle": self.max_per_cycle,
            "explanation": self.explain(),
        }


def decide_submit(
    demand: Demand,
    client_counts: StatusCounts,
    frontend_counts: StatusCounts,
    entry_counts: StatusCounts,
    limits: EntryLimits,
    entry_down: DownReason | None,
) -> SubmitDecision:
    """How many glideins to submit for one demand this cycle (the reference §3.4).

    Order of the checks: downtime (entry-wide first, then the request's own), entry blocked
    (idle, glideins, held at or over the limit), frontend:security-class held limit, then the
    request arithmetic clipped by each bound in turn. A bound is named only when it lowers the
    count: the reference clamps by ``req_max`` when ``q_idle + q_running + add >= req_max``, and at
    equality that clamp leaves the count unchanged, so the request stays the deciding reason.

    Args:
        demand: the request.
        client_counts: glideins of the demand's (client, security class, credential id).
        frontend_counts: glideins of the demand's frontend:security-class on this entry.
        entry_counts: every glidein of the entry.
        limits: the entry's limits.
        entry_down: factory or entry downtime, blocking every request of the entry.

    Returns:
        The decision, with the reason and the inputs used.
    """
    down = entry_down if entry_down is not None else demand.down
    blocked = _entry_blocked(entry_counts, limits.per_entry)
    adjusted_idle = 0 if down is not None or blocked is not None else demand.req_idle
    frontend_limits = limits.for_frontend(demand.frontend_key)
    if down is not None:
        count, reason = 0, SubmitReason.of_down(down)
    elif blocked is not None:
        count, reason = 0, blocked
    elif frontend_counts.held >= frontend_limits.max_held:
        count, reason = 0, SubmitReason.FRONTEND_MAX_HELD
    else:
        caps = _caps(demand, client_counts, frontend_counts, entry_counts, limits)
        count, reason = _clip(demand.req_idle, client_counts.idle, caps)
    return SubmitDecision(
        count=count,
        reason=reason,
        down=down,
        requested_idle=demand.req_idle,
        adjusted_idle=adjusted_idle,
        requested_max=demand.req_max,
        wanted=adjusted_idle - client_counts.idle,
        frontend_key=demand.frontend_key,
        client=client_counts,
        frontend=frontend_counts,
        entry=entry_counts,
        entry_limits=limits.per_entry,
        frontend_limits=frontend_limits,
        max_per_cycle=limits.max_submit_per_cycle,
    )


def _entry_blocked(entry: StatusCounts, per_entry: GlideinLimits) -> SubmitReason | None:
    """The entry limit already reached, if any (checked in the reference's order)."""
    if entry.idle >= per_entry.max_idle:
        return SubmitReason.ENTRY_MAX_IDLE
    if entry.idle + entry.running >= per_entry.max_glideins:
        return SubmitReason.ENTRY_MAX_GLIDEINS
    if entry.held >= per_entry.max_held:
        return SubmitReason.ENTRY_MAX_HELD
    return None


def _caps(
    demand: Demand,
    client: StatusCounts,
    frontend: StatusCounts,
    entry: StatusCounts,
    limits: EntryLimits,
) -> tuple[tuple[SubmitReason, int], ...]:
    """The most each bound allows, in the order the reference applies them."""
    per_entry = limits.per_entry
    per_frontend = limits.for_frontend(demand.frontend_key)
    return (
        (SubmitReason.MAX_GLIDEINS_REQUESTED, demand.req_max - client.idle - client.running),
        (SubmitReason.ENTRY_MAX_IDLE, per_entry.max_idle - entry.idle),
        (SubmitReason.ENTRY_MAX_GLIDEINS, per_entry.max_glideins - entry.idle - entry.running),
        (SubmitReason.FRONTEND_MAX_IDLE, per_frontend.max_idle - frontend.idle),
        (
            SubmitReason.FRONTEND_MAX_GLIDEINS,
            per_frontend.max_glideins - frontend.idle - frontend.running,
        ),
        (SubmitReason.MAX_PER_CYCLE, limits.max_submit_per_cycle),
    )


def _clip(
    req_idle: int, q_idle: int, caps: tuple[tuple[SubmitReason, int], ...]
) -> tuple[int, SubmitReason]:
    """Apply the caps in order; stop at the first one that leaves nothing to submit."""
    if req_idle == 0:
        return 0, SubmitReason.REQUEST_ZERO
    add = req_idle - q_idle
    if add <= 0:
        return 0, SubmitReason.REQUEST_MET
    reason = SubmitReason.SUBMITTING_REQUESTED
    for bound, cap in caps:
        if add > cap:
            add, reason = cap, bound
            if add <= 0:
                return 0, reason
    return add, reason


_PHRASES: dict[SubmitReason, str] = {
    SubmitReason.SUBMITTING_REQUESTED: "request granted",
    SubmitReason.REQUEST_MET: "requested idle glideins already queued",
    SubmitReason.REQUEST_ZERO: "no idle glideins requested",
    SubmitReason.MAX_GLIDEINS_REQUESTED: "requested max glideins",
    SubmitReason.ENTRY_MAX_IDLE: "entry max idle",
    SubmitReason.ENTRY_MAX_GLIDEINS: "entry max glideins",
    SubmitReason.ENTRY_MAX_HELD: "entry max held",
    SubmitReason.FRONTEND_MAX_IDLE: "frontend {fe} max idle",
    SubmitReason.FRONTEND_MAX_GLIDEINS: "frontend {fe} max glideins",
    SubmitReason.FRONTEND_MAX_HELD: "frontend {fe} max held",
    SubmitReason.MAX_PER_CYCLE: "max submits per cycle",
    SubmitReason.FACTORY_DOWNTIME: "factory in downtime",
    SubmitReason.ENTRY_DOWNTIME: "entry in downtime",
    SubmitReason.FRONTEND_DOWNTIME: "frontend in downtime",
    SubmitReason.SECURITY_CLASS_DOWNTIME: "security class in downtime",
    SubmitReason.NOT_WHITELISTED: "frontend not in the entry whitelist",
}


def _request_detail(d: SubmitDecision) -> str:
    return f"requested idle={d.requested_idle}, idle={d.client.idle}"


_DETAILS: dict[SubmitReason, Callable[[SubmitDecision], str]] = {
    SubmitReason.SUBMITTING_REQUESTED: _request_detail,
    SubmitReason.REQUEST_MET: _request_detail,
    SubmitReason.MAX_GLIDEINS_REQUESTED: lambda d: limit_text(
        d.client.idle + d.client.running, d.requested_max
    ),
    SubmitReason.ENTRY_MAX_IDLE: lambda d: limit_text(d.entry.idle, d.entry_limits.max_idle),
    SubmitReason.ENTRY_MAX_GLIDEINS: lambda d: limit_text(
        d.entry.idle + d.entry.running, d.entry_limits.max_glideins
    ),
    SubmitReason.ENTRY_MAX_HELD: lambda d: limit_text(d.entry.held, d.entry_limits.max_held),
    SubmitReason.FRONTEND_MAX_IDLE: lambda d: limit_text(
        d.frontend.idle, d.frontend_limits.max_idle
    ),
    SubmitReason.FRONTEND_MAX_GLIDEINS: lambda d: limit_text(
        d.frontend.idle + d.frontend.running, d.frontend_limits.max_glideins
    ),
    SubmitReason.FRONTEND_MAX_HELD: lambda d: limit_text(
        d.frontend.held, d.frontend_limits.max_held
    ),
    SubmitReason.MAX_PER_CYCLE: lambda d: f"wanted={d.wanted}, limit={d.max_per_cycle}",
}

_LIMIT_REASONS = frozenset(_DETAILS) - {
    SubmitReason.SUBMITTING_REQUESTED,
    SubmitReason.REQUEST_MET,
}
