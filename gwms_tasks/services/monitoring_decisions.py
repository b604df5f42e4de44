"""Reading the decision records find-work stores into :class:`DecisionView` values.

find-work stores one JSON dict per request of an entry (``EntryState.put_decision``), in one of
three shapes (see gwms_tasks/services/find_work.py):

* decided: ``DemandPlan.to_dict()`` (``submit`` and ``removal`` sub-dicts with their reasons and
  inputs) plus ``client``, ``work_key``, ``at``, ``explain``, ``notes`` and maybe ``blocked``;
* rejected: ``client``, ``work_key``, ``at``, ``rejected`` (the reason), ``explain``;
* failed closed: ``client``, ``work_key``, ``at``, ``submit: 0``, ``reason: "query_failed"``,
  ``explain``.

Records are read leniently: a field that is missing or of the wrong type shows as empty or 0
rather than breaking the page (records written by an older version stay readable).

Records are never deleted: the last decision of a request that disappeared stays, aging.
:func:`is_current` is the one rule that tells the live ones, for every reader that counts
requests (the ads, the pages, ``/metrics``, ``gwms status``, the time series, the demo).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from gwms_tasks.services.monitoring_models import (
    DecisionInputs,
    DecisionView,
    GlideinCounts,
    LimitsView,
)

DECIDED: Final = "decided"
REJECTED: Final = "rejected"
FAILED_CLOSED: Final = "failed_closed"
LIVE_DECISION_LOOPS: Final = 3
"""A decision older than this many loops belongs to a request that disappeared."""


def is_current(decision: Mapping[str, object], now: float, loop_delay: float) -> bool:
    """Whether a stored decision record is live: decided within :data:`LIVE_DECISION_LOOPS`.

    find-work decides every loop for each request it finds, so an older record belongs to a
    request that is gone: it no longer requests anything. A record without a time is not live.
    """
    at = decision.get("at")
    if isinstance(at, bool) or not isinstance(at, int | float):
        return False
    return now - at <= LIVE_DECISION_LOOPS * loop_delay


def decision_view(work_key: str, raw: Mapping[str, object]) -> DecisionView:
    """The view of one stored decision record (``work_key`` is its key in the store)."""
    client = _text(raw, "client")
    at = _number(raw, "at")
    explanation = _text(raw, "explain")
    if "rejected" in raw:
        return DecisionView(
            work_key=work_key,
            client=client,
            at=at,
            outcome=REJECTED,
            reason=_text(raw, "rejected"),
            submit=0,
            remove=0,
            explanation=explanation,
        )
    submit = _mapping(raw, "submit")
    if submit is None:
        return DecisionView(
            work_key=work_key,
            client=client,
            at=at,
            outcome=FAILED_CLOSED,
            reason=_text(raw, "reason") or "unknown",
            submit=0,
            remove=0,
            explanation=explanation,
            frontend_key=_optional_text(raw, "frontend_key"),
        )
    removal = _mapping(raw, "removal")
    job_ids = removal.get("job_ids") if removal is not None else None
    return DecisionView(
        work_key=work_key,
        client=client,
        at=at,
        outcome=DECIDED,
        reason=_text(submit, "reason"),
        submit=_integer(submit, "count"),
        remove=len(job_ids) if isinstance(job_ids, list) else 0,
        explanation=explanation or _text(submit, "explanation"),
        frontend_key=_optional_text(raw, "frontend_key"),
        security_class=_optional_text(raw, "security_class"),
        credential_id=_optional_text(raw, "credential_id"),
        requested_idle=_integer(submit, "requested_idle"),
        adjusted_idle=_integer(submit, "adjusted_idle"),
        requested_max=_integer(submit, "requested_max"),
        removal_explanation=None if removal is None else _text(removal, "explanation"),
        blocked=_optional_text(raw, "blocked"),
        notes=[note for note in _list(raw, "notes") if isinstance(note, str)],
        inputs=DecisionInputs(
            wanted=_integer(submit, "wanted"),
            client=GlideinCounts.from_mapping(_mapping(submit, "client")),
            frontend=GlideinCounts.from_mapping(_mapping(submit, "frontend")),
            entry=GlideinCounts.from_mapping(_mapping(submit, "entry")),
            entry_limits=_limits(_mapping(submit, "entry_limits")),
            frontend_limits=_limits(_mapping(submit, "frontend_limits")),
            max_per_cycle=_integer(submit, "max_per_cycle"),
        ),
    )


def _limits(raw: Mapping[str, object] | None) -> LimitsView:
    raw = raw or {}
    return LimitsView(
        max_idle=_integer(raw, "max_idle"),
        max_held=_integer(raw, "max_held"),
        max_glideins=_integer(raw, "max_glideins"),
    )


def _mapping(raw: Mapping[str, object], key: str) -> Mapping[str, object] | None:
    value = raw.get(key)
    return value if isinstance(value, Mapping) else None


def _list(raw: Mapping[str, object], key: str) -> list[object]:
    value = raw.get(key)
    return value if isinstance(value, list) else []


def _text(raw: Mapping[str, object], key: str) -> str:
    value = raw.get(key)
    return value if isinstance(value, str) else ""


def _optional_text(raw: Mapping[str, object], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def _integer(raw: Mapping[str, object], key: str) -> int:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _number(raw: Mapping[str, object], key: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)
