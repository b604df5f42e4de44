"""In-memory twin of the GridBackend port, for unit tests of services.

Held to the same contract tests as the real backends. Glideins go idle in the local queue
(WAIT, no GridJobStatus) on submit and stay there until a test moves them with the helpers
(``set_pending``, ``run``, ``hold``, ``complete``); ``fail_next`` makes the next call of an
operation raise, to exercise retry and fail-closed paths.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from gwms_tasks.core.model import Glidein
from gwms_tasks.core.status import JobStatus
from gwms_tasks.core.submit_description import check_submission
from gwms_tasks.errors import GwmsError, PermanentError
from gwms_tasks.ports import Submission

_JOB_ID = re.compile(r"^\d+\.\d+$")


class Operation(enum.StrEnum):
    """The port operations a failure can be injected into."""

    SUBMIT = "submit"
    QUERY = "query"
    RELEASE = "release"
    REMOVE = "remove"


class MemoryGridBackend:
    """The glideins of one entry, in a dict; job ids are ``cluster.proc``, one cluster per submit.

    Attributes:
        submissions: every accepted submission, in order (what was asked, for assertions).
        removed: ids removed so far, in order.
        released: ids released so far, in order.
    """

    def __init__(
        self,
        factory: str,
        glidein: str,
        entry: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._factory, self._glidein, self._entry = factory, glidein, entry
        self._clock = clock
        self._jobs: dict[str, Glidein] = {}
        self._next_cluster = 1
        self._failures: dict[Operation, GwmsError] = {}
        self.submissions: list[Submission] = []
        self.removed: list[str] = []
        self.released: list[str] = []

    # -- the port ------------------------------------------------------------------------------

    def submit(self, submission: Submission) -> list[str]:
        self._maybe_fail(Operation.SUBMIT)
        check_submission(submission, self._factory, self._glidein, self._entry)
        if submission.count == 0:
            return []
        cluster = self._next_cluster
        self._next_cluster += 1
        tags, now = submission.tags, self._clock()
        ids = [f"{cluster}.{proc}" for proc in range(submission.count)]
        for job_id in ids:
            self._jobs[job_id] = Glidein(
                job_id=job_id,
                entry=tags.entry,
                client=tags.client,
                security_class=tags.security_class,
                credential_id=tags.credential_id,
                frontend=tags.frontend,
                job_status=JobStatus.IDLE,
                entered_current_status=now,
                submit_key=tags.submit_key,
            )
        self.submissions.append(submission)
        return ids

    def query(self) -> list[Glidein]:
        self._maybe_fail(Operation.QUERY)
        return list(self._jobs.values())

    def release(self, job_ids: Sequence[str]) -> None:
        """Held glideins go back to the local queue (idle, no grid status)."""
        self._maybe_fail(Operation.RELEASE)
        for job_id in self._known(job_ids):
            glidein = self._jobs[job_id]
            if glidein.job_status is JobStatus.HELD:
                self._change(
                    job_id,
                    job_status=JobStatus.IDLE,
                    grid_job_status=None,
                    hold_reason_code=None,
                    hold_reason_subcode=None,
                    hold_reason=None,
                )
                self.released.append(job_id)

    def remove(self, job_ids: Sequence[str], forcex: bool = False) -> None:
        """Removed glideins leave the queue at once (so ``forcex`` changes nothing here)."""
        self._maybe_fail(Operation.REMOVE)
        for job_id in self._known(job_ids):
            del self._jobs[job_id]
            self.removed.append(job_id)

    # -- test helpers: what the site and the gridmanager would do --------------------------------

    def fail_next(self, operation: Operation, error: GwmsError) -> None:
        """Make the next call of ``operation`` raise ``error`` (then behave normally again)."""
        self._failures[operation] = error

    def glidein(self, job_id: str) -> Glidein:
        """The current state of one glidein (KeyError when it is not queued)."""
        return self._jobs[job_id]

    def set_pending(self, job_id: str, grid_job_status: str = "IDLE") -> None:
        """The glidein reached the site and is queued there."""
        self._change(job_id, job_status=JobStatus.IDLE, grid_job_status=grid_job_status)

    def run(self, job_id: str, grid_job_status: str | None = "RUNNING") -> None:
        """The glidein started running at the site."""
        self._change(job_id, job_status=JobStatus.RUNNING, grid_job_status=grid_job_status)

    def hold(self, job_id: str, code: int = 0, subcode: int = 0, reason: str = "held") -> None:
        """The system held the glidein (counts in NumSystemHolds)."""
        holds = self._jobs[job_id].num_system_holds + 1
        self._change(
            job_id,
            job_status=JobStatus.HELD,
            grid_job_status=None,
            hold_reason_code=code,
            hold_reason_subcode=subcode,
            hold_reason=reason,
            num_system_holds=holds,
        )

    def complete(self, job_id: str) -> None:
        """The glidein finished and left the queue."""
        del self._jobs[job_id]

    # -- internals -----------------------------------------------------------------------------

    def _maybe_fail(self, operation: Operation) -> None:
        error = self._failures.pop(operation, None)
        if error is not None:
            raise error

    def _known(self, job_ids: Sequence[str]) -> list[str]:
        """The queued glideins among ``job_ids``; unknown ids are ignored, malformed refused."""
        bad = [job_id for job_id in job_ids if not _JOB_ID.match(job_id)]
        if bad:
            raise PermanentError(f"invalid job ids {bad}: expected cluster.proc")
        return [job_id for job_id in dict.fromkeys(job_ids) if job_id in self._jobs]

    def _change(self, job_id: str, **changes: Any) -> None:
        glidein = self._jobs[job_id]
        if changes.get("job_status", glidein.job_status) is not glidein.job_status:
            changes["entered_current_status"] = self._clock()
        self._jobs[job_id] = dataclasses.replace(glidein, **changes)
