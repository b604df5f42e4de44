"""The simulated backend with its site model shared through Redis by several workers.

Each ``SimulatedBackend`` below has its own Redis connection and its own copy of the model, as
separate worker processes would; they must agree on one simulated site.
"""

from __future__ import annotations

import random
import threading

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gwms_tasks.adapters.simulated import SimulatedBackend
from gwms_tasks.core.model import StatusCounts
from gwms_tasks.core.simulation import Fixed, SiteParameters
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.keys import Keys
from gwms_tasks.ports import GlideinTags, Submission

KEYS = Keys("simtest")
TAGS = GlideinTags("fact", "gi", "ce1", "fe.main", "sc1", "cred1", "fe:sc1", "u", "k1")
SITE = SiteParameters(slots=3, submit_delay=Fixed(10), queue_time=Fixed(5), run_time=Fixed(100))


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def worker(redis_url: str, clock: Clock, seed: int = 1) -> SimulatedBackend:
    """A backend as one worker process would build it: own connection, own model copy."""
    client = redis.Redis.from_url(redis_url)
    return SimulatedBackend.on_redis(
        client, KEYS, SITE, "fact", "gi", "ce1", random.Random(seed), clock
    )


def test_a_glidein_submitted_by_one_worker_is_seen_by_another(redis_url: str) -> None:
    clock = Clock()
    submitter, monitor = worker(redis_url, clock), worker(redis_url, clock)
    ids = submitter.submit(Submission(TAGS, 4, ["-v"]))
    assert sorted(g.job_id for g in monitor.query()) == sorted(ids)


def test_the_monitor_advancing_the_site_is_seen_by_every_worker(redis_url: str) -> None:
    clock = Clock()
    submitter, monitor = worker(redis_url, clock), worker(redis_url, clock)
    submitter.submit(Submission(TAGS, 5, ["-v"]))
    assert monitor.advance(1015.0) > 0
    counts = StatusCounts.of(submitter.query())
    assert (counts.running, counts.pending) == (3, 2)
    submitter.remove([g.job_id for g in submitter.query()][:1])
    assert len(monitor.query()) == 4
    assert monitor.counters()["removed"] == 1


def test_concurrent_submits_from_many_workers_lose_nothing(redis_url: str) -> None:
    clock = Clock()
    workers = [worker(redis_url, clock, seed) for seed in range(6)]
    results: list[list[str]] = []
    lock = threading.Lock()

    def submit_many(backend: SimulatedBackend) -> None:
        for _ in range(10):
            ids = backend.submit(Submission(TAGS, 3, ["-v"]))
            with lock:
                results.append(ids)

    threads = [threading.Thread(target=submit_many, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    all_ids = [job_id for ids in results for job_id in ids]
    assert len(all_ids) == len(set(all_ids)) == 180
    assert sorted(g.job_id for g in worker(redis_url, clock).query()) == sorted(all_ids)


def test_the_state_survives_the_workers(redis_url: str) -> None:
    clock = Clock()
    ids = worker(redis_url, clock).submit(Submission(TAGS, 2, ["-v"]))
    later = worker(redis_url, clock, seed=99)
    assert sorted(g.job_id for g in later.query()) == sorted(ids)
    assert later.counters()["submitted"] == 2


def test_finished_glideins_leave_the_redis_hash(redis_url: str, redis_client: redis.Redis) -> None:
    clock = Clock()
    backend = worker(redis_url, clock)
    backend.submit(Submission(TAGS, 3, ["-v"]))
    backend.advance(2000.0)
    assert backend.query() == []
    fields = {
        f.decode() if isinstance(f, bytes) else f for f in redis_client.hkeys(KEYS.simulated("ce1"))
    }
    assert fields == {"v", "meta"}


def test_unreachable_redis_is_a_transient_error() -> None:
    no_retry = Retry(NoBackoff(), 0)
    client = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.5, retry=no_retry)
    backend = SimulatedBackend.on_redis(
        client, KEYS, SITE, "fact", "gi", "ce1", random.Random(1), Clock()
    )
    with pytest.raises(TransientError, match="Redis unavailable"):
        backend.query()
    with pytest.raises(TransientError, match="Redis unavailable"):
        backend.submit(Submission(TAGS, 1, ["-v"]))


def test_an_acl_refusal_is_a_permanent_error_not_retried(
    redis_url: str, redis_client: redis.Redis
) -> None:
    redis_client.acl_setuser(
        "no_sim", enabled=True, passwords=["+pw"], keys=["other:*"], commands=["+@all"]
    )
    client = redis.Redis.from_url(redis_url.replace("redis://", "redis://no_sim:pw@"))
    backend = SimulatedBackend.on_redis(
        client, KEYS, SITE, "fact", "gi", "ce1", random.Random(1), Clock()
    )
    with pytest.raises(PermanentError, match="ACL user lacks this permission"):
        backend.query()
    with pytest.raises(PermanentError, match="ACL user lacks this permission"):
        backend.submit(Submission(TAGS, 1, ["-v"]))


@pytest.mark.parametrize(
    "fields",
    [
        {"j:1": "[1, 2"},
        {"j:1": "[1, 2, 3]"},
        {"j:1": '[1, 2, 3, 4, "5"]'},
        {"c:1": "[0]"},
        {"meta": "[1]"},
        {"v": "x"},
    ],
)
def test_corrupt_state_in_redis_is_a_permanent_error(
    redis_url: str, redis_client: redis.Redis, fields: dict[str, str]
) -> None:
    redis_client.hset(KEYS.simulated("ce1"), mapping={"v": "3"} | fields)
    with pytest.raises(PermanentError, match="corrupt simulated site state"):
        worker(redis_url, Clock()).query()


def test_a_refused_change_leaves_the_shared_state_untouched(redis_url: str) -> None:
    clock = Clock()
    backend = worker(redis_url, clock)
    backend.submit(Submission(TAGS, 2, ["-v"]))
    with pytest.raises(PermanentError):
        backend.remove(["1.0", "bad id"])
    assert len(worker(redis_url, clock).query()) == 2
    assert len(backend.query()) == 2


def test_an_advance_that_changes_nothing_leaves_the_version_alone(
    redis_url: str, redis_client: redis.Redis
) -> None:
    clock = Clock()
    backend = worker(redis_url, clock)
    backend.submit(Submission(TAGS, 2, ["-v"]))
    version = redis_client.hget(KEYS.simulated("ce1"), "v")
    assert backend.advance(1001.0) == 0
    backend.remove(["7.0"])
    assert redis_client.hget(KEYS.simulated("ce1"), "v") == version
    assert backend.advance(1010.0) == 2
    assert redis_client.hget(KEYS.simulated("ce1"), "v") != version
