"""Credentials shipped in ``glideclientglobal`` ads, forwarded sealed to the user workers (§2.5).

Every loop the factory worker:

1. reads the ``glideclientglobal`` ads and keeps those addressed to this factory instance
   (Name ``<glidein>@<factory>@<ClientName>``);
2. validates each one as find-work validates a request: ``ReqPubKeyID`` names a key of ours,
   ``ReqEncKeyCode`` decrypts, the decrypted ``ReqEncIdentity`` is the identity the dashboard
   authenticated, the decrypted ``SecurityName`` is a configured frontend with that identity,
   and every ``GlideinEncParam*`` decrypts. A bad ad is skipped with its reason, logged and
   counted; it never stops the others;
3. for each credential (``SecurityClass<id>`` names its class, ``<id>`` holds its content) maps
   the class to a local user, seals the content for that user's worker key and sends a
   :class:`~gwms_tasks.services.orders.CredentialOrder` to the user's queue;
4. records what it may show about the credential (kind, expiry, fingerprint; never the content)
   in the :class:`~gwms_tasks.ports.CredentialIndex`.

An unchanged credential is not sent every loop: it is sent again when its fingerprint, its
class or its user changed, or when the last send is :data:`RESEND_LOOPS` loops old (so that a
worker that lost its directory gets it back). The index record is written at each send, so its
``received_at`` is the time the factory last forwarded the credential.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography import x509

from gwms_tasks.core.ad_trust import (
    RejectReason,
    Untrusted,
    check_identity,
    decrypt_bytes,
    frontend_for,
    open_key,
)
from gwms_tasks.core.ads import AdType, GlideClientGlobalAd
from gwms_tasks.core.classad_text import AdFormatError
from gwms_tasks.core.credentials import SAFE_CREDENTIAL_ID
from gwms_tasks.core.crypto import CryptoError
from gwms_tasks.core.envelope import seal
from gwms_tasks.ports import AuthenticatedAd, CredentialIndex, KnownCredential
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.orders import CredentialOrder

log = logging.getLogger(__name__)

RESEND_LOOPS = 10
"""An unchanged credential is sent again after this many loops."""
CLASS_PREFIX = "SecurityClass"
_NOT_CREDENTIALS = frozenset({"SecurityName", "NumberOfCredentials"})


class CredentialKind(enum.StrEnum):
    """What a credential is, as far as its content tells."""

    PROXY = "proxy"
    SCITOKEN = "scitoken"
    IDTOKEN = "idtoken"
    FILE = "file"


class SkipReason(enum.StrEnum):
    """Why one credential of an accepted ad was not forwarded."""

    UNSAFE_ID = "unsafe_credential_id"
    UNMAPPED_CLASS = "unmapped_security_class"
    NO_CONTENT = "missing_content"
    NO_USER_WORKER = "user_worker_not_started"
    BAD_WORKER_KEY = "bad_worker_key"


@dataclass
class CredentialsResult:
    """What one pass did (returned by the task; shown in Flower). Never holds a content."""

    ads: int = 0
    other_factory: int = 0
    accepted: int = 0
    rejected: int = 0
    sent: int = 0
    unchanged: int = 0
    skipped: int = 0
    rejections: dict[str, str] = field(default_factory=dict)
    skips: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Shipment:
    """An accepted glideclientglobal ad: who sent it and its decrypted parameters."""

    client: str
    frontend: str
    params: Mapping[str, bytes] = field(repr=False)


def process_global_ads(deps: FactoryDeps, index: CredentialIndex) -> dict[str, Any]:
    """Forward the credentials of every valid ``glideclientglobal`` ad of this factory.

    Args:
        deps: the factory's ports.
        index: where the metadata of the credentials received is kept.

    Returns:
        The :class:`CredentialsResult` as a dict: counts, and the reason of every rejected ad
        (by Name) and every skipped credential (by ``<client>/<id>``).
    """
    now = deps.clock()
    result = CredentialsResult()
    known = {(c.client, c.credential_id): c for c in index.list()}
    resend_after = RESEND_LOOPS * deps.config.factory.loop_delay
    for ad in deps.dashboard.query(AdType.GLIDECLIENT_GLOBAL):
        result.ads += 1
        name = str(ad.attrs.get("Name", "?"))
        if not _addressed_to_us(deps, name):
            result.other_factory += 1
            continue
        try:
            shipment = _validate(deps, ad, now)
        except Untrusted as rej:
            result.rejected += 1
            result.rejections[name] = f"{rej.reason.value}: {rej.detail}"
            log.warning("glideclientglobal %s rejected (%s): %s", name, rej.reason, rej.detail)
            continue
        result.accepted += 1
        for cred_id in _credential_ids(shipment):
            outcome = _forward(deps, index, shipment, cred_id, known, now, resend_after)
            _count(result, f"{shipment.client}/{cred_id}", outcome)
    return asdict(result)


def _addressed_to_us(deps: FactoryDeps, name: str) -> bool:
    fac = deps.config.factory
    return name.startswith(f"{fac.glidein_name}@{fac.name}@")


def _count(result: CredentialsResult, where: str, outcome: SkipReason | str) -> None:
    if isinstance(outcome, SkipReason):
        result.skipped += 1
        result.skips[where] = outcome.value
        log.warning("credential %s not forwarded: %s", where, outcome.value)
    elif outcome == "sent":
        result.sent += 1
    else:
        result.unchanged += 1


# --- validation (the checks of core.requests, for the credential ads) -------------------------


def _validate(deps: FactoryDeps, ad: AuthenticatedAd, now: float) -> _Shipment:
    """The checks of every frontend ad (gwms_tasks/core/ad_trust.py), for a credentials ad."""
    try:
        parsed = GlideClientGlobalAd.from_attrs(ad.attrs)
    except AdFormatError as exc:
        raise Untrusted(RejectReason.MALFORMED, str(exc)) from exc
    key = parsed.key
    sym = open_key(deps.keyring(), now, key.pub_key_id, key.enc_key_code, deps.key_codes)
    identity = check_identity(sym, key.enc_identity, ad.identity)
    clear = {name: decrypt_bytes(sym, name, value) for name, value in parsed.enc_params.items()}
    frontend = frontend_for(deps.config, _text(clear, "SecurityName"), identity)
    return _Shipment(parsed.client_name, frontend, clear)


def _text(clear: Mapping[str, bytes], name: str) -> str | None:
    value = clear.get(name)
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise Untrusted(RejectReason.UNDECRYPTABLE_PARAM, f"{name} is not UTF-8 text") from None


def _credential_ids(shipment: _Shipment) -> list[str]:
    ids = sorted(
        name.removeprefix(CLASS_PREFIX)
        for name in shipment.params
        if name.startswith(CLASS_PREFIX) and name != CLASS_PREFIX
    )
    announced = shipment.params.get("NumberOfCredentials")
    if announced is not None and announced.strip() != str(len(ids)).encode():
        log.warning(
            "glideclientglobal of %s announces %r credentials and carries %d",
            shipment.client,
            announced[:20],
            len(ids),
        )
    return ids


# --- forwarding one credential ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Credential:
    """One credential of an accepted ad, with the local user it belongs to."""

    credential_id: str
    security_class: str
    username: str
    content: bytes = field(repr=False)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.content).hexdigest()[:16]


def _credential(deps: FactoryDeps, shipment: _Shipment, cred_id: str) -> _Credential | SkipReason:
    """The credential ``cred_id`` of an ad, or why it cannot be forwarded."""
    if not SAFE_CREDENTIAL_ID.fullmatch(cred_id) or cred_id in _NOT_CREDENTIALS:
        return SkipReason.UNSAFE_ID
    security_class = shipment.params[CLASS_PREFIX + cred_id].decode("utf-8", errors="replace")
    username = deps.config.username_for(shipment.frontend, security_class)
    if username is None:
        return SkipReason.UNMAPPED_CLASS
    content = shipment.params.get(cred_id)
    if not content:
        return SkipReason.NO_CONTENT
    return _Credential(cred_id, security_class, username, content)


def _forward(
    deps: FactoryDeps,
    index: CredentialIndex,
    shipment: _Shipment,
    cred_id: str,
    known: Mapping[tuple[str, str], KnownCredential],
    now: float,
    resend_after: float,
) -> SkipReason | str:
    """Send one credential when it is new, changed or due again; the outcome."""
    cred = _credential(deps, shipment, cred_id)
    if isinstance(cred, SkipReason):
        return cred
    last = known.get((shipment.client, cred_id))
    if (
        last is not None
        and (last.fingerprint, last.username, last.security_class)
        == (cred.fingerprint, cred.username, cred.security_class)
        and now - last.received_at < resend_after
    ):
        return "unchanged"
    public = deps.user_keys.public_pem(cred.username)
    if public is None:
        return SkipReason.NO_USER_WORKER
    try:
        sealed = seal(public, cred.content)
    except CryptoError:
        return SkipReason.BAD_WORKER_KEY
    order = CredentialOrder(
        cred.username, shipment.client, shipment.frontend, cred.security_class, cred_id, sealed, now
    )
    deps.dispatcher.send_credential(cred.username, order.to_json())
    kind, expires = describe_credential(cred_id, cred.content)
    index.put(
        KnownCredential(
            client=shipment.client,
            frontend=shipment.frontend,
            security_class=cred.security_class,
            username=cred.username,
            credential_id=cred_id,
            kind=kind.value,
            received_at=now,
            expires_at=expires,
            fingerprint=cred.fingerprint,
        )
    )
    return "sent"


# --- what a content tells about itself --------------------------------------------------------


def describe_credential(credential_id: str, content: bytes) -> tuple[CredentialKind, float | None]:
    """The kind of a credential and its expiry (epoch seconds) when it can be read.

    A PEM with certificates is a proxy, valid until the earliest ``notAfter`` of its chain; a
    JWT is an IDTOKEN when its id or its HTCondor scope says so, a SciToken otherwise, valid
    until its ``exp`` (read without verifying the signature: the factory only reports it).
    """
    if b"-----BEGIN CERTIFICATE-----" in content:
        try:
            certificates = x509.load_pem_x509_certificates(content)
        except ValueError:
            return CredentialKind.PROXY, None
        return CredentialKind.PROXY, min(c.not_valid_after_utc.timestamp() for c in certificates)
    claims = _jwt_claims(content)
    if claims is None:
        return CredentialKind.FILE, None
    scope = claims.get("scope")
    condor_scope = isinstance(scope, str) and "condor:/" in scope
    kind = (
        CredentialKind.IDTOKEN
        if credential_id.endswith("idtoken") or condor_scope
        else CredentialKind.SCITOKEN
    )
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return kind, float(exp)
    return kind, None


def _jwt_claims(content: bytes) -> dict[str, Any] | None:
    parts = content.strip().split(b".")
    if len(parts) != 3:
        return None
    try:
        header, claims = (json.loads(_b64url(part)) for part in parts[:2])
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or "alg" not in header or not isinstance(claims, dict):
        return None
    return claims


def _b64url(part: bytes) -> bytes:
    return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))
