"""The GridBackend contract, run against every backend.

Each backend is built by a ``Harness`` maker; to add a backend, write its maker and add one line
to ``BACKENDS``. The Condor-G backend runs on the recording double of htcondor2.Schedd
(tests/schedd_double.py) because no schedd exists on these machines; the Redis-backed simulated
site needs a private redis-server (skipped without one, failing under CI=true).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import redis

from gwms_tasks.adapters.condor_g import CondorGBackend
from gwms_tasks.adapters.local_site import LocalSiteBackend, SiteQueue
from gwms_tasks.adapters.local_site_job import HoldCode
from gwms_tasks.adapters.memory_backend import MemoryGridBackend
from gwms_tasks.adapters.simulated import SimulatedBackend
from gwms_tasks.core.simulation import Fixed, SiteParameters
from gwms_tasks.core.status import GlideinStatus, JobStatus
from gwms_tasks.core.submit_description import EntrySubmitSettings, GridType
from gwms_tasks.errors import PermanentError
from gwms_tasks.keys import Keys
from gwms_tasks.ports import GlideinTags, GridBackend, Submission
from tests.schedd_double import RecordingSchedd

NOW = 1_700_000_000.0
FACTORY, GLIDEIN, ENTRY = "fact", "gfactory_instance", "ce1"
TAGS = GlideinTags(FACTORY, GLIDEIN, ENTRY, "fe.main", "sc1", "cred1", "fe:sc1", "feuser", "k1")


@dataclass(frozen=True)
class Harness:
    """A backend of the entry ``ENTRY`` and the levers a test needs that the port lacks."""

    backend: GridBackend
    hold: Callable[[str], None]  # the site or the system holds one glidein


def _clock() -> float:
    return NOW


def _memory(request: pytest.FixtureRequest) -> Harness:
    backend = MemoryGridBackend(FACTORY, GLIDEIN, ENTRY, clock=_clock)
    return Harness(backend, backend.hold)


# Glideins stay in the local queue: the contract is about the port, not the site's dynamics.
SITE = SiteParameters(slots=5, submit_delay=Fixed(3600))


def _simulated(request: pytest.FixtureRequest) -> Harness:
    backend = SimulatedBackend.in_memory(SITE, FACTORY, GLIDEIN, ENTRY, random.Random(7), _clock)
    return Harness(backend, lambda job_id: backend.hold([job_id]))


def _simulated_on_redis(request: pytest.FixtureRequest) -> Harness:
    client: redis.Redis = request.getfixturevalue("redis_client")
    backend = SimulatedBackend.on_redis(
        client, Keys("contract"), SITE, FACTORY, GLIDEIN, ENTRY, random.Random(7), _clock
    )
    return Harness(backend, lambda job_id: backend.hold([job_id]))


CONDOR_SETTINGS = EntrySubmitSettings(
    grid_type=GridType.CONDOR,
    gatekeeper="ce.example.org ce.example.org:9619",
    executable="/srv/gwms/glidein_startup.sh",
    log_base_dir="/var/log/gwms/client",
    web_url="http://factory.example.org/stage",
    cluster_size=4,
)


def _condor_g(request: pytest.FixtureRequest) -> Harness:
    schedd = RecordingSchedd(clock=_clock)
    backend = CondorGBackend(schedd, CONDOR_SETTINGS, FACTORY, GLIDEIN, ENTRY, clock=_clock)
    return Harness(backend, lambda job_id: schedd.system_hold(job_id, code=30))


def _local_site(request: pytest.FixtureRequest) -> Harness:
    """No site worker runs: glideins wait in the site's queue; the site holds them on demand."""
    client: redis.Redis = request.getfixturevalue("redis_client")
    backend = LocalSiteBackend(client, Keys("contract"), "S", FACTORY, GLIDEIN, ENTRY, _clock)
    site = SiteQueue(client, Keys("contract"), "S", _clock)
    return Harness(backend, lambda job_id: site.hold(job_id, HoldCode.TRANSFER_INPUT_ERROR, "t"))


BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Harness]] = {
    "memory": _memory,
    "simulated": _simulated,
    "simulated-redis": _simulated_on_redis,
    "condor_g": _condor_g,
    "local_site": _local_site,
}


@pytest.fixture(params=list(BACKENDS))
def harness(request: pytest.FixtureRequest) -> Harness:
    return BACKENDS[request.param](request)


def submission(count: int, **tag_changes: str) -> Submission:
    return Submission(dataclasses.replace(TAGS, **tag_changes), count, ["-v", "std"])


def test_a_backend_with_nothing_submitted_has_no_glideins(harness: Harness) -> None:
    assert harness.backend.query() == []


def test_submitted_glideins_are_queried_back_with_their_submit_key(harness: Harness) -> None:
    ids = harness.backend.submit(submission(6))
    glideins = harness.backend.query()
    assert len(ids) == 6
    assert sorted(g.job_id for g in glideins) == sorted(ids)
    assert {g.submit_key for g in glideins} == {"k1"}


def test_new_glideins_are_idle_in_the_local_queue(harness: Harness) -> None:
    harness.backend.submit(submission(2))
    glideins = harness.backend.query()
    assert {g.status for g in glideins} == {GlideinStatus.WAIT}
    assert {g.entered_current_status for g in glideins} == {NOW}
    assert {g.num_system_holds for g in glideins} == {0}


def test_tags_round_trip_exactly(harness: Harness) -> None:
    odd = {
        "security_class": 'sc "quoted" \\ back',
        "credential_id": "cred-$(Cluster)-$ENV(HOME)-é",
        "frontend": "fe:sc && True",
        "submit_key": "key/1:2 ü",
    }
    harness.backend.submit(submission(1, **odd))
    (glidein,) = harness.backend.query()
    got = {name: getattr(glidein, name) for name in odd}
    assert got == odd
    assert (glidein.entry, glidein.client) == (ENTRY, TAGS.client)


def test_each_submission_keeps_its_own_tags(harness: Harness) -> None:
    harness.backend.submit(submission(2, client="fe.a", submit_key="ka"))
    harness.backend.submit(submission(3, client="fe.b", submit_key="kb"))
    by_key: dict[str | None, set[str]] = {}
    for glidein in harness.backend.query():
        by_key.setdefault(glidein.submit_key, set()).add(glidein.client)
    assert by_key == {"ka": {"fe.a"}, "kb": {"fe.b"}}


def test_job_ids_are_unique_across_submits(harness: Harness) -> None:
    ids = [job_id for _ in range(4) for job_id in harness.backend.submit(submission(5))]
    assert len(set(ids)) == 20


def test_submitting_zero_glideins_queues_nothing(harness: Harness) -> None:
    assert harness.backend.submit(submission(0)) == []
    assert harness.backend.query() == []


def test_a_submission_for_another_entry_is_refused_and_queues_nothing(harness: Harness) -> None:
    with pytest.raises(PermanentError):
        harness.backend.submit(submission(3, entry="other"))
    assert harness.backend.query() == []


def test_removed_glideins_are_gone_from_the_query(harness: Harness) -> None:
    ids = harness.backend.submit(submission(4))
    harness.backend.remove(ids[:3])
    assert [g.job_id for g in harness.backend.query()] == ids[3:]


def test_a_held_glidein_can_be_removed_with_forcex(harness: Harness) -> None:
    ids = harness.backend.submit(submission(2))
    harness.hold(ids[0])
    harness.backend.remove([ids[0]], forcex=True)
    assert [g.job_id for g in harness.backend.query()] == ids[1:]


def test_a_held_glidein_is_reported_held(harness: Harness) -> None:
    ids = harness.backend.submit(submission(2))
    harness.hold(ids[1])
    by_id = {g.job_id: g for g in harness.backend.query()}
    assert by_id[ids[1]].job_status is JobStatus.HELD
    assert by_id[ids[1]].num_system_holds == 1
    assert by_id[ids[0]].status is GlideinStatus.WAIT


def test_a_released_held_glidein_is_idle_again(harness: Harness) -> None:
    ids = harness.backend.submit(submission(2))
    harness.hold(ids[0])
    harness.backend.release([ids[0]])
    by_id = {g.job_id: g for g in harness.backend.query()}
    assert by_id[ids[0]].status.is_idle
    assert by_id[ids[0]].hold_reason_code is None
    assert by_id[ids[0]].num_system_holds == 1


def test_releasing_a_glidein_that_is_not_held_changes_nothing(harness: Harness) -> None:
    ids = harness.backend.submit(submission(2))
    before = harness.backend.query()
    harness.backend.release(ids)
    assert harness.backend.query() == before


def test_removing_unknown_glideins_is_harmless(harness: Harness) -> None:
    ids = harness.backend.submit(submission(1))
    harness.backend.remove(["999.0"])
    harness.backend.release(["999.0"])
    assert [g.job_id for g in harness.backend.query()] == ids


def test_a_malformed_job_id_is_refused(harness: Harness) -> None:
    harness.backend.submit(submission(1))
    with pytest.raises(PermanentError):
        harness.backend.remove(["not a job id"])
    assert len(harness.backend.query()) == 1
