"""The request crypto protocol: key codes, AES-CBC values, the factory RSA key and OAEP wrapping."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.core.crypto import (
    CodeLabel,
    CryptoError,
    FactoryKey,
    FactoryPublicKey,
    OaepHash,
    SymCipher,
    SymKey,
)
from gwms_tasks.errors import PermanentError

KEY_BYTES = bytes(range(32))
IV_BYTES = bytes(range(0xF0, 0x100))
FIXED = SymKey(SymCipher.AES_256_CBC, KEY_BYTES, IV_BYTES)
IDENTITY = "frontend@host.example.org"


@pytest.fixture(scope="module")
def factory_key() -> FactoryKey:
    return FactoryKey.generate()


@pytest.fixture(scope="module")
def other_key() -> FactoryKey:
    return FactoryKey.generate()


# --- the key code ------------------------------------------------------------------------------


def test_key_code_has_the_exact_3_10_layout() -> None:
    assert FIXED.code() == (
        "cypher:aes_256_cbc,"
        "key:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f,"
        "iv:f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
    )


def test_key_code_can_use_the_3_11_cipher_label() -> None:
    assert FIXED.code("cipher") == FIXED.code().replace("cypher:", "cipher:", 1)
    assert FIXED.code(CodeLabel.CIPHER).startswith("cipher:aes_256_cbc,key:")


@pytest.mark.parametrize("label", ["cypher", "cipher"])
def test_key_code_parses_back_with_either_label(label: str) -> None:
    assert SymKey.from_code(FIXED.code(label)) == FIXED


def test_aes_128_key_code_round_trips() -> None:
    key = SymKey(SymCipher.AES_128_CBC, bytes(16), bytes(16))
    assert SymKey.from_code(key.code()) == key
    assert key.code().startswith("cypher:aes_128_cbc,key:" + "00" * 16 + ",iv:")


GOOD_KEY = "key:" + KEY_BYTES.hex()
GOOD_IV = "iv:" + IV_BYTES.hex()


@pytest.mark.parametrize(
    "code",
    [
        "",
        "cypher:aes_256_cbc",
        f"cypher:aes_256_cbc,{GOOD_KEY}",
        f"cypher:aes_256_cbc,{GOOD_KEY},{GOOD_IV},extra:1",
        f"{GOOD_KEY},cypher:aes_256_cbc,{GOOD_IV}",
        f"cypher:aes_256_cbc,{GOOD_IV},{GOOD_KEY}",
        f"CYPHER:aes_256_cbc,{GOOD_KEY},{GOOD_IV}",
        f"cypher:aes_256_cbc,kee:{KEY_BYTES.hex()},{GOOD_IV}",
        f"cypher:aes_256_cbc,{GOOD_KEY},vi:{IV_BYTES.hex()}",
        f"aes_256_cbc,{GOOD_KEY},{GOOD_IV}",
        f" cypher:aes_256_cbc,{GOOD_KEY},{GOOD_IV}",
        f"cypher:bf_cbc,{GOOD_KEY},{GOOD_IV}",
        f"cypher:aes_128_cbc,{GOOD_KEY},{GOOD_IV}",
        f"cypher:aes_256_cbc,key:{KEY_BYTES[:31].hex()},{GOOD_IV}",
        f"cypher:aes_256_cbc,{GOOD_KEY},iv:{IV_BYTES.hex()}00",
        f"cypher:aes_256_cbc,key:{'zz' * 32},{GOOD_IV}",
        f"cypher:aes_256_cbc,{GOOD_KEY},iv:{IV_BYTES.hex()[:-1]}",
        f"cypher:aes_256_cbc,{GOOD_KEY},iv:{IV_BYTES.hex()}\n",
        f"cypher:aes_256_cbc,{GOOD_KEY} ,{GOOD_IV}",
    ],
)
def test_malformed_key_code_is_rejected(code: str) -> None:
    with pytest.raises(CryptoError):
        SymKey.from_code(code)


def test_crypto_errors_are_permanent() -> None:
    with pytest.raises(PermanentError, match="3 comma-separated"):
        SymKey.from_code("nonsense")


@pytest.mark.parametrize(
    ("cipher", "key_len", "iv_len"),
    [
        (SymCipher.AES_256_CBC, 16, 16),
        (SymCipher.AES_256_CBC, 32, 8),
        (SymCipher.AES_128_CBC, 32, 16),
        (SymCipher.AES_128_CBC, 16, 0),
    ],
)
def test_key_or_iv_of_the_wrong_length_is_refused(
    cipher: SymCipher, key_len: int, iv_len: int
) -> None:
    with pytest.raises(CryptoError, match="byte"):
        SymKey(cipher, bytes(key_len), bytes(iv_len))


def test_generated_key_draws_key_then_iv_from_the_given_source() -> None:
    drawn: list[int] = []

    def source(size: int) -> bytes:
        drawn.append(size)
        return bytes([len(drawn)]) * size

    key = SymKey.generate(random_bytes=source)
    assert drawn == [32, 16]
    assert (key.key, key.iv) == (b"\x01" * 32, b"\x02" * 16)
    assert SymKey.generate("aes_128_cbc", random_bytes=source).cipher is SymCipher.AES_128_CBC


def test_generating_an_unknown_cipher_names_the_supported_ones() -> None:
    with pytest.raises(CryptoError, match="aes_256_cbc, aes_128_cbc"):
        SymKey.generate("des3", random_bytes=bytes)


def test_key_material_stays_out_of_repr() -> None:
    assert KEY_BYTES.hex() not in repr(FIXED)
    assert repr(KEY_BYTES) not in repr(FIXED)


# --- AES-CBC values ----------------------------------------------------------------------------


def test_identity_encrypts_to_aes_cbc_with_pkcs7_padding() -> None:
    data = IDENTITY.encode()
    pad = 16 - len(data) % 16
    encryptor = Cipher(algorithms.AES(KEY_BYTES), modes.CBC(IV_BYTES)).encryptor()
    expected = encryptor.update(data + bytes([pad]) * pad) + encryptor.finalize()
    assert FIXED.encrypt_hex(IDENTITY) == expected.hex()


def test_identity_encryption_matches_openssl_enc() -> None:
    # printf 'frontend@host.example.org' | openssl enc -aes-256-cbc -K <KEY_BYTES> -iv <IV_BYTES>
    assert FIXED.encrypt_hex(IDENTITY) == (
        "839bd1ec0165cccf73910d87a91583dda31aa5f88770f5cc62d56b5d7dad65b5"
    )


def test_empty_value_encrypts_to_one_full_padding_block() -> None:
    # printf '' | openssl enc -aes-128-cbc -K 2b7e1516... -iv 00010203...
    key = SymKey(
        SymCipher.AES_128_CBC,
        bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c"),
        bytes(range(16)),
    )
    assert key.encrypt_hex("") == "c84af0b613435d5d9182801a9bd9320b"
    assert key.decrypt_hex("c84af0b613435d5d9182801a9bd9320b") == ""


def test_same_key_and_iv_encrypt_a_value_the_same_way_every_time() -> None:
    again = SymKey.from_code(FIXED.code())
    assert again.encrypt_hex("gfactory") == FIXED.encrypt_hex("gfactory")


@given(st.binary(max_size=200))
def test_ciphertext_is_whole_blocks_with_at_least_one_padding_byte(data: bytes) -> None:
    encrypted = FIXED.encrypt(data)
    assert len(encrypted) % 16 == 0
    assert len(data) < len(encrypted) <= len(data) + 16


@given(st.text(), st.sampled_from(list(SymCipher)), st.binary(min_size=48, max_size=48))
def test_any_text_round_trips_through_hex(value: str, cipher: SymCipher, material: bytes) -> None:
    key = SymKey(cipher, material[: cipher.key_length], material[32:])
    encrypted = key.encrypt_hex(value)
    assert encrypted == encrypted.lower()
    assert key.decrypt_hex(encrypted) == value
    assert key.decrypt_hex(encrypted.upper()) == value


@pytest.mark.parametrize(
    "value",
    ["", "xyz", "abc", "00" * 15, "00" * 17, "0x" + "00" * 16, "00 " * 16, "é" * 32],
)
def test_value_that_is_not_hex_blocks_is_refused(value: str) -> None:
    with pytest.raises(CryptoError):
        FIXED.decrypt_hex(value)


def flip(data: bytes, index: int, mask: int) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


def test_tampered_padding_is_refused() -> None:
    encrypted = FIXED.encrypt(b"0123456789abcdef-12")  # second block: 3 bytes, then 13 x 0x0d
    # In CBC, flipping a bit of block 1 flips the same bit of plaintext block 2: the last pad byte.
    with pytest.raises(CryptoError, match="padding"):
        FIXED.decrypt(flip(encrypted, 15, 0x01))


def test_tampering_that_breaks_utf8_is_refused() -> None:
    encrypted = FIXED.encrypt(b"0123456789abcdef-12")
    # The first byte of block 2 is "-" (0x2d); with its top bit flipped it is no longer UTF-8.
    with pytest.raises(CryptoError, match="UTF-8"):
        FIXED.decrypt_hex(flip(encrypted, 0, 0x80).hex())


def test_value_encrypted_under_another_key_is_refused() -> None:
    encrypted = FIXED.encrypt_hex(IDENTITY)
    other = SymKey(SymCipher.AES_256_CBC, bytes(32), IV_BYTES)
    with pytest.raises(CryptoError):
        other.decrypt_hex(encrypted)


# --- the factory RSA key -----------------------------------------------------------------------


def test_public_key_is_subject_public_key_info_pem(factory_key: FactoryKey) -> None:
    pem = factory_key.public_pem
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    assert pem.endswith(b"-----END PUBLIC KEY-----\n")
    assert factory_key.pub_key_type == "RSA"


def test_pub_key_id_is_md5_of_type_space_pem(factory_key: FactoryKey) -> None:
    expected = hashlib.md5(b"RSA " + factory_key.public_pem).hexdigest()
    assert factory_key.pub_key_id == expected
    assert factory_key.pub_key_id in repr(factory_key)


def test_private_key_saves_as_openssl_traditional_pem_under_aes_256(
    factory_key: FactoryKey,
) -> None:
    pem = factory_key.to_pem()
    assert pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----\n")
    assert b"Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC," in pem
    with pytest.raises(TypeError):  # the library itself says a passphrase is needed
        serialization.load_pem_private_key(pem, password=None)
    assert serialization.load_pem_private_key(pem, password=b"default") is not None


def test_saved_key_loads_back_as_the_same_key(factory_key: FactoryKey) -> None:
    loaded = FactoryKey.from_pem(factory_key.to_pem())
    assert loaded == factory_key
    assert loaded.pub_key_id == factory_key.pub_key_id
    assert FactoryKey.from_pem(factory_key.to_pem(b"s3cret"), b"s3cret") == factory_key


def test_key_loads_only_with_the_right_passphrase(factory_key: FactoryKey) -> None:
    with pytest.raises(CryptoError, match="passphrase"):
        FactoryKey.from_pem(factory_key.to_pem(), b"wrong")
    with pytest.raises(CryptoError, match="not encrypted"):
        FactoryKey.from_pem(
            factory_key.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def test_non_rsa_or_garbage_private_key_is_refused() -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"default"),
    )
    with pytest.raises(CryptoError, match="must be RSA"):
        FactoryKey.from_pem(ec_pem)
    with pytest.raises(CryptoError, match="cannot load"):
        FactoryKey.from_pem(
            b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"
        )


def test_short_rsa_keys_are_refused() -> None:
    with pytest.raises(CryptoError, match="at least 2048"):
        FactoryKey.generate(bits=1024)


def test_empty_passphrase_is_refused(factory_key: FactoryKey) -> None:
    with pytest.raises(CryptoError, match="passphrase"):
        factory_key.to_pem(b"")


# --- wrapping the key code ---------------------------------------------------------------------


def oaep(algorithm: hashes.HashAlgorithm) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(algorithm), algorithm=algorithm, label=None)


def test_3_10_code_wrapped_with_oaep_sha1_unwraps(factory_key: FactoryKey) -> None:
    public = factory_key.private_key.public_key()
    wrapped = public.encrypt(FIXED.code().encode(), oaep(hashes.SHA1()))
    assert factory_key.decrypt_key_code(wrapped.hex()) == FIXED


def test_3_11_code_wrapped_with_oaep_sha256_and_cipher_label_unwraps(
    factory_key: FactoryKey,
) -> None:
    public = factory_key.private_key.public_key()
    wrapped = public.encrypt(FIXED.code("cipher").encode(), oaep(hashes.SHA256()))
    assert factory_key.decrypt_key_code(wrapped.hex()) == FIXED
    assert factory_key.decrypt_key_code(wrapped.hex().upper()) == FIXED


@pytest.mark.parametrize(
    ("oaep_hash", "label"), list(itertools.product(["sha1", "sha256"], list(CodeLabel)))
)
def test_frontend_side_wrapping_unwraps_on_the_factory_side(
    factory_key: FactoryKey, oaep_hash: str, label: CodeLabel
) -> None:
    public = FactoryPublicKey.from_pem(factory_key.public_pem)
    wrapped = public.encrypt_key_code(FIXED, oaep_hash=oaep_hash, label=label)
    assert wrapped == wrapped.lower()
    assert len(wrapped) == 2 * 256
    assert factory_key.decrypt_key_code(wrapped) == FIXED


def test_frontend_wrapping_really_uses_the_named_oaep_hash(factory_key: FactoryKey) -> None:
    public = FactoryPublicKey.from_pem(factory_key.public_pem)
    wrapped = bytes.fromhex(public.encrypt_key_code(FIXED, oaep_hash=OaepHash.SHA256))
    assert factory_key.private_key.decrypt(wrapped, oaep(hashes.SHA256())) == FIXED.code().encode()


def test_code_wrapped_for_another_factory_is_refused(
    factory_key: FactoryKey, other_key: FactoryKey
) -> None:
    wrapped = FactoryPublicKey.from_pem(other_key.public_pem).encrypt_key_code(FIXED)
    with pytest.raises(CryptoError, match=factory_key.pub_key_id):
        factory_key.decrypt_key_code(wrapped)


def test_code_wrapped_with_another_oaep_hash_is_refused(factory_key: FactoryKey) -> None:
    public = factory_key.private_key.public_key()
    wrapped = public.encrypt(FIXED.code().encode(), oaep(hashes.SHA512()))
    with pytest.raises(CryptoError, match="SHA-1 and SHA-256"):
        factory_key.decrypt_key_code(wrapped.hex())


def test_wrapped_garbage_inside_a_valid_oaep_block_is_refused(factory_key: FactoryKey) -> None:
    public = factory_key.private_key.public_key()
    with pytest.raises(CryptoError, match="fields"):
        factory_key.decrypt_key_code(public.encrypt(b"not a code", oaep(hashes.SHA1())).hex())
    with pytest.raises(CryptoError, match="ASCII"):
        factory_key.decrypt_key_code(public.encrypt(b"\xff\xfe", oaep(hashes.SHA1())).hex())


@pytest.mark.parametrize("text", ["", "zz", "abc", "00" * 255, "00" * 256, "00" * 257])
def test_enc_key_code_of_wrong_shape_is_refused(factory_key: FactoryKey, text: str) -> None:
    with pytest.raises(CryptoError):
        factory_key.decrypt_key_code(text)


def test_tampered_enc_key_code_is_refused(factory_key: FactoryKey) -> None:
    public = FactoryPublicKey.from_pem(factory_key.public_pem)
    wrapped = bytes.fromhex(public.encrypt_key_code(FIXED))
    with pytest.raises(CryptoError):
        factory_key.decrypt_key_code(flip(wrapped, 100, 0x04).hex())


def test_unsupported_wrapping_choices_are_refused(factory_key: FactoryKey) -> None:
    public = FactoryPublicKey.from_pem(factory_key.public_pem)
    with pytest.raises(CryptoError, match="OAEP hash"):
        public.encrypt_key_code(FIXED, oaep_hash="md5")
    with pytest.raises(CryptoError, match="label"):
        public.encrypt_key_code(FIXED, label="cyphr")


# --- the public key as it travels in the glidefactory ad --------------------------------------


@pytest.mark.parametrize("escape", ["\\n", "\\\\n", "\\\\\\n"])
def test_public_key_from_the_ad_form_with_escaped_newlines(
    factory_key: FactoryKey, escape: str
) -> None:
    ad_value = factory_key.public_pem.decode().replace("\n", escape)
    assert "\n" not in ad_value
    public = FactoryPublicKey.from_pem(ad_value)
    assert public.public_pem == factory_key.public_pem
    assert public.pub_key_id == factory_key.pub_key_id


def test_public_key_equality_follows_the_key(
    factory_key: FactoryKey, other_key: FactoryKey
) -> None:
    assert FactoryPublicKey.from_pem(factory_key.public_pem) == factory_key.public
    assert factory_key.public != other_key.public
    assert factory_key != other_key
    assert len({factory_key, FactoryKey.from_pem(factory_key.to_pem()), other_key}) == 2


def test_non_rsa_or_garbage_public_key_is_refused() -> None:
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(CryptoError, match="must be RSA"):
        FactoryPublicKey.from_pem(ec_pem)
    with pytest.raises(CryptoError, match="not a PEM public key"):
        FactoryPublicKey.from_pem("-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\\n")
    with pytest.raises(CryptoError):
        FactoryPublicKey.from_pem(b"\xff\xfe garbage")


def test_malformed_key_code_error_does_not_echo_key_material() -> None:
    secret = "ab" * 32
    with pytest.raises(CryptoError) as caught:
        SymKey.from_code(f"cypher:aes_256_cbc,{secret},iv:{IV_BYTES.hex()}")
    assert secret not in str(caught.value)
    assert secret[:8] in str(caught.value)
