"""Contract of the CredentialIndex, held by the Redis adapter and its memory twin alike."""

from __future__ import annotations

import dataclasses
import math

import pytest
import redis

from gwms_tasks.adapters.memory_credentials import MemoryCredentialIndex
from gwms_tasks.adapters.redis_credentials import RedisCredentialIndex
from gwms_tasks.errors import PermanentError
from gwms_tasks.keys import Keys
from gwms_tasks.ports import KnownCredential
from tests.contract.conftest import Backend

Index = RedisCredentialIndex | MemoryCredentialIndex
T0 = 1_700_000_000.0

PROXY = KnownCredential(
    client="cms_frontend.main",
    frontend="cms_frontend",
    security_class="production",
    username="fe_cms_pilot",
    credential_id="proxy1",
    kind="proxy",
    received_at=T0,
    expires_at=T0 + 86400,
    fingerprint="0123456789abcdef",
)
TOKEN = dataclasses.replace(
    PROXY, credential_id="tok1", kind="scitoken", expires_at=None, fingerprint="fedcba9876543210"
)
DUNE = dataclasses.replace(
    PROXY,
    client="dune_frontend.main",
    frontend="dune_frontend",
    security_class="main",
    username="fe_dune",
)


@pytest.fixture
def index(backend: Backend) -> Index:
    if backend.client is None:
        return MemoryCredentialIndex()
    return RedisCredentialIndex(backend.client, backend.keys)


def test_an_empty_index_lists_nothing(index: Index) -> None:
    assert index.list() == []
    assert index.list("cms_frontend") == []


def test_a_credential_put_is_listed_back_equal(index: Index) -> None:
    index.put(PROXY)
    index.put(TOKEN)
    assert index.list() == [PROXY, TOKEN]


def test_putting_the_same_client_and_id_again_replaces_the_record(index: Index) -> None:
    index.put(PROXY)
    newer = dataclasses.replace(PROXY, received_at=T0 + 60, fingerprint="1111111111111111")
    index.put(newer)
    assert index.list() == [newer]


def test_the_same_id_of_two_clients_is_two_records(index: Index) -> None:
    index.put(PROXY)
    index.put(DUNE)
    assert len(index.list()) == 2


def test_listing_by_frontend_shows_only_that_frontends_credentials(index: Index) -> None:
    for credential in (DUNE, TOKEN, PROXY):
        index.put(credential)
    assert index.list("cms_frontend") == [PROXY, TOKEN]
    assert index.list("dune_frontend") == [DUNE]
    assert index.list("nobody") == []


def test_list_is_ordered_by_frontend_client_and_id(index: Index) -> None:
    for credential in (TOKEN, DUNE, PROXY):
        index.put(credential)
    assert index.list() == [PROXY, TOKEN, DUNE]


def test_a_listed_record_is_a_copy_the_caller_cannot_change_the_index_through(
    index: Index,
) -> None:
    index.put(PROXY)
    [listed] = index.list()
    assert listed == PROXY and listed is not PROXY


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"client": ""}, "client"),
        ({"credential_id": ""}, "credential_id"),
        ({"username": 7}, "username"),
        ({"received_at": math.nan}, "received_at"),
        ({"expires_at": math.inf}, "expires_at"),
        ({"received_at": True}, "received_at"),
    ],
)
def test_a_record_that_cannot_be_listed_back_is_refused_and_changes_nothing(
    index: Index, change: dict[str, object], named: str
) -> None:
    index.put(PROXY)
    bad = dataclasses.replace(PROXY, **change)  # type: ignore[arg-type]
    with pytest.raises(PermanentError, match=named):
        index.put(bad)
    assert index.list() == [PROXY]


def test_a_corrupt_redis_record_is_a_clear_error(redis_client: redis.Redis) -> None:
    keys = Keys("gwmstest")
    index = RedisCredentialIndex(redis_client, keys)
    redis_client.hset(keys.credentials(), '["c","x"]', "{not json")
    with pytest.raises(PermanentError, match="gwmstest:credentials"):
        index.list()
