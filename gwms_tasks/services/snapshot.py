"""The glidein snapshot of an entry: counts by scope, stored for fail-closed freshness.

find-work and monitor both query an entry's glideins; each stores what it saw here, so the
snapshot is as fresh as the latest of the two.
"""

from __future__ import annotations

from collections.abc import Sequence

from gwms_tasks.core.model import Glidein, StatusCounts
from gwms_tasks.ports import EntrySnapshot
from gwms_tasks.services.deps import FactoryDeps


def store_snapshot(
    deps: FactoryDeps, entry: str, glideins: Sequence[Glidein], now: float
) -> EntrySnapshot:
    """Store the counts of ``glideins`` by scope as the entry's snapshot taken at ``now``.

    Scopes: ``entry``, ``client:<client>``, ``frontend:<frontend:security_class>`` and
    ``credential:<client>|<security_class>|<credential_id>`` (see ``EntrySnapshot``).

    Returns:
        The snapshot stored.
    """
    scopes: dict[str, list[Glidein]] = {"entry": list(glideins)}
    for glidein in glideins:
        scopes.setdefault(f"client:{glidein.client}", []).append(glidein)
        scopes.setdefault(f"frontend:{glidein.frontend}", []).append(glidein)
        cred = f"credential:{glidein.client}|{glidein.security_class}|{glidein.credential_id}"
        scopes.setdefault(cred, []).append(glidein)
    counts = {scope: StatusCounts.of(items).to_dict() for scope, items in scopes.items()}
    snapshot = EntrySnapshot(entry, now, counts, len(glideins))
    deps.state.entries.put_snapshot(snapshot)
    return snapshot
