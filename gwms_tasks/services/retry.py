"""Operators retrying failed submits (``gwms submits retry``, the web page's retry button).

A failed submit (:class:`~gwms_tasks.ports.FailedSubmit`) keeps the SubmitOrder it was sent
with. A retry sends that order again, and the rules of a first submission still hold:

* **Idempotency.** The retry gets a new, deterministic submit key, ``<base>-r<n>``, where
  ``<base>`` is the original key and ``n`` the retry number. Two operators retrying the same
  failed submit at once compute the same key; the ledger claim lets exactly one of them send
  it, the other is told "already retried".
* **Limits.** The count is clamped by the pure core (:func:`decide_submit`) to what the entry's
  and the frontend's limits allow now, from the entry's glideins queried now (as find-work
  does, and stored as its snapshot) plus the submits still in flight. The retry takes the
  entry's find-work lock, so that it and a find-work pass never decide at the same time.
* **Fail closed.** A glidein query that fails refuses the retry; so do downtimes, a whitelist
  that no longer lets the frontend in, and a security class no longer mapped to the same local
  user.

On success the order is in flight, its key claimed and the failed record gone. Sending the
order is the last step that can fail; if it does, the claim and the in-flight record are
undone and the failed record counts one more attempt, so the next retry uses a fresh key.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from gwms_tasks.core.config_entry import WhitelistVerdict
from gwms_tasks.core.decisions import Demand, DownReason, SubmitDecision, decide_submit
from gwms_tasks.core.downtimes import entry_down_reason, request_down_reason
from gwms_tasks.core.model import StatusCounts
from gwms_tasks.errors import GwmsError, PermanentError
from gwms_tasks.ports import EntrySnapshot, FailedSubmit, InflightSubmit, JsonDict, LedgerState
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.find_work import entry_lock, live_inflight
from gwms_tasks.services.monitoring_models import GlideinCounts
from gwms_tasks.services.orders import SubmitOrder
from gwms_tasks.services.snapshot import store_snapshot

log = logging.getLogger(__name__)

LOCK_TTL = 30.0
_RETRY_SUFFIX = re.compile(r"^(?P<base>.+)-r(?P<n>[0-9]+)$")


class RetryStatus(enum.StrEnum):
    """What became of one retry request."""

    SENT = "sent"
    REFUSED = "refused"
    ALREADY_RETRIED = "already_retried"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    """What a retry did, and why.

    Attributes:
        failed_id: the failed submit asked for.
        status: sent, refused, already retried, or not found.
        entry / client: where and for whom (empty when not found).
        requested: glideins of the failed submit.
        count: glideins sent (0 unless sent).
        submit_key: the retry's submit key (None when no key was computed).
        reason: a short machine-readable reason (a SubmitReason value when decided).
        detail: one sentence for people.
    """

    failed_id: str
    status: RetryStatus
    entry: str = ""
    client: str = ""
    requested: int = 0
    count: int = 0
    submit_key: str | None = None
    reason: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the failed submit is taken care of (sent now, or by someone else)."""
        return self.status in (RetryStatus.SENT, RetryStatus.ALREADY_RETRIED)

    def describe(self) -> str:
        """One line, e.g. ``sent 3 of 5 as abc-r1: submit 3: limited by entry max idle (...)``."""
        if self.status is RetryStatus.SENT:
            head = f"sent {self.count} of {self.requested} as {self.submit_key}"
        else:
            head = self.status.value.replace("_", " ")
        line = f"{self.failed_id}: {head}"
        return f"{line}: {self.detail}" if self.detail else line

    def to_json(self) -> JsonDict:
        return {
            "failed_id": self.failed_id,
            "status": self.status.value,
            "entry": self.entry,
            "client": self.client,
            "requested": self.requested,
            "count": self.count,
            "submit_key": self.submit_key,
            "reason": self.reason,
            "detail": self.detail,
        }


class _Refused(Exception):
    """Internal: the retry stops here with this reason (turned into a REFUSED outcome)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def retries_of(failed: FailedSubmit) -> int:
    """How many retries led to this failed submit (its own count, or its key's ``-r<n>``)."""
    match = _RETRY_SUFFIX.match(failed.submit_key)
    return max(failed.retries, int(match["n"]) if match else 0)


def retry_key(failed: FailedSubmit) -> str:
    """The submit key of the next retry: ``<original key>-r<n>``, n = retries + 1."""
    match = _RETRY_SUFFIX.match(failed.submit_key)
    base = match["base"] if match else failed.submit_key
    return f"{base}-r{retries_of(failed) + 1}"


def oldest_first(deps: FactoryDeps) -> list[str]:
    """The ids of every failed submit, oldest first: the order :func:`retry_all` serves."""
    pending = sorted(deps.state.failed.list(), key=lambda f: (f.failed_at, f.failed_id))
    return [failed.failed_id for failed in pending]


def retry_all(deps: FactoryDeps) -> list[RetryOutcome]:
    """Retry every failed submit, oldest first (each sees the in-flight ones sent before it)."""
    return [retry_failed(deps, failed_id) for failed_id in oldest_first(deps)]


def retry_failed(deps: FactoryDeps, failed_id: str) -> RetryOutcome:
    """Send one failed submit again, within today's limits, at most once per retry number.

    Args:
        deps: the factory ports (state, dispatcher, downtimes, clock, config).
        failed_id: the id ``gwms submits failed`` shows.

    Returns:
        What happened; a refusal says why and changes nothing.

    Raises:
        TransientError: the state store or the broker could not be reached (nothing is left
            claimed or in flight when the broker refused the order).
    """
    failed = deps.state.failed.get(failed_id)
    if failed is None:
        return RetryOutcome(failed_id, RetryStatus.NOT_FOUND, detail="no such failed submit")
    base = RetryOutcome(
        failed_id, RetryStatus.REFUSED, failed.entry, failed.client, requested=failed.count
    )
    try:
        order = _order_of(failed)
        _check_mapping(deps, order)
    except _Refused as refused:
        return replace(base, reason=refused.reason, detail=refused.detail)
    lock = entry_lock(failed.entry)
    token = deps.state.locks.acquire(lock, ttl=LOCK_TTL)
    if token is None:
        detail = f"find-work of entry {failed.entry} is running; try again in a moment"
        return replace(base, reason="entry_busy", detail=detail)
    try:
        return _retry_locked(deps, failed, order, base)
    finally:
        deps.state.locks.release(lock, token)


def _retry_locked(
    deps: FactoryDeps, failed: FailedSubmit, order: SubmitOrder, base: RetryOutcome
) -> RetryOutcome:
    now = deps.clock()
    try:
        decision = _decide(deps, order, now)
    except _Refused as refused:
        return replace(base, reason=refused.reason, detail=refused.detail)
    if decision.count == 0:
        return replace(base, reason=decision.reason.value, detail=decision.explain())
    key = retry_key(failed)
    if not deps.state.ledger.claim(key, failed.entry, decision.count, now):
        return _already_retried(deps, failed, key, base)
    _send(deps, failed, order, key, decision, now)
    deps.state.failed.remove(failed.failed_id)
    log.info("retried failed submit %s as %s: %s", failed.failed_id, key, decision.explain())
    return replace(
        base,
        status=RetryStatus.SENT,
        count=decision.count,
        submit_key=key,
        reason=decision.reason.value,
        detail=decision.explain(),
    )


def _send(
    deps: FactoryDeps,
    failed: FailedSubmit,
    order: SubmitOrder,
    key: str,
    decision: SubmitDecision,
    now: float,
) -> None:
    """Put the retry in flight and send it (after its key was claimed)."""
    tags = replace(order.tags, submit_key=key)
    deps.state.inflight.add(
        InflightSubmit(
            key,
            tags.entry,
            tags.client,
            tags.security_class,
            tags.credential_id,
            tags.frontend,
            decision.count,
            now,
        )
    )
    again = replace(
        order,
        tags=tags,
        count=decision.count,
        queued_at=now,
        reason=f"retry of {failed.failed_id}: {decision.explain()}",
    )
    try:
        deps.dispatcher.send_submit(tags.username, again.to_json())
    except BaseException as exc:
        _undo(deps, failed, key, exc)
        raise


def _order_of(failed: FailedSubmit) -> SubmitOrder:
    try:
        order = SubmitOrder.from_json(failed.task_args)
    except PermanentError as exc:
        raise _Refused("malformed_order", f"its stored order cannot be read: {exc}") from exc
    if order.tags.entry != failed.entry:
        raise _Refused(
            "malformed_order",
            f"its stored order is for entry {order.tags.entry}, not {failed.entry}",
        )
    return order


def _check_mapping(deps: FactoryDeps, order: SubmitOrder) -> None:
    """The entry still exists and the frontend's class still maps to the order's user."""
    tags = order.tags
    entry = deps.config.entries.get(tags.entry)
    if entry is None:
        raise _Refused("unknown_entry", f"entry {tags.entry} is no longer in the factory config")
    if not entry.enabled:
        raise _Refused("entry_disabled", f"entry {tags.entry} is disabled in the factory config")
    frontend = _frontend_name(order)
    username = deps.config.username_for(frontend, tags.security_class)
    if username != tags.username:
        now_served = "no local user" if username is None else f"user {username}"
        raise _Refused(
            "user_changed",
            f"{tags.frontend} is now served by {now_served}, not {tags.username}",
        )
    if entry.whitelist(frontend, tags.security_class) is WhitelistVerdict.CLASS_NOT_ALLOWED:
        raise _Refused(
            "class_not_whitelisted",
            f"entry {tags.entry} no longer serves security class {tags.security_class} "
            f"of {frontend}",
        )


def _frontend_name(order: SubmitOrder) -> str:
    """The configured frontend name of the ``frontend:security_class`` tag."""
    return order.tags.frontend.removesuffix(f":{order.tags.security_class}")


def _decide(deps: FactoryDeps, order: SubmitOrder, now: float) -> SubmitDecision:
    """The core's answer for ``order.count`` more glideins, given today's counts and limits."""
    tags = order.tags
    snapshot = _query_now(deps, tags.entry, now)
    inflight = live_inflight(deps, tags.entry, now)
    entry_counts = _scope(snapshot, "entry").plus(_waiting(inflight))
    frontend_counts = _scope(snapshot, f"frontend:{tags.frontend}").plus(
        _waiting(r for r in inflight if r.frontend == tags.frontend)
    )
    downtimes = deps.downtimes()
    frontend = _frontend_name(order)
    config = deps.config.entries[tags.entry]
    down = request_down_reason(downtimes, now, tags.entry, frontend, tags.security_class)
    listed = config.whitelist(frontend, tags.security_class) is WhitelistVerdict.ALLOWED
    if down is None and not listed:
        down = DownReason.NOT_WHITELISTED
    # The request asks for exactly the failed count: the client's own queue does not reduce
    # it (those glideins were not submitted for this order) and its max never binds.
    demand = Demand(
        work_key=f"retry:{tags.submit_key}",
        client=tags.client,
        security_class=tags.security_class,
        credential_id=tags.credential_id,
        frontend=frontend,
        req_idle=order.count,
        req_max=order.count,
        down=down,
    )
    return decide_submit(
        demand,
        StatusCounts(),
        frontend_counts,
        entry_counts,
        deps.config.entry_limits(tags.entry),
        entry_down_reason(downtimes, now, tags.entry),
    )


def _query_now(deps: FactoryDeps, entry: str, now: float) -> EntrySnapshot:
    """The entry's glideins counted now, as find-work counts them (fail closed otherwise).

    A stored snapshot would miss the submits that finished after it was taken: they are no
    longer in flight, and not in its counts yet.
    """
    try:
        glideins = deps.backend_for(entry).query()
    except GwmsError as exc:
        deps.state.entries.record_query_failure(entry, str(exc), now)
        raise _Refused(
            "query_failed", f"the glidein query of entry {entry} failed, it fails closed ({exc})"
        ) from exc
    return store_snapshot(deps, entry, glideins, now)


def _scope(snapshot: EntrySnapshot, scope: str) -> StatusCounts:
    return GlideinCounts.from_mapping(snapshot.counts.get(scope)).status_counts()


def _waiting(records: Iterable[InflightSubmit]) -> StatusCounts:
    """Submits still in flight count as waiting glideins, as in find-work."""
    return StatusCounts(wait=sum(record.count for record in records))


def _already_retried(
    deps: FactoryDeps, failed: FailedSubmit, key: str, base: RetryOutcome
) -> RetryOutcome:
    """Someone else claimed ``key``; drop the failed record if that retry surely ran."""
    record = deps.state.ledger.get(key)
    state = record.state if record is not None else "unknown"
    # "submitted", or "failed" with its own failed record, means the retry order was sent and
    # run. Only then is the old record certainly stale: a bare claim may belong to a retry
    # still being sent right now.
    ran = state == LedgerState.SUBMITTED or (
        state == LedgerState.FAILED and deps.state.failed.get(key) is not None
    )
    if ran:
        deps.state.failed.remove(failed.failed_id)
    return replace(
        base,
        status=RetryStatus.ALREADY_RETRIED,
        submit_key=key,
        reason="already_retried",
        detail=f"already retried as {key} ({state})",
    )


def _undo(deps: FactoryDeps, failed: FailedSubmit, key: str, exc: BaseException) -> None:
    """The order could not be sent: leave nothing claimed or in flight for it."""
    log.error("retry %s of %s not sent: %s", key, failed.failed_id, exc)
    deps.state.inflight.done(failed.entry, key)
    deps.state.ledger.mark_failed(key, f"retry not sent: {exc}")
    deps.state.failed.add(replace(failed, retries=retries_of(failed) + 1))
