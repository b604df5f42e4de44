"""The Redis dashboard with real ACL users: identity is the ACL user, enforced by Redis itself.

Choice tested here: a frontend reads the factory's ads and its own, never another frontend's
(least privilege; glideinWMS collectors let every reader see everything).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from gwms_tasks.adapters.redis_admin import (
    add_frontend_user,
    check_persistence,
    remove_frontend_user,
)
from gwms_tasks.adapters.redis_dashboard import RedisChangeFeed, RedisDashboard
from gwms_tasks.embedded_redis import start_redis
from gwms_tasks.errors import PermanentError
from gwms_tasks.keys import Keys

pytestmark = pytest.mark.redis

KEYS = Keys("gwmsacl")
FACTORY_AD = {"Name": "ce1@gfactory_instance@fact", "EntryName": "ce1"}


def _request(name: str) -> dict[str, int | str]:
    return {"Name": name, "ReqIdleGlideins": 4}


@dataclass
class Site:
    """The factory (admin connection) and two frontends connected as their own ACL users."""

    admin: redis.Redis
    factory: RedisDashboard
    fe_a: redis.Redis
    fe_b: redis.Redis
    url_a: str


@pytest.fixture
def site(redis_client: redis.Redis) -> Iterator[Site]:
    url_a = add_frontend_user(redis_client, KEYS, "fe_a")
    url_b = add_frontend_user(redis_client, KEYS, "fe_b")
    fe_a, fe_b = redis.Redis.from_url(url_a), redis.Redis.from_url(url_b)
    yield Site(redis_client, RedisDashboard(redis_client, KEYS, "factory"), fe_a, fe_b, url_a)
    fe_a.close()
    fe_b.close()


def _ads_of(client: redis.Redis, writer: str, ad_type: str) -> dict[bytes | str, bytes | str]:
    return client.hgetall(KEYS.dashboard_ads(writer, ad_type))


# ---------------------------------------------------------------------------- spoofing


@pytest.mark.parametrize("victim", ["fe_b", "factory"])
def test_frontend_writing_under_another_writers_prefix_is_refused_by_redis(
    site: Site, victim: str
) -> None:
    impostor = RedisDashboard(site.fe_a, KEYS, victim)

    with pytest.raises(PermanentError, match="lacks this permission"):
        impostor.advertise("glideclient", [_request("forged")])

    assert _ads_of(site.admin, victim, "glideclient") == {}


def test_frontend_cannot_announce_on_another_writers_channel(site: Site) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError):
        site.fe_a.publish(KEYS.dashboard_channel("fe_b"), '{"type": "glideclient"}')


def test_frontend_ads_reach_the_factory_with_the_acl_identity(site: Site) -> None:
    RedisDashboard(site.fe_a, KEYS, "fe_a").advertise(
        "glideclient", [{**_request("r1"), "AuthenticatedIdentity": "fe_b"}]
    )
    RedisDashboard(site.fe_b, KEYS, "fe_b").advertise("glideclient", [_request("r2")])

    ads = site.factory.query("glideclient")

    assert [(ad.identity, ad.attrs["Name"]) for ad in ads] == [("fe_a", "r1"), ("fe_b", "r2")]
    assert [ad.attrs["AuthenticatedIdentity"] for ad in ads] == ["fe_a", "fe_b"]


def test_factory_hears_a_frontends_request_through_the_change_feed(site: Site) -> None:
    feed = RedisChangeFeed(site.admin, KEYS)
    try:
        RedisDashboard(site.fe_a, KEYS, "fe_a").advertise("glideclient", [_request("r1")])

        assert feed.wait_for_changes(timeout=1.0) == ["r1"]
    finally:
        feed.close()


# ---------------------------------------------------------------------------- reading


def test_frontend_reads_the_factory_ads_with_the_factory_identity(site: Site) -> None:
    site.factory.advertise("glidefactory", [FACTORY_AD])

    [ad] = RedisDashboard(site.fe_a, KEYS, "fe_a").query("glidefactory")

    assert (ad.identity, ad.attrs["Name"]) == ("factory", FACTORY_AD["Name"])


def test_frontend_cannot_read_another_frontends_ads(site: Site) -> None:
    RedisDashboard(site.fe_b, KEYS, "fe_b").advertise("glideclient", [_request("b1")])
    frontend_a = RedisDashboard(site.fe_a, KEYS, "fe_a")
    frontend_a.advertise("glideclient", [_request("a1")])

    with pytest.raises(redis.exceptions.NoPermissionError):
        _ads_of(site.fe_a, "fe_b", "glideclient")
    assert [ad.attrs["Name"] for ad in frontend_a.query("glideclient")] == ["a1"]


def test_frontend_may_not_modify_the_factory_ads_it_can_read(site: Site) -> None:
    site.factory.advertise("glidefactory", [FACTORY_AD])

    with pytest.raises(redis.exceptions.NoPermissionError):
        site.fe_a.hdel(KEYS.dashboard_ads("factory", "glidefactory"), FACTORY_AD["Name"])


@pytest.mark.parametrize(
    "command",
    [("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("ACL", "LIST"), ("DEL", "gwmsacl:x")],
)
def test_frontend_cannot_run_commands_outside_its_dashboard_role(
    site: Site, command: tuple[str, ...]
) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError):
        site.fe_a.execute_command(*command)  # type: ignore[no-untyped-call]


# ---------------------------------------------------------------------------- user lifecycle


def test_given_password_is_url_encoded_and_works(redis_client: redis.Redis) -> None:
    url = add_frontend_user(redis_client, KEYS, "fe.c", password="p@ss:w/rd%1")

    assert url.startswith("redis://fe.c:p%40ss%3Aw%2Frd%251@127.0.0.1:")
    client = redis.Redis.from_url(url)
    assert client.ping()
    client.close()


def test_adding_a_frontend_again_replaces_its_password(site: Site) -> None:
    add_frontend_user(site.admin, KEYS, "fe_a")

    stale = redis.Redis.from_url(site.url_a)
    with pytest.raises(redis.exceptions.AuthenticationError):
        stale.ping()
    stale.close()


def test_removed_frontend_loses_its_user_and_its_ads(site: Site) -> None:
    RedisDashboard(site.fe_a, KEYS, "fe_a").advertise("glideclient", [_request("a1")])

    assert remove_frontend_user(site.admin, KEYS, "fe_a")

    assert site.factory.query("glideclient") == []
    with pytest.raises(PermanentError, match="credentials"):
        RedisDashboard(site.fe_a, KEYS, "fe_a").advertise("glideclient", [_request("a2")])
    assert not remove_frontend_user(site.admin, KEYS, "fe_a")


@pytest.mark.parametrize("name", ["default", "factory", "fe:x", "fe*"])
def test_reserved_or_unsafe_frontend_names_are_refused(
    redis_client: redis.Redis, name: str
) -> None:
    with pytest.raises(PermanentError):
        add_frontend_user(redis_client, KEYS, name)


def test_adding_a_user_warns_when_redis_cannot_save_acl_users(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        add_frontend_user(redis_client, KEYS, "fe_d")

    assert "lost when Redis restarts" in caplog.text


# ---------------------------------------------------------------------------- persistence


def test_state_redis_with_aof_everysec_and_noeviction_passes_the_check(
    redis_client: redis.Redis,
) -> None:
    assert check_persistence(redis_client) == []


@pytest.mark.parametrize(
    ("setting", "unsafe", "safe"),
    [("maxmemory-policy", "allkeys-lru", "noeviction"), ("appendfsync", "no", "everysec")],
)
def test_unsafe_persistence_setting_is_reported(
    redis_client: redis.Redis, setting: str, unsafe: str, safe: str
) -> None:
    redis_client.config_set(setting, unsafe)
    try:
        [warning] = check_persistence(redis_client)
    finally:
        redis_client.config_set(setting, safe)

    assert warning.startswith(f"Redis {setting} is {unsafe!r}: ")


def test_persistence_check_says_so_when_config_get_is_refused(site: Site) -> None:
    [warning] = check_persistence(site.fe_a)

    assert warning.startswith("could not check the persistence settings")


def test_frontend_accounts_survive_a_restart_of_a_redis_with_an_acl_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_redis(directory=tmp_path / "redis", persist_acl=True)
    try:
        with caplog.at_level(logging.WARNING):
            url = add_frontend_user(server.client(), KEYS, "fe_kept")
        assert "lost when Redis restarts" not in caplog.text
        assert "fe_kept" in (tmp_path / "redis" / "users.acl").read_text()
    finally:
        server.process.terminate()
        server.process.wait(10)
    again = start_redis(directory=tmp_path / "redis", persist_acl=True)
    try:
        port = url.rsplit(":", 1)[1].split("/")[0]
        assert redis.Redis.from_url(url.replace(port, str(again.port))).ping()
    finally:
        again.stop()
