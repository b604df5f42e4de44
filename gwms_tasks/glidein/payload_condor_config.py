"""Worker-node edge of the condor payload: glidein_config in, condor_config and stats out.

Run by ``payload_condor.sh`` with the glidein's python::

    payload_condor_config.py render GLIDEIN_CONFIG OUTPUT --local-dir D --condor-dir D --instance I
    payload_condor_config.py stats GLIDEIN_CONFIG HISTORY SECONDS

``render`` reads glidein_config into the typed values of :mod:`gwms_tasks.core.lifetime` and
:mod:`gwms_tasks.core.condor_config` (this is the edge: the clock, randomness, the CPU count and
files are read here, the core only computes), installs the glidein's IDTOKEN (glidein_config key
``GLIDEIN_CONDOR_TOKEN``) as ``<local dir>/tokens.d/glidein.idtoken`` and writes the config.
``stats`` prints ``<jobs> <utilization>`` from the startd's history file.

On the worker node the two core modules and ``gwms_tasks/errors.py`` come from the staging area;
``payload_condor.sh`` lays them out as the ``gwms_tasks`` package on ``PYTHONPATH``, so this file
imports them exactly as the factory does. Standard library only; Python 3.9 compatible.

On failure the one-line reason is printed on stdout and the exit code names its category
(:class:`RendererExit`); payload_condor.sh turns both into the payload's failure line.
"""

from __future__ import annotations

import argparse
import enum
import os
import random
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from gwms_tasks.core.condor_config import (
    SOURCE,
    GlideinIdentity,
    GlideinPaths,
    SlotsLayout,
    StartdSettings,
    check_expression,
    check_text,
    collector_host,
    combine_start_expressions,
    daemon_name,
    render_condor_config,
)
from gwms_tasks.core.lifetime import (
    GlideinLifetime,
    LifetimeKnobs,
    glidein_lifetime,
    token_expiry,
)
from gwms_tasks.errors import ConfigError

# File names, not secrets: where the glidein's IDTOKEN is installed under the local dir.
TOKEN_DIR = "tokens.d"  # noqa: S105
TOKEN_NAME = "glidein.idtoken"  # noqa: S105
_INT_KNOBS = {
    "GLIDEIN_Max_Walltime": "max_walltime",
    "GLIDEIN_Retire_Time": "retire_time",
    "GLIDEIN_Retire_Time_Spread": "retire_spread",
    "GLIDEIN_Job_Max_Time": "job_max_time",
    "GLIDEIN_Graceful_Shutdown": "graceful_shutdown",
    "GLIDEIN_Max_Idle": "max_idle",
    "GLIDEIN_Max_Tail": "max_tail",
}
_TRUE_WORDS = frozenset({"true", "yes", "1"})
_FALSE_WORDS = frozenset({"false", "no", "0"})
_IDENTITY_REQUIRED = (
    *("GLIDEIN_Factory", "GLIDEIN_Name", "GLIDEIN_Entry_Name", "GLIDECLIENT_Name"),
    "GLIDEIN_CredentialIdentifier",
)
_AD_ATTR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*")
_BANNER = "*** "


class RendererExit(enum.IntEnum):
    """Exit codes of this script; payload_condor.sh maps each to a failure category."""

    OK = 0
    CONFIG = 3
    WN_RESOURCE = 4
    VO_PROXY = 5


class RenderFailure(Exception):
    """A failure of this script, with the exit code that categorises it."""

    def __init__(self, code: RendererExit, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def parse_glidein_config(text: str) -> dict[str, str]:
    """``KEY VALUE`` lines to a dict: the first space splits, the last occurrence of a key wins."""
    values: dict[str, str] = {}
    for line in text.split("\n"):
        key, _, value = line.rstrip("\r").partition(" ")
        if key:
            values[key] = value
    return values


def knobs_from_glidein_config(
    values: Mapping[str, str], now: float, token_expiry: float | None = None
) -> LifetimeKnobs:
    """Lifetime knobs from glidein_config values (empty values count as unset).

    Args:
        values: glidein_config keys and values.
        now: epoch seconds, to turn expiry times into remaining lifetimes.
        token_expiry: epoch seconds the glidein's IDTOKEN expires, if known.

    Returns:
        The knobs; the credential lifetime is the earlier of ``X509_EXPIRE`` and the token's.

    Raises:
        ConfigError: listing every knob that is not a non-negative integer (or boolean).
    """
    problems: list[str] = []
    ints: dict[str, int] = {}
    for key, field_name in _INT_KNOBS.items():
        parsed = _count(values, key, problems)
        if parsed is not None:
            ints[field_name] = parsed
    ignore = _flag(values, "GLIDEIN_Ignore_X509_Duration", True, problems)
    x509_expiry = _count(values, "X509_EXPIRE", problems) or None  # 0 means no proxy
    if problems:
        raise ConfigError(SOURCE, problems)
    expiries = [e for e in (x509_expiry, token_expiry) if e is not None]
    lifetime = int(min(expiries) - now) if expiries else None
    return LifetimeKnobs(credential_lifetime=lifetime, ignore_credential_lifetime=ignore, **ints)


def _count(values: Mapping[str, str], key: str, problems: list[str]) -> int | None:
    raw = values.get(key, "").strip()
    if not raw:
        return None
    if raw.isascii() and raw.isdigit():
        return int(raw)
    problems.append(f"{key}: expected a non-negative integer, got {raw!r}")
    return None


def _flag(values: Mapping[str, str], key: str, default: bool, problems: list[str]) -> bool:
    raw = values.get(key, "").strip().lower()
    if raw in _TRUE_WORDS or raw in _FALSE_WORDS:
        return raw in _TRUE_WORDS
    if raw:
        problems.append(f"{key}: expected true or false, got {values[key]!r}")
    return default


def settings_from_glidein_config(
    values: Mapping[str, str], *, instance: str, detected_cpus: int, fraction: float
) -> StartdSettings:
    """Check and gather the startd settings from glidein_config values.

    Args:
        values: glidein_config keys and values.
        instance: a per-process token (the payload's pid) that makes the daemon name unique.
        detected_cpus: CPUs of the node, used when ``GLIDEIN_CPUS`` is ``auto`` or ``node``.
        fraction: a random number in [0, 1) choosing collector ports within ranges.

    Raises:
        ConfigError: listing every missing or malformed value.
    """
    problems: list[str] = []
    identity = _identity(values, problems)
    collector = _collector(values, "GLIDEIN_Collector", fraction, problems, required=True)
    ccb = _collector(values, "GLIDEIN_CCB", fraction, problems, required=False)
    for key in ("GLIDECLIENT_Start", "GLIDECLIENT_Group_Start"):
        problem = check_expression(key, values.get(key, ""))
        if problem:
            problems.append(problem)
    start = combine_start_expressions(
        values.get("GLIDECLIENT_Start"), values.get("GLIDECLIENT_Group_Start")
    )
    layout_word = values.get("SLOTS_LAYOUT", "").strip().lower() or SlotsLayout.FIXED.value
    if layout_word not in {layout.value for layout in SlotsLayout}:
        problems.append(f"SLOTS_LAYOUT: expected fixed or partitionable, got {layout_word!r}")
    cpus = _cpus(values.get("GLIDEIN_CPUS", ""), detected_cpus, problems)
    monitor = values.get("GLIDEIN_Monitoring_Enabled", "").strip().lower() not in _FALSE_WORDS
    if problems or identity is None or collector is None:
        raise ConfigError(SOURCE, problems)
    name = daemon_name(identity.cluster_id, identity.proc_id, instance)
    layout = SlotsLayout(layout_word)
    return StartdSettings(identity, collector, ccb, start, layout, cpus, monitor, name)


def _identity(values: Mapping[str, str], problems: list[str]) -> GlideinIdentity | None:
    found = len(problems)
    text = {}
    for key in (*_IDENTITY_REQUIRED, "GLIDECLIENT_Group", "CONDORG_SCHEDD"):
        text[key] = values.get(key, "")
        problem = check_text(key, text[key])
        if problem is None and not text[key] and key in _IDENTITY_REQUIRED:
            problem = f"{key}: required, missing or empty"
        if problem:
            problems.append(problem)
    cluster = _count(values, "CONDORG_CLUSTER", problems)
    proc = _count(values, "CONDORG_SUBCLUSTER", problems)
    for key, number in (("CONDORG_CLUSTER", cluster), ("CONDORG_SUBCLUSTER", proc)):
        if number is None and not values.get(key, "").strip():
            problems.append(f"{key}: required, missing or empty")
    if len(problems) > found or cluster is None or proc is None:
        return None
    return GlideinIdentity(
        factory=text["GLIDEIN_Factory"],
        name=text["GLIDEIN_Name"],
        entry=text["GLIDEIN_Entry_Name"],
        client_name=text["GLIDECLIENT_Name"],
        client_group=text["GLIDECLIENT_Group"] or None,
        credential_id=text["GLIDEIN_CredentialIdentifier"],
        cluster_id=cluster,
        proc_id=proc,
        schedd=text["CONDORG_SCHEDD"] or None,
    )


def _collector(
    values: Mapping[str, str], key: str, fraction: float, problems: list[str], *, required: bool
) -> str | None:
    raw = values.get(key, "").strip()
    if not raw:
        if required:
            problems.append(f"{key}: required, missing or empty")
        return None
    try:
        return collector_host(key, raw, fraction)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


def _cpus(raw: str, detected: int, problems: list[str]) -> int:
    word = raw.strip().lower()
    if word in ("auto", "node"):
        return max(1, detected)
    if not word:
        return 1
    if word.isascii() and word.isdigit() and int(word) >= 1:
        return int(word)
    problems.append(f"GLIDEIN_CPUS: expected a positive integer, auto or node, got {raw!r}")
    return 1


def history_stats(text: str) -> tuple[int, float]:
    """(jobs, busy seconds) from a startd history file (``STARTD_HISTORY``).

    The file holds one old-syntax job ad per finished job, each closed by a ``*** `` banner
    line. A job's busy time is its ``RemoteWallClockTime``, else ``CompletionDate`` minus
    ``JobCurrentStartDate``; a job with neither counts as a job with no busy time.
    """
    jobs, busy = 0, 0.0
    ad: dict[str, float] = {}
    for line in text.split("\n"):
        if line.startswith(_BANNER):
            jobs, busy, ad = jobs + 1, busy + _busy_seconds(ad), {}
            continue
        match = _AD_ATTR.fullmatch(line)
        if match:
            try:
                ad[match.group(1).lower()] = float(match.group(2))
            except ValueError:
                continue
    return jobs, busy


def _busy_seconds(ad: Mapping[str, float]) -> float:
    if "remotewallclocktime" in ad:
        return max(0.0, ad["remotewallclocktime"])
    start, end = ad.get("jobcurrentstartdate"), ad.get("completiondate")
    return max(0.0, end - start) if start is not None and end is not None else 0.0


def _install_token(values: Mapping[str, str], token_dir: Path) -> float | None:
    """Copy the IDTOKEN into ``token_dir`` (0700 dir, 0600 file); return its expiry."""
    source = values.get("GLIDEIN_CONDOR_TOKEN", "").strip()
    if not source:
        raise RenderFailure(
            RendererExit.VO_PROXY, "GLIDEIN_CONDOR_TOKEN is not set: no IDTOKEN for the collector"
        )
    try:
        token = Path(source).read_text(encoding="ascii")
        token_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = os.open(token_dir / TOKEN_NAME, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(target, "w", encoding="ascii") as out:
            out.write(token)
    except (OSError, UnicodeError) as exc:
        raise RenderFailure(
            RendererExit.VO_PROXY, f"cannot install IDTOKEN {source}: {exc}"
        ) from exc
    try:
        return token_expiry(token)
    except ConfigError as exc:
        raise RenderFailure(RendererExit.VO_PROXY, f"IDTOKEN {source}: {exc.problems[0]}") from exc


def render(args: argparse.Namespace) -> str:
    """Write the condor_config; return a one-line summary of the lifetime decision."""
    values = parse_glidein_config(_read(Path(args.glidein_config)))
    now, fraction = time.time(), random.random()
    local_dir = Path(args.local_dir)
    expiry = _install_token(values, local_dir / TOKEN_DIR)
    lifetime, settings = _typed_values(values, now, fraction, args.instance, expiry)
    paths = GlideinPaths(str(local_dir), args.condor_dir, str(local_dir / TOKEN_DIR))
    try:
        text = render_condor_config(settings, lifetime, paths)
    except ConfigError as exc:
        raise RenderFailure(RendererExit.CONFIG, "; ".join(exc.problems)) from exc
    _write(Path(args.output), text)
    return (
        f"retire at {lifetime.retire_at}, die at {lifetime.die_at} "
        f"(die bound: {lifetime.die_bound.value}), START = {settings.start_expression}"
    )


def _typed_values(
    values: Mapping[str, str], now: float, fraction: float, instance: str, expiry: float | None
) -> tuple[GlideinLifetime, StartdSettings]:
    """Lifetime and startd settings, or one failure naming every problem of both."""
    problems: list[str] = []
    lifetime = settings = None
    try:
        lifetime = glidein_lifetime(knobs_from_glidein_config(values, now, expiry), now, fraction)
    except ConfigError as exc:
        problems.extend(exc.problems)
    try:
        settings = settings_from_glidein_config(
            values, instance=instance, detected_cpus=os.cpu_count() or 1, fraction=fraction
        )
    except ConfigError as exc:
        problems.extend(exc.problems)
    if lifetime is None or settings is None:
        raise RenderFailure(RendererExit.CONFIG, "; ".join(problems))
    return lifetime, settings


def stats(args: argparse.Namespace) -> str:
    """``<jobs> <utilization>`` of a finished startd, utilization over all user CPUs."""
    values = parse_glidein_config(_read(Path(args.glidein_config)))
    history = Path(args.history)
    jobs, busy = history_stats(_read(history)) if history.exists() else (0, 0.0)
    cpus = _cpus(values.get("GLIDEIN_CPUS", ""), os.cpu_count() or 1, [])
    capacity = max(args.seconds, 1.0) * cpus
    return f"{jobs} {min(1.0, busy / capacity):.4f}"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise RenderFailure(RendererExit.WN_RESOURCE, f"cannot read {path}: {exc}") from exc


def _write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        raise RenderFailure(RendererExit.WN_RESOURCE, f"cannot write {path}: {exc}") from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    render_cmd = commands.add_parser("render", help="write the condor_config")
    render_cmd.add_argument("glidein_config")
    render_cmd.add_argument("output")
    render_cmd.add_argument("--local-dir", required=True)
    render_cmd.add_argument("--condor-dir", required=True)
    render_cmd.add_argument("--instance", required=True)
    stats_cmd = commands.add_parser("stats", help="print '<jobs> <utilization>'")
    stats_cmd.add_argument("glidein_config")
    stats_cmd.add_argument("history")
    stats_cmd.add_argument("seconds", type=float)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; print its result (or the failure detail) on stdout."""
    args = _parser().parse_args(argv)
    try:
        result = render(args) if args.command == "render" else stats(args)
    except RenderFailure as exc:
        print(exc.detail)
        return int(exc.code)
    print(result)
    return int(RendererExit.OK)


if __name__ == "__main__":
    sys.exit(main())
