"""Ads the factory writes: glidefactoryglobal, glidefactory, glidefactoryclient (§1.1-§1.3)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Self

from gwms_tasks.core.ads_monitor import LIMIT_FLAG_PREFIX, LimitTriggered
from gwms_tasks.core.ads_schema import (
    AdReader,
    AdType,
    Prefix,
    check_unprefixed,
    client_ad_name,
    entry_ad_name,
    envelope,
    fields_from,
    fields_to_attrs,
    global_ad_name,
    merge_attrs,
    submit_attr_from_suffix,
    submit_attr_name,
    with_prefix,
)
from gwms_tasks.core.classad_text import AdFormatError, AdValue
from gwms_tasks.core.limits import EntryLimits, GlideinLimits


def _sign_types(reader: AdReader) -> tuple[str, ...]:
    return tuple(t.strip() for t in reader.text("SupportedSignTypes").split(",") if t.strip())


_BACKSLASHES_N = re.compile(r"\\+n")


@dataclass(frozen=True, slots=True)
class FactoryPublicKey:
    """The factory's public key as advertised: ``PubKeyID``, ``PubKeyType``, ``PubKeyValue``.

    Attributes:
        key_id: md5 hex id the frontend echoes back as ReqPubKeyID.
        pem: the PEM text, with real newlines (written as ``\\n`` in the ad).
        key_type: only ``RSA`` is used by frontends.
    """

    key_id: str
    pem: str
    key_type: str = "RSA"

    def to_attrs(self) -> dict[str, AdValue]:
        return {"PubKeyID": self.key_id, "PubKeyType": self.key_type, "PubKeyValue": self.pem}

    @classmethod
    def _read(cls, reader: AdReader) -> Self:
        # Frontends turn one-or-more backslashes + n back into newlines; so do we.
        pem = _BACKSLASHES_N.sub("\n", reader.text("PubKeyValue"))
        return cls(reader.text("PubKeyID"), pem, reader.text("PubKeyType"))


_KEY_NAMES = ("PubKeyID", "PubKeyType", "PubKeyValue")
DEFAULT_SIGN_TYPES = ("sha1", "sha256")


@dataclass(frozen=True, slots=True)
class FactoryGlobalAd:
    """``glidefactoryglobal``: one per factory instance, carrying the key frontends use (§1.2)."""

    ad_type: ClassVar[AdType] = AdType.GLIDEFACTORY_GLOBAL

    factory_name: str
    glidein_name: str
    daemon_start_time: int
    public_key: FactoryPublicKey
    supported_sign_types: tuple[str, ...] = DEFAULT_SIGN_TYPES

    @property
    def name(self) -> str:
        return global_ad_name(self.glidein_name, self.factory_name)

    def to_attrs(self, *, sequence: int) -> dict[str, AdValue]:
        return merge_attrs(
            envelope(self.ad_type, self.name, sequence),
            {
                "FactoryName": self.factory_name,
                "GlideinName": self.glidein_name,
                "DaemonStartTime": self.daemon_start_time,
                "SupportedSignTypes": ",".join(self.supported_sign_types),
            },
            self.public_key.to_attrs(),
        )

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, AdValue]) -> Self:
        reader = AdReader(attrs, cls.ad_type)
        return cls(
            factory_name=reader.text("FactoryName"),
            glidein_name=reader.text("GlideinName"),
            daemon_start_time=reader.integer("DaemonStartTime"),
            public_key=FactoryPublicKey._read(reader),
            supported_sign_types=_sign_types(reader),
        )


_FACTORY_WEB = {
    "url": "WebURL",
    "sign_type": "WebSignType",
    "descript_file": "WebDescriptFile",
    "descript_sign": "WebDescriptSign",
    "entry_descript_file": "WebEntryDescriptFile",
    "entry_descript_sign": "WebEntryDescriptSign",
}


@dataclass(frozen=True, slots=True)
class FactoryWeb:
    """The factory's staging area as a glidefactory ad advertises it (``Web*``)."""

    url: str
    descript_file: str
    descript_sign: str
    entry_descript_file: str
    entry_descript_sign: str
    sign_type: str = "sha1"


def format_per_frontend(values: Mapping[str, int]) -> str:
    """``{"fe:sc": 5, ...}`` -> ``"fe:sc=5,..."`` (sorted), the PerFrontendMax* format."""
    for key in values:
        if not isinstance(key, str) or not key or any(c in key for c in ",= \t"):
            raise AdFormatError(f"invalid frontend:security_class key {key!r}")
    return ",".join(f"{key}={int(values[key])}" for key in sorted(values))


def parse_per_frontend(text: str) -> dict[str, int]:
    """``"fe:sc=5,fe2:sc2=7"`` -> ``{"fe:sc": 5, "fe2:sc2": 7}``; AdFormatError if malformed."""
    result: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, number = (s.strip() for s in item.partition("="))
        if not sep or not key or not re.fullmatch(r"-?[0-9]+", number):
            raise AdFormatError(f"invalid per-frontend limit {item!r}: expected fe:sc=N")
        result[key] = int(number)
    return result


_LIMIT_FIELDS = {"max_idle": "MaxIdle", "max_held": "MaxHeld", "max_glideins": "MaxGlideins"}


@dataclass(frozen=True, slots=True)
class AdvertisedLimits:
    """The entry limits a glidefactory ad shows as ``GlideinConfig*`` (§1.1)."""

    per_entry: GlideinLimits
    default_per_frontend: GlideinLimits
    per_frontend: Mapping[str, GlideinLimits] = field(default_factory=dict)

    @classmethod
    def of(cls, limits: EntryLimits) -> AdvertisedLimits:
        return cls(limits.per_entry, limits.default_per_frontend, dict(limits.per_frontend))

    def to_attrs(self) -> dict[str, AdValue]:
        attrs: dict[str, AdValue] = {}
        for fld, suffix in _LIMIT_FIELDS.items():
            attrs[f"PerEntry{suffix}"] = getattr(self.per_entry, fld)
            attrs[f"DefaultPerFrontend{suffix}"] = getattr(self.default_per_frontend, fld)
            per = {key: getattr(limits, fld) for key, limits in self.per_frontend.items()}
            attrs[f"PerFrontend{suffix}"] = format_per_frontend(per)
        return with_prefix(Prefix.CONFIG, attrs)

    @classmethod
    def _read(cls, reader: AdReader) -> AdvertisedLimits:
        def limits(scope: str) -> GlideinLimits:
            values = {
                f: reader.integer(f"{Prefix.CONFIG}{scope}{s}") for f, s in _LIMIT_FIELDS.items()
            }
            return GlideinLimits(**values)

        default = limits("DefaultPerFrontend")
        per: dict[str, dict[str, int]] = {}
        for fld, suffix in _LIMIT_FIELDS.items():
            attr = f"{Prefix.CONFIG}PerFrontend{suffix}"
            try:
                for key, number in parse_per_frontend(reader.text(attr)).items():
                    per.setdefault(key, {})[fld] = number
            except AdFormatError as exc:
                raise reader.error(attr, str(exc)) from exc
        defaults = {fld: getattr(default, fld) for fld in _LIMIT_FIELDS}
        per_frontend = {key: GlideinLimits(**(defaults | given)) for key, given in per.items()}
        return cls(limits("PerEntry"), default, per_frontend)


def proxy_flags(auth_method: str) -> dict[str, AdValue]:
    """The x509 flags of a glidefactory ad: strings, as glideinWMS writes them (§1.1)."""
    grid_proxy = "grid_proxy" in auth_method.split("+")
    return {
        "GlideinAllowx509_Proxy": str(grid_proxy),
        "GlideinRequirex509_Proxy": str(grid_proxy),
        "GlideinRequireGlideinProxy": str(not grid_proxy),
    }


AUTH_METHOD_ATTR = "GLIDEIN_SupportedAuthenticationMethod"
IN_DOWNTIME_ATTR = "GLIDEIN_In_Downtime"
DOWNTIME_COMMENT_ATTR = "GLIDEIN_Downtime_Comment"
_ENTRY_NAMES = {
    "FactoryName", "GlideinName", "EntryName", "DaemonStartTime", "SupportedSignTypes",
    *_KEY_NAMES, *proxy_flags(""), AUTH_METHOD_ATTR, IN_DOWNTIME_ATTR, DOWNTIME_COMMENT_ATTR,
}  # fmt: skip
_ENTRY_PREFIXES = (Prefix.PARAM, Prefix.SUBMIT, Prefix.CONFIG, Prefix.MONITOR, Prefix.WEB)


@dataclass(frozen=True, slots=True)
class FactoryEntryAd:
    """``glidefactory``: one per entry, what frontends match and request against (§1.1).

    Attributes:
        auth_method: the entry's ``+``-joined auth method; published as
            GLIDEIN_SupportedAuthenticationMethod and deciding the x509 flags.
        attributes: published un-prefixed (GLIDEIN_Gatekeeper, GLIDEIN_Site, ...).
        params: entry parameter defaults (``GlideinParam*``), the frontend may override them.
        submit_attrs: configured submit attributes (``GlideinSubmit*``), ``+Name`` allowed.
        monitor: ``GlideinMonitor*`` values (the ``Total*`` sums, completed-jobs histograms).
    """

    ad_type: ClassVar[AdType] = AdType.GLIDEFACTORY

    entry_name: str
    glidein_name: str
    factory_name: str
    daemon_start_time: int
    public_key: FactoryPublicKey
    auth_method: str
    web: FactoryWeb
    limits: AdvertisedLimits
    attributes: Mapping[str, AdValue] = field(default_factory=dict)
    params: Mapping[str, AdValue] = field(default_factory=dict)
    submit_attrs: Mapping[str, AdValue] = field(default_factory=dict)
    monitor: Mapping[str, int] = field(default_factory=dict)
    in_downtime: bool = False
    downtime_comment: str = ""
    supported_sign_types: tuple[str, ...] = DEFAULT_SIGN_TYPES

    @property
    def name(self) -> str:
        return entry_ad_name(self.entry_name, self.glidein_name, self.factory_name)

    def published_attributes(self) -> dict[str, AdValue]:
        """Every un-prefixed attribute; a glidefactoryclient ad repeats them (§1.3)."""
        return merge_attrs(
            check_unprefixed(self.attributes, _ENTRY_NAMES, _ENTRY_PREFIXES),
            {
                AUTH_METHOD_ATTR: self.auth_method,
                IN_DOWNTIME_ATTR: self.in_downtime,
                DOWNTIME_COMMENT_ATTR: self.downtime_comment,
            },
        )

    def to_attrs(self, *, sequence: int) -> dict[str, AdValue]:
        return merge_attrs(
            envelope(self.ad_type, self.name, sequence),
            {
                "FactoryName": self.factory_name,
                "GlideinName": self.glidein_name,
                "EntryName": self.entry_name,
                "DaemonStartTime": self.daemon_start_time,
                "SupportedSignTypes": ",".join(self.supported_sign_types),
            },
            self.public_key.to_attrs(),
            proxy_flags(self.auth_method),
            self.published_attributes(),
            with_prefix(Prefix.PARAM, self.params),
            {submit_attr_name(name): value for name, value in self.submit_attrs.items()},
            self.limits.to_attrs(),
            fields_to_attrs(self.web, _FACTORY_WEB),
            with_prefix(Prefix.MONITOR, self.monitor),
        )

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, AdValue]) -> Self:
        reader = AdReader(attrs, cls.ad_type)
        submit = reader.section(Prefix.SUBMIT)
        return cls(
            entry_name=reader.text("EntryName"),
            glidein_name=reader.text("GlideinName"),
            factory_name=reader.text("FactoryName"),
            daemon_start_time=reader.integer("DaemonStartTime"),
            public_key=FactoryPublicKey._read(reader),
            auth_method=reader.text(AUTH_METHOD_ATTR),
            web=FactoryWeb(**fields_from(reader, _FACTORY_WEB)),
            limits=AdvertisedLimits._read(reader),
            attributes=reader.rest(_ENTRY_NAMES, _ENTRY_PREFIXES),
            params=reader.section(Prefix.PARAM),
            submit_attrs={submit_attr_from_suffix(k): v for k, v in submit.items()},
            monitor=reader.int_section(Prefix.MONITOR),
            in_downtime=reader.flag(IN_DOWNTIME_ATTR),
            # A factory with nothing to say may leave the comment out.
            downtime_comment=(
                reader.text(DOWNTIME_COMMENT_ATTR) if DOWNTIME_COMMENT_ATTR in attrs else ""
            ),
            supported_sign_types=_sign_types(reader),
        )


def _limit_flag(reader: AdReader, monitor_name: str, value: AdValue) -> LimitTriggered:
    try:
        return LimitTriggered.parse(monitor_name, str(value))
    except AdFormatError as exc:
        raise reader.error(Prefix.MONITOR + monitor_name, str(exc)) from exc


_CLIENT_NAMES = {
    "ReqGlidein", "ReqFactoryName", "ReqGlideinName", "ReqEntryName", "ReqClientName",
    "ReqClientReqName",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class FactoryClientAd:
    """``glidefactoryclient``: per (entry, client) monitoring for the frontend (§1.3).

    Attributes:
        attributes: the entry's un-prefixed attributes, repeated (frontends match on them).
        params: the entry's ``GlideinParam*``.
        monitor: ``GlideinMonitor*`` ints: the entry totals and this client's values.
        limits_triggered: the limits that held this client back in the last cycle.
    """

    ad_type: ClassVar[AdType] = AdType.GLIDEFACTORY_CLIENT

    entry_name: str
    glidein_name: str
    factory_name: str
    client_name: str
    attributes: Mapping[str, AdValue] = field(default_factory=dict)
    params: Mapping[str, AdValue] = field(default_factory=dict)
    monitor: Mapping[str, int] = field(default_factory=dict)
    limits_triggered: frozenset[LimitTriggered] = frozenset()

    @classmethod
    def for_entry(
        cls,
        entry: FactoryEntryAd,
        client_name: str,
        monitor: Mapping[str, int],
        limits_triggered: Iterable[LimitTriggered] = (),
    ) -> Self:
        """The ad of one client of an entry, repeating the entry's attributes and params."""
        return cls(
            entry.entry_name, entry.glidein_name, entry.factory_name, client_name,
            entry.published_attributes(), dict(entry.params), dict(monitor),
            frozenset(limits_triggered),
        )  # fmt: skip

    @property
    def req_name(self) -> str:
        return entry_ad_name(self.entry_name, self.glidein_name, self.factory_name)

    @property
    def name(self) -> str:
        return client_ad_name(self.req_name, self.client_name)

    def to_attrs(self, *, sequence: int) -> dict[str, AdValue]:
        flags = {flag.monitor_name: flag.text for flag in self.limits_triggered}
        return merge_attrs(
            envelope(self.ad_type, self.name, sequence),
            {
                "ReqGlidein": self.req_name,
                "ReqFactoryName": self.factory_name,
                "ReqGlideinName": self.glidein_name,
                "ReqEntryName": self.entry_name,
                "ReqClientName": self.client_name,
                "ReqClientReqName": self.req_name,
            },
            check_unprefixed(self.attributes, _CLIENT_NAMES, (Prefix.PARAM, Prefix.MONITOR)),
            with_prefix(Prefix.PARAM, self.params),
            with_prefix(Prefix.MONITOR, {**self.monitor, **flags}),
        )

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, AdValue]) -> Self:
        reader = AdReader(attrs, cls.ad_type)
        monitor = reader.section(Prefix.MONITOR)
        flags = {k: v for k, v in monitor.items() if k.startswith(LIMIT_FLAG_PREFIX)}
        triggered = frozenset(_limit_flag(reader, k, v) for k, v in flags.items())
        return cls(
            entry_name=reader.text("ReqEntryName"),
            glidein_name=reader.text("ReqGlideinName"),
            factory_name=reader.text("ReqFactoryName"),
            client_name=reader.text("ReqClientName"),
            attributes=reader.rest(_CLIENT_NAMES, (Prefix.PARAM, Prefix.MONITOR)),
            params=reader.section(Prefix.PARAM),
            monitor={
                k: reader.integer(Prefix.MONITOR + k, v)
                for k, v in monitor.items()
                if k not in flags
            },
            limits_triggered=triggered,
        )
