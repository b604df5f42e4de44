"""Monitoring values the factory advertises (the reference §1.1, §1.3, §8 item 14).

Frontends read these names from glidefactory (``GlideinMonitorTotal*``) and glidefactoryclient
(``GlideinMonitorStatus*``, ``Requested*``, ``ClientMonitor*``) ads and copy them into their
glideresource ads, so the names are part of the wire contract. Values here are without the
``GlideinMonitor`` prefix, which the ads add.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass

from gwms_tasks.core.classad_text import AdFormatError
from gwms_tasks.core.model import StatusCounts


class MonitorSection(enum.StrEnum):
    """Sections of ``GlideinMonitor*`` values; glidefactory ads prefix them with ``Total``."""

    STATUS = "Status"
    REQUESTED = "Requested"
    CLIENT_MONITOR = "ClientMonitor"
    COMPLETED_JOBS_PER_ENTRY = "CompletedJobsPerEntry"
    COMPLETED_JOBS_PER_FACTORY = "CompletedJobsPerFactory"


TOTAL = "Total"
STATUS_VALUES = (
    "Idle", "Running", "Held", "Wait", "Pending", "StageIn", "IdleOther", "StageOut",
    "RunningCores",
)  # fmt: skip
REQUESTED_VALUES = ("Idle", "AdjustedIdle", "MaxGlideins", "IdleCores", "MaxCores")
CLIENT_MONITOR_VALUES = (
    "InfoAge", "JobsIdle", "JobsRunning", "JobsRunHere", "GlideIdle", "GlideRunning",
    "GlideTotal", "CoresIdle", "CoresRunning", "CoresTotal",
)  # fmt: skip
COMPLETED_JOBS_BINS = ("None", "1job", "2jobs", "4jobs", "16jobs", "Many")


@dataclass(frozen=True, slots=True)
class Requested:
    """What a client requested of an entry, as the factory reports it back (``Requested*``)."""

    idle: int = 0
    adjusted_idle: int = 0
    max_glideins: int = 0
    idle_cores: int = 0
    max_cores: int = 0


# The request's GlideinMonitor names the ClientMonitor values come from, in field order.
_REQUEST_MONITOR_NAMES = (
    "Idle", "Running", "RunningHere", "GlideinsIdle", "GlideinsRunning", "GlideinsTotal",
    "GlideinsIdleCores", "GlideinsRunningCores", "GlideinsTotalCores",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ClientMonitor:
    """The frontend's own counters, echoed back as ``ClientMonitor*`` (fields in that order)."""

    info_age: int = 0
    jobs_idle: int = 0
    jobs_running: int = 0
    jobs_run_here: int = 0
    glide_idle: int = 0
    glide_running: int = 0
    glide_total: int = 0
    cores_idle: int = 0
    cores_running: int = 0
    cores_total: int = 0

    @classmethod
    def from_request(cls, monitor: Mapping[str, object], info_age: int) -> ClientMonitor:
        """From a request's ``GlideinMonitor*`` values (prefix stripped); non-ints count 0."""

        def number(name: str) -> int:
            value = monitor.get(name)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        return cls(info_age, *(number(name) for name in _REQUEST_MONITOR_NAMES))


def monitor_values(
    counts: StatusCounts,
    requested: Requested,
    client: ClientMonitor | None = None,
    *,
    running_cores: int = 0,
) -> dict[str, int]:
    """The per-client ``GlideinMonitor*`` values (without the prefix) of a glidefactoryclient ad.

    Args:
        counts: the client's glideins at this entry by detailed status.
        requested: what the client asked for, and the adjusted idle the factory used.
        client: the frontend's counters, if it sent them.
        running_cores: cores of the running glideins (StatusCounts counts glideins only).
    """
    status = (counts.idle, counts.running, counts.held, counts.wait, counts.pending,
              counts.stage_in, counts.idle_other, counts.stage_out, running_cores)  # fmt: skip
    values = {f"{MonitorSection.STATUS}{n}": v for n, v in zip(STATUS_VALUES, status, strict=True)}
    for section, names, source in (
        (MonitorSection.REQUESTED, REQUESTED_VALUES, requested),
        (MonitorSection.CLIENT_MONITOR, CLIENT_MONITOR_VALUES, client),
    ):
        if source is not None:
            numbers = astuple(source)
            values |= {f"{section}{n}": v for n, v in zip(names, numbers, strict=True)}
    return values


def monitor_totals(per_client: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """``Total*`` values of a glidefactory ad: each per-client value summed over the clients."""
    totals: dict[str, int] = {}
    for values in per_client:
        for name, value in values.items():
            totals[TOTAL + name] = totals.get(TOTAL + name, 0) + value
    return totals


class FactoryLimit(enum.StrEnum):
    """Factory limits reported as ``GlideinMonitorStatus_GlideFactoryLimit<limit>`` (§1.3)."""

    IDLE_GLIDEINS_PER_ENTRY = "IdleGlideinsPerEntry"
    HELD_GLIDEINS_PER_ENTRY = "HeldGlideinsPerEntry"
    TOTAL_GLIDEINS_PER_ENTRY = "TotalGlideinsPerEntry"
    IDLE_PER_CLASS = "IdlePerClass"
    TOTAL_PER_CLASS = "TotalPerClass"

    @property
    def per_class(self) -> bool:
        return self in (FactoryLimit.IDLE_PER_CLASS, FactoryLimit.TOTAL_PER_CLASS)


LIMIT_FLAG_PREFIX = "Status_GlideFactoryLimit"
_LIMIT_TEXT = re.compile(r"count=(-?[0-9]+), limit=(-?[0-9]+)")
_FRONTEND_KEY = re.compile(r"[A-Za-z0-9._-]+:[A-Za-z0-9._-]+")
_KEY_ESCAPE = re.compile(r"_([0-9A-F]{2})")


def limit_text(count: int, limit: int) -> str:
    """``"count=N, limit=M"``: how a reached limit is written in ads, decisions and pages."""
    return f"count={count}, limit={limit}"


@dataclass(frozen=True, slots=True)
class LimitTriggered:
    """A limit that held back submissions this cycle: ``"count=N, limit=M"``.

    The per-class flags name a ``frontend:security_class``; glideinWMS puts the ``:`` into the
    attribute name, we write every character other than a letter or digit as ``_XX`` (hex) so
    the name stays a valid attribute name and reads back to the same key.
    """

    limit: FactoryLimit
    count: int
    maximum: int
    frontend_key: str | None = None

    def __post_init__(self) -> None:
        key = self.frontend_key
        if self.limit.per_class != (key is not None) or (key and not _FRONTEND_KEY.fullmatch(key)):
            raise AdFormatError(f"{self.limit} needs a frontend:security_class key iff per class")

    @property
    def monitor_name(self) -> str:
        """Name without ``GlideinMonitor``: ``Status_GlideFactoryLimitIdlePerClass_fe_3Asc``."""
        if self.frontend_key is None:
            return f"{LIMIT_FLAG_PREFIX}{self.limit}"
        escaped = re.sub(r"[^A-Za-z0-9]", lambda m: f"_{ord(m.group()):02X}", self.frontend_key)
        return f"{LIMIT_FLAG_PREFIX}{self.limit}_{escaped}"

    @property
    def text(self) -> str:
        return limit_text(self.count, self.maximum)

    @classmethod
    def parse(cls, monitor_name: str, text: str) -> LimitTriggered:
        """Read one flag back; AdFormatError when the name or the text is not one."""
        rest = monitor_name.removeprefix(LIMIT_FLAG_PREFIX)
        numbers = _LIMIT_TEXT.fullmatch(text)
        if numbers is None or rest == monitor_name:
            raise AdFormatError(f"invalid limit flag {monitor_name} = {text!r}")
        count, maximum = int(numbers.group(1)), int(numbers.group(2))
        for limit in FactoryLimit:
            if not limit.per_class and rest == limit:
                return cls(limit, count, maximum)
            if limit.per_class and rest.startswith(f"{limit}_"):
                escaped = rest[len(limit) + 1 :]
                key = _KEY_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), escaped)
                return cls(limit, count, maximum, key)
        raise AdFormatError(f"invalid limit flag {monitor_name} = {text!r}")
