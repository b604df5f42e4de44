"""Sealed envelopes: credentials from the factory worker to one per-user worker.

The factory worker decrypts a frontend's credentials, then re-encrypts each one for the public key
of the worker that runs as the credential's local user, so the broker and Redis only ever carry
ciphertext (DESIGN §5, "no plaintext secret outside its owner"). This is our own format, not part
of the glideinWMS wire protocol:

``gwms-env1:`` + base64( u16 big-endian length of W | W | nonce (12) | AES-GCM ciphertext+tag )

where W is a fresh 32-byte AES-256-GCM key wrapped with RSA-OAEP-SHA256 for the recipient. The
version prefix and W are authenticated as associated data, so any changed byte fails to open.
An envelope proves nothing about its sender (anyone holding the public key can seal): the
recipient trusts the channel it came by for that, and the envelope for secrecy and integrity.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gwms_tasks.core.crypto import (
    CryptoError,
    OaepHash,
    RandomBytes,
    generate_rsa,
    load_rsa_private,
    load_rsa_public,
    public_pem_of,
)

VERSION = "gwms-env1"
_PREFIX = VERSION + ":"
_DATA_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_LENGTH = struct.Struct(">H")
_OAEP = OaepHash.SHA256.padding()


@dataclass(frozen=True, slots=True, eq=False)
class UserKey:
    """The RSA key pair of one per-user worker; its public half is what the factory seals for."""

    private_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def generate(cls, bits: int = 2048) -> UserKey:
        """A fresh key pair (e=65537)."""
        return cls(generate_rsa(bits))

    @classmethod
    def from_pem(cls, data: bytes) -> UserKey:
        """Load an unencrypted PEM private key (the file's 0600 mode is its protection).

        Raises:
            CryptoError: not an unencrypted RSA private key in PEM.
        """
        return cls(load_rsa_private(data, None))

    def private_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM (``-----BEGIN PRIVATE KEY-----``)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public_pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM, to hand to :func:`seal`."""
        return public_pem_of(self.private_key.public_key())


def _draw(random_bytes: RandomBytes, size: int) -> bytes:
    drawn = random_bytes(size)
    if len(drawn) != size:
        raise CryptoError(f"random source returned {len(drawn)} bytes, {size} were asked for")
    return drawn


def seal(
    recipient_public_pem: bytes, plaintext: bytes, random_bytes: RandomBytes = os.urandom
) -> str:
    """Encrypt ``plaintext`` so that only the holder of the recipient's private key can read it.

    Args:
        recipient_public_pem: the recipient's RSA public key, SubjectPublicKeyInfo PEM.
        plaintext: the secret.
        random_bytes: source of the data key and the nonce.

    Returns:
        One ASCII string, ``gwms-env1:<base64>``.

    Raises:
        CryptoError: the recipient key is not an RSA public key, or the random source misbehaves.
    """
    recipient = load_rsa_public(recipient_public_pem)
    data_key = _draw(random_bytes, _DATA_KEY_BYTES)
    nonce = _draw(random_bytes, _NONCE_BYTES)
    try:
        wrapped = recipient.encrypt(data_key, _OAEP)
    except ValueError as exc:
        raise CryptoError(f"cannot wrap the envelope key for this recipient: {exc}") from None
    header = _LENGTH.pack(len(wrapped)) + wrapped
    sealed = AESGCM(data_key).encrypt(nonce, plaintext, _PREFIX.encode("ascii") + header)
    return _PREFIX + base64.b64encode(header + nonce + sealed).decode("ascii")


def _decode(token: str) -> bytes:
    version, sep, body = token.partition(":")
    if not sep or version != VERSION:
        raise CryptoError(f"not a {VERSION} envelope (version {version[:20]!r})")
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError(f"envelope body is not base64: {exc}") from None
    # Base64 decoding ignores the spare bits of the last character; only the canonical form is
    # accepted, so that every changed character of the token is detected.
    if base64.b64encode(raw).decode("ascii") != body:
        raise CryptoError("envelope body is not in canonical base64")
    return raw


def open_sealed(private_key: UserKey, token: str) -> bytes:
    """Recover the plaintext of a :func:`seal` envelope.

    Raises:
        CryptoError: wrong version, bad encoding, not sealed for this key, or tampered with.
    """
    raw = _decode(token)
    if len(raw) < _LENGTH.size:
        raise CryptoError("envelope is truncated")
    (wrapped_len,) = _LENGTH.unpack_from(raw)
    header_len = _LENGTH.size + wrapped_len
    if len(raw) < header_len + _NONCE_BYTES + _TAG_BYTES:
        raise CryptoError("envelope is truncated")
    header, rest = raw[:header_len], raw[header_len:]
    try:
        data_key = private_key.private_key.decrypt(header[_LENGTH.size :], _OAEP)
    except ValueError:
        raise CryptoError("envelope was not sealed for this key, or was tampered with") from None
    if len(data_key) != _DATA_KEY_BYTES:
        raise CryptoError(f"envelope key is {len(data_key)} bytes, {_DATA_KEY_BYTES} expected")
    nonce, sealed = rest[:_NONCE_BYTES], rest[_NONCE_BYTES:]
    try:
        return AESGCM(data_key).decrypt(nonce, sealed, _PREFIX.encode("ascii") + header)
    except (InvalidTag, ValueError):
        raise CryptoError("envelope failed its integrity check: tampered with") from None
