"""In-memory twin of the Redis dashboard, and the ad record codec both share.

A :class:`MemoryDashboardHub` plays the shared Redis: each writer gets a handle
(``hub.handle("fe1")``) that writes only its own ads, as an ACL user would, and every ad read back
carries its writer's name as ``AuthenticatedIdentity``. Change feeds (``hub.change_feed()``)
hear the Names every advertise or invalidate touched.

Shared rules (both adapters): an advertised ad must have a ``Name`` and pass the ClassAd writer
checks of :mod:`gwms_tasks.core.classad_text`; ``MyType`` and ``GlideinMyType`` are set to the ad
type; whatever ``AuthenticatedIdentity`` an ad claims is dropped. Each ad is kept as JSON
``{"attrs", "exprs", "expires"}`` (``exprs``: names of attributes holding expressions).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from gwms_tasks.adapters.memory_state import dump_json, load_json
from gwms_tasks.core.ads import AdType
from gwms_tasks.core.classad_text import AdExpr, AdValue, compile_constraint, render_ad
from gwms_tasks.errors import PermanentError
from gwms_tasks.ports import AdAttrs, AuthenticatedAd

DEFAULT_LIFETIME = 3600.0  # seconds an ad lives without being advertised again
REQUEST_AD_TYPES = (AdType.GLIDECLIENT, AdType.GLIDECLIENT_GLOBAL)
IDENTITY_ATTR = "AuthenticatedIdentity"

_LOG = logging.getLogger(__name__)
# Writer and ad type names become parts of Redis keys and glob patterns: no ':', no glob chars.
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@\-]{0,99}")
_TYPE_ATTRS = ("MyType", "GlideinMyType")

Clock = Callable[[], float]
Matcher = Callable[[AdAttrs], bool]


def check_segment(value: str, what: str) -> str:
    """Return ``value`` if it can be one segment of a key name, else raise PermanentError."""
    if not isinstance(value, str) or _SEGMENT.fullmatch(value) is None:
        raise PermanentError(
            f"invalid {what} {value!r}: expected letters, digits, '_', '.', '@' or '-' "
            "(at most 100, starting with a letter or digit)"
        )
    return value


def matcher(constraint: str | None) -> Matcher:
    """A predicate over ads for a ClassAd constraint (everything when None)."""
    if constraint is None:
        return lambda attrs: True
    return compile_constraint(constraint).matches


def prepared_ads(ad_type: str, ads: Iterable[AdAttrs]) -> dict[str, dict[str, AdValue]]:
    """Validated ads by Name, typed with ``ad_type`` and without a claimed identity.

    Raises:
        PermanentError: an ad without a string ``Name``, or an ad the ClassAd writer refuses.
    """
    check_segment(ad_type, "ad type")
    prepared: dict[str, dict[str, AdValue]] = {}
    for index, ad in enumerate(ads):
        name = ad.get("Name")
        if not isinstance(name, str) or not name:
            raise PermanentError(f"{ad_type} ad #{index + 1} has no Name")
        attrs = _drop(ad, {IDENTITY_ATTR, *_TYPE_ATTRS})
        attrs.update(dict.fromkeys(_TYPE_ATTRS, ad_type))
        try:
            render_ad(attrs)
        except PermanentError as exc:
            raise PermanentError(f"{ad_type} ad {name!r} cannot be advertised: {exc}") from exc
        prepared[name] = attrs
    return prepared


def ad_record(attrs: dict[str, AdValue], expires: float) -> str:
    exprs = sorted(name for name, value in attrs.items() if isinstance(value, AdExpr))
    plain = {name: str(v) if isinstance(v, AdExpr) else v for name, v in attrs.items()}
    return dump_json({"attrs": plain, "exprs": exprs, "expires": expires}, "an ad")


def live_ad(record: str, writer: str, now: float, where: str) -> AuthenticatedAd | None:
    """The ad of a stored record with its writer's identity; None if expired or malformed.

    A malformed record (only a writer bypassing the adapter can make one) is skipped with a
    warning, so that one writer cannot break everyone's queries.
    """
    try:
        data = load_json(record, where)
        if float(data["expires"]) <= now:
            return None
        attrs: dict[str, AdValue] = _drop(data["attrs"], {IDENTITY_ATTR})
        for name in data["exprs"]:
            attrs[name] = AdExpr(str(attrs[name]))
        render_ad(attrs)
    except (PermanentError, KeyError, TypeError, ValueError, AttributeError) as exc:
        _LOG.warning("skipping malformed dashboard ad in %s: %r", where, exc)
        return None
    attrs[IDENTITY_ATTR] = writer
    return AuthenticatedAd(attrs=attrs, identity=writer)


def selected(ads: Iterable[AuthenticatedAd], match: Matcher, where: str) -> list[AuthenticatedAd]:
    """The ads matching; an ad the constraint cannot be evaluated on is skipped and logged."""
    chosen = []
    for ad in ads:
        try:
            if match(ad.attrs):
                chosen.append(ad)
        except PermanentError as exc:
            _LOG.warning("skipping dashboard ad %r of %s: %s", ad.attrs.get("Name"), where, exc)
    return chosen


def in_order(ads: Iterable[AuthenticatedAd]) -> list[AuthenticatedAd]:
    """Query results in a stable order: by writer, then Name."""
    return sorted(ads, key=lambda ad: (ad.identity or "", str(ad.attrs["Name"])))


def change_message(ad_type: str, names: Iterable[str]) -> str:
    return dump_json({"type": ad_type, "names": sorted(names)}, "a change notice")


def changed_names(message: str, ad_types: Collection[str] | None) -> list[str]:
    """Names of a change notice of one of ``ad_types`` (all when None); [] when malformed."""
    try:
        data = load_json(message, "a change notice")
        if ad_types is not None and data["type"] not in ad_types:
            return []
        return [str(name) for name in data["names"]]
    except (PermanentError, KeyError, TypeError) as exc:
        _LOG.warning("ignoring malformed dashboard change notice: %r", exc)
        return []


def unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _drop(attrs: Any, names: Collection[str]) -> dict[str, AdValue]:
    # ClassAd names are case-insensitive: "authenticatedidentity" is the same attribute.
    lowered = {name.lower() for name in names}
    return {k: v for k, v in dict(attrs).items() if str(k).lower() not in lowered}


class MemoryChangeFeed:
    """ChangeFeed of a :class:`MemoryDashboardHub`: hears changes made after its creation."""

    def __init__(
        self, ad_types: Collection[str] | None, on_close: Callable[[MemoryChangeFeed], None]
    ) -> None:
        self._ad_types = None if ad_types is None else frozenset(ad_types)
        self._on_close = on_close
        self._ready = threading.Condition()
        self._pending: list[str] = []

    def notify(self, message: str) -> None:
        names = changed_names(message, self._ad_types)
        if names:
            with self._ready:
                self._pending.extend(names)
                self._ready.notify_all()

    def wait_for_changes(self, timeout: float) -> list[str]:
        with self._ready:
            self._ready.wait_for(lambda: bool(self._pending), timeout=max(0.0, timeout))
            names, self._pending = self._pending, []
        return unique(names)

    def close(self) -> None:
        """Stop hearing changes."""
        self._on_close(self)


class MemoryDashboardHub:
    """The shared store of the memory dashboard: writers' ads and the feeds listening."""

    def __init__(self, clock: Clock = time.time, lifetime: float = DEFAULT_LIFETIME) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self._mutex = threading.Lock()
        self._ads: dict[tuple[str, str], dict[str, str]] = {}
        self._feeds: list[MemoryChangeFeed] = []

    def handle(self, writer: str, lifetime: float | None = None) -> MemoryDashboard:
        """The dashboard as seen by one authenticated writer (ads live ``lifetime`` seconds)."""
        chosen = self.lifetime if lifetime is None else lifetime
        return MemoryDashboard(self, check_segment(writer, "dashboard writer"), chosen)

    def change_feed(self, ad_types: Collection[str] | None = REQUEST_AD_TYPES) -> MemoryChangeFeed:
        """A feed of the Names of ads of ``ad_types`` (request ads by default; None: all)."""
        feed = MemoryChangeFeed(ad_types, self._unsubscribe)
        with self._mutex:
            self._feeds.append(feed)
        return feed

    def _unsubscribe(self, feed: MemoryChangeFeed) -> None:
        with self._mutex:
            if feed in self._feeds:
                self._feeds.remove(feed)

    def store(self, writer: str, ad_type: str, records: dict[str, str]) -> None:
        with self._mutex:
            self._ads.setdefault((writer, ad_type), {}).update(records)
            feeds = list(self._feeds)
        self._publish(feeds, ad_type, records)

    def withdraw(self, writer: str, ad_type: str, match: Callable[[str, str], bool]) -> int:
        """Delete this writer's records for which ``match(name, record)``; return how many."""
        with self._mutex:
            records = self._ads.get((writer, ad_type), {})
            names = [name for name, record in records.items() if match(name, record)]
            for name in names:
                del records[name]
            feeds = list(self._feeds)
        self._publish(feeds, ad_type, names)
        return len(names)

    def records(self, ad_type: str) -> list[tuple[str, dict[str, str]]]:
        with self._mutex:
            return [(w, dict(r)) for (w, t), r in sorted(self._ads.items()) if t == ad_type]

    @staticmethod
    def _publish(feeds: Sequence[MemoryChangeFeed], ad_type: str, names: Iterable[str]) -> None:
        names = list(names)
        if names:
            message = change_message(ad_type, names)
            for feed in feeds:
                feed.notify(message)


class MemoryDashboard:
    """Dashboard of one writer on a :class:`MemoryDashboardHub`."""

    def __init__(self, hub: MemoryDashboardHub, writer: str, lifetime: float) -> None:
        self._hub = hub
        self.writer = writer
        self._lifetime = lifetime

    def advertise(self, ad_type: str, ads: Sequence[AdAttrs]) -> None:
        prepared = prepared_ads(ad_type, ads)
        expires = self._hub.clock() + self._lifetime
        records = {name: ad_record(attrs, expires) for name, attrs in prepared.items()}
        if records:
            self._hub.store(self.writer, ad_type, records)

    def invalidate(self, ad_type: str, constraint: str) -> int:
        check_segment(ad_type, "ad type")
        match, now = matcher(constraint), self._hub.clock()
        where = f"{self.writer}/{ad_type}"

        def withdrawn(name: str, record: str) -> bool:
            ad = live_ad(record, self.writer, now, where)
            return ad is not None and bool(selected([ad], match, where))

        return self._hub.withdraw(self.writer, ad_type, withdrawn)

    def query(self, ad_type: str, constraint: str | None = None) -> list[AuthenticatedAd]:
        check_segment(ad_type, "ad type")
        match, now = matcher(constraint), self._hub.clock()
        found = []
        for writer, records in self._hub.records(ad_type):
            where = f"{writer}/{ad_type}"
            ads = (live_ad(record, writer, now, where) for record in records.values())
            found.extend(selected([ad for ad in ads if ad is not None], match, where))
        return in_order(found)
