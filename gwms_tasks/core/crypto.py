"""The glideinWMS request crypto protocol (the reference §2.1, §2.2, §2.3, §2.5, §8 item 3).

A frontend wraps one symmetric key per factory public key: the key *code*
``cypher:aes_256_cbc,key:<hex>,iv:<hex>`` is RSA-OAEP encrypted for the factory (SHA-1 from 3.10
frontends, SHA-256 from 3.11 ones), and every secret value of a request is AES-CBC encrypted
(PKCS#7 padding) under that one key and IV, then hex encoded. The same key and IV serve every
value, so encryption is deterministic: the protocol demands it, and the integrity of the ads comes
from the authenticated transport, not from this layer.

RSA key generation and OAEP padding draw on the operating system's randomness inside the
``cryptography`` library; that is the one place randomness is not passed in.
"""

from __future__ import annotations

import binascii
import enum
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gwms_tasks.errors import PermanentError

RandomBytes = Callable[[int], bytes]
_E = TypeVar("_E", bound=enum.StrEnum)

DEFAULT_PASSPHRASE = b"default"
MIN_RSA_BITS = 2048
_PUBLIC_EXPONENT = 65537
_BLOCK_BITS = 128
# The ad form of a PEM has newlines written as backslash + n; frontends also meet doubled escapes.
_ESCAPED_NEWLINE = re.compile(r"\\+n")


class CryptoError(PermanentError):
    """A key, key code or ciphertext is malformed, or does not decrypt with the key at hand."""


class SymCipher(enum.StrEnum):
    """Symmetric ciphers a key code may name (the 3.10 spelling of the names)."""

    AES_256_CBC = "aes_256_cbc"
    AES_128_CBC = "aes_128_cbc"

    @property
    def key_length(self) -> int:
        """Key length in bytes."""
        return 32 if self is SymCipher.AES_256_CBC else 16

    @property
    def iv_length(self) -> int:
        """IV length in bytes (the AES block size)."""
        return 16


class CodeLabel(enum.StrEnum):
    """The label of the cipher field of a key code: ``cypher`` (3.10) or ``cipher`` (3.11)."""

    CYPHER = "cypher"
    CIPHER = "cipher"


class OaepHash(enum.StrEnum):
    """The hash of RSA-OAEP (and of its MGF1): SHA-1 from 3.10 frontends, SHA-256 from 3.11."""

    SHA1 = "sha1"
    SHA256 = "sha256"

    def padding(self) -> padding.OAEP:
        """The OAEP padding with this hash for both digest and MGF1, and an empty label."""
        algorithm: hashes.HashAlgorithm = (
            hashes.SHA1() if self is OaepHash.SHA1 else hashes.SHA256()  # noqa: S303
        )
        return padding.OAEP(mgf=padding.MGF1(algorithm), algorithm=algorithm, label=None)


# The factory decrypts with the 3.10 hash first: most frontends it serves speak 3.10.
DECRYPT_ORDER = (OaepHash.SHA1, OaepHash.SHA256)


def _enum_value(kind: type[_E], value: _E | str, what: str) -> _E:
    """``value`` as a member of ``kind``, or a CryptoError listing the supported values."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise CryptoError(f"unsupported {what} {value[:20]!r} (supported: {allowed})") from None


def unhex(text: str, what: str) -> bytes:
    """Decode hex (either case, nothing else allowed) or raise CryptoError naming ``what``."""
    try:
        return binascii.unhexlify(text)
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"{what} is not valid hex: {exc}") from None


@dataclass(frozen=True, slots=True)
class SymKey:
    """A symmetric key and IV, as a frontend wraps them for a factory.

    Attributes:
        cipher: the cipher the key is for.
        key: the key bytes (length fixed by the cipher).
        iv: the IV bytes, reused for every value encrypted with this key.
    """

    cipher: SymCipher
    key: bytes = field(repr=False)
    iv: bytes = field(repr=False)

    def __post_init__(self) -> None:
        cipher = _enum_value(SymCipher, self.cipher, "cipher")
        object.__setattr__(self, "cipher", cipher)
        if len(self.key) != cipher.key_length:
            raise CryptoError(
                f"{cipher} needs a {cipher.key_length}-byte key, got {len(self.key)} bytes"
            )
        if len(self.iv) != cipher.iv_length:
            raise CryptoError(
                f"{cipher} needs a {cipher.iv_length}-byte IV, got {len(self.iv)} bytes"
            )

    @classmethod
    def generate(
        cls, cipher: SymCipher | str = SymCipher.AES_256_CBC, random_bytes: RandomBytes = os.urandom
    ) -> SymKey:
        """A fresh key and IV drawn from ``random_bytes``."""
        chosen = _enum_value(SymCipher, cipher, "cipher")
        return cls(chosen, random_bytes(chosen.key_length), random_bytes(chosen.iv_length))

    def code(self, label: CodeLabel | str = CodeLabel.CYPHER) -> str:
        """The key code string, e.g. ``cypher:aes_256_cbc,key:<64 hex>,iv:<32 hex>``."""
        chosen = _enum_value(CodeLabel, label, "key code label")
        return f"{chosen}:{self.cipher},key:{self.key.hex()},iv:{self.iv.hex()}"

    @classmethod
    def from_code(cls, text: str) -> SymKey:
        """Parse a key code by position: cipher (``cypher:`` or ``cipher:``), then key, then iv.

        Raises:
            CryptoError: the code is malformed, names an unsupported cipher, or has a key or IV
                of the wrong length.
        """
        parts = text.split(",")
        if len(parts) != 3:
            raise CryptoError(f"key code must have 3 comma-separated fields, got {len(parts)}")
        labels = [part.partition(":")[0] for part in parts]
        values = [part.partition(":")[2] for part in parts]
        if labels[0] not in set(CodeLabel) or labels[1:] != ["key", "iv"]:
            # Only label prefixes go in the message: a field without a colon may be key material.
            shown = ", ".join(repr(label[:8]) for label in labels)
            raise CryptoError(
                f"key code fields must be labelled cypher|cipher, key, iv; got {shown}"
            )
        cipher = _enum_value(SymCipher, values[0], "cipher")
        return cls(cipher, unhex(values[1], "key code key"), unhex(values[2], "key code iv"))

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.iv))

    def encrypt(self, plaintext: bytes) -> bytes:
        """AES-CBC with PKCS#7 padding; the output is a whole number of 16-byte blocks."""
        padder = sym_padding.PKCS7(_BLOCK_BITS).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = self._cipher().encryptor()
        return encryptor.update(padded) + encryptor.finalize()

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Invert :meth:`encrypt`.

        Raises:
            CryptoError: the length is not a positive multiple of the block size, or the padding
                is wrong (a wrong key, a wrong IV or a tampered value).
        """
        block = _BLOCK_BITS // 8
        if not ciphertext or len(ciphertext) % block:
            raise CryptoError(
                f"ciphertext length {len(ciphertext)} is not a positive multiple of {block}"
            )
        decryptor = self._cipher().decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = sym_padding.PKCS7(_BLOCK_BITS).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise CryptoError("bad padding: wrong key or tampered ciphertext") from None

    def encrypt_hex(self, value: str) -> str:
        """Lowercase hex of the encrypted UTF-8 bytes of ``value`` (a ``GlideinEncParam`` value)."""
        return self.encrypt(value.encode("utf-8")).hex()

    def decrypt_hex(self, value: str) -> str:
        """Invert :meth:`encrypt_hex`.

        Raises:
            CryptoError: bad hex, bad length or padding, or a plaintext that is not UTF-8.
        """
        plaintext = self.decrypt(unhex(value, "encrypted value"))
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise CryptoError("decrypted value is not UTF-8: wrong key or tampered") from None


def load_rsa_public(data: bytes | str) -> rsa.RSAPublicKey:
    """An RSA public key from PEM, accepting the ad form with escaped newlines.

    Raises:
        CryptoError: not a PEM public key, or not RSA.
    """
    text = data.decode("ascii", errors="replace") if isinstance(data, bytes) else data
    pem = _ESCAPED_NEWLINE.sub("\n", text).encode("ascii", errors="replace")
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CryptoError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise CryptoError(f"public key must be RSA, got {type(key).__name__}")
    return key


def load_rsa_private(data: bytes, passphrase: bytes | None) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (``passphrase=None`` for an unencrypted one).

    Raises:
        CryptoError: not a PEM private key, a wrong or missing passphrase, or not RSA.
    """
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:  # the library says so when encryption and passphrase disagree
        raise CryptoError(f"cannot load private key: {exc}") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CryptoError(f"cannot load private key (bad PEM or wrong passphrase): {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CryptoError(f"private key must be RSA, got {type(key).__name__}")
    return key


def generate_rsa(bits: int) -> rsa.RSAPrivateKey:
    """A fresh RSA key with e=65537; at least ``MIN_RSA_BITS`` so an OAEP-SHA256 code fits."""
    if bits < MIN_RSA_BITS:
        raise CryptoError(f"RSA key length must be at least {MIN_RSA_BITS} bits, got {bits}")
    return rsa.generate_private_key(public_exponent=_PUBLIC_EXPONENT, key_size=bits)


def public_pem_of(key: rsa.RSAPublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM (``-----BEGIN PUBLIC KEY-----``), ending in a newline."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pub_key_id(public_pem: bytes) -> str:
    # An identifier, not a security boundary: the frontend only echoes it back as ReqPubKeyID.
    return hashlib.md5(b"RSA " + public_pem, usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True, eq=False)
class FactoryPublicKey:
    """The factory's public key as a frontend sees it in the ``glidefactory`` ad."""

    public_key: rsa.RSAPublicKey = field(repr=False)
    public_pem: bytes = field(init=False, repr=False)
    pub_key_id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "public_pem", public_pem_of(self.public_key))
        object.__setattr__(self, "pub_key_id", _pub_key_id(self.public_pem))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FactoryPublicKey):
            return NotImplemented
        return self.public_pem == other.public_pem

    def __hash__(self) -> int:
        return hash(self.public_pem)

    @classmethod
    def from_pem(cls, data: bytes | str) -> FactoryPublicKey:
        """Load a PEM public key; one or more backslashes followed by ``n`` count as a newline."""
        return cls(load_rsa_public(data))

    def encrypt_key_code(
        self,
        sym: SymKey,
        oaep_hash: OaepHash | str = OaepHash.SHA1,
        label: CodeLabel | str = CodeLabel.CYPHER,
    ) -> str:
        """``ReqEncKeyCode``: lowercase hex of the RSA-OAEP encrypted key code of ``sym``."""
        chosen = _enum_value(OaepHash, oaep_hash, "OAEP hash")
        code = sym.code(label).encode("ascii")
        try:
            return self.public_key.encrypt(code, chosen.padding()).hex()
        except ValueError as exc:
            raise CryptoError(f"cannot wrap the key code: {exc}") from None


@dataclass(frozen=True, slots=True, eq=False)
class FactoryKey:
    """The factory's RSA private key; equal keys are those with the same public key."""

    private_key: rsa.RSAPrivateKey = field(repr=False)
    public: FactoryPublicKey = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "public", FactoryPublicKey(self.private_key.public_key()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FactoryKey):
            return NotImplemented
        return self.public == other.public

    def __hash__(self) -> int:
        return hash(self.public)

    def __repr__(self) -> str:
        return f"FactoryKey(pub_key_id={self.pub_key_id!r})"

    @classmethod
    def generate(cls, bits: int = 2048) -> FactoryKey:
        """A fresh RSA key (e=65537)."""
        return cls(generate_rsa(bits))

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = DEFAULT_PASSPHRASE) -> FactoryKey:
        """Load ``rsa.key`` content (encrypted with ``passphrase``; None for unencrypted PEM)."""
        return cls(load_rsa_private(data, passphrase))

    def to_pem(self, passphrase: bytes = DEFAULT_PASSPHRASE) -> bytes:
        """Traditional OpenSSL PEM (``BEGIN RSA PRIVATE KEY``, ``DEK-Info: AES-256-CBC``).

        This is the form glideinWMS writes its ``rsa.key`` in, so either can read the other's.
        """
        if not passphrase:
            raise CryptoError("the factory key passphrase must not be empty")
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(passphrase),
        )

    @property
    def public_pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM with its trailing newline, as published in ``PubKeyValue``."""
        return self.public.public_pem

    @property
    def pub_key_id(self) -> str:
        """``PubKeyID``: md5 hex of ``b"RSA " + public_pem``."""
        return self.public.pub_key_id

    @property
    def pub_key_type(self) -> str:
        """``PubKeyType`` of the ``glidefactory`` ad."""
        return "RSA"

    def decrypt_key_code(self, enc_key_code: str) -> SymKey:
        """Unwrap ``ReqEncKeyCode``, trying OAEP-SHA1 (3.10) then OAEP-SHA256 (3.11).

        Raises:
            CryptoError: bad hex, not encrypted for this key, or a malformed key code inside.
        """
        ciphertext = unhex(enc_key_code, "ReqEncKeyCode")
        for oaep_hash in DECRYPT_ORDER:
            try:
                code = self.private_key.decrypt(ciphertext, oaep_hash.padding())
            except ValueError:
                continue
            try:
                return SymKey.from_code(code.decode("ascii"))
            except UnicodeDecodeError:
                raise CryptoError("decrypted key code is not ASCII") from None
        raise CryptoError(
            f"ReqEncKeyCode does not decrypt with factory key {self.pub_key_id} "
            "(tried RSA-OAEP with SHA-1 and SHA-256)"
        )
