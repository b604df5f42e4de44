"""Run find-work within about a second of a changed request, instead of waiting for beat.

Frontends announce changed ads on the dashboard's change feed (ports.ChangeFeed). The watcher
maps each changed ``glideclient`` Name to the entry it asks for and triggers a find-work for it;
a changed ``glideclientglobal`` triggers the credentials task. Several watchers may run (one per
factory worker host): a short per-entry lock lets only one of them trigger a given entry within
:data:`DEDUP_SECONDS`; find-work's own lock covers the rest. Beat's periodic find-work remains
the safety net when the feed is down.

Names (reference §1.4, §1.5): ``<credId>_<entry>@<glidein>@<factory>@<client>`` and
``<glidein>@<factory>@<client>``. A credential id may contain ``_``, so the entry is found by
matching the configured entry names against the end of the first part.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Final

from gwms_tasks.errors import GwmsError
from gwms_tasks.ports import ChangeFeed, Locks

log = logging.getLogger(__name__)

DEDUP_SECONDS: Final = 1.0
WAIT_SECONDS: Final = 1.0
CREDENTIALS: Final = "credentials"


@dataclass(frozen=True)
class Triggers:
    """What a batch of changed Names asks for."""

    entries: frozenset[str] = field(default_factory=frozenset)
    credentials: bool = False


def triggers_for(
    names: Iterable[str], factory: str, glidein: str, entries: Collection[str]
) -> Triggers:
    """The entries (and whether the credentials) that changed ad Names concern.

    Names for another factory or instance, or for entries not in ``entries``, are ignored.
    """
    found: set[str] = set()
    credentials = False
    for name in names:
        parts = name.split("@")
        if len(parts) == 3 and parts[0] == glidein and parts[1] == factory:
            credentials = True
        elif len(parts) == 4 and parts[1] == glidein and parts[2] == factory:
            found.update(e for e in entries if parts[0].endswith(f"_{e}"))
    return Triggers(frozenset(found), credentials)


@dataclass(frozen=True)
class WatchTargets:
    """Where the watcher looks and what it calls (read again at every batch: reloads apply).

    Attributes:
        factory / glidein: this factory's FactoryName and GlideinName.
        entries: the enabled entries.
    """

    factory: str
    glidein: str
    entries: frozenset[str]


def run_watcher(
    feed: ChangeFeed,
    targets: Callable[[], WatchTargets],
    trigger_entry: Callable[[str], None],
    trigger_credentials: Callable[[], None],
    locks: Locks,
    stop: threading.Event,
    *,
    wait: float = WAIT_SECONDS,
    error_pause: float = 5.0,
) -> int:
    """Forward changes until ``stop`` is set; return how many triggers were sent.

    An error of the feed or of a send is logged and retried after ``error_pause``: the
    watcher is an accelerator, never a reason to stop the factory.
    """
    sent = 0
    while not stop.is_set():
        try:
            names = feed.wait_for_changes(wait)
            if not names:
                continue
            current = targets()
            wanted = triggers_for(names, current.factory, current.glidein, current.entries)
            for entry in sorted(wanted.entries):
                if _first(locks, f"trigger:{entry}"):
                    trigger_entry(entry)
                    sent += 1
            if wanted.credentials and _first(locks, f"trigger:{CREDENTIALS}"):
                trigger_credentials()
                sent += 1
        except GwmsError as exc:
            log.warning("change watcher: %s; retrying in %.0f s", exc, error_pause)
            stop.wait(error_pause)
    return sent


def _first(locks: Locks, name: str) -> bool:
    """True for the first watcher to claim ``name`` within DEDUP_SECONDS (never released)."""
    return locks.acquire(name, ttl=DEDUP_SECONDS) is not None
