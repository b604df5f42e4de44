"""Explanations: their JSON round trip, both stores (Redis as the frontend's ACL user, memory)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from gwms_tasks.adapters.redis_admin import add_frontend_user
from gwms_tasks.errors import PermanentError
from gwms_tasks.frontend.core_config import RemoveMode
from gwms_tasks.frontend.core_explain import CycleExplanation, CycleStatus, SkippedEntry, render
from gwms_tasks.frontend.core_factories import Ignored, IgnoreReason
from gwms_tasks.frontend.core_plan import (
    EntryRequest,
    GlideinCounts,
    IdleReason,
    MaxReason,
    RemoveReason,
)
from gwms_tasks.frontend.state import (
    ExplanationStore,
    MemoryExplanationStore,
    RedisExplanationStore,
)
from gwms_tasks.keys import Keys

KEYS = Keys("gwmsfe")
WRITER = "fe_cms"

REQUEST = EntryRequest(
    key="ce1@gfactory_instance@demo_factory",
    idle=12,
    max_glideins=15,
    remove_excess=RemoveMode.NO,
    remove_margin=0,
    idle_reason=IdleReason.RAMP_UP,
    max_reason=MaxReason.CURRENT_PLUS_NEW,
    remove_reason=RemoveReason.JOBS_WAITING,
    matched=40,
    unclaimed=1,
    wanted=39,
    new_glideins=10,
    glideins=GlideinCounts(idle=2, running=3, held=1),
    zero_demand_cycles=0,
    steps=("40 idle job(s) matched", "capped by ramp-up (2 idle + 10 new): 12"),
)
EXPLANATION = CycleExplanation(
    group="main",
    client_name="cms_frontend.main",
    at=1_795_000_000.0,
    status=CycleStatus.OK,
    cycle=7,
    idle_jobs=41,
    running_jobs=2,
    unmatched=1,
    unclaimed=1,
    glideins_total=5,
    budget=95,
    requests=(REQUEST,),
    skipped=(SkippedEntry("ce2@gfactory_instance@demo_factory", "no credential fits"),),
    ignored=(Ignored("glidefactory", "ce3@x@y", IgnoreReason.UNKNOWN_FACTORY, "not configured"),),
    notes=("credential p not used: empty",),
)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[ExplanationStore]:
    if request.param == "memory":
        yield MemoryExplanationStore()
        return
    admin: redis.Redis = request.getfixturevalue("redis_client")
    client = redis.Redis.from_url(add_frontend_user(admin, KEYS, WRITER))
    yield RedisExplanationStore(client, KEYS, WRITER)
    client.close()


def test_explanation_round_trips_through_the_store(store: ExplanationStore) -> None:
    assert store.load("main") is None

    store.save(EXPLANATION)
    store.save(CycleExplanation("other", "cms_frontend.other", 1.0, CycleStatus.NO_FACTORY))

    assert store.load("main") == EXPLANATION
    assert store.groups() == ["main", "other"]


def test_corrupt_stored_explanation_is_a_clear_error(redis_client: redis.Redis) -> None:
    client = redis.Redis.from_url(add_frontend_user(redis_client, KEYS, WRITER))
    store = RedisExplanationStore(client, KEYS, WRITER)
    redis_client.hset(KEYS.frontend_explanations(WRITER), "main", '{"group": "main"}')
    redis_client.hset(KEYS.frontend_explanations(WRITER), "bad", "{not json")

    with pytest.raises(PermanentError, match="not a stored frontend cycle explanation"):
        store.load("main")
    with pytest.raises(PermanentError, match="corrupt JSON"):
        store.load("bad")
    client.close()


def test_explanations_live_under_the_frontends_own_prefix() -> None:
    assert KEYS.frontend_explanations(WRITER).startswith(KEYS.dashboard_writer_prefix(WRITER))


def test_render_shows_numbers_reasons_and_steps() -> None:
    lines = render(EXPLANATION)

    assert (
        lines[0]
        == "group main (client cms_frontend.main), cycle of 2026-11-18 11:06:40 UTC (#7): ok"
    )
    assert (
        "  entry ce1@gfactory_instance@demo_factory: ReqIdleGlideins=12 (ramp_up) "
        "ReqMaxGlideins=15 (current_plus_new) ReqRemoveExcess=NO (jobs_waiting)"
    ) in lines
    assert "    glideins here: 2 idle, 3 running, 1 held" in lines
    assert "    - capped by ramp-up (2 idle + 10 new): 12" in lines
    assert "  entry ce2@gfactory_instance@demo_factory: no request: no credential fits" in lines
    assert "  glidefactory ad 'ce3@x@y' ignored (unknown_factory): not configured" in lines
    assert "  note: credential p not used: empty" in lines


def test_render_can_show_one_entry_only() -> None:
    text = "\n".join(render(EXPLANATION, entry="ce2"))

    assert "ce2@gfactory_instance@demo_factory: no request" in text
    assert "ReqIdleGlideins" not in text
