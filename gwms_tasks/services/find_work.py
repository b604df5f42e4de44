"""Find-work: read the requests for one entry, decide, and send orders to the user queues.

One find-work per entry runs at a time (a lock with expiry). Its steps, each through a port:

1. read the entry's ``glideclient`` ads from the dashboard, with their authenticated identity;
2. validate each (gwms_tasks.core.requests): a Request or a Rejection with its reason;
3. query the entry's glideins from the grid backend. **Fail closed**: if the query fails, no
   submission happens this cycle, and every client's decision says so;
4. count the submit tasks still in flight as waiting glideins (so a quick second pass cannot
   submit them again), and ask the pure core for the plan (gwms_tasks.core.plan);
5. record every decision with its reason and inputs, then send submit / remove / release orders
   to the queue of the local user that owns the request's credentials. A submit order the
   broker does not take is not counted as in flight; its decision says why it was not sent.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gwms_tasks.core.ads import AdType
from gwms_tasks.core.classad_text import string_literal
from gwms_tasks.core.downtimes import Downtimes, entry_down_reason, request_down_reason
from gwms_tasks.core.envelope import seal
from gwms_tasks.core.escaping import (
    ClientGroupStaging,
    ClientStaging,
    GlideinStartup,
)
from gwms_tasks.core.escaping import glidein_arguments as build_arguments
from gwms_tasks.core.model import Glidein, frontend_key
from gwms_tasks.core.plan import DemandPlan, EntryPlan, plan_entry
from gwms_tasks.core.requests import (
    Rejection,
    Request,
    ValidationContext,
    validate_request,
)
from gwms_tasks.core.sanitize import JobAction
from gwms_tasks.core.status import JobStatus
from gwms_tasks.errors import GwmsError, TransientError
from gwms_tasks.ports import GlideinTags, InflightSubmit
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.orders import JobActionOrder, SubmitOrder, order_lifetime
from gwms_tasks.services.snapshot import store_snapshot
from gwms_tasks.services.submit import SUBMIT_LOCK_SECONDS

log = logging.getLogger(__name__)

INFLIGHT_PREFIX = "inflight:"


@dataclass
class FindWorkResult:
    """What one find-work pass did (returned by the task; shown in Flower)."""

    entry: str
    status: str = "done"  # done | busy | failed_closed
    requests: int = 0
    rejected: int = 0
    submitted: int = 0
    removed: int = 0
    released: int = 0
    detail: str = ""
    reasons: dict[str, str] = field(default_factory=dict)


def entry_lock(entry: str) -> str:
    """The lock held while deciding for an entry (find-work, and a retry of a failed submit)."""
    return f"find_work:{entry}"


def find_work(deps: FactoryDeps, entry: str, run_id: str) -> FindWorkResult:
    """One find-work pass for ``entry``; ``run_id`` (the task id) makes its submit keys."""
    loop_delay = deps.config.factory.loop_delay
    token = deps.state.locks.acquire(entry_lock(entry), ttl=max(30.0, 2 * loop_delay))
    if token is None:
        return FindWorkResult(entry, status="busy", detail="another find-work holds the lock")
    started = time.monotonic()
    try:
        result = _find_work(deps, entry, run_id)
    finally:
        deps.state.locks.release(entry_lock(entry), token)
    _count(deps, entry, result, time.monotonic() - started)
    return result


def _count(deps: FactoryDeps, entry: str, result: FindWorkResult, seconds: float) -> None:
    """Monitoring counters of one pass (ports.Counters names), for /metrics."""
    values: dict[str, float] = {
        "cycles:find_work": 1,
        "cycle_seconds:find_work": seconds,
        "submitted": result.submitted,
        "removed": result.removed,
        "released": result.released,
        "rejected": result.rejected,
    }
    if result.status == "failed_closed":
        values["failed_closed"] = 1
    for reason in result.reasons.values():
        values[f"decision:{reason}"] = values.get(f"decision:{reason}", 0) + 1
    try:
        deps.state.counters.add(entry, values)
    except GwmsError as exc:  # counters are for monitoring: never fail the pass for them
        log.warning("entry %s: counters not updated: %s", entry, exc)


def _find_work(deps: FactoryDeps, entry: str, run_id: str) -> FindWorkResult:
    now = deps.clock()
    result = FindWorkResult(entry)
    downtimes = deps.downtimes()
    requests = _read_requests(deps, entry, now, downtimes, result)
    inflight = live_inflight(deps, entry, now)
    try:
        glideins = deps.backend_for(entry).query()
    except GwmsError as exc:
        return _fail_closed(deps, entry, requests, str(exc), now, result)
    store_snapshot(deps, entry, glideins, now)
    cfg = deps.config.entries[entry]
    plan = plan_entry(
        [*glideins, *_placeholders(inflight)],
        [request.demand for request in requests],
        deps.config.entry_limits(entry),
        cfg.held_policy(),
        cfg.stale_ages(),
        entry_down_reason(downtimes, now, entry),
        now,
    )
    by_key = {request.demand.work_key: request for request in requests}
    for demand_plan in plan.demands:
        _act_on_demand(
            deps, entry, by_key[demand_plan.demand.work_key], demand_plan, run_id, now, result
        )
    _send_sanitize(deps, entry, plan, glideins, result)
    return result


def _read_requests(
    deps: FactoryDeps, entry: str, now: float, downtimes: Downtimes, result: FindWorkResult
) -> list[Request]:
    fac = deps.config.factory
    req_name = f"{entry}@{fac.glidein_name}@{fac.name}"
    ads = deps.dashboard.query(AdType.GLIDECLIENT, f"ReqGlidein =?= {string_literal(req_name)}")
    ctx = ValidationContext(
        deps.config,
        entry,
        deps.keyring(),
        now,
        lambda frontend, sc: request_down_reason(downtimes, now, entry, frontend, sc),
        deps.key_codes,
    )
    requests: list[Request] = []
    for ad in ads:
        outcome = validate_request(ad.attrs, ad.identity, ctx)
        if isinstance(outcome, Rejection):
            _record_rejection(deps, entry, outcome, now, result)
        else:
            requests.append(outcome)
    result.requests = len(requests)
    return requests


def _record_rejection(
    deps: FactoryDeps, entry: str, rejection: Rejection, now: float, result: FindWorkResult
) -> None:
    result.rejected += 1
    log.warning("entry %s: %s", entry, rejection.explain())
    key = rejection.work_key if rejection.work_key else "unnamed"
    deps.state.entries.put_decision(
        entry,
        key,
        {
            "client": rejection.client,
            "work_key": rejection.work_key,
            "at": now,
            "rejected": rejection.reason.value,
            "explain": rejection.explain(),
        },
    )
    result.reasons[key] = rejection.reason.value


def live_inflight(deps: FactoryDeps, entry: str, now: float) -> list[InflightSubmit]:
    """In-flight submits, dropping those that can no longer run (see :func:`inflight_horizon`)."""
    horizon = inflight_horizon(deps.config.factory.loop_delay)
    live = []
    for record in deps.state.inflight.list(entry):
        if now - record.queued_at > horizon:
            log.warning("entry %s: in-flight submit %s expired", entry, record.submit_key)
            deps.state.inflight.done(entry, record.submit_key)
        else:
            live.append(record)
    return live


def inflight_horizon(loop_delay: float) -> float:
    """How long a queued submit counts as in flight: until no user worker can still run it.

    A user worker refuses an order older than its lifetime, but one it started just before
    may still be submitting: that one holds its submit lock, for at most
    :data:`~gwms_tasks.services.submit.SUBMIT_LOCK_SECONDS`.
    """
    return order_lifetime(loop_delay) + SUBMIT_LOCK_SECONDS


def _placeholders(inflight: Iterable[InflightSubmit]) -> list[Glidein]:
    """Waiting glideins standing for the submits still in flight."""
    return [
        Glidein(
            job_id=f"{INFLIGHT_PREFIX}{record.submit_key}:{i}",
            entry=record.entry,
            client=record.client,
            security_class=record.security_class,
            credential_id=record.credential_id,
            frontend=record.frontend,
            job_status=JobStatus.IDLE,
            entered_current_status=record.queued_at,
            submit_key=record.submit_key,
        )
        for record in inflight
        for i in range(record.count)
    ]


def _fail_closed(
    deps: FactoryDeps,
    entry: str,
    requests: Sequence[Request],
    error: str,
    now: float,
    result: FindWorkResult,
) -> FindWorkResult:
    deps.state.entries.record_query_failure(entry, error, now)
    explain = f"submit 0: glidein query failed, entry fails closed ({error})"
    for request in requests:
        deps.state.entries.put_decision(
            entry,
            request.demand.work_key,
            {
                "client": request.demand.client,
                "work_key": request.demand.work_key,
                "at": now,
                "submit": 0,
                "reason": "query_failed",
                "explain": explain,
            },
        )
    result.status = "failed_closed"
    result.detail = explain
    return result


def _act_on_demand(
    deps: FactoryDeps,
    entry: str,
    request: Request,
    plan: DemandPlan,
    run_id: str,
    now: float,
    result: FindWorkResult,
) -> None:
    decision = plan.to_dict()
    decision.update(
        client=request.demand.client,
        work_key=request.demand.work_key,
        at=now,
        explain=_explain(plan),
        notes=list(request.notes),
    )
    count = plan.submit.count
    if count > 0:
        problem = _queue_submit(deps, entry, request, count, run_id, now, plan.submit.explain())
        if problem:
            decision["explain"] = f"{decision['explain']}; not sent: {problem}"
            decision["blocked"] = problem
        else:
            result.submitted += count
    removal = plan.removal
    if removal is not None and removal.job_ids:
        real = tuple(j for j in removal.job_ids if not j.startswith(INFLIGHT_PREFIX))
        if real:
            _send_action(deps, request.username, entry, JobAction.REMOVE, real, removal.explain())
            result.removed += len(real)
    deps.state.entries.put_decision(entry, request.demand.work_key, decision)
    result.reasons[request.demand.work_key] = str(plan.submit.reason)


def _explain(plan: DemandPlan) -> str:
    text = plan.submit.explain()
    if plan.removal is not None:
        text = f"{text}; {plan.removal.explain()}"
    return text


def submit_key_for(run_id: str, work_key: str) -> str:
    """Deterministic per (find-work run, request): a redelivered find-work reuses it."""
    digest = hashlib.sha1(f"{run_id}|{work_key}".encode(), usedforsecurity=False).hexdigest()
    return digest[:24]


def _queue_submit(
    deps: FactoryDeps,
    entry: str,
    request: Request,
    count: int,
    run_id: str,
    now: float,
    reason: str,
) -> str | None:
    """Send the submit order; returns why it could not be sent, or None."""
    demand = request.demand
    fac = deps.config.factory
    try:
        arguments = _arguments(deps, entry, request)
        sealed = _seal_secrets(deps, request)
    except GwmsError as exc:
        log.error("entry %s: cannot submit for %s: %s", entry, demand.work_key, exc)
        return str(exc)
    key = submit_key_for(run_id, demand.work_key)
    tags = GlideinTags(
        factory=fac.name,
        glidein=fac.glidein_name,
        entry=entry,
        client=demand.client,
        security_class=demand.security_class,
        credential_id=demand.credential_id,
        frontend=frontend_key(demand.frontend, demand.security_class),
        username=request.username,
        submit_key=key,
    )
    order = SubmitOrder(
        tags=tags,
        count=count,
        arguments=arguments,
        idle_lifetime=request.idle_lifetime,
        submit_credential=request.submit_credential,
        sealed_secrets=sealed,
        queued_at=now,
        reason=reason,
    )
    deps.state.inflight.add(
        InflightSubmit(
            key,
            entry,
            demand.client,
            demand.security_class,
            demand.credential_id,
            tags.frontend,
            count,
            now,
        )
    )
    deps.state.ledger.claim(key, entry, count, now)
    try:
        deps.dispatcher.send_submit(request.username, order.to_json())
    except GwmsError as exc:
        log.error("entry %s: submit %s for %s not sent: %s", entry, key, demand.work_key, exc)
        # Nothing is on its way: not counted as waiting; and should the broker have taken it
        # after all, the failed ledger record keeps the user worker from submitting it.
        deps.state.inflight.done(entry, key)
        deps.state.ledger.mark_failed(key, f"not sent: {exc}")
        return str(exc)
    return None


def _seal_secrets(deps: FactoryDeps, request: Request) -> dict[str, str]:
    if not request.secrets:
        return {}
    public = deps.user_keys.public_pem(request.username)
    if public is None:
        raise TransientError(
            f"the worker of user {request.username} has not published its key yet "
            "(start `gwms worker user` for it); tokens cannot be passed"
        )
    return {name: seal(public, value.encode()) for name, value in request.secrets.items()}


def _arguments(deps: FactoryDeps, entry: str, request: Request) -> list[str]:
    index = deps.staging()
    if index is None:
        raise TransientError("no staging area has been built (run `gwms staging build`)")
    fac = deps.config.factory
    cfg = deps.config.entries[entry]
    described = index.entry(entry)
    startup = GlideinStartup(
        glidein_name=fac.glidein_name,
        entry_name=entry,
        client_name=request.demand.client,
        schedd=cfg.schedd or "local",
        factory_name=fac.name,
        web_url=fac.web_url,
        main_descript=index.main.descript,
        main_sign=index.main.sign,
        entry_descript=described.descript,
        entry_sign=described.sign,
        credential_id=request.demand.credential_id,
        sign_type=index.sign_type,
        proxy_url=cfg.proxy_url or "None",
        startup_dir=cfg.startup_dir,
        slots_layout=cfg.slots_layout,
        verbosity=cfg.verbosity,
    )
    web = request.web
    client = ClientStaging(web["URL"], web["DescriptFile"], web["DescriptSign"])
    group = ClientGroupStaging(
        request.group, web["GroupURL"], web["GroupDescriptFile"], web["GroupDescriptSign"]
    )
    params = {**request.params, "GLIDEIN_Client": request.demand.client}
    args = build_arguments(startup, params, client, group)
    return args[:-4]  # the backend appends -cluster/-subcluster per job


def _send_sanitize(
    deps: FactoryDeps,
    entry: str,
    plan: EntryPlan,
    glideins: Sequence[Glidein],
    result: FindWorkResult,
) -> None:
    owner = _owners(deps, glideins)
    for action in JobAction:
        ids = [j for j in plan.sanitize.job_ids(action) if not j.startswith(INFLIGHT_PREFIX)]
        by_user: dict[str, list[str]] = {}
        for job_id in ids:
            if job_id in owner:
                by_user.setdefault(owner[job_id], []).append(job_id)
        sent = 0
        for username, job_ids in by_user.items():
            _send_action(deps, username, entry, action, tuple(job_ids), plan.sanitize.explain())
            sent += len(job_ids)
        if action is JobAction.RELEASE:
            result.released += sent
        else:
            result.removed += sent


def _owners(deps: FactoryDeps, glideins: Sequence[Glidein]) -> dict[str, str]:
    owners: dict[str, str] = {}
    for glidein in glideins:
        frontend, _, security_class = glidein.frontend.partition(":")
        username = deps.config.username_for(frontend, security_class)
        if username is not None:
            owners[glidein.job_id] = username
    return owners


def _send_action(
    deps: FactoryDeps,
    username: str,
    entry: str,
    action: JobAction,
    job_ids: tuple[str, ...],
    reason: str,
) -> None:
    order = JobActionOrder(entry, action, job_ids, reason)
    deps.dispatcher.send_job_action(username, order.to_json())
