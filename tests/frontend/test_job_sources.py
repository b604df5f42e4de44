"""The JobSource contract, held by the Celery queue adapter (real Redis broker, real messages),
the schedd adapter (against the recording double: no schedd runs here) and the memory twin.

Each harness puts jobs in its source the way the real world does: the Celery one sends tasks
with a Celery app and takes them the way a late-acknowledging worker does (a kombu consumer
that does not acknowledge); the schedd one submits jobs to the double and marks some running.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import htcondor2
import pytest
import redis
from celery import Celery
from kombu import Connection, Consumer, Queue

from gwms_tasks.core.classad_text import AdValue
from gwms_tasks.errors import TransientError
from gwms_tasks.frontend.core_config import CelerySource, ScheddSource
from gwms_tasks.frontend.core_jobs import JobGroup, JobSource
from gwms_tasks.frontend.source_celery import CeleryQueueJobSource, queue_lists
from gwms_tasks.frontend.source_memory import MemoryJobSource
from gwms_tasks.frontend.source_schedd import ScheddJobSource
from tests.schedd_double import RUNNING, RecordingSchedd

QUEUE = "vo_jobs"
ATTRS = ("RequestCpus", "Site")
JOB = {"executable": "/bin/true", "universe": "vanilla", "grid_resource": "none"}


class Harness(Protocol):
    source: JobSource

    def add_idle(self, attrs: Mapping[str, AdValue], count: int) -> None: ...

    def start(self, count: int) -> None: ...


def broker_url(redis_url: str, db: int = 5) -> str:
    return redis_url.rsplit("/", 1)[0] + f"/{db}"


def celery_source(url: str, **changes: Any) -> CelerySource:
    values: dict[str, Any] = {
        "kind": "celery",
        "broker_url": url,
        "queue": QUEUE,
        "attributes": {"Site": "ANY"},
        "header_attributes": list(ATTRS),
    }
    return CelerySource.model_validate(values | changes)


@dataclass
class CeleryHarness:
    """Tasks sent by the VO's Celery app; taken, unacknowledged, as a late-ack worker does."""

    url: str
    source: CeleryQueueJobSource
    app: Celery = field(init=False)
    taker: Connection = field(init=False)
    taken: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = Celery("vo", broker=self.url)
        self.app.conf.update(task_serializer="json", accept_content=["json"])
        self.taker = Connection(self.url)

    def add_idle(self, attrs: Mapping[str, AdValue], count: int, **options: Any) -> None:
        for _ in range(count):
            self.app.send_task("vo.work", queue=QUEUE, headers=dict(attrs), **options)

    def start(self, count: int) -> None:
        channel = self.taker.channel()
        consumer = Consumer(
            channel, queues=[Queue(QUEUE, routing_key=QUEUE)], accept=["json"], no_ack=False,
            callbacks=[lambda body, message: self.taken.append(message)],
        )  # fmt: skip
        consumer.qos(prefetch_count=count)
        consumer.consume()
        wanted = len(self.taken) + count
        while len(self.taken) < wanted:
            self.taker.drain_events(timeout=5)
        consumer.cancel()

    def close(self) -> None:
        # Closing puts the unacknowledged messages back, as a worker shutting down would.
        self.taker.release()
        self.app.close()


@dataclass
class ScheddHarness:
    """Jobs submitted to the recording schedd; the oldest idle ones marked running."""

    schedd: RecordingSchedd
    source: ScheddJobSource

    def add_idle(self, attrs: Mapping[str, AdValue], count: int) -> None:
        given = {"Site": "ANY", **attrs}  # the VO's schedd gives every job a Site
        description = dict(JOB)
        description |= {
            f"MY.{k}": f'"{v}"' if isinstance(v, str) else str(v) for k, v in given.items()
        }
        self.schedd.submit(htcondor2.Submit(description), count)

    def start(self, count: int) -> None:
        idle = [job for job, ad in self.schedd.jobs.items() if ad["JobStatus"] == 1]
        for job in idle[:count]:
            self.schedd.set_attrs(job, JobStatus=RUNNING)


@dataclass
class MemoryHarness:
    source: MemoryJobSource = field(default_factory=MemoryJobSource)

    def add_idle(self, attrs: Mapping[str, AdValue], count: int) -> None:
        self.source.add_idle({"Site": "ANY", **attrs}, count)

    def start(self, count: int) -> None:
        self.source.start(count)


@pytest.fixture(params=["celery", "schedd", "memory"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "memory":
        yield MemoryHarness()
    elif request.param == "schedd":
        schedd = RecordingSchedd()
        config = ScheddSource(kind="schedd", attributes=ATTRS, constraint='Owner =!= "nobody"')
        yield ScheddHarness(schedd, ScheddJobSource(schedd, config))
    else:
        url = broker_url(request.getfixturevalue("redis_url"))
        client = redis.Redis.from_url(url)
        harness = CeleryHarness(url, CeleryQueueJobSource(client, celery_source(url)))
        yield harness
        harness.close()
        client.close()


def groups_of(source: JobSource) -> dict[tuple[tuple[str, AdValue], ...], int]:
    return {tuple(sorted(g.attrs.items())): g.count for g in source.snapshot().idle}


def test_empty_source_has_no_jobs(harness: Harness) -> None:
    snapshot = harness.source.snapshot()

    assert (snapshot.idle, snapshot.running, snapshot.idle_count) == ((), 0, 0)


def test_idle_jobs_come_grouped_by_their_attributes(harness: Harness) -> None:
    harness.add_idle({"RequestCpus": 2, "Site": "A"}, 3)
    harness.add_idle({"RequestCpus": 4}, 2)

    assert groups_of(harness.source) == {
        (("RequestCpus", 2), ("Site", "A")): 3,
        (("RequestCpus", 4), ("Site", "ANY")): 2,
    }


def test_started_jobs_count_as_running_not_idle(harness: Harness) -> None:
    harness.add_idle({"RequestCpus": 1}, 5)

    harness.start(2)

    snapshot = harness.source.snapshot()
    assert (snapshot.idle_count, snapshot.running) == (3, 2)


# ------------------------------------------------------------------------ Celery specifics


@pytest.fixture
def celery(redis_url: str) -> Iterator[CeleryHarness]:
    url = broker_url(redis_url)
    client = redis.Redis.from_url(url)
    harness = CeleryHarness(url, CeleryQueueJobSource(client, celery_source(url)))
    yield harness
    harness.close()
    client.close()


def test_messages_in_priority_sub_queues_are_counted(celery: CeleryHarness) -> None:
    celery.add_idle({"RequestCpus": 1}, 2, priority=0)
    celery.add_idle({"RequestCpus": 1}, 3, priority=5)
    celery.add_idle({"RequestCpus": 1}, 1, priority=9)

    client = redis.Redis.from_url(celery.url)
    lengths = [client.llen(name) for name in queue_lists(QUEUE, (0, 3, 6, 9))]
    client.close()
    assert lengths == [2, 3, 0, 1]
    assert celery.source.snapshot().idle_count == 6


def test_headers_are_read_from_max_scan_messages_only(celery: CeleryHarness) -> None:
    client = redis.Redis.from_url(celery.url)
    source = CeleryQueueJobSource(client, celery_source(celery.url, max_scan=2))
    celery.add_idle({"RequestCpus": 8}, 5)

    snapshot = source.snapshot()

    client.close()
    assert snapshot.idle_count == 5
    assert list(snapshot.idle) == [
        JobGroup({"Site": "ANY", "RequestCpus": 8}, 2),
        JobGroup({"Site": "ANY"}, 3),
    ]


def test_without_header_attributes_only_the_counts_are_read(celery: CeleryHarness) -> None:
    client = redis.Redis.from_url(celery.url)
    source = CeleryQueueJobSource(client, celery_source(celery.url, header_attributes=[]))
    celery.add_idle({"RequestCpus": 8}, 4)

    [group] = source.snapshot().idle

    client.close()
    assert group == JobGroup({"Site": "ANY"}, 4)


def test_tasks_of_other_queues_are_not_counted(celery: CeleryHarness) -> None:
    celery.app.send_task("vo.work", queue="other_queue")
    celery.add_idle({}, 1)
    celery.start(1)
    other = Connection(celery.url)
    channel = other.channel()
    taken: list[Any] = []
    consumer = Consumer(channel, queues=[Queue("other_queue")], accept=["json"], no_ack=False,
                        callbacks=[lambda body, message: taken.append(message)])  # fmt: skip
    consumer.consume()
    other.drain_events(timeout=5)

    snapshot = celery.source.snapshot()

    other.release()
    assert (snapshot.idle_count, snapshot.running, len(taken)) == (0, 1, 1)


def test_unreadable_messages_are_counted_and_noted(celery: CeleryHarness) -> None:
    client = redis.Redis.from_url(celery.url)
    client.lpush(QUEUE, "not json")

    snapshot = celery.source.snapshot()

    client.close()
    assert snapshot.idle == (JobGroup({"Site": "ANY"}, 1),)
    assert snapshot.notes == ("1 message(s) of vo_jobs have no readable headers",)


def test_unreachable_broker_is_a_transient_error() -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:1/0")
    source = CeleryQueueJobSource(client, celery_source("redis://127.0.0.1:1/0"))

    with pytest.raises(TransientError, match="count the tasks of queue 'vo_jobs'"):
        source.snapshot()


# ------------------------------------------------------------------------ schedd specifics


def test_schedd_is_asked_once_with_the_constraint_and_a_projection() -> None:
    schedd = RecordingSchedd()
    config = ScheddSource(kind="schedd", attributes=("RequestCpus",), constraint='Owner == "cms"')

    ScheddJobSource(schedd, config).snapshot()

    [call] = schedd.calls
    assert call.method == "query"
    assert call.args == (
        '(JobStatus == 1 || JobStatus == 2) && (Owner == "cms")',
        ("RequestCpus", "JobStatus"),
    )


def test_schedd_job_attributes_are_evaluated_and_undefined_ones_left_out() -> None:
    schedd = RecordingSchedd()
    description = {
        **JOB,
        "MY.RequestCpus": "1 + 1",
        "MY.Sites": '{"A", "B"}',
        "MY.Gone": "undefined",
    }
    schedd.submit(htcondor2.Submit(description), 2)
    config = ScheddSource(kind="schedd", attributes=("RequestCpus", "Sites", "Gone"))

    [group] = ScheddJobSource(schedd, config).snapshot().idle

    assert (dict(group.attrs), group.count) == ({"RequestCpus": 2, "Sites": '{ "A","B" }'}, 2)


def test_failing_schedd_query_is_a_transient_error() -> None:
    schedd = RecordingSchedd()
    schedd.fail_next("query", htcondor2.HTCondorException("schedd unreachable"))
    source = ScheddJobSource(schedd, ScheddSource(kind="schedd"))

    with pytest.raises(TransientError, match="schedd query failed: schedd unreachable"):
        source.snapshot()


def test_memory_source_can_fail_like_a_real_one() -> None:
    source = MemoryJobSource()
    source.fail("down")

    with pytest.raises(TransientError, match="down"):
        source.snapshot()
    source.fail(None)
    assert source.snapshot().idle_count == 0


def test_priority_steps_are_kombus_sub_queue_names() -> None:
    assert queue_lists("q", (9, 0, 3)) == ["q", "q\x06\x163", "q\x06\x169"]
    assert list(itertools.islice(queue_lists("q", ()), 2)) == ["q"]
