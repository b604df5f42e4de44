"""The local site for real: a site worker runs glideins as processes, driven through Redis.

Most tests run a small stand-in executable (written here) that prints its arguments and
environment, then sleeps and exits as its environment says; one runs the real
glidein_startup.sh. Workers run in threads of the test, except the one that must die hard.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

import gwms_tasks.glidein
from gwms_tasks.adapters.local_site import LocalSiteBackend, SiteQueue
from gwms_tasks.adapters.local_site_job import LOST_EXIT_CODE, Ending, HoldCode, SiteJob
from gwms_tasks.core.model import Glidein
from gwms_tasks.core.status import GlideinStatus, JobStatus
from gwms_tasks.errors import ConfigError, PermanentError
from gwms_tasks.keys import Keys
from gwms_tasks.ports import GlideinTags, Submission
from gwms_tasks.services import site_worker
from gwms_tasks.services.site_worker import SiteWorker, WorkerSettings, run_site_worker

SITE = "SITE_A"
KEYS = Keys("lt")
TAGS = GlideinTags("fact", "inst", "entry1", "fe.main", "sc1", "cred1", "fe:sc1", "feuser", "k1")
FAST = WorkerSettings(kill_grace=2.0, tick=0.05, lock_ttl=1.0)
STARTUP = Path(gwms_tasks.glidein.__file__).parent / "glidein_startup.sh"

STAND_IN = """#!/bin/bash
echo "args: $*"
echo "cwd: $PWD"
env | sort | sed 's/^/env: /'
echo "stand-in error output" >&2
trap 'echo "got TERM"; exit 143' TERM
sleep "${STANDIN_SLEEP:-0}" &
wait $!
exit "${STANDIN_EXIT:-0}"
"""


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    script = tmp_path / "stand_in.sh"
    script.write_text(STAND_IN)
    script.chmod(0o755)
    return script


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def backend(redis_client: redis.Redis) -> LocalSiteBackend:
    return LocalSiteBackend(redis_client, KEYS, SITE, "fact", "inst", "entry1")


@pytest.fixture
def site(redis_client: redis.Redis) -> SiteQueue:
    return SiteQueue(redis_client, KEYS, SITE)


WorkerMaker = Callable[..., SiteWorker]


@pytest.fixture
def make_worker(redis_client: redis.Redis, workdir: Path, stand_in: Path) -> WorkerMaker:
    def make(
        slots: int = 2,
        hold_fraction: float = 0.0,
        executable: Path = stand_in,
        settings: WorkerSettings = FAST,
    ) -> SiteWorker:
        rng = random.Random(1)
        return SiteWorker(
            redis_client, KEYS, SITE, slots, hold_fraction, workdir, rng, executable, settings
        )

    return make


@contextmanager
def serving(worker: SiteWorker) -> Iterator[SiteWorker]:
    """Run the worker in a thread; stop it (killing its glideins) on the way out."""
    stop, errors = threading.Event(), []

    def target() -> None:
        try:
            worker.run(stop)
        except Exception as exc:  # re-raised in the test below
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), "the site worker did not stop"
    if errors:
        raise errors[0]


def submit(
    backend: LocalSiteBackend,
    count: int,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = ("-v", "std"),
    idle_lifetime: int = 0,
) -> list[str]:
    return backend.submit(Submission(TAGS, count, list(args), dict(env or {}), idle_lifetime))


def wait_for(what: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def by_id(backend: LocalSiteBackend) -> dict[str, Glidein]:
    return {g.job_id: g for g in backend.query()}


def statuses(backend: LocalSiteBackend) -> dict[str, GlideinStatus]:
    return {job_id: g.status for job_id, g in by_id(backend).items()}


def finished(backend: LocalSiteBackend, job_id: str) -> SiteJob | None:
    return next((job for job in backend.finished(0.0) if job.job_id == job_id), None)


def wait_finished(backend: LocalSiteBackend, job_id: str, timeout: float = 15.0) -> SiteJob:
    wait_for(f"job {job_id} to finish", lambda: finished(backend, job_id) is not None, timeout)
    job = finished(backend, job_id)
    assert job is not None
    return job


def process_of(site: SiteQueue, job_id: str) -> int:
    wait_for(f"the process of {job_id}", lambda: site.jobs([job_id])[0].pid is not None)
    pid = site.jobs([job_id])[0].pid
    assert pid is not None
    return pid


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


# -- queueing and running ------------------------------------------------------------------------


def test_with_one_slot_one_glidein_runs_and_the_others_wait_pending(
    backend: LocalSiteBackend, make_worker: WorkerMaker
) -> None:
    ids = submit(backend, 3, {"STANDIN_SLEEP": "60"})
    assert set(statuses(backend).values()) == {GlideinStatus.WAIT}
    with serving(make_worker(slots=1)):
        wait_for("one running", lambda: GlideinStatus.RUNNING in statuses(backend).values())
        wait_for(
            "the rest pending",
            lambda: list(statuses(backend).values()).count(GlideinStatus.PENDING) == 2,
        )
        time.sleep(0.5)  # several ticks: still only one slot in use
        assert statuses(backend) == {
            ids[0]: GlideinStatus.RUNNING,
            ids[1]: GlideinStatus.PENDING,
            ids[2]: GlideinStatus.PENDING,
        }
        backend.remove([ids[0]])
        wait_for("the next to run", lambda: statuses(backend).get(ids[1]) is GlideinStatus.RUNNING)
        assert statuses(backend) == {ids[1]: GlideinStatus.RUNNING, ids[2]: GlideinStatus.PENDING}


def test_a_glidein_runs_with_its_arguments_and_environment_and_completes_with_its_exit_code(
    backend: LocalSiteBackend,
    make_worker: WorkerMaker,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GWMS_WORKER_ONLY", "not for glideins")
    env = {"STANDIN_EXIT": "3", "STANDIN_SLEEP": "0.5", "GREETING": "hello world"}
    (job_id,) = submit(backend, 1, env, args=["-name", "g 1", "-v", "std"])
    with serving(make_worker()):
        wait_for("it to run", lambda: statuses(backend).get(job_id) is GlideinStatus.RUNNING)
        assert by_id(backend)[job_id].grid_job_status == "RUNNING"
        job = wait_finished(backend, job_id)
    assert backend.query() == []
    assert (job.job_status, job.exit_code, job.ending) == (JobStatus.COMPLETED, 3, Ending.EXITED)
    cluster, proc = job_id.split(".")
    job_dir = (workdir / SITE / job_id).absolute()
    assert job.stdout == str(job_dir / f"job.{cluster}.{proc}.out")
    assert job.stderr == str(job_dir / f"job.{cluster}.{proc}.err")
    out = Path(job.stdout).read_text().splitlines()
    assert f"args: -name g 1 -v std -cluster {cluster} -subcluster {proc}" in out
    assert f"cwd: {job_dir}" in out
    assert "env: GREETING=hello world" in out
    assert f"env: PATH={os.environ['PATH']}" in out
    assert not [line for line in out if "GWMS_WORKER_ONLY" in line]
    assert Path(job.stderr).read_text() == "stand-in error output\n"


def test_every_glidein_is_held_at_a_site_holding_all_and_release_queues_it_again(
    backend: LocalSiteBackend, make_worker: WorkerMaker
) -> None:
    ids = submit(backend, 2, {"STANDIN_EXIT": "0"})
    with serving(make_worker(hold_fraction=1.0)):
        wait_for("both held", lambda: set(statuses(backend).values()) == {GlideinStatus.HELD})
    held = by_id(backend)[ids[0]]
    assert held.hold_reason_code == HoldCode.TRANSFER_INPUT_ERROR
    assert held.num_system_holds == 1
    assert held.hold_reason is not None and "hold_fraction" in held.hold_reason

    backend.release([ids[0]])
    released = by_id(backend)[ids[0]]
    assert released.status is GlideinStatus.WAIT
    assert (released.hold_reason_code, released.num_system_holds) == (None, 1)
    with serving(make_worker(hold_fraction=0.0)):
        job = wait_finished(backend, ids[0])
        time.sleep(0.3)
    assert (job.job_status, job.exit_code) == (JobStatus.COMPLETED, 0)
    assert by_id(backend)[ids[1]].status is GlideinStatus.HELD  # not released, never run


def test_a_released_glidein_held_again_counts_both_holds(
    backend: LocalSiteBackend, make_worker: WorkerMaker
) -> None:
    (job_id,) = submit(backend, 1)
    with serving(make_worker(hold_fraction=1.0)):
        wait_for("held", lambda: statuses(backend).get(job_id) is GlideinStatus.HELD)
        backend.release([job_id])
        wait_for("held again", lambda: by_id(backend)[job_id].num_system_holds == 2)
    assert by_id(backend)[job_id].status is GlideinStatus.HELD


# -- removal ---------------------------------------------------------------------------------------


def test_removing_an_idle_glidein_takes_it_out_of_the_queue_at_once(
    backend: LocalSiteBackend, make_worker: WorkerMaker, workdir: Path
) -> None:
    ids = submit(backend, 2, {"STANDIN_SLEEP": "1"})
    with serving(make_worker(slots=1)):
        wait_for("one running", lambda: statuses(backend).get(ids[0]) is GlideinStatus.RUNNING)
        backend.remove([ids[1]])
        assert list(by_id(backend)) == [ids[0]]
        wait_finished(backend, ids[0])
        time.sleep(0.5)  # the slot is free: the removed glidein must still not start
    assert backend.query() == []
    assert not (workdir / SITE / ids[1]).exists()
    assert finished(backend, ids[1]) is None  # it never ran: no output to parse


def test_removing_a_running_glidein_kills_its_process_within_seconds(
    backend: LocalSiteBackend, make_worker: WorkerMaker, site: SiteQueue
) -> None:
    (job_id,) = submit(backend, 1, {"STANDIN_SLEEP": "300"})
    with serving(make_worker()):
        pid = process_of(site, job_id)
        started = time.monotonic()
        backend.remove([job_id])
        wait_for("the process to die", lambda: not alive(pid), timeout=5)
        killed_after = time.monotonic() - started
        job = wait_finished(backend, job_id)
    assert killed_after < 3
    assert backend.query() == []
    assert (job.job_status, job.ending, job.exit_code) == (JobStatus.REMOVED, Ending.REMOVED, 143)
    assert job.stdout is not None and "got TERM" in Path(job.stdout).read_text()


def test_forcex_removes_a_running_glidein_from_the_query_at_once_and_kills_it(
    backend: LocalSiteBackend, make_worker: WorkerMaker, site: SiteQueue
) -> None:
    (job_id,) = submit(backend, 1, {"STANDIN_SLEEP": "300"})
    with serving(make_worker()):
        pid = process_of(site, job_id)
        backend.remove([job_id], forcex=True)
        assert backend.query() == []
        wait_for("the process to die", lambda: not alive(pid), timeout=5)
        job = wait_finished(backend, job_id)
    assert job.job_status is JobStatus.REMOVED


def test_a_glidein_past_the_site_walltime_is_killed_and_completes(
    backend: LocalSiteBackend, make_worker: WorkerMaker
) -> None:
    (job_id,) = submit(backend, 1, {"STANDIN_SLEEP": "300"})
    settings = WorkerSettings(walltime=0.5, kill_grace=2.0, tick=0.05, lock_ttl=1.0)
    with serving(make_worker(settings=settings)):
        job = wait_finished(backend, job_id)
    assert (job.job_status, job.ending, job.exit_code) == (
        JobStatus.COMPLETED,
        Ending.WALLTIME,
        143,
    )


def test_a_glidein_ignoring_sigterm_is_killed_after_the_grace_period(
    backend: LocalSiteBackend, make_worker: WorkerMaker, tmp_path: Path
) -> None:
    stubborn = tmp_path / "stubborn.sh"
    stubborn.write_text("#!/bin/bash\ntrap '' TERM\nwhile true; do sleep 0.1; done\n")
    stubborn.chmod(0o755)
    (job_id,) = submit(backend, 1)
    settings = WorkerSettings(kill_grace=0.5, tick=0.05, lock_ttl=1.0)
    with serving(make_worker(executable=stubborn, settings=settings)):
        wait_for("it to run", lambda: statuses(backend).get(job_id) is GlideinStatus.RUNNING)
        backend.remove([job_id])
        job = wait_finished(backend, job_id, timeout=5)
    assert job.exit_code == 128 + signal.SIGKILL


def test_a_glidein_idle_beyond_its_idle_lifetime_is_removed(
    backend: LocalSiteBackend, make_worker: WorkerMaker
) -> None:
    (busy,) = submit(backend, 1, {"STANDIN_SLEEP": "60"})
    (waiting,) = submit(backend, 1, idle_lifetime=1)
    with serving(make_worker(slots=1)):
        wait_for("the slot taken", lambda: statuses(backend).get(busy) is GlideinStatus.RUNNING)
        wait_for("the idle one removed", lambda: waiting not in by_id(backend), timeout=5)
        assert busy in by_id(backend)


# -- sites shared and served -----------------------------------------------------------------------


def test_entries_sharing_a_site_see_and_touch_only_their_own_glideins(
    backend: LocalSiteBackend, redis_client: redis.Redis, site: SiteQueue
) -> None:
    other = LocalSiteBackend(redis_client, KEYS, SITE, "fact", "inst", "entry2")
    mine = submit(backend, 2)
    theirs = other.submit(Submission(dataclasses.replace(TAGS, entry="entry2"), 1, []))
    assert site.hold(mine[1], HoldCode.TRANSFER_INPUT_ERROR, "held for the test")
    other.remove([mine[0]])
    other.release([mine[1]])
    assert statuses(backend) == {mine[0]: GlideinStatus.WAIT, mine[1]: GlideinStatus.HELD}
    assert [g.job_id for g in other.query()] == theirs
    assert set(mine).isdisjoint(theirs)


def test_a_second_worker_for_a_served_site_is_refused(
    backend: LocalSiteBackend, make_worker: WorkerMaker
) -> None:
    (job_id,) = submit(backend, 1, {"STANDIN_SLEEP": "60"})
    with serving(make_worker()):
        wait_for("the first worker", lambda: statuses(backend).get(job_id) is GlideinStatus.RUNNING)
        give_up = threading.Event()
        timer = threading.Timer(10, give_up.set)  # were it not refused, it would stop here
        timer.start()
        try:
            with pytest.raises(PermanentError, match="already served"):
                make_worker().run(give_up)
        finally:
            timer.cancel()
        assert statuses(backend) == {job_id: GlideinStatus.RUNNING}


def test_workers_of_two_sites_run_side_by_side_each_on_its_own_queue(
    backend: LocalSiteBackend,
    make_worker: WorkerMaker,
    redis_client: redis.Redis,
    workdir: Path,
    stand_in: Path,
) -> None:
    other_site = LocalSiteBackend(redis_client, KEYS, "SITE_B", "fact", "inst", "entry1")
    (here,) = submit(backend, 1, {"STANDIN_SLEEP": "60"})
    (there,) = submit(other_site, 1, {"STANDIN_SLEEP": "60"})
    worker_b = SiteWorker(
        redis_client, KEYS, "SITE_B", 1, 0.0, workdir, random.Random(2), stand_in, FAST
    )
    with serving(make_worker(slots=1)), serving(worker_b):
        wait_for("site A running", lambda: statuses(backend)[here] is GlideinStatus.RUNNING)
        wait_for("site B running", lambda: statuses(other_site)[there] is GlideinStatus.RUNNING)
        # The worker records the process just after announcing it: wait, do not race it.
        wait_for("worker B to list its glidein", lambda: worker_b.running == [there])
    assert (workdir / "SITE_A" / here).is_dir() and (workdir / "SITE_B" / there).is_dir()


def test_finished_glideins_are_forgotten_with_their_directory_after_the_retention(
    backend: LocalSiteBackend, make_worker: WorkerMaker, workdir: Path
) -> None:
    (job_id,) = submit(backend, 1)
    settings = WorkerSettings(retention=0.5, tick=0.05, lock_ttl=1.0)
    with serving(make_worker(settings=settings)):
        wait_finished(backend, job_id)
        assert (workdir / SITE / job_id).is_dir()
        wait_for("it to be forgotten", lambda: finished(backend, job_id) is None, timeout=5)
        wait_for("its directory removed", lambda: not (workdir / SITE / job_id).exists())


def test_a_restarted_worker_marks_the_glideins_of_its_dead_predecessor_lost(
    backend: LocalSiteBackend,
    make_worker: WorkerMaker,
    site: SiteQueue,
    redis_url: str,
    workdir: Path,
    stand_in: Path,
) -> None:
    ids = submit(backend, 2, {"STANDIN_SLEEP": "300"})
    predecessor = start_worker_process(redis_url, workdir, stand_in)
    try:
        pids = [process_of(site, job_id) for job_id in ids]
    finally:
        predecessor.kill()
        predecessor.wait()
    os.killpg(pids[0], signal.SIGKILL)  # one glidein died with it, the other lives on
    wait_for("the first glidein gone", lambda: not alive(pids[0]))
    assert alive(pids[1])
    with serving(make_worker()):
        jobs = [wait_finished(backend, job_id) for job_id in ids]
        assert not alive(pids[1])
    assert backend.query() == []
    assert {(j.job_status, j.exit_code, j.ending) for j in jobs} == {
        (JobStatus.COMPLETED, LOST_EXIT_CODE, Ending.LOST)
    }
    assert all(j.stdout and Path(j.stdout).is_file() for j in jobs)


def start_worker_process(
    redis_url: str, workdir: Path, executable: Path
) -> subprocess.Popen[bytes]:
    """A site worker in its own process (``run_site_worker``), to be killed with SIGKILL."""
    code = (
        "from gwms_tasks.services.site_worker import WorkerSettings, run_site_worker\n"
        f"run_site_worker({redis_url!r}, {SITE!r}, 2, 0.0, {str(workdir)!r},"
        f" {str(executable)!r}, prefix={KEYS.prefix!r},"
        " settings=WorkerSettings(tick=0.05, lock_ttl=1.0))\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)


# -- the real glidein_startup.sh, and bad input -------------------------------------------------


@pytest.mark.skipif(not STARTUP.is_file(), reason="glidein_startup.sh is not in the tree yet")
def test_the_real_glidein_startup_without_staging_arguments_fails_and_its_output_is_kept(
    backend: LocalSiteBackend, make_worker: WorkerMaker
) -> None:
    (job_id,) = submit(backend, 1, args=["-param_GLIDEIN_FAIL_SLEEP", "0"])
    with serving(make_worker(executable=STARTUP)):
        job = wait_finished(backend, job_id, timeout=30)
    assert (job.job_status, job.exit_code, job.ending) == (JobStatus.COMPLETED, 1, Ending.EXITED)
    assert job.stdout is not None and job.stderr is not None
    out, err = Path(job.stdout).read_text(), Path(job.stderr).read_text()
    assert "=== Validation failure" in out
    assert "GLIDEIN_FAILURE_CATEGORY Config" in out
    assert "missing required argument -name" in out
    assert "Validation failed in glidein_startup.sh: Config" in err


def test_a_glidein_that_cannot_start_is_held_as_failed_to_create_process(
    backend: LocalSiteBackend, make_worker: WorkerMaker, tmp_path: Path
) -> None:
    doomed = tmp_path / "vanishing.sh"
    doomed.write_text("#!/bin/bash\n")
    doomed.chmod(0o755)
    worker = make_worker(executable=doomed)
    doomed.unlink()
    (job_id,) = submit(backend, 1)
    with serving(worker):
        wait_for("held", lambda: statuses(backend).get(job_id) is GlideinStatus.HELD)
    held = by_id(backend)[job_id]
    assert held.hold_reason_code == HoldCode.FAILED_TO_CREATE_PROCESS
    assert held.hold_reason is not None and "vanishing.sh" in held.hold_reason


@pytest.mark.parametrize(
    ("env", "args", "problem"),
    [
        ({"BAD NAME": "x"}, [], "not a valid variable name"),
        ({"OK": "a\0b"}, [], "NUL byte"),
        ({}, ["-cluster", "7"], "added by the backend"),
        ({}, ["-v", 7], "is not a string"),  # what a badly decoded task message could hold
    ],
)
def test_a_submission_a_process_could_not_get_is_refused_and_queues_nothing(
    backend: LocalSiteBackend, env: dict[str, str], args: list[str], problem: str
) -> None:
    with pytest.raises(PermanentError, match=problem):
        submit(backend, 2, env, args)
    assert backend.query() == []


def test_a_worker_with_bad_arguments_names_every_problem(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        SiteWorker(
            redis_client, KEYS, "bad:site", 0, 1.5, tmp_path, random.Random(), tmp_path / "nope"
        )
    joined = "\n".join(caught.value.problems)
    for expected in ("site:", "slots:", "hold_fraction:", "executable:"):
        assert expected in joined


def test_reading_jobs_needs_no_transaction(
    backend: LocalSiteBackend, site: SiteQueue, redis_client: redis.Redis
) -> None:
    ids = submit(backend, 2)
    redis_client.config_resetstat()

    assert [job.job_id for job in site.jobs([ids[1], "99.0", ids[0]])] == [ids[1], ids[0]]

    stats = redis_client.info("commandstats")
    assert "cmdstat_multi" not in stats
    assert stats["cmdstat_hgetall"]["calls"] == 3


def test_the_site_worker_connects_with_the_factorys_timeouts(
    redis_url: str, workdir: Path, stand_in: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clients: list[redis.Redis] = []

    class Recorder:
        def __init__(self, client: redis.Redis, *args: object) -> None:
            clients.append(client)

        def run(self, stop: threading.Event) -> None:
            pass

    monkeypatch.setattr(site_worker, "SiteWorker", Recorder)
    run_site_worker(redis_url, SITE, 1, 0.0, workdir, stand_in, prefix=KEYS.prefix)

    [client] = clients
    params = client.connection_pool.connection_kwargs
    assert (params["socket_timeout"], params["health_check_interval"]) == (30, 30)
    with pytest.raises(ConfigError, match="site worker SITE_A") as caught:
        run_site_worker("http://not-redis", SITE, 1, 0.0, workdir, stand_in)
    assert any("invalid Redis URL" in problem for problem in caught.value.problems)
