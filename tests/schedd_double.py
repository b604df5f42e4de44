"""A recording double of ``htcondor2.Schedd`` for tests (no schedd runs on these machines).

It implements the three methods the Condor-G backend calls, with the real signatures:
``submit(description, count)`` turns an ``htcondor2.Submit`` into job ads the way condor_submit
would for the parts we rely on (``+Attr`` values expanded by the real Submit object and parsed as
ClassAd expressions, ``$(Cluster)``/``$(Process)`` in the arguments), ``query`` evaluates the
constraint with classad2 and projects, and ``act`` applies hold/release/remove/removex with the
state rules of the schedd (removex only forgets jobs already removed). Every call is recorded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import classad2
import htcondor2

_JOB_SPEC = re.compile(r"^\d+(\.\d+)?$")
IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Call:
    """One recorded call: the method name and its main arguments."""

    method: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class SubmitResult:
    """What ``Schedd.submit`` returns (the methods of ``htcondor2.SubmitResult`` we use)."""

    cluster_id: int
    first: int
    count: int

    def cluster(self) -> int:
        return self.cluster_id

    def first_proc(self) -> int:
        return self.first

    def num_procs(self) -> int:
        return self.count


@dataclass
class RecordingSchedd:
    """Job ads in memory, calls recorded, failures injectable per method."""

    clock: Callable[[], float] = lambda: 1_700_000_000.0
    jobs: dict[str, classad2.ClassAd] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    next_cluster: int = 1
    _failures: dict[str, Exception] = field(default_factory=dict)

    def fail_next(self, method: str, error: Exception) -> None:
        """Make the next call of ``method`` ("submit", "query", "act") raise ``error``."""
        self._failures[method] = error

    def _enter(self, method: str, *args: Any) -> None:
        self.calls.append(Call(method, args))
        error = self._failures.pop(method, None)
        if error is not None:
            raise error

    # -- the htcondor2.Schedd methods --------------------------------------------------------

    def submit(self, description: htcondor2.Submit, count: int = 0) -> SubmitResult:
        if not isinstance(description, htcondor2.Submit):
            raise TypeError("description must be an htcondor2.Submit object")
        self._enter("submit", dict(description), count)
        cluster = self.next_cluster
        self.next_cluster += 1
        procs = count or 1
        for proc in range(procs):
            self.jobs[f"{cluster}.{proc}"] = self._job_ad(description, cluster, proc)
        return SubmitResult(cluster, 0, procs)

    def query(
        self, constraint: str = "True", projection: list[str] | None = None
    ) -> list[classad2.ClassAd]:
        self._enter("query", constraint, tuple(projection or ()))
        expr = classad2.ExprTree(str(constraint))
        now = self.clock()
        return [
            self._project(ad, projection or [], now)
            for ad in self.jobs.values()
            if expr.eval(ad) is True
        ]

    def act(self, action: htcondor2.JobAction, job_spec: list[str]) -> classad2.ClassAd:
        if not all(isinstance(s, str) and _JOB_SPEC.match(s) for s in job_spec):
            raise ValueError("job_spec must be strings of the form clusterID[.procID]")
        self._enter("act", action, tuple(job_spec))
        result = {"TotalSuccess": 0, "TotalNotFound": 0, "TotalBadStatus": 0}
        for job_id in self._matching(job_spec):
            outcome = self._apply(action, job_id) if job_id in self.jobs else "TotalNotFound"
            result[outcome] += 1
        return classad2.ClassAd(result)

    # -- helpers for tests (what the CE or the gridmanager would do) ---------------------------

    def set_attrs(self, job_id: str, **attrs: Any) -> None:
        """Change attributes of a job (e.g. JobStatus=2, GridJobStatus="RUNNING")."""
        for name, value in attrs.items():
            self.jobs[job_id][name] = value

    def system_hold(self, job_id: str, code: int, subcode: int = 0, reason: str = "") -> None:
        """Hold a job the way the system does (counts in NumSystemHolds)."""
        ad = self.jobs[job_id]
        holds = ad.get("NumSystemHolds", 0)
        self.set_attrs(
            job_id,
            JobStatus=HELD,
            HoldReasonCode=code,
            HoldReasonSubCode=subcode,
            HoldReason=reason or f"system hold {code}",
            NumSystemHolds=holds + 1,
            EnteredCurrentStatus=int(self.clock()),
        )

    # -- internals ---------------------------------------------------------------------------

    def _job_ad(self, description: htcondor2.Submit, cluster: int, proc: int) -> classad2.ClassAd:
        ad = classad2.ClassAd()
        for key in description:
            if key.startswith("MY."):
                ad[key[3:]] = classad2.ExprTree(description.expand(key))
        arguments = description.get("arguments", "")
        per_job = arguments.replace("$(Cluster)", str(cluster)).replace("$(Process)", str(proc))
        now = int(self.clock())
        ad.update(
            {
                "ClusterId": cluster,
                "ProcId": proc,
                "JobUniverse": 9,
                "JobStatus": IDLE,
                "QDate": now,
                "EnteredCurrentStatus": now,
                "NumSystemHolds": 0,
                "GridResource": description.expand("grid_resource"),
                "Cmd": description.expand("executable"),
                "Args": htcondor2.Submit({"a": per_job}).expand("a") if per_job else "",
            }
        )
        return ad

    @staticmethod
    def _project(ad: classad2.ClassAd, projection: list[str], now: float) -> classad2.ClassAd:
        names = projection or list(ad.keys())
        projected = classad2.ClassAd({n: ad[n] for n in names if n in ad})
        projected["ServerTime"] = int(now)
        return projected

    def _matching(self, job_spec: list[str]) -> list[str]:
        matched: list[str] = []
        for spec in job_spec:
            if "." in spec:
                matched.append(spec)
            else:
                matched += [j for j in self.jobs if j.split(".")[0] == spec]
        return matched

    def _apply(self, action: htcondor2.JobAction, job_id: str) -> str:
        ad = self.jobs[job_id]
        status = ad["JobStatus"]
        now = int(self.clock())
        if action == htcondor2.JobAction.Hold and status in (IDLE, RUNNING):
            ad.update({"JobStatus": HELD, "HoldReasonCode": 1, "HoldReasonSubCode": 0})
            ad.update({"HoldReason": "via condor_hold", "EnteredCurrentStatus": now})
        elif action == htcondor2.JobAction.Release and status == HELD:
            for name in ("HoldReasonCode", "HoldReasonSubCode", "HoldReason", "GridJobStatus"):
                if name in ad:
                    del ad[name]
            ad.update({"JobStatus": IDLE, "EnteredCurrentStatus": now})
        elif action == htcondor2.JobAction.Remove and status != REMOVED:
            ad.update({"JobStatus": REMOVED, "EnteredCurrentStatus": now})
        elif action == htcondor2.JobAction.RemoveX and status == REMOVED:
            del self.jobs[job_id]
        else:
            return "TotalBadStatus"
        return "TotalSuccess"
