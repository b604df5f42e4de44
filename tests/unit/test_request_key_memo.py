"""Unwrapped request keys are remembered: one RSA decryption per frontend key, never a stale one."""

from __future__ import annotations

import pytest

from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.core.crypto import FactoryKey, SymKey
from gwms_tasks.core.keyring import Keyring
from gwms_tasks.core.requests import (
    Rejection,
    RejectReason,
    Request,
    ValidationContext,
    validate_request,
)
from gwms_tasks.services.key_cache import KeyCodeCache
from tests.builders import FrontendSide, example_config

CMS_ID = "vofrontend_cms@frontend.cms.example.org"
ENTRY = "simulated_site"


@pytest.fixture(scope="module")
def factory_key() -> FactoryKey:
    return FactoryKey.generate()


@pytest.fixture(scope="module")
def config() -> FactoryConfig:
    return example_config()


def _validate(
    ad: dict[str, object], config: FactoryConfig, keyring: Keyring, memo: KeyCodeCache | None
) -> Request | Rejection:
    ctx = ValidationContext(config, ENTRY, keyring, 1000.0, lambda fe, sc: None, memo)
    return validate_request(ad, CMS_ID, ctx)


def test_an_unwrapped_key_is_remembered_under_its_key_id_and_code(config, factory_key) -> None:
    memo = KeyCodeCache()
    ad = FrontendSide(factory_key).request(ENTRY)
    assert isinstance(_validate(ad, config, Keyring(factory_key), memo), Request)
    code = (factory_key.pub_key_id, str(ad["ReqEncKeyCode"]))
    assert list(memo) == [code]
    assert memo[code] == factory_key.decrypt_key_code(str(ad["ReqEncKeyCode"]))


def test_a_remembered_key_is_used_instead_of_unwrapping_again(config, factory_key) -> None:
    ad = FrontendSide(factory_key).request(ENTRY)
    memo = KeyCodeCache()
    # A wrong key under the ad's code: validation can only fail if it took the key from memo.
    memo[(factory_key.pub_key_id, str(ad["ReqEncKeyCode"]))] = SymKey.generate()
    result = _validate(ad, config, Keyring(factory_key), memo)
    assert isinstance(result, Rejection)
    assert result.reason in {RejectReason.UNDECRYPTABLE_PARAM, RejectReason.IDENTITY_MISMATCH}


def test_the_same_ad_validates_alike_with_and_without_memo(config, factory_key) -> None:
    frontend = FrontendSide(factory_key)
    ad = frontend.request(ENTRY, idle=3, max_glideins=9)
    memo = KeyCodeCache()
    first = _validate(ad, config, Keyring(factory_key), memo)
    again = _validate(ad, config, Keyring(factory_key), memo)
    plain = _validate(ad, config, Keyring(factory_key), None)
    assert first == again == plain
    assert isinstance(again, Request) and isinstance(plain, Request)
    assert again.secrets == plain.secrets


def test_a_key_past_its_grace_window_is_refused_even_when_remembered(config) -> None:
    old, new = FactoryKey.generate(), FactoryKey.generate()
    ad = FrontendSide(old).request(ENTRY)
    memo = KeyCodeCache()
    within = Keyring(new, old=old, old_valid_until=2000.0)
    assert isinstance(_validate(ad, config, within, memo), Request)
    assert len(memo) == 1
    expired = Keyring(new, old=old, old_valid_until=500.0)  # validation runs at now=1000
    result = _validate(ad, config, expired, memo)
    assert isinstance(result, Rejection) and result.reason is RejectReason.UNKNOWN_KEY


def test_a_key_code_that_does_not_unwrap_is_rejected_and_not_remembered(
    config, factory_key
) -> None:
    ad = {**FrontendSide(factory_key).request(ENTRY), "ReqEncKeyCode": "00" * 256}
    memo = KeyCodeCache()
    result = _validate(ad, config, Keyring(factory_key), memo)
    assert isinstance(result, Rejection) and result.reason is RejectReason.UNDECRYPTABLE_KEY
    assert len(memo) == 0


def test_the_cache_keeps_the_most_recently_used_keys_within_its_bound() -> None:
    cache = KeyCodeCache(max_keys=2)
    keys = {name: SymKey.generate() for name in "abc"}
    cache[("id", "a")] = keys["a"]
    cache[("id", "b")] = keys["b"]
    assert cache[("id", "a")] is keys["a"]  # "a" is now the most recently used
    cache[("id", "c")] = keys["c"]
    assert set(cache) == {("id", "a"), ("id", "c")}
    assert cache.get(("id", "b")) is None
    del cache[("id", "a")]
    assert len(cache) == 1


def test_the_cache_never_shows_key_material_and_needs_room_for_one_key() -> None:
    cache = KeyCodeCache(max_keys=3)
    sym = SymKey.generate()
    cache[("id", "code")] = sym
    assert sym.key.hex() not in repr(cache)
    assert repr(cache) == "KeyCodeCache(1 of at most 3 keys)"
    with pytest.raises(ValueError, match="at least 1 key"):
        KeyCodeCache(max_keys=0)
