"""Contract of the Dashboard and ChangeFeed ports: the Redis dashboard and its memory twin."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from gwms_tasks.adapters.memory_dashboard import DEFAULT_LIFETIME
from gwms_tasks.adapters.redis_dashboard import RedisDashboard
from gwms_tasks.core.classad_text import AdExpr, AdValue
from gwms_tasks.errors import PermanentError
from gwms_tasks.keys import Keys
from gwms_tasks.ports import AuthenticatedAd
from tests.contract.conftest import Backend, DashboardWorld

FACTORY_AD: dict[str, AdValue] = {
    "Name": "ce1@gfactory_instance@fact",
    "EntryName": "ce1",
    "GLIDEIN_CPUS": 8,
}


def _request(name: str, idle: int) -> dict[str, int | str]:
    return {"Name": name, "ClientName": "fe1.main", "ReqIdleGlideins": idle}


def _names(ads: list[AuthenticatedAd]) -> list[str]:
    return [str(ad.attrs["Name"]) for ad in ads]


# ---------------------------------------------------------------------------- advertise / query


def test_advertised_ad_is_read_back_typed_and_with_its_writers_identity(
    world: DashboardWorld,
) -> None:
    world.handle("factory").advertise("glidefactory", [FACTORY_AD])

    [ad] = world.handle("fe1").query("glidefactory")

    assert ad.identity == "factory"
    assert dict(ad.attrs) == {
        **FACTORY_AD,
        "MyType": "glidefactory",
        "GlideinMyType": "glidefactory",
        "AuthenticatedIdentity": "factory",
    }


def test_values_keep_their_types_and_expressions_stay_expressions(world: DashboardWorld) -> None:
    ad: dict[str, AdValue] = {
        "Name": "n",
        "I": 3,
        "B": True,
        "F": 0.5,
        "S": 'say "hi"\n',
        "E": AdExpr("I > 2"),
    }
    world.handle("factory").advertise("glidefactory", [ad])

    [read] = world.handle("factory").query("glidefactory", "E && B")

    assert {k: read.attrs[k] for k in ad} == ad
    assert [type(read.attrs[k]) for k in ad] == [str, int, bool, float, str, AdExpr]


def test_advertising_again_under_the_same_name_replaces_the_ad(world: DashboardWorld) -> None:
    frontend = world.handle("fe1")
    frontend.advertise("glideclient", [_request("r1", 5), _request("r2", 1)])

    frontend.advertise("glideclient", [_request("r1", 9)])

    ads = world.handle("factory").query("glideclient")
    assert [(a.attrs["Name"], a.attrs["ReqIdleGlideins"]) for a in ads] == [("r1", 9), ("r2", 1)]


def test_ad_expires_after_its_lifetime_unless_advertised_again(
    backend: Backend, world: DashboardWorld
) -> None:
    frontend = world.handle("fe1")
    frontend.advertise("glideclient", [_request("r1", 5), _request("r2", 5)])
    backend.clock.advance(DEFAULT_LIFETIME - 100)
    frontend.advertise("glideclient", [_request("r2", 5)])

    backend.clock.advance(101)

    assert _names(world.handle("factory").query("glideclient")) == ["r2"]


def test_each_writer_handle_gives_its_ads_its_own_lifetime(
    backend: Backend, world: DashboardWorld
) -> None:
    world.handle("fe1", lifetime=60).advertise("glideclient", [_request("short", 1)])
    world.handle("fe1", lifetime=600).advertise("glideclient", [_request("long", 1)])

    backend.clock.advance(61)

    assert _names(world.handle("factory").query("glideclient")) == ["long"]


def test_query_returns_only_the_asked_type_and_what_the_constraint_selects(
    world: DashboardWorld,
) -> None:
    frontend = world.handle("fe1")
    frontend.advertise("glideclient", [_request("r1", 5), _request("r2", 1)])
    frontend.advertise("glideclientglobal", [{"Name": "g@f@fe1.main", "ReqIdleGlideins": 7}])
    world.handle("factory").advertise("glidefactory", [FACTORY_AD])
    factory = world.handle("factory")

    assert _names(factory.query("glideclient")) == ["r1", "r2"]
    assert _names(factory.query("glideclient", "ReqIdleGlideins > 2")) == ["r1"]
    assert _names(factory.query("glideclientglobal", 'GlideinMyType =?= "glideclient"')) == []
    assert _names(factory.query("glideclient", 'GlideinMyType =?= "glideclient"')) == ["r1", "r2"]
    assert factory.query("glideresource") == []


def test_ads_of_several_writers_come_back_with_each_writers_identity(
    world: DashboardWorld,
) -> None:
    world.handle("fe2").advertise("glideclient", [_request("same", 2)])
    world.handle("fe1").advertise("glideclient", [_request("same", 1)])

    ads = world.handle("factory").query("glideclient")

    assert [(a.identity, a.attrs["ReqIdleGlideins"]) for a in ads] == [("fe1", 1), ("fe2", 2)]


def test_ad_claiming_to_be_the_factory_is_returned_with_its_real_writers_identity(
    world: DashboardWorld,
) -> None:
    spoof: dict[str, AdValue] = {
        **FACTORY_AD,
        "AuthenticatedIdentity": "factory",
        "authenticatedidentity": "factory",
    }
    world.handle("fe1").advertise("glidefactory", [spoof])
    reader = world.handle("fe2")

    [ad] = reader.query("glidefactory")

    assert ad.identity == "fe1"
    assert ad.attrs["AuthenticatedIdentity"] == "fe1"
    assert "authenticatedidentity" not in ad.attrs
    assert reader.query("glidefactory", 'AuthenticatedIdentity == "factory"') == []
    assert len(reader.query("glidefactory", 'AuthenticatedIdentity == "fe1"')) == 1


def test_ad_cannot_retype_itself_by_claiming_another_mytype(world: DashboardWorld) -> None:
    ad: dict[str, AdValue] = {
        **_request("r1", 1),
        "MyType": "glidefactory",
        "glideinmytype": "glidefactory",
    }
    world.handle("fe1").advertise("glideclient", [ad])

    [read] = world.handle("factory").query("glideclient")

    assert (read.attrs["MyType"], read.attrs["GlideinMyType"]) == ("glideclient", "glideclient")
    assert "glideinmytype" not in read.attrs


@pytest.mark.parametrize(
    ("bad_ad", "message"),
    [
        ({"ReqIdleGlideins": 1}, "no Name"),
        ({"Name": "r1", "Bad Name": 1}, "invalid attribute name"),
        ({"Name": "r1", "X": [1, 2]}, "list"),
        ({"Name": "r1", "X": "nul\x00"}, "NUL"),
        ({"Name": "r1", "x": 1, "X": 2}, "differ only in case"),
    ],
)
def test_malformed_ad_is_refused_and_nothing_of_the_batch_is_stored(
    world: DashboardWorld, bad_ad: dict[str, object], message: str
) -> None:
    frontend = world.handle("fe1")

    with pytest.raises(PermanentError, match=message):
        frontend.advertise("glideclient", [_request("ok", 1), bad_ad])  # type: ignore[list-item]

    assert frontend.query("glideclient") == []


def test_bad_constraint_is_refused_with_a_clear_error(world: DashboardWorld) -> None:
    with pytest.raises(PermanentError, match="not a valid ClassAd expression"):
        world.handle("factory").query("glideclient", "ReqIdleGlideins >")


@pytest.mark.parametrize("writer", ["a:b", "*", "", "fe 1"])
def test_writer_name_that_cannot_be_a_key_segment_is_refused(
    world: DashboardWorld, writer: str
) -> None:
    with pytest.raises(PermanentError, match="dashboard writer"):
        world.handle(writer)


def test_ad_type_that_cannot_be_a_key_segment_is_refused(world: DashboardWorld) -> None:
    with pytest.raises(PermanentError, match="ad type"):
        world.handle("fe1").query("glide*")


# ---------------------------------------------------------------------------- invalidate


def test_invalidate_withdraws_only_this_writers_matching_ads(world: DashboardWorld) -> None:
    fe1, fe2 = world.handle("fe1"), world.handle("fe2")
    fe1.advertise("glideclient", [_request("r1", 5), _request("r2", 1)])
    fe2.advertise("glideclient", [_request("r1", 5)])

    assert fe1.invalidate("glideclient", "ReqIdleGlideins > 2") == 1

    ads = world.handle("factory").query("glideclient")
    assert [(a.identity, a.attrs["Name"]) for a in ads] == [("fe1", "r2"), ("fe2", "r1")]
    assert fe1.invalidate("glideclient", "ReqIdleGlideins > 2") == 0


def test_invalidate_does_not_count_expired_ads(backend: Backend, world: DashboardWorld) -> None:
    frontend = world.handle("fe1")
    frontend.advertise("glideclient", [_request("r1", 5)])
    backend.clock.advance(DEFAULT_LIFETIME + 1)

    assert frontend.invalidate("glideclient", "true") == 0


# ---------------------------------------------------------------------------- change feed


def test_change_feed_delivers_changed_request_names_within_a_second(
    world: DashboardWorld,
) -> None:
    feed = world.feed()
    frontend = world.handle("fe1")
    timer = threading.Timer(0.1, frontend.advertise, ("glideclient", [_request("r1", 1)]))
    started = time.monotonic()
    timer.start()

    names = feed.wait_for_changes(timeout=1.0)

    timer.join()
    assert names == ["r1"]
    assert time.monotonic() - started < 1.0


def test_change_feed_collects_every_name_announced_before_it_is_asked(
    world: DashboardWorld,
) -> None:
    feed = world.feed()
    frontend = world.handle("fe1")
    frontend.advertise("glideclient", [_request("r2", 1), _request("r1", 1)])
    frontend.advertise("glideclientglobal", [{"Name": "g@f@fe1.main"}])
    frontend.advertise("glideclient", [_request("r1", 3)])
    time.sleep(0.1)  # let Redis deliver all three notices

    assert sorted(feed.wait_for_changes(timeout=1.0)) == ["g@f@fe1.main", "r1", "r2"]
    assert feed.wait_for_changes(timeout=0.1) == []


def test_change_feed_reports_invalidated_requests(world: DashboardWorld) -> None:
    frontend = world.handle("fe1")
    frontend.advertise("glideclient", [_request("r1", 1)])
    feed = world.feed()

    frontend.invalidate("glideclient", "true")

    assert feed.wait_for_changes(timeout=1.0) == ["r1"]


def test_change_feed_ignores_ads_that_are_not_requests(world: DashboardWorld) -> None:
    feed = world.feed()

    world.handle("factory").advertise("glidefactory", [FACTORY_AD])

    assert feed.wait_for_changes(timeout=0.3) == []


def test_change_feed_for_every_type_hears_factory_ads_too(world: DashboardWorld) -> None:
    feed = world.feed(ad_types=None)

    world.handle("factory").advertise("glidefactory", [FACTORY_AD])

    assert feed.wait_for_changes(timeout=1.0) == [FACTORY_AD["Name"]]


# ---------------------------------------------------------------------------- redis specifics


def test_redis_ads_hash_expires_with_its_newest_ad(redis_client: redis.Redis) -> None:
    keys = Keys("gwmstest")
    RedisDashboard(redis_client, keys, "fe1", lifetime=600).advertise(
        "glideclient", [_request("r1", 1)]
    )
    RedisDashboard(redis_client, keys, "fe1", lifetime=60).advertise(
        "glideclient", [_request("r2", 1)]
    )

    assert 500 < redis_client.ttl(keys.dashboard_ads("fe1", "glideclient")) <= 600


def test_malformed_record_written_behind_the_adapters_back_is_skipped(
    redis_client: redis.Redis,
) -> None:
    keys = Keys("gwmstest")
    factory = RedisDashboard(redis_client, keys, "factory")
    RedisDashboard(redis_client, keys, "fe1").advertise("glideclient", [_request("good", 1)])
    redis_client.hset(keys.dashboard_ads("fe2", "glideclient"), "junk", "{not json")
    redis_client.hset(keys.dashboard_ads("fe2", "glideclient"), "odd", '{"attrs": {"X": [1]}}')
    redis_client.hset("gwmstest:dash:w:fe1:extra:glideclient", "x", '{"attrs": {}}')

    assert [(a.identity, a.attrs["Name"]) for a in factory.query("glideclient")] == [
        ("fe1", "good")
    ]


def test_record_written_behind_the_adapters_back_cannot_claim_another_identity(
    redis_client: redis.Redis,
) -> None:
    keys = Keys("gwmstest")
    forged = '{"attrs": {"Name": "ce1@g@f", "authenticatedIDENTITY": "factory"}, '
    forged += '"exprs": [], "expires": 1e12}'
    redis_client.hset(keys.dashboard_ads("fe1", "glidefactory"), "ce1@g@f", forged)

    [ad] = RedisDashboard(redis_client, keys, "fe2").query("glidefactory")

    assert ad.identity == "fe1"
    assert {k: v for k, v in ad.attrs.items() if k.lower() == "authenticatedidentity"} == {
        "AuthenticatedIdentity": "fe1"
    }
