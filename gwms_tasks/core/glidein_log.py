"""Parse the output of a completed glidein into a :class:`GlideinOutcome`.

The glidein's stdout carries the markers of ``glidein_startup.sh`` (start, validation failure
block, last script start, signals, end) and those of the payload (``=== Payload <kind>
starting|ended ...``, ``=== Payload <kind> failed: <category>: <detail> ===``, the
``=== Stats of main ===`` block). Markers of glideinWMS's own startup (``=== Condor starting``
/ ``ended``) are understood too. Every marker is optional: a truncated or garbled log gives an
outcome with fewer fields and, when the end is missing, the UNKNOWN classification; the parser
never raises on content.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

# Numbers are ASCII digits, at most 18 of them: int() of any match is exact and cannot fail
# (Python refuses to convert very long digit strings; ``\d`` would also take non-ASCII digits).
_N = "[0-9]{1,18}"
_START = re.compile(rf"=== Glidein starting .*\(({_N})\) ===")
_LAST_SCRIPT = re.compile(rf"=== Last script starting .*\(({_N})\) after validating for ({_N}) ===")
_END = re.compile(rf"=== Glidein ending .*\(({_N})\) with code (-?{_N}) after ({_N}) ===")
_SIGNAL = re.compile(rf"=== Glidein received signal (\w+) .*\(({_N})\) ===")
_FAILURE_START = re.compile(rf"=== Validation failure .*\(({_N})\) ===")
_FAILURE_END = "=== End validation failure ==="
_FAILURE_FIELD = re.compile(r"(GLIDEIN_FAILED_SCRIPT|GLIDEIN_FAILURE_\w+) ?(.*)")
_FAILURE_CODE = re.compile(f"-?{_N}")
_PAYLOAD = re.compile(
    r"=== (?:Payload|Condor) (?:(\w+) )??(start|starting|started|end|ended|ending|finished)\b"
    rf"[^(]*\(({_N})\)"
)
_PAYLOAD_FAILED = re.compile(r"=== Payload (\w+) failed: (\w+): (.*) ===")
_STATS_START = "=== Stats of main ==="
_STATS_END = "=== End Stats of main ==="
_TOTAL_JOBS = re.compile(rf"\bTotal jobs ({_N})\b")
_UTILIZATION = re.compile(r"\butilization ([0-9]+(?:\.[0-9]+)?)\b")  # float() takes any length
_PAYLOAD_START_WORDS = frozenset({"start", "starting", "started"})


class GlideinResult(enum.StrEnum):
    """How a glidein ended."""

    OK = "ok"  # the payload ran and exited 0
    VALIDATION_FAILED = "validation_failed"  # a check before the payload failed
    PAYLOAD_FAILED = "payload_failed"  # the payload ran and exited non-zero
    KILLED = "killed"  # the glidein received SIGTERM/SIGINT/SIGQUIT
    UNKNOWN = "unknown"  # the log has no end marker (truncated, or killed hard)


class FailureCategory(enum.StrEnum):
    """The failure categories of the OSG-style results (the reference §5.4)."""

    WN_RESOURCE = "WN_Resource"
    NETWORK = "Network"
    CONFIG = "Config"
    VO_CONFIG = "VO_Config"
    VO_PROXY = "VO_Proxy"
    CORRUPTION = "Corruption"
    UNKNOWN = "Unknown"  # a category outside the list, or none given

    @classmethod
    def parse(cls, text: str) -> FailureCategory:
        try:
            return cls(text.strip())
        except ValueError:
            return cls.UNKNOWN


@dataclass(frozen=True, slots=True)
class ValidationFailure:
    """What the failure block of a glidein reported."""

    script: str
    category: FailureCategory
    code: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class PayloadFailure:
    """A categorised failure the payload reported (``=== Payload <kind> failed: ... ===``)."""

    kind: str
    category: FailureCategory
    detail: str


@dataclass(frozen=True, slots=True)
class GlideinOutcome:
    """Everything the factory learns from a completed glidein's output.

    Times are epoch seconds from the glidein's clock; durations are seconds.
    """

    result: GlideinResult
    exit_code: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    duration: float | None = None
    validation_seconds: float | None = None
    failure: ValidationFailure | None = None
    signal: str | None = None
    payload_started_at: float | None = None
    payload_ended_at: float | None = None
    payload_seconds: float | None = None
    payload_kind: str | None = None
    payload_failure: PayloadFailure | None = None
    jobs_run: int | None = None
    utilization: float | None = None


@dataclass(slots=True)
class _Scan:
    """Mutable state of one pass over the lines."""

    started: float | None = None
    last_script: float | None = None
    validated_for: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    after: float | None = None
    signal: str | None = None
    failure_at: float | None = None
    failure_fields: dict[str, str] | None = None
    payload_start: float | None = None
    payload_end: float | None = None
    payload_kind: str | None = None
    payload_failure: PayloadFailure | None = None
    jobs: int | None = None
    utilization: float | None = None
    block: str | None = None  # "failure" or "stats" while inside one
    stats_lines: list[str] = field(default_factory=list)


def parse_glidein_output(stdout: str, stderr: str = "") -> GlideinOutcome:
    """Read a glidein's stdout (and stderr, for markers a payload printed there).

    Args:
        stdout: the job's standard output, possibly truncated.
        stderr: the job's standard error.

    Returns:
        The outcome; fields the log does not show are None.
    """
    scan = _Scan()
    for stream in (stdout, stderr):
        scan.block = None  # a block left open in one stream does not continue in the other
        for line in stream.splitlines():
            _feed(scan, line.rstrip("\r"))
    return _outcome(scan)


def _feed(scan: _Scan, line: str) -> None:
    if scan.block == "failure":
        _feed_failure(scan, line)
    elif scan.block == "stats":
        _feed_stats(scan, line)
    elif line.startswith("=== "):
        _feed_marker(scan, line)


def _feed_marker(scan: _Scan, line: str) -> None:
    if match := _START.fullmatch(line):
        scan.started = float(match[1])
    elif match := _LAST_SCRIPT.fullmatch(line):
        scan.last_script, scan.validated_for = float(match[1]), float(match[2])
    elif match := _END.fullmatch(line):
        scan.ended, scan.exit_code, scan.after = float(match[1]), int(match[2]), float(match[3])
    elif match := _SIGNAL.fullmatch(line):
        scan.signal = scan.signal or match[1]
    elif match := _FAILURE_START.fullmatch(line):
        scan.failure_at, scan.failure_fields, scan.block = float(match[1]), {}, "failure"
    elif line == _STATS_START:
        scan.block, scan.stats_lines = "stats", []
    elif match := _PAYLOAD.match(line):
        _feed_payload(scan, match[1], match[2], float(match[3]))
    elif match := _PAYLOAD_FAILED.fullmatch(line):
        category = FailureCategory.parse(match[2])
        scan.payload_failure = PayloadFailure(match[1], category, match[3].strip())


def _feed_payload(scan: _Scan, kind: str | None, word: str, at: float) -> None:
    if word in _PAYLOAD_START_WORDS:
        if scan.payload_start is None:
            scan.payload_start, scan.payload_kind = at, kind
    else:
        scan.payload_end = at


def _feed_failure(scan: _Scan, line: str) -> None:
    if line == _FAILURE_END or line.startswith("=== "):
        scan.block = None
        if line != _FAILURE_END:
            _feed_marker(scan, line)
        return
    match = _FAILURE_FIELD.fullmatch(line)
    if match and scan.failure_fields is not None:
        scan.failure_fields[match[1]] = match[2]


def _feed_stats(scan: _Scan, line: str) -> None:
    """Values count only from a block that was closed, so a cut-off block is ignored."""
    if line != _STATS_END:
        scan.stats_lines.append(line)
        return
    scan.block = None
    for stats_line in scan.stats_lines:
        if scan.jobs is None and (match := _TOTAL_JOBS.search(stats_line)):
            scan.jobs = int(match[1])
        if scan.utilization is None and (match := _UTILIZATION.search(stats_line)):
            scan.utilization = float(match[1])


def _failure(scan: _Scan) -> ValidationFailure | None:
    fields = scan.failure_fields
    if fields is None:
        return None
    code = fields.get("GLIDEIN_FAILURE_CODE", "").strip()
    return ValidationFailure(
        script=fields.get("GLIDEIN_FAILED_SCRIPT", "").strip(),
        category=FailureCategory.parse(fields.get("GLIDEIN_FAILURE_CATEGORY", "")),
        code=int(code) if _FAILURE_CODE.fullmatch(code) else None,
        detail=fields.get("GLIDEIN_FAILURE_DETAIL", "").strip(),
    )


def _classify(scan: _Scan, failure: ValidationFailure | None) -> GlideinResult:
    if failure is not None:  # a signal after the failure (during the failure sleep) changes nothing
        return GlideinResult.VALIDATION_FAILED
    if scan.signal is not None:
        return GlideinResult.KILLED
    if scan.exit_code is None:
        return GlideinResult.UNKNOWN
    if scan.exit_code == 0:
        return GlideinResult.OK
    if scan.last_script is None:
        return GlideinResult.VALIDATION_FAILED
    return GlideinResult.PAYLOAD_FAILED


def _difference(later: float | None, earlier: float | None) -> float | None:
    if later is None or earlier is None or later < earlier:
        return None
    return later - earlier


def _outcome(scan: _Scan) -> GlideinOutcome:
    failure = _failure(scan)
    validation = scan.validated_for
    if validation is None:
        validation = _difference(scan.failure_at, scan.started)
    payload_start = scan.payload_start if scan.payload_start is not None else scan.last_script
    payload_end = scan.payload_end if scan.payload_end is not None else scan.ended
    if payload_start is None:
        payload_end = None
    exit_code = scan.exit_code
    if exit_code is None and failure is not None:
        exit_code = failure.code
    return GlideinOutcome(
        result=_classify(scan, failure),
        exit_code=exit_code,
        started_at=scan.started,
        ended_at=scan.ended,
        duration=scan.after if scan.after is not None else _difference(scan.ended, scan.started),
        validation_seconds=validation,
        failure=failure,
        signal=scan.signal,
        payload_started_at=payload_start,
        payload_ended_at=payload_end,
        payload_seconds=_difference(payload_end, payload_start),
        payload_kind=scan.payload_kind,
        payload_failure=scan.payload_failure,
        jobs_run=scan.jobs,
        utilization=scan.utilization,
    )
