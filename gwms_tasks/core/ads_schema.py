"""Ad vocabulary and plumbing shared by the ad modules (the reference §1, §1.0, §1.4).

The ad types with their collector commands, the attribute prefixes and reserved names, the Name
formats others join on, and the small readers and writers the typed ads are built from. Import
the public API from :mod:`gwms_tasks.core.ads`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Iterable, Mapping
from typing import TypeVar

from gwms_tasks import GLIDEINWMS_VERSION_STRING
from gwms_tasks.core.classad_text import AdExpr, AdFormatError, AdValue, check_attr_name

_E = TypeVar("_E", bound=enum.StrEnum)
_V = TypeVar("_V")


class AdCommand(enum.StrEnum):
    """HTCondor collector commands; the one used decides the collector table (§1.0)."""

    UPDATE_AD_GENERIC = "UPDATE_AD_GENERIC"
    INVALIDATE_ADS_GENERIC = "INVALIDATE_ADS_GENERIC"
    UPDATE_LICENSE_AD = "UPDATE_LICENSE_AD"
    INVALIDATE_LICENSE_ADS = "INVALIDATE_LICENSE_ADS"
    UPDATE_MASTER_AD = "UPDATE_MASTER_AD"
    INVALIDATE_MASTER_ADS = "INVALIDATE_MASTER_ADS"


class AdType(enum.StrEnum):
    """The ``GlideinMyType`` of each ad type, with its update and invalidate commands."""

    GLIDEFACTORY = "glidefactory"
    GLIDEFACTORY_GLOBAL = "glidefactoryglobal"
    GLIDEFACTORY_CLIENT = "glidefactoryclient"
    GLIDECLIENT = "glideclient"
    GLIDECLIENT_GLOBAL = "glideclientglobal"
    GLIDERESOURCE = "glideresource"

    @property
    def update_command(self) -> AdCommand:
        return _COMMANDS[self][0]

    @property
    def invalidate_command(self) -> AdCommand:
        return _COMMANDS[self][1]


_GENERIC = (AdCommand.UPDATE_AD_GENERIC, AdCommand.INVALIDATE_ADS_GENERIC)
_MASTER = (AdCommand.UPDATE_MASTER_AD, AdCommand.INVALIDATE_MASTER_ADS)
_COMMANDS: dict[AdType, tuple[AdCommand, AdCommand]] = {
    AdType.GLIDEFACTORY: _GENERIC,
    AdType.GLIDEFACTORY_GLOBAL: _GENERIC,
    AdType.GLIDEFACTORY_CLIENT: (AdCommand.UPDATE_LICENSE_AD, AdCommand.INVALIDATE_LICENSE_ADS),
    AdType.GLIDECLIENT: _MASTER,
    AdType.GLIDECLIENT_GLOBAL: _MASTER,
    AdType.GLIDERESOURCE: _GENERIC,
}


class Prefix(enum.StrEnum):
    """Attribute name prefixes that group an ad's attributes into sections."""

    PARAM = "GlideinParam"
    ENC_PARAM = "GlideinEncParam"
    MONITOR = "GlideinMonitor"
    CONFIG = "GlideinConfig"
    SUBMIT = "GlideinSubmit"
    WEB = "Web"
    REQ = "Req"


class ReqField(enum.StrEnum):
    """The request numbers of a glideclient ad, without their ``Req`` prefix."""

    IDLE_GLIDEINS = "IdleGlideins"
    MAX_GLIDEINS = "MaxGlideins"
    REMOVE_EXCESS = "RemoveExcess"
    REMOVE_EXCESS_MARGIN = "RemoveExcessMargin"
    IDLE_LIFETIME = "IdleLifetime"


LEGACY_MAX_GLIDEINS = "MaxRunningGlideins"
PLUS_ESCAPE = "_PLUS_"
FACTORY_RESERVED_NAMES = frozenset(
    {
        "ReqName",
        "ReqGlidein",
        "ClientName",
        "FrontendName",
        "GroupName",
        "ReqPubKeyID",
        "ReqEncKeyCode",
        "ReqEncIdentity",
        "AuthenticatedIdentity",
    }
)
"""Request attributes the factory never treats as Req/Web/Param values (§1.4)."""
ENVELOPE_NAMES = frozenset({"MyType", "GlideinMyType", "GlideinWMSVersion", "UpdateSequenceNumber"})
COLLECTOR_ADDED_NAMES = frozenset(
    {
        "AuthenticatedIdentity",
        "AuthenticationMethod",
        "LastHeardFrom",
        "UpdatesTotal",
        "UpdatesSequenced",
        "UpdatesLost",
        "UpdatesHistory",
    }
)
"""Attributes a collector (or our dashboard) adds to every ad; never part of an ad's content."""
NON_CONTENT_NAMES = ENVELOPE_NAMES | COLLECTOR_ADDED_NAMES | {"Name"}


class FrontendHAMode(enum.StrEnum):
    """``FrontendHAMode``: whether the writing frontend is the active one of an HA pair."""

    MASTER = "master"
    SLAVE = "slave"


class RemoveExcess(enum.StrEnum):
    """``ReqRemoveExcess`` as the frontend writes it."""

    NO = "NO"
    WAIT = "WAIT"
    IDLE = "IDLE"
    ALL = "ALL"
    UNREG = "UNREG"


# --- Names ------------------------------------------------------------------------------------

_NAME_PART = re.compile(r"[A-Za-z0-9._-]+")


def name_part(what: str, value: str) -> str:
    """``value`` if it can be one ``@``-separated part of a Name, else AdFormatError."""
    if not isinstance(value, str) or _NAME_PART.fullmatch(value) is None:
        raise AdFormatError(f"invalid {what} {value!r}: expected letters, digits, '.', '_' or '-'")
    return value


def entry_ad_name(entry: str, glidein: str, factory: str) -> str:
    """``entry@glidein@factory``: the glidefactory Name, and a request's ReqName."""
    return f"{name_part('entry name', entry)}@{global_ad_name(glidein, factory)}"


def global_ad_name(glidein: str, factory: str) -> str:
    """``glidein@factory``: the glidefactoryglobal Name."""
    return f"{name_part('glidein name', glidein)}@{name_part('factory name', factory)}"


def split_req_name(req_name: str) -> tuple[str, str, str]:
    """``entry@glidein@factory`` -> (entry, glidein, factory); AdFormatError otherwise."""
    parts = req_name.split("@") if isinstance(req_name, str) else []
    if len(parts) != 3:
        raise AdFormatError(f"invalid ReqName {req_name!r}: expected entry@glidein@factory")
    entry, glidein, factory = parts
    entry_ad_name(entry, glidein, factory)
    return entry, glidein, factory


def client_ad_name(req_name: str, client_name: str) -> str:
    """``<ReqName>@<ClientName>``: the glidefactoryclient and glideresource Name."""
    split_req_name(req_name)
    return f"{req_name}@{name_part('client name', client_name)}"


def request_ad_name(cred_id: str, req_name: str, client_name: str) -> str:
    """``<credId>_<ReqName>@<ClientName>``: the glideclient Name, the factory's work key."""
    return f"{name_part('credential id', cred_id)}_{client_ad_name(req_name, client_name)}"


def global_request_ad_name(glidein: str, factory: str, client_name: str) -> str:
    """``glidein@factory@<ClientName>``: the glideclientglobal Name."""
    return f"{global_ad_name(glidein, factory)}@{name_part('client name', client_name)}"


def submit_attr_name(name: str) -> str:
    """``GlideinSubmit<name>``, a leading ``+`` written as ``_PLUS_``."""
    escaped = PLUS_ESCAPE + name[1:] if name.startswith("+") else name
    return check_attr_name(Prefix.SUBMIT + escaped)


def submit_attr_from_suffix(suffix: str) -> str:
    """The submit attribute a ``GlideinSubmit`` suffix stands for (inverse of the ``+`` rule)."""
    return "+" + suffix[len(PLUS_ESCAPE) :] if suffix.startswith(PLUS_ESCAPE) else suffix


def invalidation_ad(ad_type: AdType, requirements: str) -> dict[str, AdValue]:
    """The ``MyType="Query"`` ad that, sent with the type's invalidate command, removes ads."""
    return {"MyType": "Query", "TargetType": str(ad_type), "Requirements": AdExpr(requirements)}


# --- Reading and writing helpers --------------------------------------------------------------


def describe_value(value: object) -> str:
    """A short description of a value of the wrong type, for error messages."""
    kind = "expression" if isinstance(value, AdExpr) else type(value).__name__
    return f"{kind} {str(value)[:60]!r}"


class AdReader:
    """Typed access to one ad's attributes; errors name the ad and the attribute."""

    __slots__ = ("attrs", "where")

    def __init__(self, attrs: Mapping[str, AdValue], ad_type: AdType) -> None:
        self.attrs = attrs
        name = attrs.get("Name")
        self.where = f"{ad_type} ad {name!r}" if isinstance(name, str) else f"{ad_type} ad"
        if attrs.get("GlideinMyType") != ad_type:
            found = attrs.get("GlideinMyType")
            raise self.error("GlideinMyType", f"expected {str(ad_type)!r}, got {found!r}")

    def error(self, attr: str, problem: str) -> AdFormatError:
        return AdFormatError(f"{self.where}: attribute {attr}: {problem}")

    def value(self, attr: str) -> AdValue:
        if attr not in self.attrs:
            raise self.error(attr, "missing")
        return self.attrs[attr]

    def text(self, attr: str) -> str:
        value = self.value(attr)
        if not isinstance(value, str) or isinstance(value, AdExpr):
            raise self.error(attr, f"expected a string, got {describe_value(value)}")
        return value

    def integer(self, attr: str, value: AdValue | None = None) -> int:
        value = self.value(attr) if value is None else value
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(attr, f"expected an integer, got {describe_value(value)}")
        return value

    def flag(self, attr: str) -> bool:
        value = self.value(attr)
        if not isinstance(value, bool):
            raise self.error(attr, f"expected a boolean, got {describe_value(value)}")
        return value

    def choice(self, attr: str, kind: type[_E]) -> _E:
        """The attribute as a member of a string enum."""
        text = self.text(attr)
        try:
            return kind(text)
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            raise self.error(attr, f"expected one of {allowed}, got {text!r}") from None

    def section(self, prefix: str, exclude: Collection[str] = ()) -> dict[str, AdValue]:
        return section_of(self.attrs, prefix, exclude)

    def int_section(self, prefix: str) -> dict[str, int]:
        return {k: self.integer(prefix + k, v) for k, v in self.section(prefix).items()}

    def text_section(self, prefix: str) -> dict[str, str]:
        return {k: self.text(prefix + k) for k in self.section(prefix)}

    def rest(self, claimed: Collection[str], prefixes: Iterable[str]) -> dict[str, AdValue]:
        """Attributes not in ``claimed``, not starting with a prefix, and not envelope."""
        starts = tuple(prefixes)
        return {
            k: v
            for k, v in self.attrs.items()
            if k not in claimed and k not in NON_CONTENT_NAMES and not k.startswith(starts)
        }


def section_of(
    attrs: Mapping[str, _V], prefix: str, exclude: Collection[str] = ()
) -> dict[str, _V]:
    """The attributes starting with ``prefix``, by the rest of their name."""
    size = len(prefix)
    return {
        k[size:]: v
        for k, v in attrs.items()
        if k.startswith(prefix) and len(k) > size and k not in exclude
    }


def merge_attrs(*parts: Mapping[str, AdValue]) -> dict[str, AdValue]:
    """One ad from its parts; AdFormatError on an invalid name or a name set twice."""
    merged: dict[str, AdValue] = {}
    for part in parts:
        for name, value in part.items():
            if name in merged:
                raise AdFormatError(f"attribute {name} is set twice")
            merged[check_attr_name(name)] = value
    return merged


def with_prefix(prefix: str, values: Mapping[str, AdValue]) -> dict[str, AdValue]:
    """A section written back: every name prefixed."""
    return {prefix + name: value for name, value in values.items()}


def envelope(ad_type: AdType, name: str, sequence: int) -> dict[str, AdValue]:
    """Name and the attributes every ad carries (§1.0)."""
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
        raise AdFormatError(f"UpdateSequenceNumber must be an integer >= 0, got {sequence!r}")
    return {
        "Name": name,
        "MyType": str(ad_type),
        "GlideinMyType": str(ad_type),
        "GlideinWMSVersion": GLIDEINWMS_VERSION_STRING,
        "UpdateSequenceNumber": sequence,
    }


def check_unprefixed(
    attributes: Mapping[str, AdValue], claimed: Collection[str], prefixes: Iterable[str]
) -> Mapping[str, AdValue]:
    """``attributes`` if none of them would be read back as something else, else AdFormatError."""
    starts = tuple(prefixes)
    for name in attributes:
        if name in claimed or name in NON_CONTENT_NAMES or name.startswith(starts):
            raise AdFormatError(f"attribute {name!r} collides with a name the ad itself uses")
    return attributes


def fields_to_attrs(obj: object, table: Mapping[str, str]) -> dict[str, AdValue]:
    """Attributes from a value object's fields, by a field -> attribute table."""
    return {attr: getattr(obj, name) for name, attr in table.items()}


def fields_from(reader: AdReader, table: Mapping[str, str]) -> dict[str, str]:
    """Text fields of a value object read back, by a field -> attribute table."""
    return {name: reader.text(attr) for name, attr in table.items()}
