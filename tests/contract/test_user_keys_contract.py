"""Contract of the UserKeys port, held by RedisUserKeys and MemoryUserKeys alike."""

from __future__ import annotations

import threading

import pytest

from gwms_tasks.adapters.user_keys import MemoryUserKeys, RedisUserKeys
from gwms_tasks.core.envelope import UserKey
from gwms_tasks.errors import PermanentError
from tests.contract.conftest import Backend

Keys = RedisUserKeys | MemoryUserKeys


@pytest.fixture(scope="module")
def candidates() -> list[bytes]:
    return [UserKey.generate().public_pem for _ in range(6)]


@pytest.fixture
def pems(candidates: list[bytes]) -> tuple[bytes, bytes]:
    return candidates[0], candidates[1]


@pytest.fixture
def user_keys(backend: Backend) -> Keys:
    if backend.client is None:
        return MemoryUserKeys()
    return RedisUserKeys(backend.client, backend.keys)


def test_the_first_key_published_is_kept(user_keys: Keys, pems: tuple[bytes, bytes]) -> None:
    mine = pems[0]
    assert user_keys.public_pem("ana") is None
    assert user_keys.publish("ana", mine)
    assert user_keys.public_pem("ana") == mine


def test_a_published_key_is_never_replaced(user_keys: Keys, pems: tuple[bytes, bytes]) -> None:
    mine, intruder = pems
    user_keys.publish("ana", mine)
    assert not user_keys.publish("ana", intruder)
    assert not user_keys.publish("ana", mine)
    assert user_keys.public_pem("ana") == mine


def test_users_have_separate_keys(user_keys: Keys, pems: tuple[bytes, bytes]) -> None:
    ana, bob = pems
    assert user_keys.publish("ana", ana)
    assert user_keys.publish("bob", bob)
    assert (user_keys.public_pem("ana"), user_keys.public_pem("bob")) == (ana, bob)


def test_a_removed_key_lets_a_new_one_be_published(
    user_keys: Keys, pems: tuple[bytes, bytes]
) -> None:
    old, new = pems
    user_keys.publish("ana", old)
    assert user_keys.remove("ana")
    assert not user_keys.remove("ana")
    assert user_keys.public_pem("ana") is None
    assert user_keys.publish("ana", new)
    assert user_keys.public_pem("ana") == new


def test_of_keys_published_at_once_exactly_one_wins(
    user_keys: Keys, backend: Backend, candidates: list[bytes]
) -> None:
    start = threading.Barrier(len(candidates))
    won: list[bytes] = []
    if isinstance(user_keys, RedisUserKeys):
        clients = [RedisUserKeys(backend.new_client(), backend.keys) for _ in candidates]
    else:
        clients = [user_keys] * len(candidates)

    def publish(keys: Keys, pem: bytes) -> None:
        start.wait()
        if keys.publish("ana", pem):
            won.append(pem)

    threads = [
        threading.Thread(target=publish, args=pair)
        for pair in zip(clients, candidates, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert user_keys.public_pem("ana") == won[0]


def test_a_key_that_is_not_rsa_is_refused_and_nothing_is_published(user_keys: Keys) -> None:
    with pytest.raises(PermanentError, match="public key of user ana is not an RSA key"):
        user_keys.publish("ana", b"-----BEGIN PUBLIC KEY-----\nnope\n")
    assert user_keys.public_pem("ana") is None
