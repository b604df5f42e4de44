"""Condor-G grid backend: glideins are grid-universe jobs in an HTCondor schedd (§3.7, §4).

Uses the htcondor bindings (version 2 API): ``htcondor2.Submit`` + ``Schedd.submit`` in
clusters of ``cluster_size``, ``Schedd.query`` with the §4.5 constraint and projection, and
``Schedd.act`` to release and remove. No schedd runs on the development machines: the tests drive
this adapter through ``tests/schedd_double.py``, a recording double of the three ``Schedd``
methods used here that keeps job ads in memory and evaluates constraints with classad2.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import classad2
import htcondor2

from gwms_tasks.core.model import Glidein
from gwms_tasks.core.status import JobStatus
from gwms_tasks.core.submit_description import (
    EntrySubmitSettings,
    build_submit_description,
    check_submission,
)
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.ports import Submission

log = logging.getLogger(__name__)

QUEUE_PROJECTION: tuple[str, ...] = (
    "JobStatus",
    "GridJobStatus",
    "ServerTime",
    "EnteredCurrentStatus",
    "GlideinEntrySubmitFile",
    "GlideinCredentialIdentifier",
    "HoldReasonCode",
    "HoldReasonSubCode",
    "HoldReason",
    "NumSystemHolds",
    "GlideinFrontendName",
    "GlideinClient",
    "GlideinSecurityClass",
    "ClusterId",
    "ProcId",
    "GlideinSubmitKey",
)
"""The §4.5 projection, plus GlideinSubmitKey so that an interrupted submit can be found."""

_GONE = (JobStatus.REMOVED, JobStatus.COMPLETED)

# Messages of htcondor2.HTCondorException that mean "could not talk to the schedd": worth a retry.
_UNREACHABLE = ("failed to connect", "cedar:", "unable to locate", "timed out", "timeout")


class Schedd(Protocol):
    """The part of ``htcondor2.Schedd`` this adapter uses."""

    def submit(self, description: Any, count: int = 0) -> Any: ...

    def query(self, constraint: Any = "True", projection: list[str] = ...) -> list[Any]: ...

    def act(self, action: Any, job_spec: Any) -> Any: ...


def connect_schedd(schedd_name: str | None, pool: str | None = None) -> Schedd:
    """Locate a schedd by name through the collector (the local schedd when name is None).

    Raises:
        TransientError: the collector or schedd cannot be reached.
    """
    try:
        if schedd_name is None:
            return htcondor2.Schedd()  # type: ignore[no-any-return]
        location = htcondor2.Collector(pool).locate(htcondor2.DaemonType.Schedd, schedd_name)
        return htcondor2.Schedd(location)  # type: ignore[no-any-return]
    except htcondor2.HTCondorException as exc:
        raise TransientError(f"cannot locate schedd {schedd_name or '(local)'}: {exc}") from exc


def queue_constraint(factory: str, glidein: str, entry: str) -> str:
    """The constraint selecting the glideins of one entry (§4.5), from quoted literals."""
    return (
        f"(GlideinFactory =?= {classad2.quote(factory)})"
        f" && (GlideinName =?= {classad2.quote(glidein)})"
        f" && (GlideinEntryName =?= {classad2.quote(entry)})"
        " && (GlideinCredentialIdentifier =!= UNDEFINED)"
    )


class CondorGBackend:
    """GridBackend of one entry, submitting to an HTCondor schedd (Condor-G).

    Args:
        schedd: an ``htcondor2.Schedd`` (or anything with its submit/query/act).
        settings: the entry's submit settings.
        factory: FactoryName.
        glidein: the factory instance name (GlideinName).
        entry: the entry name.
        clock: epoch seconds, for GLIDEIN_LOGNR.
    """

    def __init__(
        self,
        schedd: Schedd,
        settings: EntrySubmitSettings,
        factory: str,
        glidein: str,
        entry: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._schedd = schedd
        self._settings = settings
        self._factory, self._glidein, self._entry = factory, glidein, entry
        self._clock = clock
        self._constraint = queue_constraint(factory, glidein, entry)

    def submit(self, submission: Submission) -> list[str]:
        """Submit in clusters of ``cluster_size``; every job carries the submission's tags.

        Raises:
            PermanentError: bad tags or description, or the schedd refused the jobs.
            TransientError: the schedd could not be reached. Jobs of clusters already
                submitted stay queued; they carry the submit key, so a retry can find them.
        """
        check_submission(submission, self._factory, self._glidein, self._entry)
        if submission.count == 0:
            return []
        description = build_submit_description(self._settings, submission, self._clock())
        try:
            submit = htcondor2.Submit(description)
        except (htcondor2.HTCondorException, ValueError, TypeError) as exc:
            raise PermanentError(f"invalid submit description: {exc}") from exc
        job_ids: list[str] = []
        while len(job_ids) < submission.count:
            count = min(submission.count - len(job_ids), self._settings.cluster_size)
            try:
                result = self._schedd.submit(submit, count=count)
            except (htcondor2.HTCondorException, RuntimeError, ValueError, OSError) as exc:
                raise _submit_error(exc, job_ids) from exc
            first = int(result.first_proc())
            cluster = int(result.cluster())
            job_ids += [f"{cluster}.{proc}" for proc in range(first, first + result.num_procs())]
        return job_ids

    def query(self) -> list[Glidein]:
        """Live glideins of the entry; ads lacking the factory's tags are skipped.

        Raises:
            TransientError: the schedd could not be queried (callers fail closed).
        """
        try:
            ads = self._schedd.query(constraint=self._constraint, projection=list(QUEUE_PROJECTION))
        except (htcondor2.HTCondorException, RuntimeError, OSError) as exc:
            raise TransientError(f"schedd query for entry {self._entry} failed: {exc}") from exc
        glideins = [glidein_from_ad(ad, self._entry) for ad in ads]
        skipped = sum(g is None for g in glideins)
        if skipped:
            log.warning("entry %s: skipped %d job ads lacking glidein tags", self._entry, skipped)
        return [g for g in glideins if g is not None and g.job_status not in _GONE]

    def release(self, job_ids: Sequence[str]) -> None:
        """Release held glideins (condor_release)."""
        self._act(htcondor2.JobAction.Release, job_ids)

    def remove(self, job_ids: Sequence[str], forcex: bool = False) -> None:
        """Remove glideins; with ``forcex`` also forget them once removed (condor_rm -forcex)."""
        self._act(htcondor2.JobAction.Remove, job_ids)
        if forcex:
            self._act(htcondor2.JobAction.RemoveX, job_ids)

    def _act(self, action: Any, job_ids: Sequence[str]) -> None:
        if not job_ids:
            return
        try:
            self._schedd.act(action, list(job_ids))
        except (ValueError, TypeError) as exc:
            raise PermanentError(f"invalid job ids {list(job_ids)}: {exc}") from exc
        except (htcondor2.HTCondorException, RuntimeError, OSError) as exc:
            raise TransientError(
                f"schedd {action.name} of {len(job_ids)} jobs failed: {exc}"
            ) from exc


def _submit_error(exc: Exception, submitted: list[str]) -> TransientError | PermanentError:
    """Connection trouble is transient; anything else is the schedd saying no."""
    already = (
        f" ({len(submitted)} jobs, {submitted[0]} to {submitted[-1]}, were submitted before)"
        if submitted
        else ""
    )
    if isinstance(exc, OSError) or any(m in str(exc).lower() for m in _UNREACHABLE):
        return TransientError(f"schedd unreachable during submit: {exc}{already}")
    return PermanentError(f"schedd refused the submission: {exc}{already}")


def glidein_from_ad(ad: Mapping[str, Any], entry: str) -> Glidein | None:
    """Map one job ad of the §4.5 projection to a Glidein; None when it lacks the tags.

    Args:
        ad: the job ad (a ``classad2.ClassAd`` or any mapping of attribute to value).
        entry: the entry the query selected (GlideinEntryName is not projected).
    """
    tags = [_text(ad, name) for name in _TAG_ATTRS]
    cluster, proc, status = (_number(ad, name) for name in ("ClusterId", "ProcId", "JobStatus"))
    if None in tags or cluster is None or proc is None or status not in _JOB_STATUSES:
        return None
    client, security_class, credential_id, frontend = (str(t) for t in tags)
    return Glidein(
        job_id=f"{cluster}.{proc}",
        entry=entry,
        client=client,
        security_class=security_class,
        credential_id=credential_id,
        frontend=frontend,
        job_status=JobStatus(status),
        grid_job_status=_text(ad, "GridJobStatus"),
        entered_current_status=float(_number(ad, "EnteredCurrentStatus") or 0),
        server_time=_float_or_none(_number(ad, "ServerTime")),
        hold_reason_code=_number(ad, "HoldReasonCode"),
        hold_reason_subcode=_number(ad, "HoldReasonSubCode"),
        hold_reason=_text(ad, "HoldReason"),
        num_system_holds=_number(ad, "NumSystemHolds") or 0,
        submit_key=_text(ad, "GlideinSubmitKey"),
    )


_TAG_ATTRS = (
    "GlideinClient",
    "GlideinSecurityClass",
    "GlideinCredentialIdentifier",
    "GlideinFrontendName",
)
_JOB_STATUSES = frozenset(s.value for s in JobStatus)


def _text(ad: Mapping[str, Any], name: str) -> str | None:
    value = ad.get(name)
    return value if isinstance(value, str) else None


def _number(ad: Mapping[str, Any], name: str) -> int | None:
    """An integer attribute; None when missing, undefined or not a number."""
    value = ad.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _float_or_none(value: int | None) -> float | None:
    return None if value is None else float(value)
