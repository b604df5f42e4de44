"""Jobs as HTCondor jobs in a schedd (htcondor2 bindings): idle JobStatus 1, running 2.

One ``Schedd.query`` per snapshot, with the group's constraint and a projection of the
attributes the match expression uses, so the schedd sends only what is needed. Attribute
values are evaluated in their job ad; an undefined one is left out (the match expression then
sees it undefined, as it would in the job ad itself).

Tested against the recording double of ``tests/schedd_double.py``, not against a real schedd
(none runs where the tests run).
"""

from __future__ import annotations

from typing import Any

import classad2
import htcondor2

from gwms_tasks.core.classad_text import AdExpr, AdFormatError, AdValue
from gwms_tasks.errors import TransientError
from gwms_tasks.frontend.core_config import ScheddSource
from gwms_tasks.frontend.core_jobs import JobSnapshot, group_jobs

IDLE, RUNNING = 1, 2
_HTCONDOR_ERRORS = (htcondor2.HTCondorException, RuntimeError, OSError, ValueError)


def locate_schedd(source: ScheddSource) -> Any:
    """The schedd of a job source: located through the collector, or the local one.

    Raises:
        TransientError: the collector cannot be reached or does not know the schedd.
    """
    try:
        if source.schedd_name is None and source.collector is None:
            return htcondor2.Schedd()
        collector = htcondor2.Collector(source.collector) if source.collector else None
        collector = collector or htcondor2.Collector()
        location = collector.locate(htcondor2.DaemonType.Schedd, source.schedd_name)
        return htcondor2.Schedd(location)
    except _HTCONDOR_ERRORS as exc:
        where = source.schedd_name or "the local schedd"
        raise TransientError(f"cannot locate {where}: {exc}") from exc


class ScheddJobSource:
    """The JobSource of one schedd.

    Args:
        schedd: an ``htcondor2.Schedd`` (or an object with its ``query`` signature).
        source: the group's job source config.
    """

    def __init__(self, schedd: Any, source: ScheddSource) -> None:
        self._schedd = schedd
        self._source = source

    def snapshot(self) -> JobSnapshot:
        """Idle jobs grouped by the projected attributes, and the running count.

        Raises:
            TransientError: the schedd could not be queried.
        """
        constraint = (
            f"(JobStatus == {IDLE} || JobStatus == {RUNNING}) && ({self._source.constraint})"
        )
        projection = [*self._source.attributes, "JobStatus"]
        try:
            ads = self._schedd.query(constraint=constraint, projection=projection)
        except _HTCONDOR_ERRORS as exc:
            raise TransientError(f"schedd query failed: {exc}") from exc
        idle: list[dict[str, AdValue]] = []
        running = 0
        for ad in ads:
            status = ad.eval("JobStatus") if "JobStatus" in ad else None
            if status == RUNNING:
                running += 1
            elif status == IDLE:
                idle.append(self._attrs(ad))
        return JobSnapshot(group_jobs(idle), running)

    def _attrs(self, ad: Any) -> dict[str, AdValue]:
        attrs: dict[str, AdValue] = {}
        for name in self._source.attributes:
            if name not in ad:
                continue
            value = ad.eval(name)
            if isinstance(value, classad2.Value):  # undefined or error
                continue
            if isinstance(value, bool | int | float | str):
                attrs[name] = value
                continue
            try:
                attrs[name] = AdExpr(repr(ad.lookup(name)))
            except AdFormatError:
                continue
        return attrs
