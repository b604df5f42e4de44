"""Shared fixtures: a private Redis per test session, flushed between tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import redis

from tests.redis_server import RedisServer, start_redis, under_ci


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port; skipped without the binary, except in CI."""
    if shutil.which("redis-server") is None:
        if under_ci():
            pytest.fail("redis-server is not installed, and CI=true requires it")
        pytest.skip("redis-server is not installed (run `make test` to install it)")
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of the private Redis, emptied before each test."""
    client = redis_server.client()
    _reset(client)
    yield redis_server.url
    _reset(client)


def _reset(client: redis.Redis) -> None:
    """Empty every database and drop the ACL users a test created."""
    client.flushall()
    for user in client.acl_users():
        name = user.decode() if isinstance(user, bytes) else str(user)
        if name != "default":
            client.acl_deluser(name)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
