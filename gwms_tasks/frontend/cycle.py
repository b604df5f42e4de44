"""One cycle of a frontend group: read through the ports, decide (pure), publish, explain.

1. the group's staging area (written once per process, see :meth:`FrontendDeps.staging`);
2. read the credential files, the three factory ad types, the jobs and the last explanation;
3. :func:`~gwms_tasks.frontend.core_cycle.decide_cycle`;
4. advertise the glideclient, glideclientglobal and glideresource ads, then withdraw this
   group's ads that were not advertised again (entries no longer selected, factories gone);
5. store the explanation.

A job source that cannot be read does not stop the cycle: every request goes out as zero
(fail closed) and the explanation says why. A dashboard that cannot be read or written does:
the error propagates (TransientError) and the next cycle retries. The credentials
(glideclientglobal) go out before the requests that use them, so a factory reading between the
two writes finds the credentials first; every ad is whole on its own, so an error between two
writes leaves last cycle's ads of the other types, which the next cycle replaces.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from gwms_tasks.core.ads import AdType
from gwms_tasks.errors import GwmsError, PermanentError
from gwms_tasks.frontend.core_ads import GroupClient, stale_constraint
from gwms_tasks.frontend.core_cycle import CycleInput, CycleOutput, FactoryAds, decide_cycle
from gwms_tasks.frontend.core_explain import CycleExplanation
from gwms_tasks.frontend.core_factories import client_constraint
from gwms_tasks.frontend.core_jobs import JobSnapshot
from gwms_tasks.frontend.deps import FrontendDeps
from gwms_tasks.frontend.files import read_credentials

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What one cycle did (the task's JSON result, shown in Flower; the CLI prints it)."""

    group: str
    status: str
    cycle: int
    idle_jobs: int
    running_jobs: int
    requests: int
    requested_idle: int
    invalidated: int
    ignored: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def run_cycle(deps: FrontendDeps, group: str) -> CycleReport:
    """Run one cycle of ``group``.

    Raises:
        PermanentError: the group is not configured, or the stage dir cannot be written.
        TransientError: the dashboard is unreachable.
    """
    config = deps.config
    group_config = config.groups.get(group)
    if group_config is None:
        raise PermanentError(f"no group {group!r} in the frontend config")
    now = deps.clock()
    staging = deps.staging(group)
    credentials, notes = read_credentials(group_config, deps.base_dir)
    client = GroupClient(
        frontend=config.frontend.name,
        group=group,
        identity=config.frontend.identity,
        web=staging.web,
        params=group_config.params,
        limits=group_config.limits,
        credentials=credentials,
    )
    jobs, job_error = _jobs(deps, group)
    previous, previous_notes = _previous(deps, group)
    inp = CycleInput(
        group=group,
        config=group_config,
        client=client,
        trusted=config.factories,
        ads=_factory_ads(deps, client.client_name),
        jobs=jobs,
        now=now,
        previous=previous,
        job_error=job_error,
        notes=(*notes, *previous_notes),
    )
    output = decide_cycle(inp, deps.new_sym)
    invalidated = _publish(deps, output, client.client_name)
    deps.explanations.save(output.explanation)
    return _report(output, invalidated)


def _factory_ads(deps: FrontendDeps, client_name: str) -> FactoryAds:
    dashboard = deps.dashboard
    return FactoryAds(
        globals=dashboard.query(AdType.GLIDEFACTORY_GLOBAL),
        entries=dashboard.query(AdType.GLIDEFACTORY),
        clients=dashboard.query(AdType.GLIDEFACTORY_CLIENT, client_constraint(client_name)),
    )


def _jobs(deps: FrontendDeps, group: str) -> tuple[JobSnapshot | None, str]:
    try:
        return deps.job_source(group).snapshot(), ""
    except GwmsError as exc:
        log.warning("group %s: job source failed, requesting nothing: %s", group, exc)
        return None, f"job source failed: {exc}"


def _previous(deps: FrontendDeps, group: str) -> tuple[CycleExplanation | None, tuple[str, ...]]:
    try:
        return deps.explanations.load(group), ()
    except PermanentError as exc:
        return None, (f"the last explanation could not be read, starting afresh: {exc}",)


def _publish(deps: FrontendDeps, output: CycleOutput, client_name: str) -> int:
    """Advertise this cycle's ads, then withdraw the group's other ads; return how many."""
    sequence = output.explanation.cycle
    published = (
        (
            AdType.GLIDECLIENT_GLOBAL,
            "ClientName",
            [ad.to_attrs(sequence=sequence) for ad in output.globals],
        ),
        (
            AdType.GLIDECLIENT,
            "ClientName",
            [ad.to_attrs(sequence=sequence) for ad in output.requests],
        ),
        (
            AdType.GLIDERESOURCE,
            "GlideClientName",
            [ad.to_attrs(sequence=sequence) for ad in output.resources],
        ),
    )
    for ad_type, _, ads in published:
        deps.dashboard.advertise(ad_type, ads)
    invalidated = 0
    for ad_type, client_attr, ads in published:
        kept = [str(ad["Name"]) for ad in ads]
        invalidated += deps.dashboard.invalidate(
            ad_type, stale_constraint(client_attr, client_name, kept)
        )
    return invalidated


def _report(output: CycleOutput, invalidated: int) -> CycleReport:
    explanation = output.explanation
    return CycleReport(
        group=explanation.group,
        status=str(explanation.status),
        cycle=explanation.cycle,
        idle_jobs=explanation.idle_jobs,
        running_jobs=explanation.running_jobs,
        requests=len(output.requests),
        requested_idle=sum(r.idle for r in explanation.requests),
        invalidated=invalidated,
        ignored=len(explanation.ignored),
    )
