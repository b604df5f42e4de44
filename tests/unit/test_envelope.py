"""Sealed envelopes carrying credentials from the factory worker to a per-user worker."""

from __future__ import annotations

import base64
import string
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms_tasks.core.crypto import CryptoError, FactoryKey
from gwms_tasks.core.envelope import UserKey, open_sealed, seal

PROXY = b"-----BEGIN CERTIFICATE-----\nMIIB...proxy...\n-----END CERTIFICATE-----\n"
B64_ALPHABET = string.ascii_letters + string.digits + "+/"


@pytest.fixture(scope="module")
def alice() -> UserKey:
    return UserKey.generate()


@pytest.fixture(scope="module")
def bob() -> UserKey:
    return UserKey.generate()


def fixed_source(size: int) -> bytes:
    return bytes(range(size))


def test_sealed_credential_opens_for_its_recipient(alice: UserKey) -> None:
    token = seal(alice.public_pem, PROXY)
    assert token.startswith("gwms-env1:")
    assert token.isascii()
    assert PROXY not in token.encode()
    assert open_sealed(alice, token) == PROXY


@settings(max_examples=25)
@given(st.binary(max_size=4096))
def test_any_bytes_round_trip(alice: UserKey, plaintext: bytes) -> None:
    assert open_sealed(alice, seal(alice.public_pem, plaintext)) == plaintext


def test_envelope_for_another_worker_does_not_open(alice: UserKey, bob: UserKey) -> None:
    token = seal(bob.public_pem, PROXY)
    with pytest.raises(CryptoError, match="not sealed for this key"):
        open_sealed(alice, token)


def test_changing_any_character_of_the_token_is_detected(alice: UserKey) -> None:
    token = seal(alice.public_pem, b"token-123")
    for index, char in enumerate(token):
        if char in B64_ALPHABET:
            replacement = B64_ALPHABET[(B64_ALPHABET.index(char) + 1) % len(B64_ALPHABET)]
        else:
            replacement = "x" if char != "x" else "y"
        tampered = token[:index] + replacement + token[index + 1 :]
        with pytest.raises(CryptoError):
            open_sealed(alice, tampered)


def test_flipping_any_bit_of_the_decoded_envelope_is_detected(alice: UserKey) -> None:
    token = seal(alice.public_pem, b"token-123")
    raw = base64.b64decode(token.removeprefix("gwms-env1:"))
    for index in range(len(raw)):
        for mask in (0x01, 0x80):
            tampered = raw[:index] + bytes([raw[index] ^ mask]) + raw[index + 1 :]
            with pytest.raises(CryptoError):
                open_sealed(alice, "gwms-env1:" + base64.b64encode(tampered).decode())


@pytest.mark.parametrize("cut", [0, 1, 2, 200, 258, 270, 285])
def test_truncated_envelope_is_refused(alice: UserKey, cut: int) -> None:
    raw = base64.b64decode(seal(alice.public_pem, b"").removeprefix("gwms-env1:"))
    assert len(raw) == 2 + 256 + 12 + 16
    with pytest.raises(CryptoError):
        open_sealed(alice, "gwms-env1:" + base64.b64encode(raw[:cut]).decode())


def test_extra_bytes_after_the_envelope_are_refused(alice: UserKey) -> None:
    raw = base64.b64decode(seal(alice.public_pem, PROXY).removeprefix("gwms-env1:"))
    with pytest.raises(CryptoError, match="integrity"):
        open_sealed(alice, "gwms-env1:" + base64.b64encode(raw + b"\x00").decode())


@pytest.mark.parametrize(
    "token",
    [
        "",
        "gwms-env1",
        "gwms-env2:AAAA",
        "GWMS-ENV1:AAAA",
        "AAAA",
        "gwms-env1:not base64!",
        "gwms-env1:AAAA\n",
        "gwms-env1:AAA",
        "gwms-env1:AAE=",
    ],
)
def test_token_of_another_version_or_encoding_is_refused(alice: UserKey, token: str) -> None:
    with pytest.raises(CryptoError):
        open_sealed(alice, token)


def test_new_version_is_named_in_the_error(alice: UserKey) -> None:
    token = seal(alice.public_pem, PROXY).replace("gwms-env1:", "gwms-env2:", 1)
    with pytest.raises(CryptoError, match="gwms-env2"):
        open_sealed(alice, token)


def test_data_key_and_nonce_come_from_the_given_source(alice: UserKey) -> None:
    first = base64.b64decode(seal(alice.public_pem, PROXY, fixed_source)[10:])
    second = base64.b64decode(seal(alice.public_pem, PROXY, fixed_source)[10:])
    (wrapped_len,) = struct.unpack(">H", first[:2])
    assert wrapped_len == 256
    # OAEP is randomised, so the wrapped keys differ; the same data key and nonce give the same
    # AES-GCM ciphertext, while the tags differ because they authenticate the wrapped key.
    assert first[2:258] != second[2:258]
    assert first[258:270] == second[258:270] == fixed_source(12)
    assert first[270:-16] == second[270:-16]
    assert len(first[270:-16]) == len(PROXY)
    assert first[-16:] != second[-16:]


def test_random_source_returning_too_few_bytes_is_refused(alice: UserKey) -> None:
    with pytest.raises(CryptoError, match="random source"):
        seal(alice.public_pem, PROXY, lambda size: bytes(size - 1))


def test_sealing_for_a_non_rsa_or_garbage_key_is_refused() -> None:
    ec_public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(CryptoError, match="must be RSA"):
        seal(ec_public, PROXY)
    with pytest.raises(CryptoError):
        seal(b"not a key", PROXY)


def test_a_factory_public_key_can_be_a_recipient_too(alice: UserKey) -> None:
    factory = FactoryKey.generate()
    token = seal(factory.public_pem, PROXY)
    assert open_sealed(UserKey(factory.private_key), token) == PROXY


def test_user_key_saves_as_unencrypted_pkcs8_and_loads_back(alice: UserKey) -> None:
    pem = alice.private_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    loaded = UserKey.from_pem(pem)
    assert loaded.public_pem == alice.public_pem
    assert alice.public_pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    assert open_sealed(loaded, seal(alice.public_pem, PROXY)) == PROXY


def test_user_key_material_stays_out_of_repr(alice: UserKey) -> None:
    assert "PRIVATE" not in repr(alice)
    body = alice.private_pem().splitlines()[1].decode()
    assert body not in repr(alice)


def test_encrypted_or_garbage_user_key_is_refused(alice: UserKey) -> None:
    encrypted = alice.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(CryptoError, match="cannot load"):
        UserKey.from_pem(encrypted)
    with pytest.raises(CryptoError):
        UserKey.from_pem(b"garbage")
