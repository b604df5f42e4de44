"""The ads a frontend group publishes: glideclient, glideclientglobal, glideresource (§1.4-§1.6).

Every secret travels encrypted for the factory instance's public key (reference §2.2): one
symmetric key per instance and cycle, wrapped with RSA-OAEP (SHA-1, as 3.10 frontends do) into
``ReqEncKeyCode``; the frontend's identity, its SecurityName and security class, token contents
and credential ids are ``GlideinEncParam*`` values under that key. The factory accepts a
request only when the decrypted identity equals the identity the dashboard authenticated.

Credentials: the request names the credential the factory submits with (a SciToken by content
in ``frontend_scitoken`` with its id in ``ScitokenId``, or a proxy by id in ``SubmitProxy``) and
carries the first IDTOKEN as ``<entry>.idtoken`` for the glideins; the glideclientglobal ad of
the instance ships the content of every credential file with its security class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gwms_tasks.core.ads import (
    FrontendWeb,
    GlideClientAd,
    GlideClientGlobalAd,
    GlideResourceAd,
    RemoveExcess,
    RequestKey,
)
from gwms_tasks.core.classad_text import AdValue, string_list_literal, string_literal
from gwms_tasks.core.credentials import SCITOKEN_ID_PARAM, SCITOKEN_PARAM, idtoken_param
from gwms_tasks.core.crypto import FactoryPublicKey, SymKey
from gwms_tasks.frontend.core_config import CredentialType, GroupLimits
from gwms_tasks.frontend.core_factories import OfferedEntry, TrustedInstance
from gwms_tasks.frontend.core_plan import EntryRequest

SECURITY_NAME = "SecurityName"
SECURITY_CLASS = "SecurityClass"
NUMBER_OF_CREDENTIALS = "NumberOfCredentials"


@dataclass(frozen=True, slots=True)
class CredentialFile:
    """A credential of the group with its content (never shown, never logged)."""

    id: str
    type: CredentialType
    security_class: str
    content: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class GroupClient:
    """Who publishes: the frontend, its group, and what every request of the group carries.

    Attributes:
        frontend: the SecurityName / FrontendName.
        group: the GroupName.
        identity: the identity the dashboard authenticates the frontend as.
        web: the frontend's staging area.
        params: glidein parameters (``GlideinParam*``).
        limits: the group's limits, advertised as ``GlideinConfig*`` (informational).
        credentials: the group's readable credentials, in config order.
    """

    frontend: str
    group: str
    identity: str
    web: FrontendWeb
    params: Mapping[str, AdValue]
    limits: GroupLimits
    credentials: tuple[CredentialFile, ...]

    @property
    def client_name(self) -> str:
        return f"{self.frontend}.{self.group}"


def choose_credential(
    auth_method: str, credentials: Sequence[CredentialFile]
) -> CredentialFile | None:
    """The first credential the entry's auth method (``+``-joined tokens) can submit with."""
    tokens = set(auth_method.split("+"))
    return next((c for c in credentials if c.type.submits and c.type.value in tokens), None)


def wrap_key(public_key: FactoryPublicKey, sym: SymKey, identity: str) -> RequestKey:
    """``ReqPubKeyID``, ``ReqEncKeyCode`` and ``ReqEncIdentity`` for one factory instance."""
    return RequestKey(
        pub_key_id=public_key.pub_key_id,
        enc_key_code=public_key.encrypt_key_code(sym),
        enc_identity=sym.encrypt_hex(identity),
    )


def _config_attrs(limits: GroupLimits) -> dict[str, AdValue]:
    return {
        "MaxIdlePerEntry": limits.max_idle_per_entry,
        "MaxGlideinsPerEntry": limits.max_glideins_per_entry,
        "MaxGlideinsTotal": limits.max_glideins_total,
        "MaxNewIdlePerCycle": limits.max_new_idle_per_cycle,
    }


def monitor_attrs(request: EntryRequest) -> dict[str, AdValue]:
    """The frontend's counters for one entry (``GlideinMonitor*``, §1.4).

    ``Running``/``RunningHere`` are the entry's running glideins that are not unclaimed: the
    jobs running there as far as the frontend can tell.
    """
    busy = max(0, request.glideins.running - request.unclaimed)
    return {
        "Idle": request.matched,
        "Running": busy,
        "RunningHere": busy,
        "GlideinsIdle": request.glideins.idle,
        "GlideinsRunning": request.glideins.running,
        "GlideinsTotal": request.glideins.total,
    }


def request_ad(
    request: EntryRequest,
    entry: OfferedEntry,
    client: GroupClient,
    credential: CredentialFile,
    sym: SymKey,
    key: RequestKey,
) -> GlideClientAd:
    """The glideclient ad of one entry, its secrets encrypted under ``sym``."""
    secrets: dict[str, str] = {
        SECURITY_NAME: client.frontend,
        SECURITY_CLASS: credential.security_class,
    }
    if credential.type is CredentialType.SCITOKEN:
        secrets[SCITOKEN_PARAM] = credential.content.strip()
        secrets[SCITOKEN_ID_PARAM] = credential.id
    else:
        secrets["SubmitProxy"] = credential.id
    idtoken = next((c for c in client.credentials if c.type is CredentialType.IDTOKEN), None)
    if idtoken is not None:
        secrets[idtoken_param(entry.ad.entry_name)] = idtoken.content.strip()
    return GlideClientAd(
        cred_id=credential.id,
        req_name=entry.key,
        client_name=client.client_name,
        frontend_name=client.frontend,
        group_name=client.group,
        web=client.web,
        idle_glideins=request.idle,
        max_glideins=request.max_glideins,
        remove_excess=RemoveExcess(request.remove_excess.value),
        remove_excess_margin=request.remove_margin,
        idle_lifetime=client.limits.idle_lifetime,
        key=key,
        params=dict(client.params),
        config=_config_attrs(client.limits),
        monitor=monitor_attrs(request),
        enc_params={name: sym.encrypt_hex(value) for name, value in secrets.items()},
    )


def global_ad(
    instance: TrustedInstance, client: GroupClient, sym: SymKey, key: RequestKey
) -> GlideClientGlobalAd:
    """The glideclientglobal ad of one factory instance: every credential file, encrypted."""
    values = {
        SECURITY_NAME: client.frontend,
        NUMBER_OF_CREDENTIALS: str(len(client.credentials)),
    }
    for credential in client.credentials:
        values[credential.id] = credential.content
        values[f"{SECURITY_CLASS}{credential.id}"] = credential.security_class
    return GlideClientGlobalAd(
        glidein_name=instance.factory.glidein_name,
        factory_name=instance.factory.name,
        client_name=client.client_name,
        frontend_name=client.frontend,
        group_name=client.group,
        key=key,
        enc_params={name: sym.encrypt_hex(value) for name, value in values.items()},
    )


def resource_ad(request: EntryRequest, entry: OfferedEntry, client: GroupClient) -> GlideResourceAd:
    """The glideresource ad of one entry: its glidefactory ad and our monitoring joined."""
    return GlideResourceAd.build(
        entry.attrs,
        entry.client_attrs,
        client_name=client.client_name,
        frontend_name=client.frontend,
        group_name=client.group,
        client_monitor=monitor_attrs(request),
        client_config=_config_attrs(client.limits),
    )


def stale_constraint(client_attr: str, client_name: str, kept: Sequence[str]) -> str:
    """Constraint of this client's ads whose Name is not in ``kept`` (to invalidate them)."""
    return (
        f"({client_attr} =?= {string_literal(client_name)}) && "
        f"!identicalMember(Name, {string_list_literal(sorted(kept))})"
    )
