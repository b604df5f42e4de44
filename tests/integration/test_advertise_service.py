"""The advertise services on the in-memory twins: ads built from config, state and decisions."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gwms_tasks.adapters.memory_backend import MemoryGridBackend
from gwms_tasks.adapters.memory_dashboard import MemoryDashboardHub
from gwms_tasks.adapters.memory_dispatcher import MemoryDispatcher
from gwms_tasks.adapters.memory_state import MemoryState
from gwms_tasks.adapters.user_keys import MemoryUserKeys
from gwms_tasks.core.ads import (
    AdType,
    FactoryClientAd,
    FactoryEntryAd,
    FactoryGlobalAd,
    FactoryLimit,
    LimitTriggered,
)
from gwms_tasks.core.classad_text import AdValue
from gwms_tasks.core.config import FactoryConfig, load_config
from gwms_tasks.core.crypto import FactoryKey
from gwms_tasks.core.downtimes import Downtimes, parse_downtimes
from gwms_tasks.core.envelope import UserKey
from gwms_tasks.core.keyring import Keyring
from gwms_tasks.core.staging import SignedDescription, SignType, StagingIndex
from gwms_tasks.services.advertise import advertise_entry, advertise_global
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.find_work import find_work
from gwms_tasks.services.monitoring_decisions import LIVE_DECISION_LOOPS
from gwms_tasks.services.orders import SubmitOrder
from gwms_tasks.services.submit import UserDeps, execute_submit
from tests.builders import EXAMPLE_CONFIG, FrontendSide, example_config

ENTRY = "simulated_site"
REQ_NAME = f"{ENTRY}@gfactory_instance@demo_factory"
CMS = "vofrontend_cms@frontend.cms.example.org"
DUNE = "vofrontend_dune@frontend.dune.example.org"
CMS_CLIENT = "cms_frontend.main"
DUNE_CLIENT = "dune_frontend.main"
SIM_LIMITS = "per_entry: {max_idle: 200, max_held: 50, max_glideins: 1000}"


def config_with(old: str, new: str) -> FactoryConfig:
    """The example config with one piece of its text replaced."""
    text = EXAMPLE_CONFIG.read_text()
    assert text.count(old) == 1, f"{old!r} must appear once in the example config"
    return load_config(text.replace(old, new), "test config")


class World:
    """A factory on memory twins, frontends writing requests, their users' workers."""

    def __init__(self, keys: tuple[FactoryKey, UserKey], tmp: Path, config: FactoryConfig) -> None:
        factory_key, user_key = keys
        self.now = 1_000_000.0
        self.hub = MemoryDashboardHub(clock=lambda: self.now)
        self.state = MemoryState(clock=lambda: self.now)
        self.backend = MemoryGridBackend(
            "demo_factory", "gfactory_instance", ENTRY, lambda: self.now
        )
        self.dispatcher = MemoryDispatcher()
        user_keys = MemoryUserKeys()
        for user in ("fe_cms_pilot", "fe_dune"):
            user_keys.publish(user, user_key.public_pem)
        self.downtimes = Downtimes()
        self.keyring = Keyring(factory_key)
        self.cms = FrontendSide(factory_key)
        self.dune = FrontendSide(
            factory_key,
            identity=DUNE,
            security_name="dune_frontend",
            security_class="main",
            client_name=DUNE_CLIENT,
        )
        self.staging: StagingIndex | None = StagingIndex(
            SignType.SHA1,
            SignedDescription("description.aaaa.cfg", "a" * 40),
            {ENTRY: SignedDescription("description.bbbb.cfg", "b" * 40)},
        )
        self.deps = FactoryDeps(
            config=config,
            state=self.state,
            dashboard=self.hub.handle("factory"),
            backend_for=lambda entry: self.backend,
            dispatcher=self.dispatcher,
            user_keys=user_keys,
            keyring=lambda: self.keyring,
            downtimes=lambda: self.downtimes,
            staging=lambda: self.staging,
            clock=lambda: self.now,
        )
        self.workers = {
            user: UserDeps(
                user, self.state, lambda e: self.backend, user_key, tmp / user, self.clock
            )
            for user in ("fe_cms_pilot", "fe_dune")
        }

    def clock(self) -> float:
        return self.now

    def request(self, side: FrontendSide, writer: str, idle: int, max_glideins: int = 20) -> None:
        ad = side.request(ENTRY, idle=idle, max_glideins=max_glideins)
        self.hub.handle(writer).advertise(AdType.GLIDECLIENT, [ad])

    def cycle(self, run_id: str) -> None:
        """One find-work pass, then every submit it sent executed by the user workers."""
        find_work(self.deps, ENTRY, run_id)
        for user, orders in self.dispatcher.submits.items():
            for order in orders:
                execute_submit(self.workers[user], SubmitOrder.from_json(order))
        self.dispatcher.submits.clear()

    def ads(self, ad_type: AdType) -> list[dict[str, AdValue]]:
        """What a frontend reads back, with the identity the dashboard proved."""
        found = self.hub.handle(CMS).query(ad_type)
        assert all(ad.identity == "factory" for ad in found)
        return [dict(ad.attrs) for ad in found]

    def entry_ad(self) -> FactoryEntryAd:
        [attrs] = self.ads(AdType.GLIDEFACTORY)
        return FactoryEntryAd.from_attrs(attrs)

    def client_ads(self) -> dict[str, FactoryClientAd]:
        ads = (FactoryClientAd.from_attrs(a) for a in self.ads(AdType.GLIDEFACTORY_CLIENT))
        return {ad.client_name: ad for ad in ads}


@pytest.fixture(scope="module")
def keys() -> tuple[FactoryKey, UserKey]:
    return FactoryKey.generate(), UserKey.generate()


@pytest.fixture
def world(keys: tuple[FactoryKey, UserKey], tmp_path: Path) -> World:
    return World(keys, tmp_path, example_config())


def test_the_entry_ad_parses_back_with_its_key_staging_limits_and_attributes(world: World) -> None:
    summary = advertise_entry(world.deps, ENTRY)
    assert summary["status"] == "advertised"
    ad = world.entry_ad()
    assert ad.name == REQ_NAME
    assert ad.public_key.key_id == world.keyring.current.pub_key_id
    assert ad.public_key.pem == world.keyring.current.public_pem.decode()
    assert (ad.web.descript_file, ad.web.entry_descript_file) == (
        "description.aaaa.cfg",
        "description.bbbb.cfg",
    )
    assert ad.web.url == world.deps.config.factory.web_url
    assert (ad.limits.per_entry.max_idle, ad.limits.per_entry.max_glideins) == (200, 1000)
    assert ad.auth_method == "scitoken"
    assert ad.attributes["GLIDEIN_Site"] == "SIM_SITE"
    assert ad.attributes["GLIDEIN_TrustDomain"] == "grid"
    assert ad.attributes["GLIDEIN_GridType"] == "condor"
    assert not ad.in_downtime
    [attrs] = world.ads(AdType.GLIDEFACTORY)
    assert attrs["UpdateSequenceNumber"] == int(world.now * 1000)


def test_sequence_numbers_grow_from_one_advertisement_to_the_next(world: World) -> None:
    advertise_entry(world.deps, ENTRY)
    [first] = world.ads(AdType.GLIDEFACTORY)
    world.now += 0.5
    advertise_entry(world.deps, ENTRY)
    [second] = world.ads(AdType.GLIDEFACTORY)
    assert int(second["UpdateSequenceNumber"]) > int(first["UpdateSequenceNumber"])


def test_client_ads_report_status_requested_and_the_entry_totals(world: World) -> None:
    world.request(world.cms, CMS, idle=5)
    world.cycle("run-1")
    world.backend.run(world.backend.query()[0].job_id)
    find_work(world.deps, ENTRY, "run-2")
    summary = advertise_entry(world.deps, ENTRY)
    assert summary["clients"] == [CMS_CLIENT]
    client = world.client_ads()[CMS_CLIENT]
    assert client.name == f"{REQ_NAME}@{CMS_CLIENT}"
    status = {k: client.monitor[f"Status{k}"] for k in ("Idle", "Running", "RunningCores")}
    assert status == {"Idle": 4, "Running": 1, "RunningCores": 4}  # GLIDEIN_CPUS is 4
    assert (client.monitor["RequestedIdle"], client.monitor["RequestedMaxGlideins"]) == (5, 20)
    assert client.monitor["TotalStatusRunning"] == 1
    assert client.attributes["GLIDEIN_Site"] == "SIM_SITE"
    entry = world.entry_ad()
    assert (entry.monitor["TotalStatusIdle"], entry.monitor["TotalRequestedIdle"]) == (4, 5)


def test_a_limit_that_held_back_submissions_is_reported_to_the_client(
    keys: tuple[FactoryKey, UserKey], tmp_path: Path
) -> None:
    config = config_with(SIM_LIMITS, SIM_LIMITS.replace("max_idle: 200", "max_idle: 4"))
    world = World(keys, tmp_path, config)
    world.request(world.cms, CMS, idle=10)
    world.cycle("run-1")
    advertise_entry(world.deps, ENTRY)
    flags = world.client_ads()[CMS_CLIENT].limits_triggered
    assert flags == {LimitTriggered(FactoryLimit.IDLE_GLIDEINS_PER_ENTRY, 4, 4)}
    [attrs] = world.ads(AdType.GLIDEFACTORY_CLIENT)
    assert attrs["GlideinMonitorStatus_GlideFactoryLimitIdleGlideinsPerEntry"] == "count=4, limit=4"


def test_a_class_limit_is_reported_to_that_class_only(
    keys: tuple[FactoryKey, UserKey], tmp_path: Path
) -> None:
    per_class = f"{SIM_LIMITS}\n      default_per_frontend: {{max_idle: 3}}"
    world = World(keys, tmp_path, config_with(SIM_LIMITS, per_class))
    world.request(world.cms, CMS, idle=10)
    world.request(world.dune, DUNE, idle=1)
    world.cycle("run-1")
    advertise_entry(world.deps, ENTRY)
    ads = world.client_ads()
    assert ads[CMS_CLIENT].limits_triggered == {
        LimitTriggered(FactoryLimit.IDLE_PER_CLASS, 3, 3, "cms_frontend:production")
    }
    assert ads[DUNE_CLIENT].limits_triggered == frozenset()


def test_limits_are_those_of_the_latest_pass_not_remembered(
    keys: tuple[FactoryKey, UserKey], tmp_path: Path
) -> None:
    config = config_with(SIM_LIMITS, SIM_LIMITS.replace("max_idle: 200", "max_idle: 4"))
    world = World(keys, tmp_path, config)
    world.request(world.cms, CMS, idle=2)
    world.request(world.dune, DUNE, idle=2)
    world.cycle("run-1")  # 4 idle: the entry limit is reached
    world.hub.handle(DUNE).invalidate(AdType.GLIDECLIENT, "true")
    for glidein in world.backend.query():
        world.backend.run(glidein.job_id)
    world.now += world.deps.config.factory.loop_delay  # DUNE's decision is still recent
    world.cycle("run-2")  # CMS gets 2 more idle: 2 of 4
    advertise_entry(world.deps, ENTRY)
    ads = world.client_ads()
    assert set(ads) == {CMS_CLIENT, DUNE_CLIENT}
    assert [ad.limits_triggered for ad in ads.values()] == [frozenset(), frozenset()]


def test_an_entry_in_downtime_says_so_with_the_comment(world: World) -> None:
    world.downtimes = parse_downtimes(f"1970-01-01T00:00:00 None {ENTRY} # CE moves\n", "test")
    summary = advertise_entry(world.deps, ENTRY)
    ad = world.entry_ad()
    assert summary["in_downtime"] and ad.in_downtime
    assert ad.downtime_comment == "CE moves"


def test_a_client_whose_request_disappeared_and_has_no_glideins_loses_its_ad(
    world: World,
) -> None:
    world.request(world.cms, CMS, idle=2)
    world.request(world.dune, DUNE, idle=0)
    find_work(world.deps, ENTRY, "run-1")  # nothing submitted: no glideins yet
    advertise_entry(world.deps, ENTRY)
    assert set(world.client_ads()) == {CMS_CLIENT, DUNE_CLIENT}
    world.hub.handle(DUNE).invalidate(AdType.GLIDECLIENT, "true")
    world.now += LIVE_DECISION_LOOPS * world.deps.config.factory.loop_delay + 1
    find_work(world.deps, ENTRY, "run-2")
    summary = advertise_entry(world.deps, ENTRY)
    assert summary["invalidated_clients"] == [DUNE_CLIENT]
    assert set(world.client_ads()) == {CMS_CLIENT}


def test_a_client_without_a_request_keeps_its_ad_while_it_has_glideins(world: World) -> None:
    world.request(world.cms, CMS, idle=2)
    world.cycle("run-1")
    world.hub.handle(CMS).invalidate(AdType.GLIDECLIENT, "true")
    world.now += LIVE_DECISION_LOOPS * world.deps.config.factory.loop_delay + 1
    find_work(world.deps, ENTRY, "run-2")
    advertise_entry(world.deps, ENTRY)
    client = world.client_ads()[CMS_CLIENT]
    assert (client.monitor["StatusIdle"], client.monitor["RequestedIdle"]) == (2, 0)


def test_a_rejected_request_gets_no_client_ad(world: World) -> None:
    spoofed = world.cms.request(ENTRY, idle=3)
    world.hub.handle(DUNE).advertise(AdType.GLIDECLIENT, [spoofed])
    find_work(world.deps, ENTRY, "run-1")
    summary = advertise_entry(world.deps, ENTRY)
    assert summary["clients"] == []
    assert world.ads(AdType.GLIDEFACTORY_CLIENT) == []


def test_without_a_staging_area_the_entry_is_not_advertised(world: World) -> None:
    world.staging = None
    summary = advertise_entry(world.deps, ENTRY)
    assert summary["status"] == "no_staging"
    assert world.ads(AdType.GLIDEFACTORY) == []


def test_a_disabled_entry_has_its_ads_withdrawn(
    keys: tuple[FactoryKey, UserKey], world: World
) -> None:
    world.request(world.cms, CMS, idle=2)
    world.cycle("run-1")
    advertise_entry(world.deps, ENTRY)
    disabled = config_with("  simulated_site:\n", "  simulated_site:\n    enabled: false\n")
    summary = advertise_entry(dataclasses.replace(world.deps, config=disabled), ENTRY)
    assert (summary["status"], summary["invalidated"]) == ("disabled", 2)
    assert world.ads(AdType.GLIDEFACTORY) == world.ads(AdType.GLIDEFACTORY_CLIENT) == []


def test_the_global_ad_parses_back_with_the_current_key(world: World) -> None:
    summary = advertise_global(world.deps, daemon_start_time=999)
    [attrs] = world.ads(AdType.GLIDEFACTORY_GLOBAL)
    ad = FactoryGlobalAd.from_attrs(attrs)
    assert ad.name == summary["name"] == "gfactory_instance@demo_factory"
    assert ad.public_key.key_id == summary["pub_key_id"] == world.keyring.current.pub_key_id
    assert ad.daemon_start_time == 999


def test_after_a_key_rotation_the_global_ad_carries_the_new_key(world: World) -> None:
    old = world.keyring.current
    new = FactoryKey.generate()
    world.keyring = world.keyring.rotate(new, world.now, grace=900)
    summary = advertise_global(world.deps)
    [attrs] = world.ads(AdType.GLIDEFACTORY_GLOBAL)
    assert FactoryGlobalAd.from_attrs(attrs).public_key.key_id == new.pub_key_id
    assert summary["old_pub_key_ids"] == [old.pub_key_id]
    advertise_entry(world.deps, ENTRY)
    assert world.entry_ad().public_key.key_id == new.pub_key_id


def test_after_a_reload_the_ads_of_an_entry_gone_from_the_config_are_withdrawn(
    world: World,
) -> None:
    world.request(world.cms, CMS, idle=2)
    world.cycle("run-1")
    advertise_entry(world.deps, ENTRY)
    advertise_global(world.deps)
    assert world.ads(AdType.GLIDEFACTORY) != []
    reloaded = config_with("  simulated_site:\n", "  simulated_site:\n    enabled: false\n")
    summary = advertise_global(dataclasses.replace(world.deps, config=reloaded))
    assert summary["withdrawn_entries"] == [ENTRY]
    assert world.ads(AdType.GLIDEFACTORY) == world.ads(AdType.GLIDEFACTORY_CLIENT) == []
    assert len(world.ads(AdType.GLIDEFACTORY_GLOBAL)) == 1
