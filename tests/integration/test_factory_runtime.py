"""The factory running for real: Redis, a factory worker and user workers as Unix users.

A request published by a frontend (its own Redis ACL user) leads to exactly the requested
glideins; raising and lowering it submits and removes; limits hold under two frontends; a
spoofed request changes nothing. Needs root (user workers drop to created users).
"""

from __future__ import annotations

import os
import pwd
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from gwms_tasks.core.ads import AdType
from gwms_tasks.privileges import drop_to_user
from gwms_tasks.queues import FACTORY_QUEUE, TaskName
from tests.integration.celery_app_probe import can_create_users, run_in_child, temporary_users
from tests.integration.factory_harness import (
    FACTORY,
    GLIDEIN,
    FactoryFixture,
    RunningFactory,
    wait_until,
)

pytestmark = [
    pytest.mark.redis,
    pytest.mark.root,
    pytest.mark.skipif(
        not can_create_users() and os.environ.get("CI") != "true",
        reason="needs root with useradd (user workers drop to created users)",
    ),
]

SIM = "sim1"
# Glideins that stay idle: the simulated site never starts them within a test.
SIM_ENTRY = {
    "auth_method": "scitoken",
    "backend": {"kind": "simulated", "queue_time": 1_000_000, "capacity": 10},
    "limits": {
        "per_entry": {"max_idle": 12, "max_held": 5, "max_glideins": 30},
        "default_per_frontend": {"max_idle": 8, "max_held": 5, "max_glideins": 20},
    },
    "remove": {"max_per_cycle": 10},
}
SITE = "site1"
SITE_ENTRY = {
    "auth_method": "scitoken",
    "backend": {"kind": "local_site", "slots": 1, "site": "RT_SITE"},
    "limits": {"per_entry": {"max_idle": 6, "max_held": 2, "max_glideins": 10}},
}


@pytest.fixture(scope="module")
def users() -> Iterator[dict[str, str]]:
    with temporary_users(2) as names:
        yield {"fe1": names[0], "fe2": names[1]}


@pytest.fixture
def factories(redis_url: str, users: dict[str, str]) -> Iterator[FactoryFixture]:
    fixture = FactoryFixture(redis_url, users)
    yield fixture
    for text in fixture.close():
        print(text)


@pytest.fixture
def factory(factories: FactoryFixture, users: dict[str, str]) -> RunningFactory:
    running = factories.build({SIM: SIM_ENTRY, SITE: SITE_ENTRY})
    running.start_factory_worker()
    for username in users.values():
        running.start_user_worker(username)
    return running


def _converges(factory: RunningFactory, entry: str, expected: dict[str, int]) -> None:
    """Run find-work until the entry's glideins by client equal ``expected`` and stay so."""

    def reached() -> bool:
        if factory.by_client(entry) == expected and factory.settled(entry):
            return True
        factory.find_work(entry)
        return False

    wait_until(reached, 60, f"{entry} glideins {expected} (have {factory.by_client(entry)})")
    factory.find_work(entry)  # one more pass: must not change anything
    wait_until(lambda: factory.settled(entry), 30, "the extra pass to settle")
    assert factory.by_client(entry) == expected


def test_request_gives_exactly_the_glideins_then_raise_and_lower(factory: RunningFactory) -> None:
    fe1 = factory.frontend("fe1")
    factory.publish(fe1, SIM, idle=5, max_glideins=20)
    _converges(factory, SIM, {"fe1.main": 5})
    factory.publish(fe1, SIM, idle=7, max_glideins=20)
    _converges(factory, SIM, {"fe1.main": 7})
    factory.publish(fe1, SIM, idle=2, max_glideins=20, remove_excess="IDLE")
    _converges(factory, SIM, {"fe1.main": 2})


def test_local_site_gets_exactly_the_requested_glideins(factory: RunningFactory) -> None:
    fe2 = factory.frontend("fe2")
    factory.publish(fe2, SITE, idle=3, max_glideins=10)
    _converges(factory, SITE, {"fe2.main": 3})


def test_limits_hold_under_two_frontends(factory: RunningFactory) -> None:
    fe1, fe2 = factory.frontend("fe1"), factory.frontend("fe2")
    factory.publish(fe1, SIM, idle=20, max_glideins=20)
    factory.publish(fe2, SIM, idle=20, max_glideins=20)
    for _ in range(4):
        factory.find_work(SIM)

    def full() -> bool:
        factory.find_work(SIM)
        return sum(factory.by_client(SIM).values()) == 12 and factory.settled(SIM)

    wait_until(full, 60, f"the entry's idle limit of 12 (have {factory.by_client(SIM)})")
    counts = factory.by_client(SIM)
    assert all(count <= 8 for count in counts.values()), counts  # per-frontend max_idle
    assert sum(counts.values()) == 12  # per-entry max_idle


def test_spoofed_request_changes_nothing(factory: RunningFactory) -> None:
    fe1, fe2 = factory.frontend("fe1"), factory.frontend("fe2")
    # fe2 writes (as itself) a request that claims to be fe1's.
    forged = fe1.side.request(SIM, idle=5, factory="rt_factory", glidein="rt_instance")
    fe2.dashboard.advertise(AdType.GLIDECLIENT, [forged])
    factory.find_work(SIM)

    def decided() -> bool:
        return bool(factory.runtime.state.entries.decisions(SIM))

    wait_until(decided, 30, "the decision on the forged request")
    [decision] = factory.runtime.state.entries.decisions(SIM).values()
    assert decision["rejected"] == "identity_mismatch"
    assert factory.glideins(SIM) == []


BIG = "sim_big"
BIG_ENTRY = {
    "auth_method": "scitoken",
    "backend": {"kind": "simulated", "queue_time": 1_000_000, "capacity": 10},
    "limits": {
        "per_entry": {"max_idle": 400, "max_held": 5, "max_glideins": 400},
        "default_per_frontend": {"max_idle": 400, "max_held": 5, "max_glideins": 400},
    },
    "submit": {"max_per_cycle": 300, "cluster_size": 10},
}


def _children(pid: int) -> list[int]:
    found = []
    for task in Path("/proc").glob("[0-9]*"):
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(task.name))
    return found


def test_user_worker_killed_mid_submit_submits_each_glidein_once(
    factories: FactoryFixture, users: dict[str, str]
) -> None:
    factory = factories.build({BIG: BIG_ENTRY})
    factory.start_factory_worker()
    username = users["fe1"]
    first = factory.start_user_worker(username)  # publishes the worker's key
    first.stop()
    fe1 = factory.frontend("fe1")
    factory.publish(fe1, BIG, idle=300, max_glideins=400)
    factory.find_work(BIG)
    wait_until(lambda: bool(factory.runtime.state.inflight.list(BIG)), 30, "a queued submit")
    [inflight] = factory.runtime.state.inflight.list(BIG)
    worker = factory.start_user_worker(username)
    ledger = factory.runtime.state.ledger
    state = factory.runtime.state_client
    lock = factory.runtime.keys.lock(f"submit:{inflight.submit_key}")
    killed_in = ""
    deadline = time.monotonic() + 60
    while not killed_in and time.monotonic() < deadline:
        if state.exists(lock):  # the submit task is running: it holds its key's lock
            for child in _children(worker.popen.pid):
                os.kill(child, signal.SIGKILL)
            record = ledger.get(inflight.submit_key)
            mine = [g for g in factory.glideins(BIG) if g.submit_key == inflight.submit_key]
            killed_in = f"{len(mine)} glideins submitted, ledger {record and record.state}"
    assert killed_in, "the submit never started"
    print(f"pool process killed with {killed_in}")

    def done() -> bool:
        record = ledger.get(inflight.submit_key)
        return record is not None and record.state == "submitted" and factory.settled(BIG)

    wait_until(done, 90, "the redelivered submit to finish")
    mine = [g for g in factory.glideins(BIG) if g.submit_key == inflight.submit_key]
    assert len(mine) == inflight.count == 300
    assert len({g.job_id for g in mine}) == 300


def _redis_values(client: redis.Redis) -> Iterator[tuple[str, bytes]]:
    """Every key of every database of the server, with each of its values as bytes."""
    databases = int(client.config_get("databases")["databases"])
    for db in range(databases):
        conn = client.connection_pool.connection_kwargs
        one = redis.Redis(host=conn["host"], port=conn["port"], db=db)
        for key in one.scan_iter(count=1000):
            kind = one.type(key).decode()
            name = f"db{db}:{key.decode(errors='replace')}"
            values: list[bytes] = []
            if kind == "string":
                values = [one.get(key) or b""]
            elif kind == "hash":
                values = [k + b"=" + v for k, v in one.hgetall(key).items()]
            elif kind == "list":
                values = list(one.lrange(key, 0, -1))
            elif kind == "set":
                values = list(one.smembers(key))
            elif kind == "zset":
                values = [member for member, _ in one.zrange(key, 0, -1, withscores=True)]
            elif kind == "stream":
                values = [repr(entry).encode() for entry in one.xrange(key)]
            for value in values:
                yield name, value
        one.close()


def test_user_workers_are_isolated_and_credentials_are_never_in_clear(
    factory: RunningFactory, users: dict[str, str], redis_client: redis.Redis
) -> None:
    secrets_of = {"fe1": "eyJ.SECRET-TOKEN-OF-FE1.sig", "fe2": "eyJ.SECRET-TOKEN-OF-FE2.sig"}
    proxies_of = {"fe1": "-----PROXY-FILE-OF-FE1-----", "fe2": "-----PROXY-FILE-OF-FE2-----"}
    for name in ("fe1", "fe2"):
        fe = factory.frontend(name)
        enc = {"frontend_scitoken": secrets_of[name]}
        factory.publish(fe, SIM, idle=2, max_glideins=5, enc=enc)
        shipped = fe.side.global_ad(
            {"pilot_proxy": ("main", proxies_of[name])}, factory=FACTORY, glidein=GLIDEIN
        )
        fe.dashboard.advertise(AdType.GLIDECLIENT_GLOBAL, [shipped])
    factory.app.send_task(str(TaskName.CREDENTIALS), queue=FACTORY_QUEUE)
    _converges(factory, SIM, {"fe1.main": 2, "fe2.main": 2})

    base = Path(factory.config.factory.client_proxies_base_dir)
    files = {}
    for name, username in users.items():
        cred_dir = base / f"user_{username}" / f"glidein_{GLIDEIN}"
        token = cred_dir / f"credential_{name}.main_{SIM}.scitoken"
        proxy = cred_dir / f"credential_{name}.main_pilot_proxy"
        wait_until(proxy.exists, 30, f"{name}'s shipped credential in {cred_dir}")
        for path, content in ((token, secrets_of[name]), (proxy, proxies_of[name])):
            info = path.stat()
            assert path.read_text() == content
            assert (info.st_mode & 0o777, info.st_uid) == (0o600, pwd.getpwnam(username).pw_uid)
        assert cred_dir.stat().st_mode & 0o777 == 0o700
        assert (base / f"user_{username}").stat().st_mode & 0o777 == 0o700
        files[name] = (token, proxy)

    def read_other() -> dict[str, Any]:
        drop_to_user(users["fe2"])
        outcome = {}
        for path in files["fe1"]:
            try:
                path.read_bytes()
                outcome[str(path)] = "read"
            except PermissionError:
                outcome[str(path)] = "denied"
        return outcome

    assert set(run_in_child(read_other).values()) == {"denied"}

    secrets = [s.encode() for s in (*secrets_of.values(), *proxies_of.values())]
    leaks = [
        name for name, value in _redis_values(redis_client) if any(s in value for s in secrets)
    ]
    assert leaks == [], f"credentials in clear in Redis (state, broker, dashboard): {leaks}"
    for process in factory.processes:
        log = process.output()
        assert not any(s.decode() in log for s in secrets), f"a credential in {process.log}"


def test_a_changed_request_is_acted_on_within_about_a_second(
    factories: FactoryFixture, users: dict[str, str]
) -> None:
    factory = factories.build({SIM: SIM_ENTRY})
    factory.start_factory_worker(watch=True)
    factory.start_user_worker(users["fe1"])
    fe1 = factory.frontend("fe1")
    time.sleep(1.0)  # the watcher subscribes after the worker's key exists
    latencies = []
    for idle in (3, 5):
        published = time.monotonic()
        factory.publish(fe1, SIM, idle=idle, max_glideins=20)
        wait_until(lambda idle=idle: len(factory.glideins(SIM)) == idle, 10, f"{idle} glideins")
        latencies.append(time.monotonic() - published)
    print(f"request-to-glideins latencies: {[f'{x:.2f}' for x in latencies]} s")
    assert max(latencies) < 3.0
