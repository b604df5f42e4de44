"""Glidein lifetime: when a glidein stops taking jobs (retire) and when it must be gone (die).

The knobs are those of the reference §7.2. The arithmetic follows glideinWMS' condor startup:

* Without ``GLIDEIN_Max_Walltime``: retire after ``GLIDEIN_Retire_Time`` and die
  ``GLIDEIN_Job_Max_Time`` later, so the last job started before retiring may run its allowance.
* With a walltime: die early enough for the graceful shutdown and one more collector update of
  the startd (its ads are refreshed at most every 370 s, so a shutdown decided later may be seen
  late) and retire one job allowance before that. The job allowance is lowered when the walltime
  cannot hold it plus the minimum retire time; ``GLIDEIN_Retire_Time`` is then ignored.
* A credential (proxy or token) that ends before the die time moves both times earlier by the
  difference, keeping a 300 s margin, unless ``GLIDEIN_Ignore_X509_Duration`` says to ignore it;
  a credential with less than 15 minutes left always counts.
* Both times then move earlier by a random share of ``GLIDEIN_Retire_Time_Spread`` (default 10 %
  of the retire time) so that glideins started together do not all leave together; the share is
  cut so that the retire time stays at or above the 600 s minimum.

This module runs on the worker node too (the condor payload renders its config with it), so it
uses only the standard library and :mod:`gwms_tasks.errors`, and stays Python 3.9 compatible:
hence plain frozen dataclasses and ``str`` enums instead of ``slots=True`` and ``StrEnum``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from dataclasses import dataclass

from gwms_tasks.errors import ConfigError

DEFAULT_RETIRE_TIME = 21600
DEFAULT_SPREAD_PERCENT = 10
DEFAULT_JOB_MAX_TIME = 129600
DEFAULT_GRACEFUL_SHUTDOWN = 120
DEFAULT_MAX_IDLE = 1200
DEFAULT_MAX_TAIL = 400
MIN_RETIRE_TIME = 600
COLLECTOR_UPDATE_GRACE = 370
CREDENTIAL_MARGIN = 300
SHORT_CREDENTIAL = 900
GLIDEIN_CONFIG_SOURCE = "glidein_config"


class DieBound(str, enum.Enum):  # noqa: UP042 (StrEnum is 3.11+; see the module doc)
    """What decided the die time (the reason of the lifetime decision)."""

    RETIRE_PLUS_JOB_MAX = "retire_plus_job_max"
    WALLTIME = "walltime"
    CREDENTIAL = "credential"


@dataclass(frozen=True)
class LifetimeKnobs:
    """The lifetime knobs of one glidein, in seconds.

    Attributes:
        max_walltime: the batch job's wall time limit, if the entry sets one.
        retire_time: seconds after start at which no new job starts (ignored with a walltime).
        retire_spread: maximum random reduction of both times; None = 10 % of the retire time.
        job_max_time: seconds a job may run after the last moment it could start.
        graceful_shutdown: seconds HTCondor needs to shut down after the die time.
        max_idle: the startd leaves after this long without ever being claimed.
        max_tail: the startd leaves after being idle this long once it ran a job.
        credential_lifetime: seconds the glidein's proxy or token stays valid, if known.
        ignore_credential_lifetime: let the glidein outlive a credential with >= 15 min left.
    """

    max_walltime: int | None = None
    retire_time: int = DEFAULT_RETIRE_TIME
    retire_spread: int | None = None
    job_max_time: int = DEFAULT_JOB_MAX_TIME
    graceful_shutdown: int = DEFAULT_GRACEFUL_SHUTDOWN
    max_idle: int = DEFAULT_MAX_IDLE
    max_tail: int = DEFAULT_MAX_TAIL
    credential_lifetime: int | None = None
    ignore_credential_lifetime: bool = True


@dataclass(frozen=True)
class GlideinLifetime:
    """Retire and die times of one glidein, and how they were decided.

    Attributes:
        start: epoch seconds the times count from.
        retire_after: seconds after start when the glidein stops accepting jobs.
        die_after: seconds after start when the glidein shuts down whatever runs.
        spread: seconds the random spread took off both times.
        job_max_time: the job allowance used (lowered to fit a short walltime).
        die_bound: what decided the die time.
        max_idle, max_tail, graceful_shutdown: copied from the knobs for the startd.
    """

    start: int
    retire_after: int
    die_after: int
    spread: int
    job_max_time: int
    die_bound: DieBound
    max_idle: int
    max_tail: int
    graceful_shutdown: int

    @property
    def retire_at(self) -> int:
        """Epoch seconds of ``GLIDEIN_ToRetire``."""
        return self.start + self.retire_after

    @property
    def die_at(self) -> int:
        """Epoch seconds of ``GLIDEIN_ToDie``."""
        return self.start + self.die_after


def glidein_lifetime(knobs: LifetimeKnobs, start: float, fraction: float) -> GlideinLifetime:
    """Retire and die times of a glidein started at ``start``.

    Args:
        knobs: the lifetime knobs.
        start: epoch seconds the payload starts at.
        fraction: a random number in [0, 1) choosing the share of the spread to apply.

    Returns:
        The lifetime; ``die_after >= retire_after >= 600`` and, with a walltime,
        ``die_after <= max_walltime - graceful_shutdown - 370``.

    Raises:
        ValueError: ``fraction`` is outside [0, 1).
        ConfigError: the knobs leave less than the 600 s minimum retire time.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
    retire, die, job_max, bound = _base_times(knobs)
    if knobs.credential_lifetime is not None and _credential_counts(knobs):
        usable = knobs.credential_lifetime - CREDENTIAL_MARGIN
        if die > usable:
            retire, die, bound = retire - (die - usable), usable, DieBound.CREDENTIAL
    if retire < MIN_RETIRE_TIME:
        raise ConfigError(GLIDEIN_CONFIG_SOURCE, [_too_short(knobs, retire, bound)])
    spread_total = knobs.retire_spread
    if spread_total is None:
        spread_total = retire * DEFAULT_SPREAD_PERCENT // 100
    spread = min(int(min(spread_total, retire) * fraction), retire - MIN_RETIRE_TIME)
    return GlideinLifetime(
        start=int(start),
        retire_after=retire - spread,
        die_after=die - spread,
        spread=spread,
        job_max_time=job_max,
        die_bound=bound,
        max_idle=knobs.max_idle,
        max_tail=knobs.max_tail,
        graceful_shutdown=knobs.graceful_shutdown,
    )


def _base_times(knobs: LifetimeKnobs) -> tuple[int, int, int, DieBound]:
    """(retire, die, job allowance, bound) before credential and spread."""
    if knobs.max_walltime is None:
        retire = knobs.retire_time
        return retire, retire + knobs.job_max_time, knobs.job_max_time, DieBound.RETIRE_PLUS_JOB_MAX
    die = knobs.max_walltime - knobs.graceful_shutdown - COLLECTOR_UPDATE_GRACE
    job_max = max(0, min(knobs.job_max_time, die - MIN_RETIRE_TIME))
    return die - job_max, die, job_max, DieBound.WALLTIME


def _credential_counts(knobs: LifetimeKnobs) -> bool:
    lifetime = knobs.credential_lifetime
    return lifetime is not None and (
        not knobs.ignore_credential_lifetime or lifetime < SHORT_CREDENTIAL
    )


def _too_short(knobs: LifetimeKnobs, retire: int, bound: DieBound) -> str:
    if bound is DieBound.CREDENTIAL:
        return (
            f"credential lifetime: {knobs.credential_lifetime} s left leaves a retire time of "
            f"{retire} s, below the {MIN_RETIRE_TIME} s minimum"
        )
    if bound is DieBound.WALLTIME:
        return (
            f"GLIDEIN_Max_Walltime: {knobs.max_walltime} s leaves a retire time of {retire} s "
            f"after the graceful shutdown ({knobs.graceful_shutdown} s) and the last collector "
            f"update ({COLLECTOR_UPDATE_GRACE} s); at least {MIN_RETIRE_TIME} s are needed"
        )
    return f"GLIDEIN_Retire_Time: expected at least {MIN_RETIRE_TIME} s, got {retire}"


def token_expiry(token_text: str) -> float | None:
    """Expiry (epoch seconds, the ``exp`` claim) of an IDTOKEN, None if it has none.

    Args:
        token_text: the content of a token file: one JWT, surrounding whitespace allowed.

    Raises:
        ConfigError: the text is not a JWT or its ``exp`` is not a number.
    """
    parts = token_text.strip().split(".")
    if len(parts) != 3:
        raise ConfigError("IDTOKEN", ["expected a JWT (three dot-separated parts)"])
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (UnicodeError, binascii.Error, ValueError) as exc:
        raise ConfigError("IDTOKEN", [f"payload is not base64url JSON: {exc}"]) from exc
    if not isinstance(claims, dict):
        raise ConfigError("IDTOKEN", ["payload is not a JSON object"])
    exp = claims.get("exp")
    if exp is None:
        return None
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        raise ConfigError("IDTOKEN", [f"exp: expected epoch seconds, got {exp!r}"])
    return float(exp)
