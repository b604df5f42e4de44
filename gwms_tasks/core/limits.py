"""Limit value objects: what decisions are bounded by, built from the validated config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class GlideinLimits:
    """Upper bounds on glideins of one scope (an entry, or one frontend:security-class)."""

    max_idle: int
    max_held: int
    max_glideins: int  # idle + running (held are not included, as in glideinWMS)

    def to_dict(self) -> dict[str, int]:
        """The three bounds by name, for JSON and web pages."""
        return {
            "max_idle": self.max_idle,
            "max_held": self.max_held,
            "max_glideins": self.max_glideins,
        }


DEFAULT_ENTRY_LIMITS = GlideinLimits(max_idle=2000, max_held=1000, max_glideins=10000)
DEFAULT_FRONTEND_LIMITS = GlideinLimits(max_idle=100, max_held=50, max_glideins=5000)


@dataclass(frozen=True, slots=True)
class EntryLimits:
    """Every bound that applies to one entry.

    Attributes:
        per_entry: bounds on all glideins of the entry.
        default_per_frontend: bounds on each frontend:security-class without its own.
        per_frontend: bounds by ``frontend:security_class`` key.
        max_submit_per_cycle: at most this many submitted per request per cycle.
        max_remove_per_cycle: at most this many removed per removal batch.
        max_release_per_cycle: at most this many released per cycle.
    """

    per_entry: GlideinLimits = DEFAULT_ENTRY_LIMITS
    default_per_frontend: GlideinLimits = DEFAULT_FRONTEND_LIMITS
    per_frontend: Mapping[str, GlideinLimits] = field(default_factory=dict)
    max_submit_per_cycle: int = 100
    max_remove_per_cycle: int = 5
    max_release_per_cycle: int = 20

    def for_frontend(self, key: str) -> GlideinLimits:
        return self.per_frontend.get(key, self.default_per_frontend)


@dataclass(frozen=True, slots=True)
class HeldPolicy:
    """When a held glidein is released rather than removed (the reference §3.6).

    Attributes:
        recoverable: HoldReasonCode -> allowed HoldReasonSubCodes (empty set = any subcode).
            Empty mapping (the default) means every held glidein is removed.
        max_releases: NumSystemHolds above which a glidein is no longer recoverable.
        release_backoff: seconds of hold per NumSystemHolds before the next release.
        forcex_after: NumSystemHolds above which removal uses forcex.
    """

    recoverable: Mapping[int, frozenset[int]] = field(default_factory=dict)
    max_releases: int = 10
    release_backoff: float = 300.0
    forcex_after: int = 20


@dataclass(frozen=True, slots=True)
class StaleAges:
    """Seconds after which a glidein in one status is stale and removed."""

    idle: float = 604800.0
    running: float = 2678400.0
