"""A whole frontend cycle on the memory twins, judged by the factory's own request validation."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gwms_tasks.core.ads import AdType, GlideClientGlobalAd, GlideResourceAd
from gwms_tasks.core.crypto import FactoryKey
from gwms_tasks.core.requests import Rejection, Request
from gwms_tasks.frontend.core_explain import CycleStatus, render
from gwms_tasks.frontend.core_factories import IgnoreReason
from gwms_tasks.frontend.core_plan import IdleReason, RemoveReason
from gwms_tasks.frontend.cycle import run_cycle
from gwms_tasks.frontend.deps import FrontendDeps
from gwms_tasks.frontend.source_memory import MemoryJobSource
from tests.frontend.builders import (
    CLIENT,
    IDENTITY,
    IDTOKEN,
    PROXY,
    SCITOKEN,
    FactorySite,
    config_of,
    frontend_data,
    memory_deps,
    req_name,
    with_changes,
)

ALL_ENTRIES = ("ce_osg_htcondor", "local_cluster", "simulated_site")


@pytest.fixture(scope="module")
def factory_key() -> FactoryKey:
    return FactoryKey.generate()


@dataclass
class World:
    factory: FactorySite
    jobs: MemoryJobSource
    deps: FrontendDeps
    data: dict[str, Any]
    tmp_path: Path

    def accepted(self) -> dict[str, Request]:
        """The factory's validation of every request it can see: all must be accepted."""
        results = {
            str(ad.attrs["ReqName"]): self.factory.validate(ad) for ad in self.factory.requests()
        }
        rejected = [r.explain() for r in results.values() if isinstance(r, Rejection)]
        assert rejected == []
        return {name: r for name, r in results.items() if isinstance(r, Request)}

    def reconfigure(self, path: str, value: Any) -> None:
        self.data = with_changes(self.data, path, value)
        previous = self.deps
        self.deps = memory_deps(config_of(self.data), self.tmp_path, self.factory.hub, self.jobs)
        self.deps.explanations = previous.explanations


@pytest.fixture
def world(factory_key: FactoryKey, tmp_path: Path) -> Iterator[World]:
    factory = FactorySite(factory_key)
    jobs = MemoryJobSource()
    data = frontend_data(tmp_path)
    yield World(
        factory, jobs, memory_deps(config_of(data), tmp_path, factory.hub, jobs), data, tmp_path
    )


def test_requests_are_accepted_by_the_factory_with_the_jobs_split_evenly(world: World) -> None:
    world.factory.offer(*ALL_ENTRIES)
    world.jobs.add_idle({"RequestCpus": 1}, 12)

    report = run_cycle(world.deps, "main")

    accepted = world.accepted()
    assert sorted(accepted) == sorted(req_name(e) for e in ALL_ENTRIES)
    for request in accepted.values():
        demand = request.demand
        assert (demand.req_idle, demand.req_max, demand.client) == (4, 4, CLIENT)
        assert demand.remove_excess == "NO"
        assert request.security_name == "cms_frontend"
        assert request.identity == IDENTITY
        assert request.params["GLIDEIN_CELERY_QUEUE"] == "vo_jobs"
        assert request.params["GLIDEIN_CELERY_IDLE_TIMEOUT"] == "60"
    assert (report.status, report.requests, report.requested_idle) == ("ok", 3, 12)


def test_each_entry_gets_the_credential_its_auth_method_takes(world: World) -> None:
    world.factory.offer(*ALL_ENTRIES)
    world.jobs.add_idle({}, 3)

    run_cycle(world.deps, "main")

    accepted = world.accepted()
    token_entry = accepted[req_name("ce_osg_htcondor")]
    assert token_entry.demand.credential_id == "cms_token"
    assert token_entry.demand.security_class == "production"
    assert token_entry.username == "fe_cms_pilot"
    assert token_entry.secrets == {
        "frontend_scitoken": SCITOKEN,
        "ce_osg_htcondor.idtoken": IDTOKEN,
    }
    proxy_entry = accepted[req_name("local_cluster")]
    assert (proxy_entry.submit_credential, proxy_entry.username) == ("cms_proxy", "fe_cms")


def test_credential_files_travel_encrypted_in_one_global_ad_per_factory(world: World) -> None:
    world.factory.offer(*ALL_ENTRIES)

    run_cycle(world.deps, "main")

    [ad] = world.factory.hub.handle("factory").query(AdType.GLIDECLIENT_GLOBAL)
    parsed = GlideClientGlobalAd.from_attrs(ad.attrs)
    assert (parsed.name, ad.identity) == (f"gfactory_instance@demo_factory@{CLIENT}", IDENTITY)
    assert SCITOKEN not in str(ad.attrs) and "MIIproxy" not in str(ad.attrs)
    clear = world.factory.decrypt(ad.attrs)
    assert clear == {
        "SecurityName": "cms_frontend",
        "NumberOfCredentials": "3",
        "cms_token": SCITOKEN + "\n",
        "SecurityClasscms_token": "production",
        "cms_proxy": PROXY,
        "SecurityClasscms_proxy": "analysis",
        "cms_pool": IDTOKEN + "\n",
        "SecurityClasscms_pool": "production",
    }
    key = world.factory.key.decrypt_key_code(str(ad.attrs["ReqEncKeyCode"]))
    assert key.decrypt_hex(str(ad.attrs["ReqEncIdentity"])) == IDENTITY


def test_glideresource_joins_the_factory_monitoring_by_name(world: World) -> None:
    world.factory.offer("ce_osg_htcondor", glideins={"ce_osg_htcondor": (3, 5)})

    run_cycle(world.deps, "main")

    [ad] = world.factory.hub.handle("factory").query(AdType.GLIDERESOURCE)
    resource = GlideResourceAd.from_attrs(ad.attrs)
    assert resource.name == f"{req_name('ce_osg_htcondor')}@{CLIENT}"
    assert resource.factory_monitor["StatusIdle"] == 3
    assert resource.factory_monitor["StatusRunning"] == 5
    assert resource.factory_attrs["GLIDEIN_Site"] == "OSG_EXAMPLE"
    assert resource.client_monitor["GlideinsTotal"] == 8


def test_ads_of_an_untrusted_writer_are_ignored_with_a_reason(world: World) -> None:
    world.factory.offer("ce_osg_htcondor")
    forged = world.factory.entry("simulated_site").to_attrs(sequence=1)
    world.factory.publish(AdType.GLIDEFACTORY, forged, writer="impostor")
    world.jobs.add_idle({}, 4)

    run_cycle(world.deps, "main")

    assert [str(ad.attrs["ReqName"]) for ad in world.factory.requests()] == [
        req_name("ce_osg_htcondor")
    ]
    explanation = world.deps.explanations.load("main")
    assert explanation is not None
    [ignored] = explanation.ignored
    assert (ignored.reason, ignored.name) == (
        IgnoreReason.UNTRUSTED_IDENTITY,
        req_name("simulated_site"),
    )
    assert "written by 'impostor'" in ignored.detail
    assert explanation.requests[0].matched == 4


def test_requests_of_entries_no_longer_offered_are_withdrawn(world: World) -> None:
    world.factory.offer(*ALL_ENTRIES)
    run_cycle(world.deps, "main")
    world.factory.hub.handle("factory").invalidate(
        AdType.GLIDEFACTORY, 'EntryName == "simulated_site"'
    )

    report = run_cycle(world.deps, "main")

    names = {str(ad.attrs["ReqName"]) for ad in world.factory.requests()}
    assert names == {req_name("ce_osg_htcondor"), req_name("local_cluster")}
    resources = world.factory.hub.handle("factory").query(AdType.GLIDERESOURCE)
    assert len(resources) == 2
    assert report.invalidated == 2  # its glideclient and its glideresource


def test_no_trusted_factory_withdraws_every_request(world: World) -> None:
    world.factory.offer(*ALL_ENTRIES)
    run_cycle(world.deps, "main")
    world.reconfigure("factories", [{"name": "other_factory", "identity": "factory"}])

    report = run_cycle(world.deps, "main")

    assert world.factory.requests() == []
    assert world.factory.hub.handle("factory").query(AdType.GLIDECLIENT_GLOBAL) == []
    assert report.status == CycleStatus.NO_FACTORY


def test_failing_job_source_asks_for_nothing_and_says_why(world: World) -> None:
    world.factory.offer(*ALL_ENTRIES)
    world.jobs.add_idle({}, 30)
    run_cycle(world.deps, "main")
    world.jobs.fail("broker unreachable")

    report = run_cycle(world.deps, "main")

    accepted = world.accepted()
    assert {r.demand.req_idle for r in accepted.values()} == {0}
    assert {r.demand.remove_excess for r in accepted.values()} == {"NO"}
    explanation = world.deps.explanations.load("main")
    assert explanation is not None
    assert report.status == explanation.status == CycleStatus.JOB_SOURCE_FAILED
    assert "broker unreachable" in explanation.detail
    assert {r.idle_reason for r in explanation.requests} == {IdleReason.JOB_SOURCE_FAILED}


def test_removal_is_asked_after_the_configured_cycles_without_jobs(world: World) -> None:
    world.factory.offer("ce_osg_htcondor", glideins={"ce_osg_htcondor": (4, 0)})
    world.jobs.add_idle({}, 4)
    run_cycle(world.deps, "main")
    world.jobs.start(4)

    modes = []
    for _ in range(3):
        run_cycle(world.deps, "main")
        [request] = world.accepted().values()
        modes.append(str(request.demand.remove_excess))

    assert modes == ["NO", "IDLE", "IDLE"]
    explanation = world.deps.explanations.load("main")
    assert explanation is not None
    assert explanation.requests[0].remove_reason == RemoveReason.DEMAND_VANISHED


def test_entry_without_a_fitting_credential_gets_no_request(world: World) -> None:
    credentials = [
        c for c in world.data["groups"]["main"]["credentials"] if c["type"] != "grid_proxy"
    ]
    world.reconfigure("groups.main.credentials", credentials)
    world.factory.offer(*ALL_ENTRIES)
    world.jobs.add_idle({}, 10)

    run_cycle(world.deps, "main")

    assert req_name("local_cluster") not in world.accepted()
    explanation = world.deps.explanations.load("main")
    assert explanation is not None
    [skipped] = explanation.skipped
    assert skipped.key == req_name("local_cluster")
    assert "auth method 'grid_proxy'" in skipped.reason
    assert sum(r.matched for r in explanation.requests) == 10


def test_unreadable_credential_is_left_out_and_noted(world: World) -> None:
    (world.tmp_path / "cms.proxy").unlink()
    world.factory.offer(*ALL_ENTRIES)

    run_cycle(world.deps, "main")

    explanation = world.deps.explanations.load("main")
    assert explanation is not None
    assert any(
        "credential cms_proxy" in note and "No such file" in note for note in explanation.notes
    )
    assert req_name("local_cluster") not in world.accepted()


def test_entry_in_downtime_gets_a_zero_request_and_no_jobs(world: World) -> None:
    world.factory.publish(AdType.GLIDEFACTORY_GLOBAL, world.factory.global_ad())
    down = world.factory.entry("ce_osg_htcondor", in_downtime=True)
    up = world.factory.entry("simulated_site")
    world.factory.publish(AdType.GLIDEFACTORY, down.to_attrs(sequence=1), up.to_attrs(sequence=1))
    world.jobs.add_idle({}, 6)

    run_cycle(world.deps, "main")

    accepted = world.accepted()
    assert accepted[req_name("ce_osg_htcondor")].demand.req_idle == 0
    assert accepted[req_name("simulated_site")].demand.req_idle == 6


def test_jobs_go_only_where_the_match_expression_allows(world: World) -> None:
    world.factory.offer("ce_osg_htcondor", "simulated_site")
    world.jobs.add_idle({"RequestCpus": 8}, 5)  # the entries offer 4 cpus
    world.jobs.add_idle({"RequestCpus": 2}, 2)

    run_cycle(world.deps, "main")

    explanation = world.deps.explanations.load("main")
    assert explanation is not None
    assert (explanation.idle_jobs, explanation.unmatched) == (7, 5)
    assert sorted(r.matched for r in explanation.requests) == [1, 1]


def test_explanation_shows_every_number_and_its_reason(world: World) -> None:
    world.factory.offer("ce_osg_htcondor", glideins={"ce_osg_htcondor": (2, 0)})
    world.jobs.add_idle({}, 40)

    run_cycle(world.deps, "main")

    explanation = world.deps.explanations.load("main")
    assert explanation is not None
    text = "\n".join(render(explanation, "ce_osg"))
    assert "ReqIdleGlideins=12 (ramp_up)" in text
    assert "ReqMaxGlideins=12 (current_plus_new)" in text
    assert "capped by ramp-up (2 idle + 10 new): 12" in text
    assert "jobs: 40 idle (0 matched no entry), 0 running" in text


def test_staging_area_is_built_and_written_once_per_process(world: World) -> None:
    world.factory.offer("ce_osg_htcondor")
    run_cycle(world.deps, "main")
    [first] = world.factory.requests()
    stage = world.tmp_path / "stage"
    written = sorted(p for p in stage.rglob("*") if p.is_file())
    for path in written:
        path.unlink()

    run_cycle(world.deps, "main")

    [again] = world.factory.requests()
    assert [p for p in stage.rglob("*") if p.is_file()] == [], "not written (nor read) again"
    web = [attr for attr in first.attrs if str(attr).startswith("Web")]
    assert web and {a: again.attrs[a] for a in web} == {a: first.attrs[a] for a in web}


def test_staging_area_is_written_and_signed_as_advertised(world: World) -> None:
    world.factory.offer("ce_osg_htcondor")

    run_cycle(world.deps, "main")

    [ad] = world.factory.requests()
    stage = world.tmp_path / "stage"
    for url_attr, descript_attr, sign_attr in (
        ("WebURL", "WebDescriptFile", "WebDescriptSign"),
        ("WebGroupURL", "WebGroupDescriptFile", "WebGroupDescriptSign"),
    ):
        directory = stage / str(ad.attrs[url_attr]).removeprefix(
            "http://fe.example.org/stage"
        ).strip("/")
        description = (directory / str(ad.attrs[descript_attr])).read_text()
        signature = directory / description.split("\n")[0].split("\t")[1]
        assert hashlib.sha1(signature.read_bytes()).hexdigest() == ad.attrs[sign_attr]
