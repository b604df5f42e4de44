"""One cycle of one frontend group, decided: from what was read to the ads to publish.

:func:`decide_cycle` is pure. The I/O around it (``cycle.py``) reads the factory ads, the jobs,
the credential files and the previous explanation, calls it, and publishes what it returns:

1. keep the ads of trusted factories (``core_factories``); select entries with the group's
   constraint; pick for each the first credential its auth method accepts (none: no request);
2. split the idle jobs among the entries that are not in downtime (``core_match``);
3. compute every entry's request (``core_plan``);
4. build the encrypted glideclient ads, one glideclientglobal per factory instance requested
   from (with the credential files), and the glideresource ads (``core_ads``);
5. explain it all (``core_explain``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gwms_tasks.core.ads import GlideClientAd, GlideClientGlobalAd, GlideResourceAd
from gwms_tasks.core.crypto import SymKey
from gwms_tasks.frontend.core_ads import (
    CredentialFile,
    GroupClient,
    choose_credential,
    global_ad,
    request_ad,
    resource_ad,
    wrap_key,
)
from gwms_tasks.frontend.core_config import GroupConfig, TrustedFactory
from gwms_tasks.frontend.core_explain import CycleExplanation, CycleStatus, SkippedEntry
from gwms_tasks.frontend.core_factories import (
    FactoryView,
    OfferedEntry,
    read_factories,
    select_entries,
)
from gwms_tasks.frontend.core_jobs import JobSnapshot
from gwms_tasks.frontend.core_match import MatchExpr, split_jobs
from gwms_tasks.frontend.core_plan import EntryDemand, GroupPlan, plan_group
from gwms_tasks.ports import AuthenticatedAd


@dataclass(frozen=True, slots=True)
class FactoryAds:
    """The factory ads read this cycle, each with its authenticated writer."""

    globals: Sequence[AuthenticatedAd] = ()
    entries: Sequence[AuthenticatedAd] = ()
    clients: Sequence[AuthenticatedAd] = ()


@dataclass(frozen=True, slots=True)
class CycleInput:
    """Everything one cycle of a group decides from.

    Attributes:
        jobs: the job source's snapshot, or None when it could not be read (``job_error``).
        previous: the last cycle's explanation (its per-entry no-demand counters).
        notes: problems found while reading (unreadable credential files, ...).
    """

    group: str
    config: GroupConfig
    client: GroupClient
    trusted: Sequence[TrustedFactory]
    ads: FactoryAds
    jobs: JobSnapshot | None
    now: float
    previous: CycleExplanation | None = None
    job_error: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CycleOutput:
    """What to publish, and the explanation to store."""

    requests: tuple[GlideClientAd, ...]
    globals: tuple[GlideClientGlobalAd, ...]
    resources: tuple[GlideResourceAd, ...]
    explanation: CycleExplanation


def decide_cycle(inp: CycleInput, new_sym: Callable[[], SymKey]) -> CycleOutput:
    """Decide one cycle; ``new_sym`` makes the symmetric key of each factory instance."""
    client = inp.client
    view = read_factories(
        inp.ads.globals, inp.ads.entries, inp.ads.clients, inp.trusted, client.client_name
    )
    selected, notes = select_entries(view.entries, inp.config.entry_constraint)
    usable, skipped = _with_credentials(selected, client.credentials)
    jobs = inp.jobs if inp.jobs is not None else JobSnapshot()
    candidates = {e.key: e.attrs for e, _ in usable if not e.ad.in_downtime}
    matched = split_jobs(jobs.idle, candidates, MatchExpr.compile(inp.config.match))
    plan = _plan(inp, usable, jobs, matched.per_entry)
    instances = {e.instance.factory.global_name: e.instance for e, _ in usable}
    keys = {}
    for name, instance in instances.items():
        sym = new_sym()
        keys[name] = (sym, wrap_key(instance.public_key, sym, client.identity))
    requests, resources = [], []
    for entry, credential in usable:
        request = plan.request(entry.key)
        assert request is not None  # the plan has every usable entry
        sym, key = keys[entry.instance.factory.global_name]
        requests.append(request_ad(request, entry, client, credential, sym, key))
        resources.append(resource_ad(request, entry, client))
    globals_ = tuple(
        global_ad(instance, client, *keys[name]) for name, instance in instances.items()
    )
    explanation = CycleExplanation(
        group=inp.group,
        client_name=client.client_name,
        at=inp.now,
        status=_status(inp, view),
        cycle=inp.previous.cycle + 1 if inp.previous else 0,
        idle_jobs=jobs.idle_count,
        running_jobs=jobs.running,
        unmatched=matched.unmatched,
        unclaimed=plan.unclaimed,
        glideins_total=plan.glideins_total,
        budget=plan.budget,
        requests=plan.requests,
        skipped=tuple(skipped),
        ignored=view.ignored,
        notes=(*inp.notes, *jobs.notes, *notes, *matched.problems),
        detail=inp.job_error if inp.jobs is None else "",
    )
    return CycleOutput(tuple(requests), globals_, tuple(resources), explanation)


def _plan(
    inp: CycleInput,
    usable: Sequence[tuple[OfferedEntry, CredentialFile]],
    jobs: JobSnapshot,
    matched: Mapping[str, int],
) -> GroupPlan:
    zero = inp.previous.zero_demand_cycles() if inp.previous else {}
    demands = [
        EntryDemand(e.key, e.glideins, matched.get(e.key, 0), e.ad.in_downtime, zero.get(e.key, 0))
        for e, _ in usable
    ]
    return plan_group(
        demands,
        jobs.running,
        inp.config.limits,
        inp.config.remove_excess,
        job_source_ok=inp.jobs is not None,
    )


def _with_credentials(
    entries: Sequence[OfferedEntry], credentials: Sequence[CredentialFile]
) -> tuple[list[tuple[OfferedEntry, CredentialFile]], list[SkippedEntry]]:
    usable: list[tuple[OfferedEntry, CredentialFile]] = []
    skipped: list[SkippedEntry] = []
    have = ", ".join(sorted({c.type.value for c in credentials if c.type.submits})) or "none"
    for entry in entries:
        credential = choose_credential(entry.ad.auth_method, credentials)
        if credential is None:
            reason = (
                f"no readable credential of the group fits auth method "
                f"{entry.ad.auth_method!r} (usable types: {have})"
            )
            skipped.append(SkippedEntry(entry.key, reason))
        else:
            usable.append((entry, credential))
    return usable, skipped


def _status(inp: CycleInput, view: FactoryView) -> CycleStatus:
    if inp.jobs is None:
        return CycleStatus.JOB_SOURCE_FAILED
    if not view.instances:
        return CycleStatus.NO_FACTORY
    return CycleStatus.OK
