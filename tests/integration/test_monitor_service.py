"""The monitor and aggregate services: on the memory twins, and on a real local site + Redis.

The output the completed glideins leave is always real: a module fixture runs the real
glidein_startup.sh (a good glidein whose stand-in payload reports 3 jobs, and one that fails
the built-in disk check) against the real staging server; the Redis test lets a real site
worker run them.
"""

from __future__ import annotations

import json
import os
import random
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
import redis

from gwms_tasks.adapters.local_site import LocalSiteBackend
from gwms_tasks.adapters.memory_backend import MemoryGridBackend, Operation
from gwms_tasks.adapters.memory_dashboard import MemoryDashboardHub
from gwms_tasks.adapters.memory_dispatcher import MemoryDispatcher
from gwms_tasks.adapters.memory_state import MemoryState
from gwms_tasks.adapters.redis_state import RedisState
from gwms_tasks.adapters.simulated import SimulatedBackend
from gwms_tasks.adapters.user_keys import MemoryUserKeys
from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.core.downtimes import Downtimes
from gwms_tasks.core.keyring import Keyring
from gwms_tasks.core.model import StatusCounts
from gwms_tasks.core.simulation import Fixed, SiteParameters
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.glidein import startup_script
from gwms_tasks.keys import Keys
from gwms_tasks.ports import GlideinTags, GridBackend, StateStore, Submission
from gwms_tasks.services.aggregate import FACTORY_SERIES, aggregate
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.monitor import monitor_entry
from gwms_tasks.services.monitoring_decisions import LIVE_DECISION_LOOPS
from gwms_tasks.services.site_worker import SiteWorker, WorkerSettings
from gwms_tasks.services.staging_build import build_staging
from tests.builders import example_config
from tests.integration.glidein_helpers import (
    ENTRY as STAGED_ENTRY,
)
from tests.integration.glidein_helpers import (
    make_spec,
    run_glidein,
    serve_staging,
    standard_args,
)

FACTORY, GLIDEIN = "demo_factory", "gfactory_instance"
LOCAL, SIM, CONDOR = "local_cluster", "simulated_site", "ce_osg_htcondor"
USER = "fe_cms_pilot"
DAY = 24 * 3600.0

Outputs = dict[str, tuple[str, str]]


def _tags(entry: str, client: str = "cms.main", submit_key: str = "k1") -> GlideinTags:
    return GlideinTags(
        FACTORY, GLIDEIN, entry, client, "production", "cred1", "cms:production", USER, submit_key
    )


def _with(config: FactoryConfig, log_base: Path, **entries_added: str) -> FactoryConfig:
    """The config with its client logs under ``log_base`` (and entries copied under new names)."""
    factory = config.factory.model_copy(update={"client_log_base_dir": PurePosixPath(log_base)})
    entries = {**config.entries, **{new: config.entries[old] for new, old in entries_added.items()}}
    return config.model_copy(update={"factory": factory, "entries": entries})


def _unused() -> Keyring:
    raise AssertionError("the monitor needs no factory key")


def _deps(
    config: FactoryConfig,
    state: StateStore,
    backends: dict[str, GridBackend],
    clock: Callable[[], float],
) -> FactoryDeps:
    return FactoryDeps(
        config=config,
        state=state,
        dashboard=MemoryDashboardHub(clock=clock).handle("factory"),
        backend_for=lambda entry: backends[entry],
        dispatcher=MemoryDispatcher(),
        user_keys=MemoryUserKeys(),
        keyring=_unused,
        downtimes=Downtimes,
        staging=lambda: None,
        clock=clock,
    )


# ---------------------------------------------------------------------------- real glidein output


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Outputs:
    """stdout and stderr of real glidein_startup.sh runs: ``ok`` and ``disk`` (validation)."""
    base = tmp_path_factory.mktemp("glideins")
    work, out = base / "work", base / "out"
    work.mkdir()
    out.mkdir()
    index = build_staging(make_spec(), base / "stage")
    runs = {"ok": {"STANDIN_EXIT": "0"}, "disk": {"GLIDEIN_MIN_DISK_MB": "999999999"}}
    found: Outputs = {}
    with serve_staging(base / "stage") as server:
        for name, params in runs.items():
            args = standard_args(index, server.url, work, {"STANDIN_OUT": str(out), **params})
            done = run_glidein(args, cwd=work)
            found[name] = (done.stdout, done.stderr)
    return found


@dataclass(frozen=True)
class EndedJob:
    """A glidein that ended, as a backend with ``finished`` reports it."""

    job_id: str
    tags: GlideinTags
    stdout: str | None
    stderr: str | None
    exit_code: int | None
    finished_at: float | None


class FinishingBackend(MemoryGridBackend):
    """The memory backend plus what the local site adds: ended glideins and their output files."""

    def __init__(self, entry: str, clock: Callable[[], float], output_dir: Path) -> None:
        super().__init__(FACTORY, GLIDEIN, entry, clock)
        self._entry, self._clock, self._dir = entry, clock, output_dir
        self.ended: list[EndedJob] = []
        self.asked: list[float] = []  # the ``since`` of every ``finished`` call
        output_dir.mkdir(parents=True, exist_ok=True)

    def end(self, job_id: str, output: tuple[str, str] | None, exit_code: int = 0) -> EndedJob:
        """The glidein ended now; ``output`` is written to files (None: no output files)."""
        glidein = self.glidein(job_id)
        self.complete(job_id)
        paths: list[str | None] = [None, None]
        if output is not None:
            for i, (suffix, content) in enumerate(zip(("out", "err"), output, strict=True)):
                path = self._dir / f"job.{job_id}.{suffix}"
                path.write_text(content)
                paths[i] = str(path)
        tags = _tags(self._entry, glidein.client, glidein.submit_key or "")
        job = EndedJob(job_id, tags, paths[0], paths[1], exit_code, self._clock())
        self.ended.append(job)
        return job

    def finished(self, since: float) -> Sequence[EndedJob]:
        self.asked.append(since)
        return [job for job in self.ended if (job.finished_at or 0.0) >= since]


class World:
    """A factory on memory twins: a finishing backend, a simulated site and a plain queue."""

    def __init__(self, tmp: Path) -> None:
        self.now = 1_000_000.0
        self.log_base = tmp / "client_log"
        self.config = _with(example_config(), self.log_base)
        self.state = MemoryState(clock=lambda: self.now)
        params = SiteParameters(slots=2, queue_time=Fixed(10), run_time=Fixed(100))
        self.local = FinishingBackend(LOCAL, lambda: self.now, tmp / "site")
        self.sim = SimulatedBackend.in_memory(
            params, FACTORY, GLIDEIN, SIM, random.Random(1), lambda: self.now
        )
        self.condor = MemoryGridBackend(FACTORY, GLIDEIN, CONDOR, lambda: self.now)
        backends: dict[str, GridBackend] = {LOCAL: self.local, SIM: self.sim, CONDOR: self.condor}
        self.deps = _deps(self.config, self.state, backends, lambda: self.now)

    def submit(
        self, backend: GridBackend, entry: str, count: int, client: str = "cms.main"
    ) -> list[str]:
        return backend.submit(Submission(_tags(entry, client), count, ["-v", "std"]))

    def kept(self, entry: str, name: str) -> Path:
        return self.log_base / f"user_{USER}" / f"glidein_{GLIDEIN}" / f"entry_{entry}" / name


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _decided(client: str, idle: int, most: int) -> dict[str, object]:
    """A decision record as find-work stores it (DemandPlan.to_dict() + its own fields)."""
    return {
        "client": client,
        "work_key": f"{client}|production|cred1",
        "at": 999_990.0,
        "submit": {"count": 1, "reason": "wanted", "requested_idle": idle, "requested_max": most},
        "removal": None,
        "explain": "submit 1",
    }


# ---------------------------------------------------------------------------- counts and samples


def test_the_monitor_stores_the_counts_find_work_reads(world: World) -> None:
    ids = world.submit(world.condor, CONDOR, 3)
    world.submit(world.condor, CONDOR, 1, client="dune.main")
    world.condor.run(ids[0])
    world.condor.hold(ids[1])

    result = monitor_entry(world.deps, CONDOR)

    assert (result.status, result.glideins, result.completed) == ("done", 4, 0)
    snapshot = world.state.entries.get_snapshot(CONDOR)
    assert snapshot is not None and (snapshot.taken_at, snapshot.error) == (world.now, None)
    assert snapshot.counts["entry"] == StatusCounts(wait=2, running=1, held=1).to_dict()
    assert snapshot.counts["client:dune.main"] == StatusCounts(wait=1).to_dict()
    assert "frontend:cms:production" in snapshot.counts


def test_a_failed_query_marks_the_entry_and_changes_no_count(world: World) -> None:
    world.submit(world.condor, CONDOR, 2)
    monitor_entry(world.deps, CONDOR)
    world.now += 60
    world.condor.fail_next(Operation.QUERY, TransientError("schedd unreachable"))

    result = monitor_entry(world.deps, CONDOR)

    assert result.status == "query_failed" and "schedd unreachable" in result.detail
    snapshot = world.state.entries.get_snapshot(CONDOR)
    assert snapshot is not None and "schedd unreachable" in (snapshot.error or "")
    assert (snapshot.taken_at, snapshot.counts["entry"]["idle"]) == (world.now - 60, 2)
    assert len(world.state.series.series(CONDOR, "minute", 0)) == 1
    assert world.state.counters.read(CONDOR) == {
        "cycles:monitor": 2.0,
        "cycle_seconds:monitor": 0.0,
        "query_failures": 1.0,
    }


def test_the_sample_holds_entry_and_client_counts_and_what_was_requested(world: World) -> None:
    world.condor.run(world.submit(world.condor, CONDOR, 3)[0])
    world.submit(world.condor, CONDOR, 1, client="dune.main")
    entries = world.state.entries
    entries.put_decision(CONDOR, "cms|a", _decided("cms.main", 5, 20))
    entries.put_decision(CONDOR, "cms|b", _decided("cms.main", 2, 4))
    entries.put_decision(CONDOR, "osg|a", _decided("osg.main", 7, 9))
    entries.put_decision(CONDOR, "bad", {"client": "x.y", "rejected": "identity_mismatch"})
    entries.put_decision(CONDOR, "closed", {"client": "z.y", "submit": 0, "reason": "query_failed"})

    monitor_entry(world.deps, CONDOR)

    [(_, values)] = world.state.series.series(CONDOR, "minute", 0)
    expected = {
        "idle": 3, "running": 1, "held": 0, "total": 4, "requested_idle": 14, "requested_max": 33,
        "client:cms.main:idle": 2, "client:cms.main:running": 1, "client:cms.main:held": 0,
        "client:cms.main:total": 3, "client:cms.main:requested_idle": 7,
        "client:cms.main:requested_max": 24,
        "client:dune.main:idle": 1, "client:dune.main:running": 0, "client:dune.main:held": 0,
        "client:dune.main:total": 1, "client:dune.main:requested_idle": 0,
        "client:dune.main:requested_max": 0,
        "client:osg.main:idle": 0, "client:osg.main:running": 0, "client:osg.main:held": 0,
        "client:osg.main:total": 0, "client:osg.main:requested_idle": 7,
        "client:osg.main:requested_max": 9,
    }  # fmt: skip
    assert values == expected


def test_the_sample_leaves_out_requests_gone_for_a_few_loops(world: World) -> None:
    gone = world.now - LIVE_DECISION_LOOPS * world.config.factory.loop_delay - 1
    entries = world.state.entries
    entries.put_decision(CONDOR, "cms|a", _decided("cms.main", 5, 20))
    entries.put_decision(CONDOR, "osg|a", {**_decided("osg.main", 7, 9), "at": gone})

    monitor_entry(world.deps, CONDOR)

    [(_, values)] = world.state.series.series(CONDOR, "minute", 0)
    assert (values["requested_idle"], values["requested_max"]) == (5, 20)
    assert (values["client:cms.main:requested_idle"], values["client:cms.main:total"]) == (5, 0)
    assert not any(name.startswith("client:osg.main:") for name in values)


def test_the_simulated_site_moves_forward_with_the_monitor(world: World) -> None:
    world.submit(world.sim, SIM, 3)
    world.now += 15  # past the queue time: two slots take two glideins

    monitor_entry(world.deps, SIM)

    snapshot = world.state.entries.get_snapshot(SIM)
    assert snapshot is not None
    assert (snapshot.counts["entry"]["running"], snapshot.counts["entry"]["idle"]) == (2, 1)


def test_an_entry_that_is_not_configured_is_refused(world: World) -> None:
    with pytest.raises(PermanentError, match="'nowhere' is not in the configuration"):
        monitor_entry(world.deps, "nowhere")


# ---------------------------------------------------------------------------- completed glideins


def test_completed_glideins_are_parsed_recorded_counted_and_kept_once(
    world: World, outputs: Outputs
) -> None:
    good, bad = world.submit(world.local, LOCAL, 2)
    world.submit(world.local, LOCAL, 1)  # still queued
    world.local.end(good, outputs["ok"])
    world.now += 30
    world.local.end(bad, outputs["disk"], exit_code=1)

    result = monitor_entry(world.deps, LOCAL)

    assert (result.glideins, result.completed, result.logs_kept, result.problems) == (1, 2, 2, [])
    newest, oldest = world.state.completed.recent(LOCAL)
    assert (oldest.job_id, oldest.result, oldest.user_jobs, oldest.exit_code) == (good, "ok", 3, 0)
    assert (oldest.client, oldest.frontend, oldest.finished_at) == (
        "cms.main",
        "cms:production",
        world.now - 30,
    )
    assert (newest.result, newest.failed_script, newest.failure_category) == (
        "validation_failed",
        "validate_disk.sh",
        "WN_Resource",
    )
    assert "999999999 MB required" in newest.failure_detail
    stats = world.state.completed.stats(LOCAL, world.now - 3600)
    assert (stats["entry"].ok, stats["entry"].failed_validation) == (1, 1)
    assert stats["client:cms.main"].by_category == {"WN_Resource": 1}
    counters = world.state.counters.read(LOCAL)
    assert (counters["completed"], counters["completed:ok"]) == (2.0, 1.0)
    assert counters["client:cms.main:completed:validation_failed"] == 1.0
    assert counters["completed_user_jobs"] == 3.0
    kept = world.kept(LOCAL, f"job.{good}.out")
    assert oldest.log_path == str(kept)
    assert kept.read_text() == outputs["ok"][0]
    assert kept.with_suffix(".err").read_text() == outputs["ok"][1]
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    assert kept.stat().st_mtime == world.now - 30

    world.now += 60
    again = monitor_entry(world.deps, LOCAL)

    assert again.completed == 0
    assert world.local.asked == [0.0, world.now - 60], "the second pass reads from the newest"
    assert world.state.counters.read(LOCAL)["completed"] == 2.0
    assert world.state.completed.totals(LOCAL)["entry"].completed == 2


def test_a_glidein_whose_output_is_gone_is_recorded_as_unknown(
    world: World, outputs: Outputs
) -> None:
    (job_id,) = world.submit(world.local, LOCAL, 1)
    job = world.local.end(job_id, outputs["ok"], exit_code=0)
    assert job.stdout is not None
    Path(job.stdout).unlink()

    result = monitor_entry(world.deps, LOCAL)

    [outcome] = world.state.completed.recent(LOCAL)
    assert (outcome.result, outcome.exit_code, outcome.log_path) == ("unknown", 0, "")
    assert "cannot read its output" in outcome.failure_detail
    assert result.completed == 1 and result.logs_kept == 0
    assert any("cannot read its output" in p for p in result.problems)


def test_a_log_directory_that_cannot_be_written_does_not_stop_the_cycle(
    world: World, outputs: Outputs
) -> None:
    world.log_base.write_text("a file where the log directory should be")
    (job_id,) = world.submit(world.local, LOCAL, 1)
    world.local.end(job_id, outputs["ok"])

    result = monitor_entry(world.deps, LOCAL)

    assert (result.status, result.completed, result.logs_kept) == ("done", 1, 0)
    assert any("output not kept" in p for p in result.problems)
    [outcome] = world.state.completed.recent(LOCAL)
    assert (outcome.result, outcome.log_path) == ("ok", "")
    assert world.state.series.series(LOCAL, "minute", 0), "the sample was still taken"


def test_the_task_result_is_json_and_lists_a_bounded_number_of_problems(
    world: World, outputs: Outputs
) -> None:
    world.log_base.write_text("a file where the log directory should be")
    for job_id in world.submit(world.local, LOCAL, 25):
        world.local.end(job_id, outputs["ok"])

    shown = json.loads(json.dumps(monitor_entry(world.deps, LOCAL).to_dict()))

    assert (shown["entry"], shown["status"], shown["completed"]) == (LOCAL, "done", 25)
    assert len(shown["problems"]) == 21
    assert shown["problems"][-1] == "... and 5 more (see the log)"


def test_kept_outputs_older_than_the_retention_are_deleted(world: World) -> None:
    here = world.kept(LOCAL, "job.1.0.out").parent
    other_user = world.log_base / "user_fe_dune" / f"glidein_{GLIDEIN}" / f"entry_{LOCAL}"
    other_entry = world.kept(CONDOR, "x").parent
    week_ago = world.now - 7 * DAY
    files = {
        here / "job.1.0.out": week_ago - 1,
        here / "job.1.0.err": week_ago - 1,
        here / "job.2.0.out": week_ago + 60,
        here / "notes.txt": week_ago - 1,
        other_user / "job.3.0.err": week_ago - 1,
        other_entry / "job.4.0.out": week_ago - 1,
    }
    for path, mtime in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("output")
        os.utime(path, (mtime, mtime))

    result = monitor_entry(world.deps, LOCAL)

    assert result.logs_deleted == 3
    left = {path for path in files if path.exists()}
    assert left == {here / "job.2.0.out", here / "notes.txt", other_entry / "job.4.0.out"}


# ---------------------------------------------------------------------------- aggregate


def test_aggregate_sums_enabled_entries_into_the_factory_series(
    world: World, outputs: Outputs
) -> None:
    world.condor.run(world.submit(world.condor, CONDOR, 3)[0])
    done = world.submit(world.local, LOCAL, 2)
    world.local.end(done[0], outputs["ok"])
    world.local.end(done[1], outputs["disk"], exit_code=1)
    for entry in (CONDOR, LOCAL):
        monitor_entry(world.deps, entry)
    world.condor.fail_next(Operation.QUERY, TransientError("down"))
    monitor_entry(world.deps, CONDOR)

    values = aggregate(world.deps)

    assert values["entries"] == 3 and values["entries_query_failed"] == 1
    assert (values["idle"], values["running"], values["total"]) == (2, 1, 3)
    assert (values["completed_1h"], values["ok_1h"], values["failed_validation_1h"]) == (2, 1, 1)
    assert values["user_jobs_1h"] == 3
    assert world.state.series.series(FACTORY_SERIES, "minute", 0) == [(world.now - 40, values)]


# ---------------------------------------------------------------------------- real site, Redis


@contextmanager
def serving(worker: SiteWorker) -> Iterator[None]:
    stop, errors = threading.Event(), []

    def target() -> None:
        try:
            worker.run(stop)
        except Exception as exc:  # re-raised below
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive() and not errors, errors


def test_glideins_run_by_a_local_site_are_read_from_redis_once_and_kept(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    keys, site = Keys("montest"), "SITE_M"
    config = _with(example_config(), tmp_path / "client_log", **{STAGED_ENTRY: LOCAL})
    state = RedisState(redis_client, keys)
    backend = LocalSiteBackend(redis_client, keys, site, FACTORY, GLIDEIN, STAGED_ENTRY)
    deps = _deps(config, state, {STAGED_ENTRY: backend}, time.time)
    index = build_staging(make_spec(), tmp_path / "stage")
    (tmp_path / "out").mkdir()
    worker = SiteWorker(
        redis_client, keys, site, 2, 0.0, tmp_path / "work", random.Random(1),
        startup_script(), WorkerSettings(tick=0.05, lock_ttl=1.0),
    )  # fmt: skip
    with serve_staging(tmp_path / "stage") as server, serving(worker):
        for params in ({"STANDIN_EXIT": "0"}, {"GLIDEIN_MIN_DISK_MB": "999999999"}):
            args = standard_args(
                index, server.url, Path("."), {"STANDIN_OUT": str(tmp_path / "out"), **params}
            )[:-4]  # the backend appends -cluster/-subcluster
            backend.submit(Submission(_tags(STAGED_ENTRY), 1, args))
        deadline = time.monotonic() + 20
        while len(backend.finished(0.0)) < 2:
            assert time.monotonic() < deadline, "the glideins did not finish"
            time.sleep(0.05)

    result = monitor_entry(deps, STAGED_ENTRY)

    assert (result.completed, result.logs_kept, result.problems) == (2, 2, [])
    by_result = {o.result: o for o in state.completed.recent(STAGED_ENTRY)}
    assert set(by_result) == {"ok", "validation_failed"}
    assert (by_result["ok"].user_jobs, by_result["ok"].exit_code) == (3, 0)
    assert by_result["validation_failed"].failure_category == "WN_Resource"
    jobs = {job.job_id: job for job in backend.finished(0.0)}
    for outcome in by_result.values():
        source = jobs[outcome.job_id].stdout
        assert source is not None
        assert Path(outcome.log_path).read_bytes() == Path(source).read_bytes()
        assert Path(outcome.log_path).parent == (
            tmp_path
            / "client_log"
            / f"user_{USER}"
            / f"glidein_{GLIDEIN}"
            / f"entry_{STAGED_ENTRY}"
        )
    totals = state.completed.totals(STAGED_ENTRY)["entry"]
    assert (totals.completed, totals.ok, totals.failed_validation) == (2, 1, 1)
    assert state.completed.stats(STAGED_ENTRY, time.time() - 3600)["entry"] == totals
    assert monitor_entry(deps, STAGED_ENTRY).completed == 0
    assert state.counters.read(STAGED_ENTRY)["completed"] == 2.0
