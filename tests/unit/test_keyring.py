"""Factory key rotation: the startup decision and the old key's grace window (reference §2.1)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.core.crypto import CryptoError, FactoryKey
from gwms_tasks.core.keyring import Keyring, StartupAction, startup_decision

NOW = 1_700_000_000.0
UNTIL = NOW + 900


@pytest.fixture(scope="module")
def keys() -> tuple[FactoryKey, FactoryKey, FactoryKey]:
    return FactoryKey.generate(), FactoryKey.generate(), FactoryKey.generate()


@pytest.mark.parametrize(
    ("age", "grace", "action"),
    [
        (None, 900, StartupAction.GENERATE),
        (None, 0, StartupAction.GENERATE),
        (0, 900, StartupAction.REUSE),
        (899.9, 900, StartupAction.REUSE),
        (900, 900, StartupAction.REUSE),
        (900.1, 900, StartupAction.ROTATE),
        (86_400, 900, StartupAction.ROTATE),
        (-30, 900, StartupAction.REUSE),
        (0.5, 0, StartupAction.ROTATE),
    ],
)
def test_startup_decision_follows_the_key_age(
    age: float | None, grace: float, action: StartupAction
) -> None:
    assert startup_decision(age, grace) is action


def test_startup_default_grace_is_fifteen_minutes() -> None:
    assert startup_decision(900) is StartupAction.REUSE
    assert startup_decision(901) is StartupAction.ROTATE


@pytest.mark.parametrize("grace", [-1, math.nan, math.inf])
def test_startup_refuses_a_nonsense_grace(grace: float) -> None:
    with pytest.raises(CryptoError, match="grace"):
        startup_decision(10, grace)


def test_fresh_keyring_has_only_the_current_key(keys: tuple[FactoryKey, ...]) -> None:
    ring = Keyring(keys[0])
    assert ring.keys_at(NOW) == [keys[0]]
    assert ring.drop_expired(NOW) is ring


def test_old_key_is_tried_after_the_current_one_during_the_grace(
    keys: tuple[FactoryKey, ...],
) -> None:
    ring = Keyring(keys[0], keys[1], UNTIL)
    assert ring.keys_at(NOW) == [keys[0], keys[1]]
    assert ring.keys_at(UNTIL - 0.001) == [keys[0], keys[1]]


@pytest.mark.parametrize("now", [UNTIL, UNTIL + 1, UNTIL + 86_400])
def test_old_key_is_not_tried_once_the_grace_is_over(
    keys: tuple[FactoryKey, ...], now: float
) -> None:
    ring = Keyring(keys[0], keys[1], UNTIL)
    assert ring.keys_at(now) == [keys[0]]
    assert ring.key_for(keys[1].pub_key_id, now) is None


def test_request_key_id_finds_either_usable_key(keys: tuple[FactoryKey, ...]) -> None:
    ring = Keyring(keys[0], keys[1], UNTIL)
    assert ring.key_for(keys[0].pub_key_id, NOW) is keys[0]
    assert ring.key_for(keys[1].pub_key_id, NOW) is keys[1]
    assert ring.key_for(keys[2].pub_key_id, NOW) is None
    assert ring.key_for("", NOW) is None


def test_old_key_equal_to_the_current_one_is_tried_once(keys: tuple[FactoryKey, ...]) -> None:
    same = FactoryKey.from_pem(keys[0].to_pem())
    assert Keyring(keys[0], same, UNTIL).keys_at(NOW) == [keys[0]]


def test_drop_expired_keeps_the_old_key_until_the_end_of_the_grace(
    keys: tuple[FactoryKey, ...],
) -> None:
    ring = Keyring(keys[0], keys[1], UNTIL)
    assert ring.drop_expired(UNTIL - 1) is ring
    dropped = ring.drop_expired(UNTIL)
    assert dropped == Keyring(keys[0])
    assert dropped.old is None
    assert dropped.old_valid_until is None


def test_rotation_makes_the_new_key_current_and_keeps_the_previous_one(
    keys: tuple[FactoryKey, ...],
) -> None:
    ring = Keyring(keys[0], keys[1], NOW - 10).rotate(keys[2], NOW, grace=600)
    assert ring == Keyring(keys[2], keys[0], NOW + 600)
    assert ring.keys_at(NOW + 599) == [keys[2], keys[0]]
    assert ring.keys_at(NOW + 600) == [keys[2]]


def test_rotation_refuses_a_negative_grace(keys: tuple[FactoryKey, ...]) -> None:
    with pytest.raises(CryptoError, match="grace"):
        Keyring(keys[0]).rotate(keys[1], NOW, grace=-5)


def test_old_key_without_a_deadline_is_refused(keys: tuple[FactoryKey, ...]) -> None:
    with pytest.raises(CryptoError, match="go together"):
        Keyring(keys[0], keys[1], None)
    with pytest.raises(CryptoError, match="go together"):
        Keyring(keys[0], None, UNTIL)


@given(
    now=st.floats(min_value=0, max_value=4e9),
    until=st.floats(min_value=0, max_value=4e9),
)
def test_current_key_always_comes_first_and_old_only_before_its_deadline(
    keys: tuple[FactoryKey, ...], now: float, until: float
) -> None:
    ring = Keyring(keys[0], keys[1], until)
    tried = ring.keys_at(now)
    assert tried[0] is keys[0]
    assert (keys[1] in tried) == (now < until)
    assert ring.drop_expired(now).keys_at(now) == tried
