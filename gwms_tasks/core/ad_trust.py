"""Whether an encrypted frontend ad can be trusted: the checks every frontend ad goes through.

Both ``glideclient`` requests (gwms_tasks/core/requests.py) and ``glideclientglobal`` credential
ads (gwms_tasks/services/credentials.py) are opened the same way (reference §2.3, §2.4):

1. ``ReqPubKeyID`` names a key of the factory usable now, and ``ReqEncKeyCode`` unwraps with it;
2. the transport authenticated the writer, and the decrypted ``ReqEncIdentity`` is that identity
   (only a holder of the key could encrypt it, only the transport can prove who wrote);
3. the decrypted ``SecurityName`` is a configured frontend whose identity is that same one.

A failed check raises :class:`Untrusted` with the reason an operator reads.
"""

from __future__ import annotations

import enum
from collections.abc import MutableMapping

from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.core.crypto import CryptoError, FactoryKey, SymKey, unhex
from gwms_tasks.core.keyring import Keyring
from gwms_tasks.errors import GwmsError

KeyMemo = MutableMapping[tuple[str, str], SymKey]
"""``(ReqPubKeyID, ReqEncKeyCode) -> SymKey``: unwrapped keys kept by the caller across ads."""


class RejectReason(enum.StrEnum):
    """Why a frontend ad was not accepted."""

    UNSAFE_NAME = "unsafe_name"
    WRONG_FACTORY = "wrong_factory"
    V2_PROTOCOL = "v2_protocol"
    NOT_ENCRYPTED = "not_encrypted"
    UNKNOWN_KEY = "unknown_key"
    UNDECRYPTABLE_KEY = "undecryptable_key"
    NO_AUTHENTICATED_IDENTITY = "no_authenticated_identity"
    IDENTITY_MISMATCH = "identity_mismatch"
    UNDECRYPTABLE_PARAM = "undecryptable_param"
    UNKNOWN_FRONTEND = "unknown_frontend"
    FRONTEND_IDENTITY_MISMATCH = "frontend_identity_mismatch"
    UNKNOWN_SECURITY_CLASS = "unknown_security_class"
    CLASS_NOT_WHITELISTED = "class_not_whitelisted"
    CREDENTIALS = "credentials"
    BAD_NUMBER = "bad_number"
    MISSING_WEB = "missing_web"
    MALFORMED = "malformed"


class Untrusted(GwmsError):
    """An ad that failed a check; ``reason`` names the check, ``detail`` says what was wrong."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def open_key(
    keyring: Keyring,
    now: float,
    pub_key_id: object,
    enc_key_code: object,
    memo: KeyMemo | None = None,
) -> SymKey:
    """The symmetric key of an ad, unwrapped with the factory key it names (check 1).

    ``memo`` is consulted only once the named key is known to be usable at ``now``, and only
    successful unwraps are stored in it.
    """
    if pub_key_id is None:
        raise Untrusted(RejectReason.NOT_ENCRYPTED, "no ReqPubKeyID: ads must be encrypted")
    key = keyring.key_for(str(pub_key_id), now)
    if key is None:
        raise Untrusted(RejectReason.UNKNOWN_KEY, f"ReqPubKeyID {pub_key_id} is not a key of ours")
    if not isinstance(enc_key_code, str):
        raise Untrusted(RejectReason.UNDECRYPTABLE_KEY, "ReqEncKeyCode is missing")
    return _unwrap(key, enc_key_code, memo)


def _unwrap(key: FactoryKey, enc_key_code: str, memo: KeyMemo | None) -> SymKey:
    code = (key.pub_key_id, enc_key_code)
    sym = memo.get(code) if memo is not None else None
    if sym is None:
        try:
            sym = key.decrypt_key_code(enc_key_code)
        except CryptoError as exc:
            raise Untrusted(RejectReason.UNDECRYPTABLE_KEY, f"ReqEncKeyCode: {exc}") from exc
        if memo is not None:
            memo[code] = sym
    return sym


def decrypt_bytes(sym: SymKey, name: str, value: object) -> bytes:
    """One encrypted (hex) attribute, as bytes (credential files may be binary)."""
    if not isinstance(value, str):
        raise Untrusted(RejectReason.UNDECRYPTABLE_PARAM, f"{name} is not a hex string")
    try:
        return sym.decrypt(unhex(value, name))
    except CryptoError as exc:
        raise Untrusted(RejectReason.UNDECRYPTABLE_PARAM, f"{name}: {exc}") from exc


def decrypt_text(sym: SymKey, name: str, value: object) -> str:
    """One encrypted (hex) attribute holding UTF-8 text."""
    try:
        return decrypt_bytes(sym, name, value).decode("utf-8")
    except UnicodeDecodeError:
        raise Untrusted(
            RejectReason.UNDECRYPTABLE_PARAM, f"{name}: not UTF-8 (wrong key or tampered)"
        ) from None


def check_identity(sym: SymKey, enc_identity: object, authenticated: str | None) -> str:
    """The writer's identity, once its encrypted claim matches what the transport proved (2)."""
    if authenticated is None:
        raise Untrusted(
            RejectReason.NO_AUTHENTICATED_IDENTITY, "the dashboard did not authenticate the writer"
        )
    if not isinstance(enc_identity, str):
        raise Untrusted(RejectReason.UNDECRYPTABLE_KEY, "ReqEncIdentity is missing")
    claimed = decrypt_text(sym, "ReqEncIdentity", enc_identity)
    if claimed != authenticated:
        raise Untrusted(
            RejectReason.IDENTITY_MISMATCH,
            f"encrypted identity {claimed!r} is not the authenticated identity {authenticated!r}",
        )
    return authenticated


def frontend_for(config: FactoryConfig, security_name: str | None, identity: str) -> str:
    """The configured frontend an ad speaks for, checked against the writer's identity (3)."""
    frontend = config.frontends.get(security_name) if security_name else None
    if security_name is None or frontend is None:
        raise Untrusted(
            RejectReason.UNKNOWN_FRONTEND, f"SecurityName {security_name!r} is not configured"
        )
    if frontend.identity != identity:
        raise Untrusted(
            RejectReason.FRONTEND_IDENTITY_MISMATCH,
            f"frontend {security_name} is configured with identity {frontend.identity!r}, "
            f"the ad was written by {identity!r}",
        )
    return security_name
