"""The frontend page of the read model: one frontend's requests, credentials and monitoring ads.

A frontend here is a configured frontend (its SecurityName). Its requests are the last decisions,
on every entry, whose ``frontend:security_class`` key names it (rejected requests carry no
authenticated frontend, so they show on their entry's page only). Its monitoring is what this
factory published for its clients in ``glidefactoryclient`` ads, read back from the dashboard;
when the dashboard cannot be read the rest of the page still shows, with a message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from gwms_tasks.core.ads import AdType, FactoryClientAd
from gwms_tasks.core.classad_text import string_literal
from gwms_tasks.errors import GwmsError
from gwms_tasks.ports import AuthenticatedAd, KnownCredential
from gwms_tasks.services.monitoring_models import (
    ClientMonitorRow,
    CredentialRow,
    FrontendRequest,
    FrontendView,
    GlideinCounts,
)
from gwms_tasks.services.monitoring_view import MonitoringSources, entry_decisions

log = logging.getLogger(__name__)


class UnknownFrontend(LookupError):
    """The frontend is not in the configuration."""


def frontend_view(sources: MonitoringSources, name: str) -> FrontendView:
    """The frontend page of the configured frontend ``name``.

    Raises:
        UnknownFrontend: no frontend of that name is configured.
    """
    frontend = sources.config.frontends.get(name)
    if frontend is None:
        raise UnknownFrontend(name)
    now = sources.clock()
    requests = _requests(sources, name)
    credentials = sorted(
        sources.credentials.list(frontend=name), key=lambda c: (c.client, c.credential_id)
    )
    clients = {r.decision.client for r in requests} | {c.client for c in credentials}
    monitoring, message = _client_monitoring(sources, clients)
    return FrontendView(
        name=name,
        identity=frontend.identity,
        security_classes=dict(frontend.security_classes),
        generated_at=now,
        requests=requests,
        credentials=[_credential_row(c, now) for c in credentials],
        client_monitoring=monitoring,
        monitoring_message=message,
    )


def _requests(sources: MonitoringSources, name: str) -> list[FrontendRequest]:
    found = []
    for entry in sources.config.entries:
        snapshot = sources.state.entries.get_snapshot(entry)
        for decision in entry_decisions(sources, entry):
            key = decision.frontend_key
            if key is None or key.partition(":")[0] != name:
                continue
            raw = None if snapshot is None else snapshot.counts.get(f"frontend:{key}")
            found.append(FrontendRequest(entry, decision, GlideinCounts.from_mapping(raw)))
    return found


def _credential_row(credential: KnownCredential, now: float) -> CredentialRow:
    expires = credential.expires_at
    return CredentialRow(
        credential_id=credential.credential_id,
        client=credential.client,
        security_class=credential.security_class,
        username=credential.username,
        kind=credential.kind,
        received_at=credential.received_at,
        expires_at=expires,
        expires_in_seconds=None if expires is None else expires - now,
        fingerprint=credential.fingerprint,
    )


def _client_monitoring(
    sources: MonitoringSources, clients: Iterable[str]
) -> tuple[list[ClientMonitorRow], str | None]:
    """This factory's glidefactoryclient ads for ``clients``, or a message saying why none."""
    if sources.dashboard is None:
        return [], "this web server does not read the dashboard"
    fac = sources.config.factory
    constraint = (
        f"ReqFactoryName =?= {string_literal(fac.name)} && "
        f"ReqGlideinName =?= {string_literal(fac.glidein_name)}"
    )
    try:
        ads = sources.dashboard.query(AdType.GLIDEFACTORY_CLIENT, constraint)
    except GwmsError as exc:
        return [], f"the dashboard could not be read: {exc}"
    wanted = set(clients)
    rows = [row for ad in ads if (row := _monitor_row(sources, ad, wanted)) is not None]
    return sorted(rows, key=lambda r: (r.entry, r.client)), None


def _monitor_row(
    sources: MonitoringSources, ad: AuthenticatedAd, clients: set[str]
) -> ClientMonitorRow | None:
    own = sources.dashboard_identity
    if own is not None and ad.identity != own:
        return None  # somebody else wrote it: not this factory's monitoring
    try:
        parsed = FactoryClientAd.from_attrs(ad.attrs)
    except GwmsError as exc:
        log.warning("skipping a malformed glidefactoryclient ad: %s", exc)
        return None
    if parsed.client_name not in clients:
        return None
    return ClientMonitorRow(
        entry=parsed.entry_name,
        client=parsed.client_name,
        monitor=dict(parsed.monitor),
        limits_triggered={f.monitor_name: f.text for f in parsed.limits_triggered},
    )
