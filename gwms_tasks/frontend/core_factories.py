"""What the trusted factories offer: their keys, entries and this group's glidein counts.

The frontend reads three ad types (reference §1.1-§1.3) and believes an ad only when the
dashboard authenticated its writer as the identity configured for the factory it names:

- ``glidefactoryglobal``: one per factory instance, with the public key the requests are
  encrypted for. No such ad from the trusted writer: nothing is requested of that instance.
- ``glidefactory``: one per entry, matched by the entry constraint and the match expression.
- ``glidefactoryclient``: one per (entry, client): the group's glideins at the entry, joined to
  the entry by Name (``<ReqName>@<ClientName>``).

The reference checks the identity on the entry and client ads only; checking it on the global
ad as well costs nothing and keeps a stranger's key out. Every ad left out is listed with a
reason, for the cycle's explanation.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gwms_tasks.core.ads import (
    AdType,
    FactoryClientAd,
    FactoryEntryAd,
    FactoryGlobalAd,
    client_ad_name,
    global_ad_name,
)
from gwms_tasks.core.classad_text import (
    AdFormatError,
    AdValue,
    compile_constraint,
    string_literal,
)
from gwms_tasks.core.crypto import CryptoError, FactoryPublicKey
from gwms_tasks.errors import PermanentError
from gwms_tasks.frontend.core_config import TrustedFactory
from gwms_tasks.frontend.core_plan import GlideinCounts
from gwms_tasks.ports import AuthenticatedAd


class IgnoreReason(enum.StrEnum):
    """Why a factory ad or entry was left out."""

    UNKNOWN_FACTORY = "unknown_factory"
    UNTRUSTED_IDENTITY = "untrusted_identity"
    MALFORMED = "malformed"
    NO_GLOBAL_AD = "no_global_ad"
    BAD_KEY = "bad_key"


@dataclass(frozen=True, slots=True)
class Ignored:
    """One ad the frontend did not believe or could not use."""

    ad_type: str
    name: str
    reason: IgnoreReason
    detail: str

    def explain(self) -> str:
        return f"{self.ad_type} ad {self.name!r} ignored ({self.reason}): {self.detail}"


@dataclass(frozen=True, slots=True)
class TrustedInstance:
    """A factory instance whose global ad came from its trusted writer, and its key."""

    factory: TrustedFactory
    public_key: FactoryPublicKey


@dataclass(frozen=True, slots=True)
class OfferedEntry:
    """An entry of a trusted factory, with what the group has there.

    Attributes:
        key: the entry's Name, which requests name as ReqName.
        ad: the parsed glidefactory ad.
        attrs: its attributes as read (for the constraint, the match and glideresource).
        instance: the factory instance (and key) it belongs to.
        client_attrs: this group's glidefactoryclient ad there, if the factory wrote one.
        glideins: the group's glideins there (zero without a client ad).
    """

    key: str
    ad: FactoryEntryAd
    attrs: Mapping[str, AdValue]
    instance: TrustedInstance
    client_attrs: Mapping[str, AdValue] | None
    glideins: GlideinCounts


@dataclass(frozen=True, slots=True)
class FactoryView:
    """The trusted factory instances, their entries, and what was left out."""

    instances: tuple[TrustedInstance, ...]
    entries: tuple[OfferedEntry, ...]
    ignored: tuple[Ignored, ...]


def client_constraint(client_name: str) -> str:
    """The query constraint of this group's glidefactoryclient ads."""
    return f"ReqClientName =?= {string_literal(client_name)}"


def read_factories(
    global_ads: Sequence[AuthenticatedAd],
    entry_ads: Sequence[AuthenticatedAd],
    client_ads: Sequence[AuthenticatedAd],
    trusted: Sequence[TrustedFactory],
    client_name: str,
) -> FactoryView:
    """Keep what the trusted factories wrote; parse it; join the client ads to the entries."""
    by_global = {factory.global_name: factory for factory in trusted}
    ignored: list[Ignored] = []
    instances: dict[str, TrustedInstance] = {}
    for ad in global_ads:
        instance = _instance(ad, by_global, ignored)
        if instance is not None:
            instances[instance.factory.global_name] = instance
    clients = _client_ads(client_ads, by_global, client_name, ignored)
    entries = []
    for ad in entry_ads:
        entry = _entry(ad, by_global, instances, ignored)
        if entry is not None:
            client = clients.get(client_ad_name(entry.name, client_name))
            entries.append(_offered(entry, ad, instances[entry_global(entry)], client))
    return FactoryView(tuple(instances.values()), tuple(entries), tuple(ignored))


def entry_global(entry: FactoryEntryAd) -> str:
    return global_ad_name(entry.glidein_name, entry.factory_name)


def _trust(
    ad: AuthenticatedAd,
    ad_type: AdType,
    global_name: str,
    by_global: Mapping[str, TrustedFactory],
    ignored: list[Ignored],
) -> TrustedFactory | None:
    """The trusted factory ``ad`` speaks for, or None (and why, in ``ignored``)."""
    name = str(ad.attrs.get("Name", "?"))
    factory = by_global.get(global_name)
    if factory is None:
        detail = f"factory instance {global_name} is not among the configured factories"
        ignored.append(Ignored(ad_type, name, IgnoreReason.UNKNOWN_FACTORY, detail))
        return None
    if ad.identity != factory.identity:
        detail = (
            f"written by {ad.identity!r}, but {global_name} is trusted only as {factory.identity!r}"
        )
        ignored.append(Ignored(ad_type, name, IgnoreReason.UNTRUSTED_IDENTITY, detail))
        return None
    return factory


def _instance(
    ad: AuthenticatedAd, by_global: Mapping[str, TrustedFactory], ignored: list[Ignored]
) -> TrustedInstance | None:
    kind = AdType.GLIDEFACTORY_GLOBAL
    try:
        parsed = FactoryGlobalAd.from_attrs(ad.attrs)
    except AdFormatError as exc:
        ignored.append(Ignored(kind, _name(ad), IgnoreReason.MALFORMED, str(exc)))
        return None
    factory = _trust(ad, kind, parsed.name, by_global, ignored)
    if factory is None:
        return None
    advertised = parsed.public_key
    try:
        if advertised.key_type != "RSA":
            raise CryptoError(f"PubKeyType {advertised.key_type!r} is not RSA")
        key = FactoryPublicKey.from_pem(advertised.pem)
        if key.pub_key_id != advertised.key_id:
            raise CryptoError(f"PubKeyID {advertised.key_id} is not the id of the key")
    except CryptoError as exc:
        ignored.append(Ignored(kind, parsed.name, IgnoreReason.BAD_KEY, str(exc)))
        return None
    return TrustedInstance(factory, key)


@dataclass(frozen=True, slots=True)
class _ClientAd:
    """A glidefactoryclient ad kept for the group: parsed once, with the attributes as read."""

    parsed: FactoryClientAd
    ad: AuthenticatedAd


def _client_ads(
    ads: Sequence[AuthenticatedAd],
    by_global: Mapping[str, TrustedFactory],
    client_name: str,
    ignored: list[Ignored],
) -> dict[str, _ClientAd]:
    kept: dict[str, _ClientAd] = {}
    for ad in ads:
        try:
            parsed = FactoryClientAd.from_attrs(ad.attrs)
        except AdFormatError as exc:
            kind = AdType.GLIDEFACTORY_CLIENT
            ignored.append(Ignored(kind, _name(ad), IgnoreReason.MALFORMED, str(exc)))
            continue
        if parsed.client_name != client_name:
            continue
        global_name = global_ad_name(parsed.glidein_name, parsed.factory_name)
        if _trust(ad, AdType.GLIDEFACTORY_CLIENT, global_name, by_global, ignored):
            kept[parsed.name] = _ClientAd(parsed, ad)
    return kept


def _entry(
    ad: AuthenticatedAd,
    by_global: Mapping[str, TrustedFactory],
    instances: Mapping[str, TrustedInstance],
    ignored: list[Ignored],
) -> FactoryEntryAd | None:
    kind = AdType.GLIDEFACTORY
    try:
        parsed = FactoryEntryAd.from_attrs(ad.attrs)
    except AdFormatError as exc:
        ignored.append(Ignored(kind, _name(ad), IgnoreReason.MALFORMED, str(exc)))
        return None
    global_name = entry_global(parsed)
    if _trust(ad, kind, global_name, by_global, ignored) is None:
        return None
    if global_name not in instances:
        detail = f"no usable glidefactoryglobal ad of {global_name} (it carries the key)"
        ignored.append(Ignored(kind, parsed.name, IgnoreReason.NO_GLOBAL_AD, detail))
        return None
    return parsed


def _offered(
    entry: FactoryEntryAd,
    ad: AuthenticatedAd,
    instance: TrustedInstance,
    client: _ClientAd | None,
) -> OfferedEntry:
    glideins = GlideinCounts()
    if client is not None:
        monitor = client.parsed.monitor
        glideins = GlideinCounts(
            idle=max(0, monitor.get("StatusIdle", 0)),
            running=max(0, monitor.get("StatusRunning", 0)),
            held=max(0, monitor.get("StatusHeld", 0)),
        )
    client_attrs = dict(client.ad.attrs) if client is not None else None
    return OfferedEntry(entry.name, entry, dict(ad.attrs), instance, client_attrs, glideins)


def _name(ad: AuthenticatedAd) -> str:
    return str(ad.attrs.get("Name", "?"))


def select_entries(
    entries: Sequence[OfferedEntry], constraint: str
) -> tuple[list[OfferedEntry], list[str]]:
    """The entries the group's constraint selects, and notes on ads it could not evaluate.

    Raises:
        PermanentError: the constraint itself is invalid (the config check prevents it).
    """
    compiled = compile_constraint(constraint)
    chosen: list[OfferedEntry] = []
    notes: list[str] = []
    for entry in entries:
        try:
            if compiled.matches(entry.attrs):
                chosen.append(entry)
        except PermanentError as exc:
            notes.append(f"entry {entry.key} not selected: {exc}")
    return chosen, notes
