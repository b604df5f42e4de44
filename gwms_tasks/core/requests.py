"""Request validation: a raw ``glideclient`` ad becomes a :class:`Request` or a :class:`Rejection`.

The checks follow the reference §2.3, §2.4, §3.2 and §7.1, in this order:

1. the ad's ClientName and ReqName are safe and address this entry of this factory, and its Name
   is ``<credential id>_<ReqName>@<ClientName>`` (the Name every later ad is derived from);
2. protocol v2 requests (``x509_proxy_0``) are refused;
3. the symmetric key decrypts with one of the factory's current keys;
4. the decrypted ``ReqEncIdentity`` equals the identity the transport authenticated, and that
   identity is the one configured for the decrypted ``SecurityName`` (anti-spoofing: only a holder
   of the key could encrypt the identity, and only the transport can prove it);
5. every encrypted parameter decrypts (one failure drops the whole ad);
6. the security class maps to a local user; the entry's whitelist allows the client;
7. the credentials fit the entry's auth method; the numbers are numbers.

No exception escapes for bad input: everything wrong becomes a Rejection whose reason an operator
can read. Secrets (token contents) stay in :attr:`Request.secrets`, which is not serialised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gwms_tasks.core.ad_trust import (
    KeyMemo,
    RejectReason,
    Untrusted,
    check_identity,
    decrypt_text,
    frontend_for,
    open_key,
)
from gwms_tasks.core.ads import RawRequest, client_ad_name, split_req_name
from gwms_tasks.core.ads_schema import name_part
from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.core.config_entry import EntryConfig, WhitelistVerdict
from gwms_tasks.core.credentials import (
    SCITOKEN_PARAM,
    CredentialChoice,
    choose_credential,
    idtoken_param,
)
from gwms_tasks.core.decisions import Demand, DownReason, RemoveExcess
from gwms_tasks.core.keyring import Keyring
from gwms_tasks.errors import GwmsError

WEB_KEYS = (
    "URL", "SignType", "DescriptFile", "DescriptSign",
    "GroupURL", "GroupDescriptFile", "GroupDescriptSign",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rejection:
    """A request ad that was dropped, and why (shown by `gwms explain` and on web pages)."""

    reason: RejectReason
    detail: str
    work_key: str | None = None
    client: str | None = None

    def explain(self) -> str:
        who = f"request {self.work_key}" if self.work_key else "request"
        return f"{who} rejected ({self.reason.value}): {self.detail}"


@dataclass(frozen=True, slots=True)
class Request:
    """A validated request of one client for one entry.

    Attributes:
        demand: what the decisions need (counts, removal mode, downtime).
        username: local user owning the credentials and running the submissions.
        security_name: the frontend's SecurityName (the configured frontend name).
        identity: the authenticated identity of the writer.
        req_name: the ReqName (``entry@glidein@factory``).
        group: GroupName.
        params: glidein parameters: entry params overridden/extended by the request's.
        web: the client's staging arguments (Web* without prefix).
        submit_credential: id of the credential file the submission uses, or None.
        idle_lifetime: seconds a glidein may wait in the queue (0: no limit).
        notes: things worth logging that did not reject the request.
        secrets: token contents (scitoken, idtoken) for the user worker; never serialised.
    """

    demand: Demand
    username: str
    security_name: str
    identity: str
    req_name: str
    group: str
    params: Mapping[str, str]
    web: Mapping[str, str]
    submit_credential: str | None
    idle_lifetime: int = 0
    notes: tuple[str, ...] = ()
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def entry(self) -> str:
        return split_req_name(self.req_name)[0]


DownCheck = Callable[[str, str], DownReason | None]
"""(frontend, security_class) -> why new submissions are blocked for it, or None."""


_Reject = Untrusted


@dataclass(frozen=True, slots=True)
class ValidationContext:
    """What validation needs besides the ad: configuration, keys and downtimes at ``now``.

    ``key_codes`` is an optional memo ``(ReqPubKeyID, ReqEncKeyCode) -> SymKey`` held by the
    caller across calls: a frontend sends one wrapped key in all its ads of a cycle, and
    unwrapping it (RSA) costs more than the rest of the validation. It is consulted only once
    the named key is usable at ``now``, and only successful unwraps are stored.
    """

    config: FactoryConfig
    entry: str
    keyring: Keyring
    now: float
    down_for: DownCheck
    key_codes: KeyMemo | None = None


def validate_request(
    attrs: Mapping[str, object], authenticated_identity: str | None, ctx: ValidationContext
) -> Request | Rejection:
    """Validate one raw glideclient ad for one entry; never raises for bad input."""
    raw = RawRequest.from_attrs(dict(attrs))
    work_key = raw.name if isinstance(raw.name, str) else None
    client = raw.client_name if isinstance(raw.client_name, str) else None
    try:
        return _validate(raw, authenticated_identity, ctx)
    except _Reject as rej:
        return Rejection(rej.reason, rej.detail, work_key, client)
    except (GwmsError, ValueError, TypeError, KeyError) as exc:  # defensive: bad input only
        return Rejection(RejectReason.MALFORMED, f"malformed request: {exc}", work_key, client)


def _validate(raw: RawRequest, identity: str | None, ctx: ValidationContext) -> Request:
    entry_cfg = _check_names(raw, ctx)
    enc = _decrypt(raw, identity, ctx)
    assert identity is not None  # _decrypt rejects a missing identity
    frontend, security_class, username = _authorize(enc, identity, ctx.config)
    verdict = entry_cfg.whitelist(frontend, security_class)
    if verdict is WhitelistVerdict.CLASS_NOT_ALLOWED:
        raise _Reject(
            RejectReason.CLASS_NOT_WHITELISTED,
            f"entry {ctx.entry} does not allow security class {security_class} of {frontend}",
        )
    params = _params(raw, entry_cfg)
    choice = choose_credential(entry_cfg.auth_method, enc, params)
    if not isinstance(choice, CredentialChoice):
        raise _Reject(RejectReason.CREDENTIALS, choice.detail)
    down = ctx.down_for(frontend, security_class)
    if down is None and verdict is WhitelistVerdict.NOT_LISTED:
        down = DownReason.NOT_WHITELISTED
    return _build(raw, ctx, enc, params, choice, frontend, security_class, username, identity, down)


def _check_names(raw: RawRequest, ctx: ValidationContext) -> EntryConfig:
    name, client, req_name = raw.name, raw.client_name, raw.req_name
    for label, value in (("Name", name), ("ClientName", client), ("ReqName", req_name)):
        if not isinstance(value, str):
            raise _Reject(RejectReason.UNSAFE_NAME, f"{label} {value!r} is missing or unsafe")
    assert isinstance(name, str) and isinstance(client, str) and isinstance(req_name, str)
    try:
        entry, glidein, factory = split_req_name(req_name)
        suffix = "_" + client_ad_name(req_name, client)
    except GwmsError as exc:
        raise _Reject(RejectReason.UNSAFE_NAME, str(exc)) from exc
    fac = ctx.config.factory
    if (entry, glidein, factory) != (ctx.entry, fac.glidein_name, fac.name):
        raise _Reject(
            RejectReason.WRONG_FACTORY,
            f"ReqName {raw.req_name} is not {ctx.entry}@{fac.glidein_name}@{fac.name}",
        )
    entry_cfg = ctx.config.entries.get(entry)
    if entry_cfg is None or not entry_cfg.enabled:
        raise _Reject(RejectReason.WRONG_FACTORY, f"entry {entry} is not served by this factory")
    _check_work_key(name, suffix)
    if "x509_proxy_0" in raw.enc_params:
        raise _Reject(RejectReason.V2_PROTOCOL, "protocol v2 requests (x509_proxy_0) are refused")
    return entry_cfg


def _check_work_key(name: str, suffix: str) -> None:
    """The Name must be ``<credential id>_<ReqName>@<ClientName>``, as the frontend writes it."""
    if not name.endswith(suffix):
        raise _Reject(RejectReason.UNSAFE_NAME, f"Name {name!r} is not <credential id>{suffix}")
    try:
        name_part("credential id of Name", name.removesuffix(suffix))
    except GwmsError as exc:
        raise _Reject(RejectReason.UNSAFE_NAME, str(exc)) from exc


def _decrypt(raw: RawRequest, identity: str | None, ctx: ValidationContext) -> dict[str, str]:
    sym = open_key(ctx.keyring, ctx.now, raw.pub_key_id, raw.enc_key_code, ctx.key_codes)
    check_identity(sym, raw.enc_identity, identity)
    return {name: decrypt_text(sym, name, value) for name, value in raw.enc_params.items()}


def _authorize(
    enc: Mapping[str, str], identity: str, config: FactoryConfig
) -> tuple[str, str, str]:
    security_name = frontend_for(config, enc.get("SecurityName"), identity)
    security_class = enc.get("SecurityClass")
    username = config.username_for(security_name, security_class) if security_class else None
    if security_class is None or username is None:
        raise _Reject(
            RejectReason.UNKNOWN_SECURITY_CLASS,
            f"security class {security_class!r} of {security_name} maps to no local user",
        )
    return security_name, security_class, username


def _params(raw: RawRequest, entry_cfg: EntryConfig) -> dict[str, str]:
    const = entry_cfg.const_attributes()
    merged = {name: _text(value) for name, value in entry_cfg.params().items()}
    merged.update({k: _text(v) for k, v in raw.params.items() if k not in const})
    return merged


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _build(
    raw: RawRequest,
    ctx: ValidationContext,
    enc: Mapping[str, str],
    params: dict[str, str],
    choice: CredentialChoice,
    frontend: str,
    security_class: str,
    username: str,
    identity: str,
    down: DownReason | None,
) -> Request:
    remove_excess, note = RemoveExcess.parse(_opt_text(raw.req.get("RemoveExcess")))
    demand = Demand(
        work_key=str(raw.name),
        client=str(raw.client_name),
        security_class=security_class,
        credential_id=choice.credential_id,
        frontend=frontend,
        req_idle=_count(raw.req, "IdleGlideins", required=True),
        req_max=_count(raw.req, "MaxGlideins", required=True),
        remove_excess=remove_excess,
        remove_margin=_count(raw.req, "RemoveExcessMargin", required=False),
        down=down,
    )
    return Request(
        demand=demand,
        username=username,
        security_name=frontend,
        identity=identity,
        req_name=str(raw.req_name),
        group=str(raw.group_name or ""),
        params=params,
        web=_web(raw),
        submit_credential=choice.submit_credential,
        idle_lifetime=_count(raw.req, "IdleLifetime", required=False),
        notes=(note,) if note else (),
        secrets=_secrets(enc, ctx.entry),
    )


def _count(req: Mapping[str, object], name: str, *, required: bool) -> int:
    value = req.get(name)
    if value is None and not required:
        return 0
    if isinstance(value, bool) or value is None:
        raise _Reject(RejectReason.BAD_NUMBER, f"Req{name} is missing or not a number: {value!r}")
    try:
        number = int(value) if isinstance(value, int) else int(str(value).strip())
    except ValueError as exc:
        raise _Reject(RejectReason.BAD_NUMBER, f"Req{name} is not an integer: {value!r}") from exc
    if number < 0:
        raise _Reject(RejectReason.BAD_NUMBER, f"Req{name} is negative: {number}")
    return number


def _opt_text(value: object) -> str | None:
    return None if value is None else str(value)


def _web(raw: RawRequest) -> dict[str, str]:
    missing = [f"Web{key}" for key in WEB_KEYS if not isinstance(raw.web.get(key), str)]
    if missing:
        raise _Reject(RejectReason.MISSING_WEB, f"missing {', '.join(missing)}")
    return {key: str(value) for key, value in raw.web.items()}


def _secrets(enc: Mapping[str, str], entry: str) -> dict[str, str]:
    wanted = (SCITOKEN_PARAM, idtoken_param(entry))
    return {name: enc[name] for name in wanted if enc.get(name)}
