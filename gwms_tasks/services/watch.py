"""Run find-work within about a second of a changed request, instead of waiting for beat.

Frontends announce changed ads on the dashboard's change feed (ports.ChangeFeed). The watcher
maps each changed ``glideclient`` Name to the entry it asks for and triggers a find-work for it;
a changed ``glideclientglobal`` triggers the credentials task. Triggers of one target are
spaced by :data:`SPACING_SECONDS` (a burst of changes makes one find-work, and never none).
Several watchers may run (one per factory worker host): each triggers, and a find-work that
finds another one running retries shortly (see the task). Beat's periodic find-work remains
the safety net when the feed is down.

Names (reference §1.4, §1.5): ``<credId>_<entry>@<glidein>@<factory>@<client>`` and
``<glidein>@<factory>@<client>``. A credential id may contain ``_``, so the entry is found by
matching the configured entry names against the end of the first part.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Final

from gwms_tasks.errors import GwmsError
from gwms_tasks.ports import ChangeFeed

log = logging.getLogger(__name__)

SPACING_SECONDS: Final = 0.5
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
    stop: threading.Event,
    *,
    wait: float = WAIT_SECONDS,
    spacing: float = SPACING_SECONDS,
    error_pause: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Forward changes until ``stop`` is set; return how many triggers were sent.

    A change is never dropped: one arriving within ``spacing`` of the last trigger of the same
    target is sent when the spacing has passed (changes in between are folded into it). An
    error of the feed or of a send is logged and retried after ``error_pause``: the watcher is
    an accelerator, never a reason to stop the factory.
    """
    pacer = _Pacer(spacing, clock)
    sent = 0
    while not stop.is_set():
        try:
            names = feed.wait_for_changes(pacer.timeout(wait))
            if names:
                current = targets()
                wanted = triggers_for(names, current.factory, current.glidein, current.entries)
                pacer.want(wanted.entries | ({CREDENTIALS} if wanted.credentials else set()))
            for target in pacer.due():
                if target == CREDENTIALS:
                    trigger_credentials()
                else:
                    trigger_entry(target)
                sent += 1
        except GwmsError as exc:
            log.warning("change watcher: %s; retrying in %.0f s", exc, error_pause)
            stop.wait(error_pause)
    return sent


class _Pacer:
    """At most one trigger per target per ``spacing`` seconds, without losing any."""

    def __init__(self, spacing: float, clock: Callable[[], float]) -> None:
        self._spacing = spacing
        self._clock = clock
        self._last: dict[str, float] = {}
        self._pending: set[str] = set()

    def want(self, targets: Iterable[str]) -> None:
        self._pending.update(targets)

    def _ready_at(self, target: str) -> float:
        return self._last.get(target, float("-inf")) + self._spacing

    def due(self) -> list[str]:
        now = self._clock()
        ready = sorted(t for t in self._pending if self._ready_at(t) <= now)
        for target in ready:
            self._pending.discard(target)
            self._last[target] = now
        return ready

    def timeout(self, wait: float) -> float:
        """How long the feed may block: until the next pending target is due, at most ``wait``."""
        if not self._pending:
            return wait
        soonest = min(self._ready_at(t) for t in self._pending) - self._clock()
        return max(0.0, min(wait, soonest))
