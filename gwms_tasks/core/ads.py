"""The six glideinWMS ad types: names, vocabulary, typed builders and parsers (reference §1).

This module is the public face of the ad modules:

- :mod:`~gwms_tasks.core.ads_schema`: ad types and their collector commands, prefixes, reserved
  names, the Name formats (``entry@glidein@factory``, ...);
- :mod:`~gwms_tasks.core.ads_factory`: glidefactoryglobal, glidefactory, glidefactoryclient;
- :mod:`~gwms_tasks.core.ads_frontend`: glideclient, glideclientglobal, glideresource;
- :mod:`~gwms_tasks.core.ads_monitor`: the monitoring value names and builders.

Each ``*Ad`` class is one ad as its writer builds it: ``to_attrs(sequence=n)`` returns its
attributes with ``MyType``/``GlideinMyType``, ``GlideinWMSVersion`` and ``UpdateSequenceNumber``,
and ``from_attrs`` reads them back, raising AdFormatError naming the ad and the attribute.
:class:`RawRequest`, defined here, is the factory's tolerant reading of a request ad: it never
raises; judging the request is :mod:`gwms_tasks.core.requests`' job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gwms_tasks.core.ads_factory import (
    AUTH_METHOD_ATTR,
    DEFAULT_SIGN_TYPES,
    DOWNTIME_COMMENT_ATTR,
    IN_DOWNTIME_ATTR,
    AdvertisedLimits,
    FactoryClientAd,
    FactoryEntryAd,
    FactoryGlobalAd,
    FactoryPublicKey,
    FactoryWeb,
    format_per_frontend,
    parse_per_frontend,
    proxy_flags,
)
from gwms_tasks.core.ads_frontend import (
    CLIENT_CONFIG_PREFIX,
    CLIENT_MONITOR_PREFIX,
    FACTORY_CONFIG_PREFIX,
    FACTORY_MONITOR_PREFIX,
    FrontendWeb,
    GlideClientAd,
    GlideClientGlobalAd,
    GlideResourceAd,
    RequestKey,
)
from gwms_tasks.core.ads_monitor import (
    CLIENT_MONITOR_VALUES,
    COMPLETED_JOBS_BINS,
    LIMIT_FLAG_PREFIX,
    REQUESTED_VALUES,
    STATUS_VALUES,
    TOTAL,
    ClientMonitor,
    FactoryLimit,
    LimitTriggered,
    MonitorSection,
    Requested,
    monitor_totals,
    monitor_values,
)
from gwms_tasks.core.ads_schema import (
    COLLECTOR_ADDED_NAMES,
    ENVELOPE_NAMES,
    FACTORY_RESERVED_NAMES,
    LEGACY_MAX_GLIDEINS,
    PLUS_ESCAPE,
    AdCommand,
    AdType,
    FrontendHAMode,
    Prefix,
    RemoveExcess,
    ReqField,
    client_ad_name,
    describe_value,
    entry_ad_name,
    global_ad_name,
    global_request_ad_name,
    invalidation_ad,
    request_ad_name,
    section_of,
    split_req_name,
    submit_attr_from_suffix,
    submit_attr_name,
)
from gwms_tasks.core.classad_text import AdExpr

__all__ = [
    "AUTH_METHOD_ATTR", "CLIENT_CONFIG_PREFIX", "CLIENT_MONITOR_PREFIX", "CLIENT_MONITOR_VALUES",
    "COLLECTOR_ADDED_NAMES", "COMPLETED_JOBS_BINS", "DEFAULT_SIGN_TYPES", "DOWNTIME_COMMENT_ATTR",
    "ENVELOPE_NAMES", "FACTORY_CONFIG_PREFIX", "FACTORY_MONITOR_PREFIX", "FACTORY_RESERVED_NAMES",
    "IN_DOWNTIME_ATTR", "LEGACY_MAX_GLIDEINS", "LIMIT_FLAG_PREFIX", "PLUS_ESCAPE",
    "REQUESTED_VALUES", "STATUS_VALUES", "TOTAL", "AdCommand", "AdType", "AdvertisedLimits",
    "ClientMonitor", "FactoryClientAd", "FactoryEntryAd", "FactoryGlobalAd", "FactoryLimit",
    "FactoryPublicKey", "FactoryWeb", "FrontendHAMode", "FrontendWeb", "GlideClientAd",
    "GlideClientGlobalAd", "GlideResourceAd", "LimitTriggered", "MonitorSection", "Prefix",
    "RawRequest", "RemoveExcess", "ReqField", "RequestKey", "Requested", "client_ad_name",
    "entry_ad_name", "format_per_frontend", "global_ad_name", "global_request_ad_name",
    "invalidation_ad", "monitor_totals", "monitor_values", "parse_per_frontend", "proxy_flags",
    "request_ad_name", "split_req_name", "submit_attr_from_suffix", "submit_attr_name",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class RawRequest:
    """A glideclient ad split into its parts, every value as the ad had it (§1.4, §2.3).

    Reading never fails: a text field that is absent, or not a string, is None (the second
    case noted in ``problems``); sections keep whatever values they hold. Whether the request
    is acceptable is for :mod:`gwms_tasks.core.requests` to decide.

    Attributes:
        name: the ad's Name, the factory's work key.
        req: the ``Req*`` numbers without the prefix (see :class:`ReqField`); a legacy
            ``ReqMaxRunningGlideins`` is read as ``MaxGlideins`` when that is absent.
        web, params, enc_params, monitor, config: the sections without their prefix;
            ``enc_params`` hold hex ciphertexts.
        authenticated_identity: who the dashboard authenticated as the writer, if it said.
        problems: one line per text field that was present but not a string.
    """

    name: str | None
    client_name: str | None
    frontend_name: str | None
    group_name: str | None
    ha_mode: str | None
    req_name: str | None
    req_glidein: str | None
    pub_key_id: str | None
    enc_key_code: str | None
    enc_identity: str | None
    authenticated_identity: str | None
    web: Mapping[str, object] = field(default_factory=dict)
    req: Mapping[str, object] = field(default_factory=dict)
    params: Mapping[str, object] = field(default_factory=dict)
    enc_params: Mapping[str, object] = field(default_factory=dict)
    monitor: Mapping[str, object] = field(default_factory=dict)
    config: Mapping[str, object] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def entry_name(self) -> str | None:
        """The entry part of ReqName (how the factory groups work), if there is a ReqName."""
        return self.req_name.split("@", 1)[0] if self.req_name else None

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, object]) -> RawRequest:
        """Split one glideclient ad; never raises."""
        problems: list[str] = []

        def text(attr: str) -> str | None:
            value = attrs.get(attr)
            if value is None or (isinstance(value, str) and not isinstance(value, AdExpr)):
                return value
            problems.append(f"{attr}: expected a string, got {describe_value(value)}")
            return None

        req = section_of(attrs, Prefix.REQ, FACTORY_RESERVED_NAMES)
        legacy = req.pop(LEGACY_MAX_GLIDEINS, None)
        if ReqField.MAX_GLIDEINS not in req and legacy is not None:
            req[ReqField.MAX_GLIDEINS] = legacy
        return cls(
            name=text("Name"),
            client_name=text("ClientName"),
            frontend_name=text("FrontendName"),
            group_name=text("GroupName"),
            ha_mode=text("FrontendHAMode"),
            req_name=text("ReqName"),
            req_glidein=text("ReqGlidein"),
            pub_key_id=text("ReqPubKeyID"),
            enc_key_code=text("ReqEncKeyCode"),
            enc_identity=text("ReqEncIdentity"),
            authenticated_identity=text("AuthenticatedIdentity"),
            web=section_of(attrs, Prefix.WEB),
            req=req,
            params=section_of(attrs, Prefix.PARAM),
            enc_params=section_of(attrs, Prefix.ENC_PARAM),
            monitor=section_of(attrs, Prefix.MONITOR),
            config=section_of(attrs, Prefix.CONFIG),
            problems=tuple(problems),
        )
