"""The user worker's side: submit glideins idempotently, act on jobs, keep credentials.

Runs as the local user that owns the request's credentials, in that user's worker.

Idempotency: every glidein is tagged with the order's submit key. A submit asks the backend
which glideins already carry the key and submits only the missing ones, under a per-key lock,
then marks the ledger. A redelivered order (worker killed mid-submit, visibility timeout)
therefore never submits twice; an order whose ledger says "submitted" does nothing.

An order older than its lifetime (:func:`~gwms_tasks.services.orders.order_lifetime`) is not
submitted: find-work no longer counts it and may already have decided again. A user worker
that was down for hours therefore never runs the batches queued meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gwms_tasks.core.credentials import SAFE_CREDENTIAL_ID, SCITOKEN_PARAM
from gwms_tasks.core.envelope import UserKey, open_sealed
from gwms_tasks.core.sanitize import JobAction
from gwms_tasks.errors import GwmsError, PermanentError, TransientError
from gwms_tasks.ports import FailedSubmit, GridBackend, LedgerState, StateStore
from gwms_tasks.private_files import ensure_private_dir, write_private_if_changed
from gwms_tasks.services.orders import MIN_ORDER_LIFETIME, JobActionOrder, SubmitOrder

log = logging.getLogger(__name__)

SUBMIT_LOCK_SECONDS = 120.0
"""How long a submit holds its key's lock. A worker killed mid-submit leaves the lock behind:
it must expire well within the retries of the redelivered task (5 + 10 + ... + 160 s)."""


@dataclass(frozen=True)
class UserDeps:
    """What a user worker needs.

    Attributes:
        username: the local user this worker runs as; orders for others are refused.
        state: the state store (ledger, in-flight, failed submits, locks).
        backend_for: the grid backend of an entry.
        user_key: this worker's private key (opens sealed secrets).
        credential_dir: the user's credential directory (0700, owned by the user).
        clock: epoch seconds.
        lock_owner: this process's name in submit locks (see gwms_tasks/process_identity.py).
        owner_is_dead: whether a lock token's owner is provably dead, so that a worker
            killed mid-submit does not block the redelivered submit until its lock expires.
        order_lifetime: seconds after ``queued_at`` an order is still submitted
            (``order_lifetime(loop_delay)`` of the config; the default is its minimum).
    """

    username: str
    state: StateStore
    backend_for: Callable[[str], GridBackend]
    user_key: UserKey | None
    credential_dir: Path
    clock: Callable[[], float]
    lock_owner: str = ""
    owner_is_dead: Callable[[str], bool] = field(default=lambda _token: False)
    order_lifetime: float = MIN_ORDER_LIFETIME


@dataclass(frozen=True)
class SubmitOutcome:
    submit_key: str
    status: str  # submitted | already_submitted | previously_failed | expired
    job_ids: tuple[str, ...]
    newly_submitted: int


def execute_submit(deps: UserDeps, order: SubmitOrder) -> SubmitOutcome:
    """Submit the glideins of an order that are not there yet.

    Raises:
        TransientError: worth retrying (backend unreachable, lock busy, credential not yet
            received).
        PermanentError: the order can never succeed (wrong user, refused by the backend).
    """
    tags = order.tags
    if tags.username != deps.username:
        raise PermanentError(
            f"order for user {tags.username} sent to the worker of {deps.username}"
        )
    record = deps.state.ledger.get(tags.submit_key)
    if record is not None and record.state is not LedgerState.CLAIMED:
        deps.state.inflight.done(tags.entry, tags.submit_key)
        submitted = record.state is LedgerState.SUBMITTED
        status = "already_submitted" if submitted else "previously_failed"
        return SubmitOutcome(tags.submit_key, status, record.job_ids, 0)
    now = deps.clock()
    if record is None:
        deps.state.ledger.claim(tags.submit_key, tags.entry, order.count, now)
    if now - order.queued_at > deps.order_lifetime:
        return _expire(deps, order, now)
    lock_name = f"submit:{tags.submit_key}"
    token = _acquire_submit_lock(deps, lock_name)
    if token is None:
        raise TransientError(f"submit {tags.submit_key} is being executed by another worker")
    try:
        return _submit_missing(deps, order)
    finally:
        deps.state.locks.release(lock_name, token)


def _expire(deps: UserDeps, order: SubmitOrder, now: float) -> SubmitOutcome:
    """An order past its lifetime: marked failed and no longer in flight, nothing submitted."""
    tags = order.tags
    detail = (
        f"expired: queued {now - order.queued_at:.0f} s ago, "
        f"orders are submitted within {deps.order_lifetime:g} s"
    )
    log.warning("submit %s for %s on %s %s", tags.submit_key, tags.client, tags.entry, detail)
    deps.state.ledger.mark_failed(tags.submit_key, detail)
    deps.state.inflight.done(tags.entry, tags.submit_key)
    return SubmitOutcome(tags.submit_key, "expired", (), 0)


def _acquire_submit_lock(deps: UserDeps, lock_name: str) -> str | None:
    """The submit lock; a lock left by a dead process of this host is broken first."""
    locks = deps.state.locks
    token = locks.acquire(lock_name, ttl=SUBMIT_LOCK_SECONDS, owner=deps.lock_owner)
    if token is not None:
        return token
    holder = locks.holder(lock_name)
    if holder is not None and deps.owner_is_dead(holder) and locks.release(lock_name, holder):
        log.warning("broke the lock %s of a dead worker (%s)", lock_name, holder.split("/")[0])
        return locks.acquire(lock_name, ttl=SUBMIT_LOCK_SECONDS, owner=deps.lock_owner)
    return None


def _submit_missing(deps: UserDeps, order: SubmitOrder) -> SubmitOutcome:
    tags = order.tags
    backend = deps.backend_for(tags.entry)
    existing = tuple(g.job_id for g in backend.query() if g.submit_key == tags.submit_key)
    missing = order.count - len(existing)
    new_ids: list[str] = []
    if missing > 0:
        environment = credential_environment(deps, order)
        new_ids = backend.submit(order.submission(environment, missing))
        log.info(
            "submitted %d glideins for %s on %s (key %s)",
            len(new_ids),
            tags.client,
            tags.entry,
            tags.submit_key,
        )
    job_ids = (*existing, *new_ids)
    deps.state.ledger.mark_submitted(tags.submit_key, job_ids)
    deps.state.inflight.done(tags.entry, tags.submit_key)
    return SubmitOutcome(tags.submit_key, "submitted", job_ids, len(new_ids))


def record_failed_submit(deps: UserDeps, order: SubmitOrder, reason: str, failed_id: str) -> None:
    """A submit that failed for good: ledger, failed-submit list (for `gwms submits`), in-flight."""
    tags = order.tags
    deps.state.ledger.mark_failed(tags.submit_key, reason)
    deps.state.failed.add(
        FailedSubmit(
            failed_id=failed_id,
            submit_key=tags.submit_key,
            entry=tags.entry,
            client=tags.client,
            count=order.count,
            reason=reason,
            failed_at=deps.clock(),
            task_args=order.to_json(),
        )
    )
    deps.state.inflight.done(tags.entry, tags.submit_key)
    try:
        deps.state.counters.add(
            tags.entry, {"failed_submits": 1, f"client:{tags.client}:failed_submits": 1}
        )
    except GwmsError as exc:  # monitoring only: the failed submit itself is recorded
        log.warning("counters not updated for failed submit %s: %s", tags.submit_key, exc)


def credential_environment(deps: UserDeps, order: SubmitOrder) -> dict[str, str]:
    """Write the order's tokens to the user's credential dir; the submit environment."""
    tags = order.tags
    env: dict[str, str] = {}
    if order.submit_credential:
        proxy = deps.credential_dir / credential_file_name(tags.client, order.submit_credential)
        if not proxy.is_file():
            raise TransientError(
                f"credential {order.submit_credential} of {tags.client} not received yet"
            )
        env["X509_USER_PROXY"] = str(proxy)
    secrets = _open_secrets(deps, order.sealed_secrets)
    if secrets:
        ensure_private_dir(deps.credential_dir)
    if SCITOKEN_PARAM in secrets:
        path = deps.credential_dir / f"credential_{tags.client}_{tags.entry}.scitoken"
        write_private_if_changed(path, secrets[SCITOKEN_PARAM].encode())
        env["SCITOKENS_FILE"] = str(path)
    idtoken = secrets.get(f"{tags.entry}.idtoken")
    if idtoken:
        path = deps.credential_dir / f"credential_{tags.client}_{tags.entry}.idtoken"
        write_private_if_changed(path, idtoken.encode())
        env["IDTOKENS_FILE"] = str(path)
    return env


def _open_secrets(deps: UserDeps, sealed: Mapping[str, str]) -> dict[str, str]:
    if not sealed:
        return {}
    if deps.user_key is None:
        raise PermanentError("this worker has no key to open the sealed credentials")
    return {name: open_sealed(deps.user_key, token).decode() for name, token in sealed.items()}


def credential_file_name(client: str, credential_id: str) -> str:
    """``credential_<ClientName>_<id>`` (reference §7.1).

    Request validation already refuses unsafe ids; this refuses them again because a file
    name built from one could leave the user's credential directory.
    """
    if not SAFE_CREDENTIAL_ID.fullmatch(credential_id):
        raise PermanentError(f"unsafe credential id {credential_id!r}")
    return f"credential_{client}_{credential_id}"


def execute_job_action(deps: UserDeps, order: JobActionOrder) -> int:
    """Remove, force-remove or release glideins; returns how many were acted on."""
    backend = deps.backend_for(order.entry)
    if not order.job_ids:
        return 0
    if order.action is JobAction.RELEASE:
        backend.release(order.job_ids)
    else:
        backend.remove(order.job_ids, forcex=order.action is JobAction.REMOVE_FORCEX)
    log.info(
        "%s %d glideins on %s: %s",
        order.action.value,
        len(order.job_ids),
        order.entry,
        order.reason,
    )
    return len(order.job_ids)
