"""The job record of a local site: its statuses, its hash fields and their checks.

See :mod:`gwms_tasks.adapters.local_site` for the Redis layout and the transitions.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gwms_tasks.adapters.memory_state import dump_json, load_json
from gwms_tasks.core.model import Glidein
from gwms_tasks.core.status import JobStatus
from gwms_tasks.errors import PermanentError
from gwms_tasks.ports import GlideinTags, Submission

_JOB_ID = re.compile(r"^\d+\.\d+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TAG_FIELDS = tuple(f.name for f in dataclasses.fields(GlideinTags))
_BACKEND_OWNED = frozenset({"-cluster", "-subcluster"})

LOST_EXIT_CODE = -1
"""Exit code of a glidein whose worker died while it ran: its real exit code is unknown."""


class GridStatus(enum.StrEnum):
    """The GridJobStatus a local site reports (none while the job waits to be seen)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"


class HoldCode(enum.IntEnum):
    """HTCondor HoldReasonCodes the local site puts jobs on hold with."""

    FAILED_TO_CREATE_PROCESS = 6  # the executable or the job directory could not be set up
    TRANSFER_INPUT_ERROR = 13  # the site's deliberate holds (``hold_fraction``)


class Ending(enum.StrEnum):
    """How a glidein's process ended."""

    EXITED = "exited"  # by itself
    WALLTIME = "walltime"  # killed at the site's walltime
    REMOVED = "removed"  # killed because the factory removed the glidein
    SHUTDOWN = "shutdown"  # killed because its site worker stopped
    LOST = "lost"  # its worker died; exit code LOST_EXIT_CODE


@dataclass(frozen=True, slots=True)
class SiteJob:
    """One job of a local site, as its hash holds it (times are epoch seconds)."""

    job_id: str
    tags: GlideinTags
    arguments: tuple[str, ...]
    environment: Mapping[str, str]
    job_status: JobStatus
    grid_status: GridStatus | None
    submitted_at: float
    entered_current_status: float
    idle_lifetime: int = 0
    hold_code: int | None = None
    hold_subcode: int | None = None
    hold_reason: str | None = None
    num_system_holds: int = 0
    kill_requested: bool = False
    host: str | None = None
    worker_pid: int | None = None
    pid: int | None = None
    pid_start: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    exit_code: int | None = None
    ending: Ending | None = None
    finished_at: float | None = None

    @property
    def cluster(self) -> str:
        return self.job_id.split(".")[0]

    @property
    def proc(self) -> str:
        return self.job_id.split(".")[1]

    def glidein(self) -> Glidein:
        """The job as the factory sees it."""
        tags = self.tags
        return Glidein(
            job_id=self.job_id,
            entry=tags.entry,
            client=tags.client,
            security_class=tags.security_class,
            credential_id=tags.credential_id,
            frontend=tags.frontend,
            job_status=self.job_status,
            grid_job_status=self.grid_status.value if self.grid_status else None,
            entered_current_status=self.entered_current_status,
            hold_reason_code=self.hold_code,
            hold_reason_subcode=self.hold_subcode,
            hold_reason=self.hold_reason,
            num_system_holds=self.num_system_holds,
            submit_key=tags.submit_key,
        )


def job_from_fields(job_id: str, fields: Mapping[str, str]) -> SiteJob:
    """Decode a job hash; PermanentError when it is not one this module wrote."""
    try:
        return SiteJob(
            job_id=job_id,
            tags=GlideinTags(**{name: fields[name] for name in TAG_FIELDS}),
            arguments=tuple(load_json(fields["arguments"], f"arguments of job {job_id}")),
            environment=dict(load_json(fields["environment"], f"environment of job {job_id}")),
            job_status=JobStatus(int(fields["status"])),
            grid_status=GridStatus(fields["grid"]) if fields.get("grid") else None,
            submitted_at=float(fields["submitted"]),
            entered_current_status=float(fields["entered"]),
            idle_lifetime=int(fields.get("idle_lifetime", "0")),
            hold_code=_opt(int, fields, "hold_code"),
            hold_subcode=_opt(int, fields, "hold_subcode"),
            hold_reason=fields.get("hold_reason"),
            num_system_holds=int(fields.get("holds", "0")),
            kill_requested=fields.get("kill") == "1",
            host=fields.get("host"),
            worker_pid=_opt(int, fields, "worker_pid"),
            pid=_opt(int, fields, "pid"),
            pid_start=fields.get("pid_start"),
            stdout=fields.get("stdout"),
            stderr=fields.get("stderr"),
            exit_code=_opt(int, fields, "exit_code"),
            ending=_opt(Ending, fields, "ending"),
            finished_at=_opt(float, fields, "finished"),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise PermanentError(f"local site job {job_id} has a corrupt record: {exc!r}") from exc


def _opt(kind: Callable[[str], Any], fields: Mapping[str, str], name: str) -> Any:
    value = fields.get(name)
    return kind(value) if value else None


def check_job_ids(job_ids: Sequence[str]) -> list[str]:
    """The ids without duplicates, in order; PermanentError for one not ``cluster.proc``."""
    bad = [job_id for job_id in job_ids if not _JOB_ID.match(str(job_id))]
    if bad:
        raise PermanentError(f"invalid job ids {bad}: expected cluster.proc")
    return list(dict.fromkeys(job_ids))


def check_payload(submission: Submission) -> None:
    """Refuse what could not be passed to a process, or what the backend adds itself."""
    problems = [_text_problem(f"argument {a!r}", a) for a in submission.arguments]
    problems += [
        f"argument {a} is added by the backend"
        for a in _BACKEND_OWNED.intersection(submission.arguments)
    ]
    for name, value in submission.environment.items():
        if not (isinstance(name, str) and _ENV_NAME.match(name)):
            problems.append(f"environment name {name!r} is not a valid variable name")
        else:
            problems.append(_text_problem(f"environment value of {name}", value))
    if submission.idle_lifetime < 0:
        problems.append(f"idle_lifetime must be >= 0, got {submission.idle_lifetime}")
    found = [problem for problem in problems if problem]
    if found:
        raise PermanentError("local site refused the submission: " + "; ".join(found))


def _text_problem(what: str, value: object) -> str:
    if not isinstance(value, str):
        return f"{what} is not a string"
    return f"{what} holds a NUL byte" if "\0" in value else ""


def submit_fields(submission: Submission, now: float) -> dict[str, str]:
    """The hash fields every job of a submission starts with (queued, never held)."""
    check_payload(submission)
    fields = {name: str(getattr(submission.tags, name)) for name in TAG_FIELDS} | {
        "arguments": dump_json(list(submission.arguments), "glidein arguments"),
        "environment": dump_json(dict(submission.environment), "glidein environment"),
        "idle_lifetime": str(submission.idle_lifetime),
        "status": str(int(JobStatus.IDLE)),
        "grid": "",
        "submitted": repr(now),
        "entered": repr(now),
        "holds": "0",
    }
    return fields
