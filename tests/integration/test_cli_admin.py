"""`gwms downtime`, `gwms staging build` and `gwms site run` against real Redis and disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from gwms_tasks.adapters.local_site import LocalSiteBackend
from gwms_tasks.adapters.redis_downtimes import edit_downtimes_text, read_downtimes_text
from gwms_tasks.config_file import read_config
from gwms_tasks.core.downtime_edit import add_period
from gwms_tasks.core.downtimes import Downtime, DowntimeScope, entry_down_reason
from gwms_tasks.core.staging import StagingIndex
from gwms_tasks.core.status import JobStatus
from gwms_tasks.keys import Keys
from gwms_tasks.ports import GlideinTags, Submission
from gwms_tasks.runtime import Runtime
from tests.integration.cli_helpers import (
    ENTRY,
    FACTORY,
    LOCAL_ENTRY,
    SITE,
    run,
    write_config,
)

pytestmark = pytest.mark.redis

KEYS = Keys()
REPO = Path(__file__).resolve().parents[2]
FAR = "2999-01-01T00:00:00"


@pytest.fixture
def config(tmp_path: Path, redis_url: str) -> Path:
    return write_config(tmp_path, redis_url)


def _down_now(config: Path, entry: str) -> str | None:
    runtime = Runtime(read_config(config))
    reason = entry_down_reason(runtime.downtimes(), time.time(), entry)
    runtime.state_client.close()
    return None if reason is None else reason.value


def _rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines()[1:]]


# ------------------------------------------------------------------------------ downtime


def test_a_downtime_added_listed_and_ended(config: Path) -> None:
    added = run(
        "downtime",
        "add",
        "--entry",
        ENTRY,
        "--start",
        "2000-01-01T00:00:00",
        "--end",
        FAR,
        "--comment",
        "CE  upgrade",
        config=config,
    )
    assert added.exit_code == 0, added.output
    assert added.output == (
        f"added: 2000-01-01T00:00:00+00:00 2999-01-01T00:00:00+00:00 {ENTRY} All All # CE upgrade\n"
    )
    assert _down_now(config, ENTRY) == "entry_downtime"
    assert _down_now(config, LOCAL_ENTRY) is None

    listed = run("downtime", "list", config=config)
    [row] = _rows(listed.output)
    assert row == [
        "in", "force", "2000-01-01", "00:00:00Z", "2999-01-01", "00:00:00Z", ENTRY, "All", "All",
        "gwms", "downtime", "CE", "upgrade",
    ]  # fmt: skip

    ended = run("downtime", "end", "--entry", ENTRY, config=config)
    assert ended.exit_code == 0, ended.output
    assert ended.output.startswith("ended: ")
    assert _down_now(config, ENTRY) is None
    [row] = _rows(run("downtime", "list", config=config).output)
    assert row[0] == "ended"
    assert row[4] != "2999-01-01", "it ends now"


def test_times_are_epoch_seconds_or_iso(config: Path) -> None:
    result = run(
        "downtime",
        "add",
        "--entry",
        "All",
        "--frontend",
        "fe1",
        "--start",
        "4102444800",
        "--end",
        "2100-01-02T01:00:00+01:00",
        config=config,
    )
    assert result.exit_code == 0, result.output
    assert result.output == (
        "added: 2100-01-01T00:00:00+00:00 2100-01-02T00:00:00+00:00 All fe1 All\n"
    )
    [row] = _rows(run("downtime", "list", config=config).output)
    assert row[0] == "scheduled"


def test_end_touches_only_downtimes_in_force_that_match(config: Path) -> None:
    for args in (["--entry", ENTRY], ["--entry", LOCAL_ENTRY], ["--start", FAR]):
        assert run("downtime", "add", *args, config=config).exit_code == 0
    ended = run("downtime", "end", "--entry", ENTRY, config=config)
    assert ended.output.count("ended:") == 1
    assert _down_now(config, LOCAL_ENTRY) == "entry_downtime"
    everything = run("downtime", "end", config=config)
    assert everything.output.count("ended:") == 1  # local1; the factory one is not yet in force
    nothing = run("downtime", "end", config=config)
    assert nothing.exit_code == 1
    assert nothing.stderr == (
        "gwms: no downtime in force set with `gwms downtime` matches every scope\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--entry", "ce9"],
            "gwms: --entry: unknown entry 'ce9' (expected one of: All, factory, ce1, local1)\n",
        ),
        (
            ["--frontend", "fe1", "--security-class", "prod"],
            "gwms: --security-class: unknown security class 'prod' (expected one of: All, main)\n",
        ),
        (
            ["--start", "2030-01-01T00:00:00", "--end", "2029-01-01T00:00:00"],
            "gwms: bad downtime: a downtime must end after it starts "
            "(1893456000.0 >= 1861920000.0)\n",
        ),
    ],
)
def test_a_bad_downtime_is_refused_and_changes_nothing(
    config: Path, redis_client: redis.Redis, args: list[str], message: str
) -> None:
    assert run("downtime", "add", "--entry", ENTRY, config=config).exit_code == 0
    before = read_downtimes_text(redis_client, KEYS)
    result = run("downtime", "add", *args, config=config)
    assert (result.exit_code, result.stderr) == (1, message)
    assert read_downtimes_text(redis_client, KEYS) == before


def test_a_time_that_is_no_time_is_a_usage_error(config: Path, redis_client: redis.Redis) -> None:
    result = run("downtime", "add", "--start", "tomorrow", config=config)
    assert result.exit_code == 2
    assert "Invalid value for --start: expected 'now', epoch seconds or an ISO-8601" in (
        result.output
    )
    assert redis_client.get(KEYS.downtimes()) is None


@pytest.mark.parametrize("word", ["1e300", "253402300800"])
def test_a_time_no_downtime_can_hold_is_a_usage_error(
    config: Path, redis_client: redis.Redis, word: str
) -> None:
    result = run("downtime", "add", "--start", word, config=config)
    assert result.exit_code == 2, result.output
    assert "Invalid value for --start: expected 'now', epoch seconds" in result.output
    assert redis_client.get(KEYS.downtimes()) is None


def test_a_broken_stored_text_is_never_made_worse(config: Path, redis_client: redis.Redis) -> None:
    redis_client.set(KEYS.downtimes(), "yesterday tomorrow\n")
    result = run("downtime", "add", "--entry", ENTRY, config=config)
    assert result.exit_code == 1
    assert result.stderr.startswith("redis:gwms:downtimes: line 1: START: expected an ISO-8601")
    assert redis_client.get(KEYS.downtimes()) == b"yesterday tomorrow\n"


def test_downtimes_of_the_file_are_listed_but_not_ended_here(tmp_path: Path, config: Path) -> None:
    (tmp_path / "downtimes").write_text(f"2000-01-01T00:00:00 None {ENTRY} # from the file\n")
    listed = run("downtime", "list", config=config)
    [row] = _rows(listed.output)
    assert row[-4:] == ["file", "from", "the", "file"]
    refused = run("downtime", "end", "--entry", ENTRY, config=config)
    assert refused.exit_code == 1
    assert f"1 in force in the downtimes file {tmp_path / 'downtimes'} do" in refused.stderr


def test_a_bad_downtimes_file_is_reported_by_list(tmp_path: Path, config: Path) -> None:
    (tmp_path / "downtimes").write_text("not a downtime\n")
    result = run("downtime", "list", config=config)
    assert result.exit_code == 1
    assert result.stdout == "no downtimes\n"
    assert f"{tmp_path / 'downtimes'}: line 1: " in result.stderr


def test_concurrent_edits_all_land(redis_client: redis.Redis, redis_url: str) -> None:
    def operator(entry: str) -> None:
        client = redis.Redis.from_url(redis_url)
        for i in range(15):
            period = Downtime(1000.0 + i, None, DowntimeScope(entry))
            edit_downtimes_text(client, KEYS, lambda old, p=period: (add_period(old, p, "t"), None))
        client.close()

    threads = [threading.Thread(target=operator, args=(name,)) for name in ("ce1", "ce2", "ce3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = read_downtimes_text(redis_client, KEYS).splitlines()
    assert len(lines) == 45
    assert {line.split()[2] for line in lines} == {"ce1", "ce2", "ce3"}


# ------------------------------------------------------------------------------ staging


def test_staging_build_writes_the_area_and_prints_its_index(tmp_path: Path, config: Path) -> None:
    result = run("staging", "build", config=config)
    assert result.exit_code == 0, result.output
    stage = tmp_path / "stage"
    lines = result.output.splitlines()
    assert lines[0] == f"staging area built in {stage} (signatures.sha1)"
    index = StagingIndex.parse((stage / "signatures.sha1").read_text())
    assert lines[1].split() == ["FOR", "DESCRIPTION", "SIGNATURE"]
    assert lines[2].split() == ["main", index.main.descript, index.main.sign]
    assert [line.split()[1] for line in lines[3:]] == [ENTRY, LOCAL_ENTRY]
    assert lines[3].split()[2:] == [index.entries[ENTRY].descript, index.entries[ENTRY].sign]
    staged = [p.name for p in stage.rglob("*site_check*")]
    assert staged, "the operator's file, named relative to the config's directory, is staged"


def test_staging_build_names_a_missing_operator_file(tmp_path: Path, config: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run("staging", "build", "--base-dir", str(elsewhere), config=config)
    assert result.exit_code == 1
    assert result.stderr == (
        "factory config (staging files): files[0].path: cannot read "
        f"{elsewhere / 'files' / 'site_check.sh'}: No such file or directory\n"
    )
    assert not (tmp_path / "stage").exists()


# ------------------------------------------------------------------------------ site


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (ENTRY, f"gwms: entry {ENTRY} uses the simulated backend, not local_site\n"),
        (
            "nowhere",
            "gwms: nowhere is neither a local_site entry nor a local site "
            f"(local_site entries: {LOCAL_ENTRY} (site {SITE}))\n",
        ),
    ],
)
def test_site_run_needs_a_local_site(config: Path, name: str, message: str) -> None:
    result = run("site", "run", name, config=config)
    assert (result.exit_code, result.stderr) == (1, message)


def _site_worker(config: Path, name: str, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "gwms_tasks.cli", "site", "run", name, "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def test_site_run_runs_the_real_glidein_until_terminated(
    tmp_path: Path, config: Path, redis_client: redis.Redis
) -> None:
    backend = LocalSiteBackend(redis_client, KEYS, SITE, FACTORY, "gfactory_instance", LOCAL_ENTRY)
    tags = GlideinTags(
        FACTORY, "gfactory_instance", LOCAL_ENTRY, "fe1.main", "main", "c1", "fe1:main", "u", "k1"
    )
    [job_id] = backend.submit(Submission(tags, 1, ["-v", "std"]))
    out = tmp_path / "work" / "sites" / SITE / job_id / f"job.{job_id}.out"
    log = tmp_path / "worker.log"
    worker = _site_worker(config, SITE, log)
    try:
        deadline = time.monotonic() + 60
        while not (out.is_file() and "=== End validation failure ===" in out.read_text()):
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the glidein did not start"
            time.sleep(0.1)
        # glidein_startup.sh ran with the job's arguments and refused them, as it must
        assert "GLIDEIN_FAILURE_DETAIL bad arguments: missing required argument -name" in (
            out.read_text()
        )
        [glidein] = backend.query()
        assert glidein.job_status is JobStatus.RUNNING
        second = _site_worker(config, LOCAL_ENTRY, tmp_path / "second.log")
        assert second.wait(timeout=60) == 1
        assert (
            (tmp_path / "second.log")
            .read_text()
            .endswith(f"gwms: site '{SITE}' is already served by a live site worker\n")
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
    assert code == 0, log.read_text()
    assert log.read_text().startswith(f"site {SITE}: 2 slots, hold fraction 0\n")
    assert backend.query() == [], "stopping the worker ends its glideins"
