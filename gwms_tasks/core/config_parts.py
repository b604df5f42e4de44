"""The smaller sections an entry is made of: backend, limits, rates, ages, lifetime, files."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Annotated, Literal

from annotated_types import Interval
from pydantic import Field, StringConstraints, model_validator

from gwms_tasks.core.config_types import (
    ALL,
    ConfigPath,
    Expect,
    Fraction,
    FrontendKey,
    FrozenMap,
    NonNegInt,
    PosInt,
    ReadOnlyMap,
    SafeName,
    Seconds,
    Section,
    empty_map,
    problems,
)
from gwms_tasks.core.lifetime import (
    DEFAULT_GRACEFUL_SHUTDOWN,
    DEFAULT_JOB_MAX_TIME,
    DEFAULT_MAX_IDLE,
    DEFAULT_MAX_TAIL,
    DEFAULT_RETIRE_TIME,
    DEFAULT_SPREAD_PERCENT,
)
from gwms_tasks.core.limits import (
    DEFAULT_ENTRY_LIMITS,
    DEFAULT_FRONTEND_LIMITS,
    GlideinLimits,
    StaleAges,
)


class BackendKind(enum.StrEnum):
    """Which GridBackend adapter runs the glideins of an entry."""

    CONDOR_G = "condor_g"  # HTCondor grid universe, to a real CE
    LOCAL_SITE = "local_site"  # processes on this machine, run by a site worker
    SIMULATED = "simulated"  # a parametrised model of a CE and its batch system


class CondorGBackend(Section):
    """Submit through an HTCondor schedd's grid universe (the entry's ``schedd``)."""

    kind: Literal[BackendKind.CONDOR_G] = BackendKind.CONDOR_G


class LocalSiteBackend(Section):
    """Run glideins for real as local processes.

    Attributes:
        slots: how many glideins the site worker runs at once.
        hold_fraction: fraction of submitted glideins the site puts on hold (to exercise
            the held policy).
        site: the site name the glideins report.
    """

    kind: Literal[BackendKind.LOCAL_SITE]
    slots: PosInt = 4
    hold_fraction: Fraction = 0.0
    site: SafeName = "LOCAL"


class SimulatedBackend(Section):
    """A model of a CE and its batch system, for scale tests and capacity planning.

    Attributes:
        queue_time: mean seconds a glidein waits at the site before it runs.
        run_time: mean seconds a glidein runs.
        hold_rate: fraction of glideins that go on hold.
        capacity: how many glideins the site runs at once.
        failure_rate: fraction of glideins that fail right after they start.
    """

    kind: Literal[BackendKind.SIMULATED]
    queue_time: Seconds = 60.0
    run_time: Seconds = 3600.0
    hold_rate: Fraction = 0.0
    capacity: NonNegInt = 100
    failure_rate: Fraction = 0.0


Backend = Annotated[
    CondorGBackend | LocalSiteBackend | SimulatedBackend, Field(discriminator="kind")
]


class EntryGlideinLimits(Section):
    """``limits.per_entry``: bounds on all glideins of the entry."""

    max_idle: NonNegInt = DEFAULT_ENTRY_LIMITS.max_idle
    max_held: NonNegInt = DEFAULT_ENTRY_LIMITS.max_held
    max_glideins: NonNegInt = DEFAULT_ENTRY_LIMITS.max_glideins

    def divided(self, num_factories: int) -> GlideinLimits:
        """The share of one of ``num_factories`` factories serving the entry (reference §3.3)."""
        return GlideinLimits(
            max_idle=self.max_idle // num_factories,
            max_held=self.max_held // num_factories,
            max_glideins=self.max_glideins // num_factories,
        )


class FrontendGlideinLimits(Section):
    """``limits.default_per_frontend``: bounds on each frontend:security-class."""

    max_idle: NonNegInt = DEFAULT_FRONTEND_LIMITS.max_idle
    max_held: NonNegInt = DEFAULT_FRONTEND_LIMITS.max_held
    max_glideins: NonNegInt = DEFAULT_FRONTEND_LIMITS.max_glideins

    def to_limits(self) -> GlideinLimits:
        return GlideinLimits(self.max_idle, self.max_held, self.max_glideins)


class FrontendLimitOverride(Section):
    """``limits.per_frontend["fe:sc"]``: bounds left out inherit ``default_per_frontend``."""

    max_idle: NonNegInt | None = None
    max_held: NonNegInt | None = None
    max_glideins: NonNegInt | None = None

    def over(self, base: GlideinLimits) -> GlideinLimits:
        return GlideinLimits(
            max_idle=base.max_idle if self.max_idle is None else self.max_idle,
            max_held=base.max_held if self.max_held is None else self.max_held,
            max_glideins=base.max_glideins if self.max_glideins is None else self.max_glideins,
        )


class LimitsConfig(Section):
    """The ``limits`` of an entry (reference §3.3)."""

    per_entry: EntryGlideinLimits = EntryGlideinLimits()
    default_per_frontend: FrontendGlideinLimits = FrontendGlideinLimits()
    per_frontend: FrozenMap[FrontendKey, FrontendLimitOverride] = Field(default_factory=empty_map)

    def per_frontend_limits(self) -> Mapping[str, GlideinLimits]:
        base = self.default_per_frontend.to_limits()
        return ReadOnlyMap({key: o.over(base) for key, o in self.per_frontend.items()})


class SubmitRate(Section):
    """``submit``: at most ``max_per_cycle`` per request per cycle, ``cluster_size`` per cluster."""

    max_per_cycle: NonNegInt = 100
    cluster_size: PosInt = 10
    sleep: Seconds = 0.2


class RemoveRate(Section):
    """``remove``: at most ``max_per_cycle`` per removal batch (at least 1: removals must flow)."""

    max_per_cycle: PosInt = 5
    sleep: Seconds = 0.2


class ReleaseRate(Section):
    """``release``: at most ``max_per_cycle`` held glideins released per cycle."""

    max_per_cycle: NonNegInt = 20
    sleep: Seconds = 0.2


class StaleAge(Section):
    """``stale_age``: seconds in one status after which a glidein is removed (reference §3.6)."""

    idle: Seconds = 604800.0
    running: Seconds = 2678400.0

    def to_stale_ages(self) -> StaleAges:
        return StaleAges(idle=self.idle, running=self.running)


class Lifetime(Section):
    """``lifetime``: the glidein lifetime knobs of reference §7.2, in seconds (spread in %)."""

    max_walltime: PosInt | None = None
    retire_time: NonNegInt = DEFAULT_RETIRE_TIME
    retire_spread: Annotated[int, Interval(ge=0, le=100)] = DEFAULT_SPREAD_PERCENT
    job_max_time: NonNegInt = DEFAULT_JOB_MAX_TIME
    graceful_shutdown: NonNegInt = DEFAULT_GRACEFUL_SHUTDOWN
    max_idle: NonNegInt = DEFAULT_MAX_IDLE
    max_tail: NonNegInt = DEFAULT_MAX_TAIL

    @model_validator(mode="after")
    def _retire_within_walltime(self) -> Lifetime:
        if self.max_walltime is not None and self.retire_time > self.max_walltime:
            raise problems(
                [("retire_time", f"expected at most max_walltime ({self.max_walltime})")]
            )
        return self

    def glidein_attributes(self) -> dict[str, int]:
        """The ``GLIDEIN_*`` attributes these knobs become in the glidein's config."""
        attributes = {
            "GLIDEIN_Retire_Time": self.retire_time,
            "GLIDEIN_Retire_Time_Spread": self.retire_time * self.retire_spread // 100,
            "GLIDEIN_Job_Max_Time": self.job_max_time,
            "GLIDEIN_Graceful_Shutdown": self.graceful_shutdown,
            "GLIDEIN_Max_Idle": self.max_idle,
            "GLIDEIN_Max_Tail": self.max_tail,
        }
        if self.max_walltime is not None:
            attributes["GLIDEIN_Max_Walltime"] = self.max_walltime
        return attributes


class AllowFrontend(Section):
    """One whitelist line: a frontend (security name) and a security class or ``All``."""

    frontend: SafeName
    security_class: SafeName = ALL


class StagingFileType(enum.StrEnum):
    """How the glidein treats a staged file (reference §5.1 file lists)."""

    REGULAR = "regular"
    NOCACHE = "nocache"
    EXEC = "exec"
    UNTAR = "untar"
    CONFIG = "config"


GlideinConfigKey = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"),
    Expect("a glidein_config key (a letter or '_' first, then letters, digits or '_')"),
]

RelativeDir = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"),
    Expect("a relative directory of letters, digits, '.', '_', '-' and '/'"),
]


class StagingFile(Section):
    """An operator file staged for glideins.

    Attributes:
        path: the file on the factory host; the glidein sees it under its base name.
        type: how the glidein treats it.
        period: for ``exec``: run again every ``period`` seconds (0 = once).
        prefix: prefix of the attributes a periodic script publishes.
        cond_download: ``TRUE``, or a glidein_config key that must be 1 for the download.
        config_out: ``FALSE``, or the glidein_config key that receives the file's path.
        untar_dir: for ``untar``: the subdirectory to unpack into.
    """

    path: ConfigPath
    type: Annotated[StagingFileType, Field(strict=False)] = StagingFileType.REGULAR
    period: NonNegInt = 0
    prefix: GlideinConfigKey = "GLIDEIN_PS_"
    cond_download: GlideinConfigKey = "TRUE"
    config_out: GlideinConfigKey = "FALSE"
    untar_dir: RelativeDir | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @model_validator(mode="after")
    def _options_fit_type(self) -> StagingFile:
        found: list[tuple[str, str]] = []
        if not self.name:
            found.append(("path", f"expected the path of a file, got {str(self.path)!r}"))
        if self.period and self.type is not StagingFileType.EXEC:
            found.append(("period", f"only 'exec' files run periodically, this one is {self.type}"))
        if self.untar_dir is not None and self.type is not StagingFileType.UNTAR:
            found.append(("untar_dir", f"only 'untar' files are unpacked, this one is {self.type}"))
        if found:
            raise problems(found)
        return self
