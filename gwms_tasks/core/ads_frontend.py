"""Ads a frontend writes: glideclient, glideclientglobal, glideresource (§1.4-§1.6)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Self

from gwms_tasks.core.ads_monitor import TOTAL, MonitorSection
from gwms_tasks.core.ads_schema import (
    LEGACY_MAX_GLIDEINS,
    NON_CONTENT_NAMES,
    AdReader,
    AdType,
    FrontendHAMode,
    Prefix,
    RemoveExcess,
    ReqField,
    check_unprefixed,
    client_ad_name,
    envelope,
    fields_from,
    fields_to_attrs,
    global_request_ad_name,
    merge_attrs,
    name_part,
    request_ad_name,
    section_of,
    with_prefix,
)
from gwms_tasks.core.classad_text import AdFormatError, AdValue


@dataclass(frozen=True, slots=True)
class RequestKey:
    """The wrapped symmetric key of a request (§2.2), as ``ReqPubKeyID``/``ReqEnc*`` (hex)."""

    pub_key_id: str
    enc_key_code: str
    enc_identity: str

    def to_attrs(self) -> dict[str, AdValue]:
        return {
            "ReqPubKeyID": self.pub_key_id,
            "ReqEncKeyCode": self.enc_key_code,
            "ReqEncIdentity": self.enc_identity,
        }

    @classmethod
    def _read(cls, reader: AdReader) -> RequestKey | None:
        if "ReqPubKeyID" not in reader.attrs:
            return None
        return cls(
            reader.text("ReqPubKeyID"), reader.text("ReqEncKeyCode"), reader.text("ReqEncIdentity")
        )


_FRONTEND_WEB = {
    "url": "WebURL",
    "sign_type": "WebSignType",
    "descript_file": "WebDescriptFile",
    "descript_sign": "WebDescriptSign",
    "group_url": "WebGroupURL",
    "group_descript_file": "WebGroupDescriptFile",
    "group_descript_sign": "WebGroupDescriptSign",
    "monitoring_url": "WebMonitoringURL",
}


@dataclass(frozen=True, slots=True)
class FrontendWeb:
    """The frontend's staging area as its request advertises it (``Web*``, §1.4)."""

    url: str
    sign_type: str
    descript_file: str
    descript_sign: str
    group_url: str
    group_descript_file: str
    group_descript_sign: str
    monitoring_url: str


def _frontend_identity(
    client_name: str, frontend_name: str, group_name: str, ha_mode: FrontendHAMode
) -> dict[str, AdValue]:
    return {
        "ClientName": name_part("client name", client_name),
        "FrontendName": frontend_name,
        "GroupName": group_name,
        "FrontendHAMode": str(ha_mode),
    }


def _idle_lifetime(reader: AdReader) -> int:
    attr = Prefix.REQ + ReqField.IDLE_LIFETIME
    value = reader.attrs.get(attr, "0")
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        return int(value)
    return reader.integer(attr, value)


@dataclass(frozen=True, slots=True)
class GlideClientAd:
    """``glideclient``: one request of a frontend group for one entry and credential (§1.4).

    Attributes:
        cred_id: the frontend's id of the credential; first part of the Name (the work key).
        req_name: the glidefactory Name it targets (ReqName and ReqGlidein).
        idle_lifetime: seconds; written as a quoted string, as 3.10 frontends do.
        key: the wrapped symmetric key; None for an unencrypted (unusable) request.
        params: ``GlideinParam*``: overrides of the entry's parameters.
        config: ``GlideinConfig*``: the frontend's own limits, informational.
        monitor: ``GlideinMonitor*``: the frontend's counters.
        enc_params: ``GlideinEncParam*``: hex ciphertexts, already encrypted.
    """

    ad_type: ClassVar[AdType] = AdType.GLIDECLIENT

    cred_id: str
    req_name: str
    client_name: str
    frontend_name: str
    group_name: str
    web: FrontendWeb
    idle_glideins: int
    max_glideins: int
    remove_excess: RemoveExcess = RemoveExcess.NO
    remove_excess_margin: int = 0
    idle_lifetime: int = 0
    key: RequestKey | None = None
    ha_mode: FrontendHAMode = FrontendHAMode.MASTER
    params: Mapping[str, AdValue] = field(default_factory=dict)
    config: Mapping[str, AdValue] = field(default_factory=dict)
    monitor: Mapping[str, AdValue] = field(default_factory=dict)
    enc_params: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return request_ad_name(self.cred_id, self.req_name, self.client_name)

    def to_attrs(self, *, sequence: int) -> dict[str, AdValue]:
        req: dict[str, AdValue] = {
            ReqField.IDLE_GLIDEINS: self.idle_glideins,
            ReqField.MAX_GLIDEINS: self.max_glideins,
            ReqField.REMOVE_EXCESS: str(self.remove_excess),
            ReqField.REMOVE_EXCESS_MARGIN: self.remove_excess_margin,
            ReqField.IDLE_LIFETIME: str(self.idle_lifetime),
        }
        return merge_attrs(
            envelope(self.ad_type, self.name, sequence),
            _frontend_identity(self.client_name, self.frontend_name, self.group_name, self.ha_mode),
            {"ReqName": self.req_name, "ReqGlidein": self.req_name},
            fields_to_attrs(self.web, _FRONTEND_WEB),
            self.key.to_attrs() if self.key else {},
            {Prefix.REQ + name: value for name, value in req.items()},
            with_prefix(Prefix.PARAM, self.params),
            with_prefix(Prefix.CONFIG, self.config),
            with_prefix(Prefix.MONITOR, self.monitor),
            with_prefix(Prefix.ENC_PARAM, dict(self.enc_params)),
        )

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, AdValue]) -> Self:
        reader = AdReader(attrs, cls.ad_type)
        req_name, client_name = reader.text("ReqName"), reader.text("ClientName")
        suffix = "_" + client_ad_name(req_name, client_name)
        name = reader.text("Name")
        if not name.endswith(suffix) or name == suffix:
            raise reader.error("Name", f"expected <credential id>{suffix}")
        max_attr = Prefix.REQ + ReqField.MAX_GLIDEINS
        if max_attr not in attrs:
            max_attr = Prefix.REQ + LEGACY_MAX_GLIDEINS
        return cls(
            cred_id=name.removesuffix(suffix),
            req_name=req_name,
            client_name=client_name,
            frontend_name=reader.text("FrontendName"),
            group_name=reader.text("GroupName"),
            web=FrontendWeb(**fields_from(reader, _FRONTEND_WEB)),
            idle_glideins=reader.integer(Prefix.REQ + ReqField.IDLE_GLIDEINS),
            max_glideins=reader.integer(max_attr),
            remove_excess=reader.choice(Prefix.REQ + ReqField.REMOVE_EXCESS, RemoveExcess),
            remove_excess_margin=reader.integer(Prefix.REQ + ReqField.REMOVE_EXCESS_MARGIN),
            idle_lifetime=_idle_lifetime(reader),
            key=RequestKey._read(reader),
            ha_mode=reader.choice("FrontendHAMode", FrontendHAMode),
            params=reader.section(Prefix.PARAM),
            config=reader.section(Prefix.CONFIG),
            monitor=reader.section(Prefix.MONITOR),
            enc_params=reader.text_section(Prefix.ENC_PARAM),
        )


@dataclass(frozen=True, slots=True)
class GlideClientGlobalAd:
    """``glideclientglobal``: a frontend group's credentials for one factory instance (§1.5).

    Attributes:
        enc_params: ``GlideinEncParam*`` hex ciphertexts: SecurityName, NumberOfCredentials,
            and per credential ``<credId>`` (the file content) and ``SecurityClass<credId>``.
    """

    ad_type: ClassVar[AdType] = AdType.GLIDECLIENT_GLOBAL

    glidein_name: str
    factory_name: str
    client_name: str
    frontend_name: str
    group_name: str
    key: RequestKey
    enc_params: Mapping[str, str] = field(default_factory=dict)
    ha_mode: FrontendHAMode = FrontendHAMode.MASTER

    @property
    def name(self) -> str:
        return global_request_ad_name(self.glidein_name, self.factory_name, self.client_name)

    def to_attrs(self, *, sequence: int) -> dict[str, AdValue]:
        return merge_attrs(
            envelope(self.ad_type, self.name, sequence),
            _frontend_identity(self.client_name, self.frontend_name, self.group_name, self.ha_mode),
            self.key.to_attrs(),
            with_prefix(Prefix.ENC_PARAM, dict(self.enc_params)),
        )

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, AdValue]) -> Self:
        reader = AdReader(attrs, cls.ad_type)
        client_name = name_part("client name", reader.text("ClientName"))
        parts = reader.text("Name").split("@")
        if len(parts) != 3 or parts[2] != client_name:
            raise reader.error("Name", f"expected <glidein>@<factory>@{client_name}")
        key = RequestKey._read(reader)
        if key is None:
            raise reader.error("ReqPubKeyID", "missing")
        return cls(
            glidein_name=name_part("glidein name", parts[0]),
            factory_name=name_part("factory name", parts[1]),
            client_name=client_name,
            frontend_name=reader.text("FrontendName"),
            group_name=reader.text("GroupName"),
            key=key,
            enc_params=reader.text_section(Prefix.ENC_PARAM),
            ha_mode=reader.choice("FrontendHAMode", FrontendHAMode),
        )


FACTORY_CONFIG_PREFIX = "GlideFactoryConfig"
FACTORY_MONITOR_PREFIX = "GlideFactoryMonitor"
CLIENT_MONITOR_PREFIX = "GlideClientMonitor"
CLIENT_CONFIG_PREFIX = "GlideClientConfig"
_COPIED_MONITOR = (TOTAL, MonitorSection.STATUS, MonitorSection.REQUESTED, "CompletedJobs")
_RESOURCE_NAMES = {"GlideFactoryName", "GlideClientName", "GlideFrontendName", "GlideGroupName"}
_RESOURCE_PREFIXES = (FACTORY_MONITOR_PREFIX, CLIENT_MONITOR_PREFIX, CLIENT_CONFIG_PREFIX)


@dataclass(frozen=True, slots=True)
class GlideResourceAd:
    """``glideresource``: what a frontend tells its user pool about one entry (§1.6).

    Build it with :meth:`build` from the glidefactory and glidefactoryclient ads.

    Attributes:
        factory_attrs: the glidefactory attributes as this ad carries them (``GlideinConfig*``
            renamed ``GlideFactoryConfig*``; no params, monitor or envelope).
        factory_monitor: ``GlideFactoryMonitor*``: the glidefactoryclient's Total/Status/
            Requested/CompletedJobs values.
        client_monitor: ``GlideClientMonitor*``: the frontend's counters.
        client_config: ``GlideClientConfig*``: the frontend's limits.
    """

    ad_type: ClassVar[AdType] = AdType.GLIDERESOURCE

    req_name: str
    client_name: str
    frontend_name: str
    group_name: str
    factory_attrs: Mapping[str, AdValue] = field(default_factory=dict)
    factory_monitor: Mapping[str, AdValue] = field(default_factory=dict)
    client_monitor: Mapping[str, AdValue] = field(default_factory=dict)
    client_config: Mapping[str, AdValue] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        factory_ad: Mapping[str, AdValue],
        factory_client_ad: Mapping[str, AdValue] | None,
        *,
        client_name: str,
        frontend_name: str,
        group_name: str,
        client_monitor: Mapping[str, AdValue],
        client_config: Mapping[str, AdValue],
    ) -> Self:
        """Copy and rename what the frontend publishes from the two factory ads."""
        req_name = factory_ad.get("Name")
        if not isinstance(req_name, str):
            raise AdFormatError("the glidefactory ad has no Name")
        skipped = (Prefix.PARAM, Prefix.MONITOR, Prefix.ENC_PARAM)
        factory_attrs = {
            FACTORY_CONFIG_PREFIX + k.removeprefix(Prefix.CONFIG)
            if k.startswith(Prefix.CONFIG)
            else k: v
            for k, v in factory_ad.items()
            if k not in NON_CONTENT_NAMES and not k.startswith(skipped)
        }
        monitor = section_of(factory_client_ad or {}, Prefix.MONITOR)
        copied = {k: v for k, v in monitor.items() if k.startswith(_COPIED_MONITOR)}
        return cls(
            req_name, client_name, frontend_name, group_name, factory_attrs, copied,
            dict(client_monitor), dict(client_config),
        )  # fmt: skip

    @property
    def name(self) -> str:
        return client_ad_name(self.req_name, self.client_name)

    def to_attrs(self, *, sequence: int) -> dict[str, AdValue]:
        return merge_attrs(
            envelope(self.ad_type, self.name, sequence),
            {
                "GlideFactoryName": self.req_name,
                "GlideClientName": self.client_name,
                "GlideFrontendName": self.frontend_name,
                "GlideGroupName": self.group_name,
            },
            check_unprefixed(self.factory_attrs, _RESOURCE_NAMES, _RESOURCE_PREFIXES),
            with_prefix(FACTORY_MONITOR_PREFIX, self.factory_monitor),
            with_prefix(CLIENT_MONITOR_PREFIX, self.client_monitor),
            with_prefix(CLIENT_CONFIG_PREFIX, self.client_config),
        )

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, AdValue]) -> Self:
        reader = AdReader(attrs, cls.ad_type)
        return cls(
            req_name=reader.text("GlideFactoryName"),
            client_name=reader.text("GlideClientName"),
            frontend_name=reader.text("GlideFrontendName"),
            group_name=reader.text("GlideGroupName"),
            factory_attrs=reader.rest(_RESOURCE_NAMES, _RESOURCE_PREFIXES),
            factory_monitor=reader.section(FACTORY_MONITOR_PREFIX),
            client_monitor=reader.section(CLIENT_MONITOR_PREFIX),
            client_config=reader.section(CLIENT_CONFIG_PREFIX),
        )
