"""The dashboard on an HTCondor collector, through the htcondor2 bindings (the reference §1.0).

Each ad type is advertised with its own update command, which decides the collector table it
lands in, and withdrawn by advertising a ``MyType = "Query"`` ad with the matching invalidate
command. Queries go to every table (``AdType.Any``) and select by ``GlideinMyType``, as every
glideinWMS reader does. The identity of an ad is the ``AuthenticatedIdentity`` the collector
stamped on it when the writer authenticated; an ad without one has no identity. Whatever an ad
claims as ``AuthenticatedIdentity`` is never sent by this adapter; that no other writer can
plant one is the collector's guarantee (integrity and authentication required, as glideinWMS
configures it), not something a reader can check.

No collector runs where this project is tested: the tests use a recording double of
``htcondor2.Collector`` (``tests/unit/test_condor_collector.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import classad2
import htcondor2

from gwms_tasks.adapters.memory_dashboard import IDENTITY_ATTR, in_order, prepared_ads
from gwms_tasks.core.ads import AdType
from gwms_tasks.core.classad_text import AdExpr, AdValue, compile_constraint, string_literal
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.ports import AdAttrs, AuthenticatedAd

_LOG = logging.getLogger(__name__)


class CollectorClient(Protocol):
    """The part of ``htcondor2.Collector`` this adapter uses."""

    def advertise(
        self, ad_list: list[classad2.ClassAd], command: str = ..., use_tcp: bool = ...
    ) -> None: ...

    def query(
        self,
        ad_type: htcondor2.AdType = ...,
        constraint: str | None = ...,
        projection: list[str] | None = ...,
    ) -> list[classad2.ClassAd]: ...


class CondorCollectorDashboard:
    """Dashboard on an HTCondor collector.

    Args:
        collector: an ``htcondor2.Collector`` (or anything with its advertise/query).
        use_tcp: advertise over TCP (glideinWMS' default; UDP loses large ads).
    """

    def __init__(self, collector: CollectorClient, use_tcp: bool = True) -> None:
        self._collector = collector
        self._use_tcp = use_tcp

    def advertise(self, ad_type: str, ads: Sequence[AdAttrs]) -> None:
        """Publish ads of one type with the type's update command (all in one call)."""
        kind = ad_type_of(ad_type)
        prepared = prepared_ads(kind.value, ads)
        if not prepared:
            return
        ad_list = [_classad(attrs) for attrs in prepared.values()]
        with _condor_errors(f"advertise {len(ad_list)} {ad_type} ads"):
            self._collector.advertise(ad_list, kind.update_command.value, self._use_tcp)

    def invalidate(self, ad_type: str, constraint: str) -> int:
        """Withdraw ads of a type matching ``constraint``.

        The collector does not say how many ads an invalidation removed; the count returned is
        how many matching ads a query saw just before.
        """
        kind = ad_type_of(ad_type)
        requirements = typed_constraint(kind.value, constraint)
        count = len(self.query(ad_type, constraint))
        query_ad = classad2.ClassAd(
            {
                "MyType": "Query",
                "TargetType": kind.value,
                "Requirements": classad2.ExprTree(requirements),
            }
        )
        with _condor_errors(f"invalidate {ad_type} ads matching {constraint!r}"):
            self._collector.advertise([query_ad], kind.invalidate_command.value, self._use_tcp)
        return count

    def query(self, ad_type: str, constraint: str | None = None) -> list[AuthenticatedAd]:
        """Ads of one type (``GlideinMyType``) from every collector table, matching."""
        combined = typed_constraint(ad_type_of(ad_type).value, constraint)
        with _condor_errors(f"query {ad_type} ads"):
            found = self._collector.query(htcondor2.AdType.Any, combined, None)
        ads = (_authenticated(ad, ad_type) for ad in found)
        return in_order(ad for ad in ads if ad is not None)


def ad_type_of(ad_type: str) -> AdType:
    """The ad type, which knows its collector commands (PermanentError for an unknown type)."""
    try:
        return AdType(ad_type)
    except ValueError:
        known = ", ".join(sorted(AdType))
        raise PermanentError(f"unknown ad type {ad_type!r} (known: {known})") from None


def typed_constraint(ad_type: str, constraint: str | None) -> str:
    """``GlideinMyType =?= "<type>"``, and the caller's constraint (validated) when given."""
    typed = f"GlideinMyType =?= {string_literal(ad_type)}"
    if constraint is None:
        return typed
    return f"({typed}) && ({compile_constraint(constraint).text})"


def _classad(attrs: dict[str, AdValue]) -> classad2.ClassAd:
    ad = classad2.ClassAd()
    for name, value in attrs.items():
        ad[name] = classad2.ExprTree(str(value)) if isinstance(value, AdExpr) else value
    return ad


def _authenticated(ad: classad2.ClassAd, ad_type: str) -> AuthenticatedAd | None:
    try:
        attrs = {str(name): _python_value(ad, str(name)) for name in ad}
    except PermanentError as exc:
        _LOG.warning("skipping a %s ad the collector returned: %s", ad_type, exc)
        return None
    identity = next((v for k, v in attrs.items() if k.lower() == IDENTITY_ATTR.lower()), None)
    if not isinstance(identity, str) or isinstance(identity, AdExpr):
        identity = None
    if "Name" not in attrs:
        _LOG.warning("skipping a %s ad without Name from the collector", ad_type)
        return None
    return AuthenticatedAd(attrs=attrs, identity=identity)


def _python_value(ad: classad2.ClassAd, name: str) -> AdValue:
    """A literal as its Python value; anything else (expressions, lists, undefined) as AdExpr."""
    value: Any = ad[name]
    if isinstance(value, bool | int | float | str) and not isinstance(value, classad2.Value):
        return value
    return AdExpr(str(ad.lookup(name)))


@contextmanager
def _condor_errors(action: str) -> Iterator[None]:
    """Translate htcondor2 errors into TransientError (the collector may come back)."""
    try:
        yield
    except htcondor2.HTCondorException as exc:
        raise TransientError(f"collector failed to {action}: {exc}") from exc
