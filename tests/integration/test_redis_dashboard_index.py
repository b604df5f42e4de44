"""The request index of the Redis dashboard answers find-work's query as a full read would.

Each story compares the indexed query (``ReqGlidein =?= "<target>"``, the form find-work sends)
with the same constraint spelled so that the index cannot take it, which reads every ad.
"""

from __future__ import annotations

import pytest
import redis

from gwms_tasks.adapters.memory_dashboard import ad_record
from gwms_tasks.adapters.redis_admin import add_frontend_user
from gwms_tasks.adapters.redis_dashboard import RedisDashboard
from gwms_tasks.adapters.redis_dashboard_index import BUCKETS, bucket_of, query_target
from gwms_tasks.core.ads import AdType
from gwms_tasks.core.classad_text import AdExpr, AdValue, string_literal
from gwms_tasks.core.crypto import FactoryKey
from gwms_tasks.keys import Keys
from gwms_tasks.services.find_work import find_work
from gwms_tasks.services.key_cache import KeyCodeCache
from tests.builders import FrontendSide
from tests.integration.test_find_work_key_cache import ENTRIES, factory_deps

KEYS = Keys("idxtest")
GC = AdType.GLIDECLIENT
T1, T2, T3 = "ce1@gi@fact", "ce2@gi@fact", "ce3@gi@fact"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _ad(name: str, target: AdValue, attr: str = "ReqGlidein") -> dict[str, AdValue]:
    return {"Name": name, attr: target, "ReqIdleGlideins": 1}


def _dash(client: redis.Redis, writer: str, clock: Clock | None = None) -> RedisDashboard:
    return RedisDashboard(client, KEYS, writer, lifetime=600, clock=clock or Clock())


def _both(dash: RedisDashboard, target: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(indexed answer, full-read answer) as sorted (writer, Name) pairs."""
    indexed = f"ReqGlidein =?= {string_literal(target)}"
    full = f"(ReqGlidein =?= {string_literal(target)}) && true"
    assert query_target(GC, indexed) == target and query_target(GC, full) is None
    return tuple(  # type: ignore[return-value]
        sorted((str(ad.identity), str(ad.attrs["Name"])) for ad in dash.query(GC, constraint))
        for constraint in (indexed, full)
    )


def test_an_entry_query_returns_what_a_full_read_returns(redis_client: redis.Redis) -> None:
    _dash(redis_client, "fe1").advertise(
        GC,
        [_ad("a1", T1), _ad("a2", T2), _ad("a3", T1, attr="reqglidein"), _ad("a4", 7)],
    )
    _dash(redis_client, "fe2").advertise(
        GC, [_ad("b1", T1), _ad("b2", AdExpr('strcat("ce", "2@gi@fact")')), _ad("b3", T3)]
    )
    factory = _dash(redis_client, "factory")

    answers = {target: _both(factory, target) for target in (T1, T2, T3, "ce9@gi@fact")}

    assert {t: indexed for t, (indexed, _) in answers.items()} == {
        T1: [("fe1", "a1"), ("fe1", "a3"), ("fe2", "b1")],
        T2: [("fe1", "a2"), ("fe2", "b2")],
        T3: [("fe2", "b3")],
        "ce9@gi@fact": [],
    }
    assert all(indexed == full for indexed, full in answers.values())


def test_an_ad_advertised_again_for_another_entry_leaves_the_first(
    redis_client: redis.Redis,
) -> None:
    frontend, factory = _dash(redis_client, "fe1"), _dash(redis_client, "factory")
    frontend.advertise(GC, [_ad("a1", T1), _ad("a2", T1)])

    frontend.advertise(GC, [_ad("a1", T2)])

    assert _both(factory, T1) == ([("fe1", "a2")], [("fe1", "a2")])
    assert _both(factory, T2) == ([("fe1", "a1")], [("fe1", "a1")])


def test_invalidated_ads_leave_the_index(redis_client: redis.Redis) -> None:
    frontend, factory = _dash(redis_client, "fe1"), _dash(redis_client, "factory")
    frontend.advertise(GC, [_ad("a1", T1), _ad("a2", T1), _ad("e1", AdExpr('strcat("x", "y")'))])

    assert frontend.invalidate(GC, 'Name =!= "a2"') == 2

    assert _both(factory, T1) == ([("fe1", "a2")], [("fe1", "a2")])
    bucket = KEYS.dashboard_target_index("fe1", GC, bucket_of(T1))
    assert set(redis_client.hgetall(bucket)) == {b"a2"}
    assert redis_client.hgetall(KEYS.dashboard_expr_index("fe1", GC)) == {}


def test_expired_ads_are_not_returned(redis_client: redis.Redis) -> None:
    clock = Clock()
    _dash(redis_client, "fe1", clock).advertise(GC, [_ad("a1", T1)])
    factory = _dash(redis_client, "factory", clock)
    assert _both(factory, T1) == ([("fe1", "a1")], [("fe1", "a1")])

    clock.now += 601

    assert _both(factory, T1) == ([], [])


def test_a_writer_without_the_index_is_read_in_full(redis_client: redis.Redis) -> None:
    # An older frontend (or one writing past the adapter) keeps no index: its ads still count.
    redis_client.hset(KEYS.dashboard_ads("old", GC), "o1", ad_record(_ad("o1", T1), 1e12))
    _dash(redis_client, "fe1").advertise(GC, [_ad("a1", T1)])

    indexed, full = _both(_dash(redis_client, "factory"), T1)

    assert indexed == full == [("fe1", "a1"), ("old", "o1")]


def test_the_index_adds_a_few_keys_per_writer_whatever_the_number_of_entries(
    redis_client: redis.Redis,
) -> None:
    targets = [f"ce{i}@gi@fact" for i in range(300)]
    _dash(redis_client, "fe1").advertise(GC, [_ad(f"r{i}", t) for i, t in enumerate(targets)])

    written = list(redis_client.scan_iter(match=KEYS.dashboard_writer_prefix("fe1") + "*"))

    assert len(written) <= 1 + BUCKETS + 1  # the ads, the buckets, the marker
    factory = _dash(redis_client, "factory")
    for i in (0, 150, 299):
        assert _both(factory, targets[i]) == ([("fe1", f"r{i}")], [("fe1", f"r{i}")])


def test_a_frontend_acl_user_reads_its_own_requests_through_the_index(
    redis_client: redis.Redis,
) -> None:
    clients = {
        name: redis.Redis.from_url(add_frontend_user(redis_client, KEYS, name))
        for name in ("fe1", "fe2")
    }
    try:
        _dash(clients["fe1"], "fe1").advertise(GC, [_ad("a1", T1)])
        _dash(clients["fe2"], "fe2").advertise(GC, [_ad("b1", T1)])

        assert _both(_dash(clients["fe1"], "fe1"), T1) == ([("fe1", "a1")], [("fe1", "a1")])
        assert _both(_dash(redis_client, "factory"), T1)[0] == [("fe1", "a1"), ("fe2", "b1")]
    finally:
        for client in clients.values():
            client.close()


def test_find_work_reads_its_entry_through_the_index(redis_client: redis.Redis) -> None:
    factory_key = FactoryKey.generate()
    frontend = FrontendSide(factory_key)
    writer = "vofrontend_cms@frontend.cms.example.org"
    _dash(redis_client, writer).advertise(GC, [frontend.request(e, idle=2) for e in ENTRIES])
    deps = factory_deps(factory_key, _dash(redis_client, "factory"), KeyCodeCache())
    redis_client.config_resetstat()

    result = find_work(deps, ENTRIES[0], "run-1")

    assert (result.requests, result.rejected, result.submitted) == (1, 0, 2)
    stats = redis_client.info("commandstats")
    # Only the index path reads the index marker with HGET; a full read uses HGETALL alone.
    assert stats["cmdstat_hget"]["calls"] >= 1


@pytest.mark.parametrize(
    ("ad_type", "constraint", "target"),
    [
        (GC, 'ReqGlidein =?= "ce1@gi@fact"', "ce1@gi@fact"),
        (GC, ' reqglidein=?="e_1.x-y@g@f" ', "e_1.x-y@g@f"),
        (GC, 'ReqGlidein == "ce1@gi@fact"', None),  # == ignores case: not what the index holds
        (GC, 'ReqGlidein =?= "with \\"quote\\""', None),
        (GC, 'ReqGlidein =?= "a" || true', None),
        (GC, None, None),
        (AdType.GLIDEFACTORY_CLIENT, 'ReqGlidein =?= "ce1@gi@fact"', None),
    ],
)
def test_only_find_works_exact_query_takes_the_index(
    ad_type: str, constraint: str | None, target: str | None
) -> None:
    assert query_target(ad_type, constraint) == target
