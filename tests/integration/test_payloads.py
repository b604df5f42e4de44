"""The glidein payloads for real: payload_startup.sh, the Celery worker on Redis, condor_master.

Each test lays out a payload dir the way the staging area delivers it (plain files, not
executable, the renderer modules under their staged names), writes a glidein_config, runs
``payload_startup.sh glidein_config`` from the glidein work dir and reads the report block the
factory's log parser reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.integration.vo_app import ADD, SLEEP_FOR, make_app
from tests.redis_server import free_port, under_ci

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "gwms_tasks"
GLIDEIN = PACKAGE / "glidein"
SCRIPTS = ["payload_startup.sh", "payload_condor.sh", "payload_celery.sh"]
# Staged name -> source file, as the staging builder ships them.
STAGED = {
    **{name: GLIDEIN / name for name in SCRIPTS},
    "payload_celery.py": GLIDEIN / "payload_celery.py",
    "payload_condor_config.py": GLIDEIN / "payload_condor_config.py",
    "gwms_errors.py": PACKAGE / "errors.py",
    "gwms_lifetime.py": PACKAGE / "core" / "lifetime.py",
    "gwms_condor_config.py": PACKAGE / "core" / "condor_config.py",
}
IDENTITY = {
    "GLIDEIN_Factory": "fact1",
    "GLIDEIN_Name": "gfactory_instance",
    "GLIDEIN_Entry_Name": "ce_one",
    "GLIDECLIENT_Name": "fe.main",
    "GLIDECLIENT_Group": "main",
    "GLIDEIN_CredentialIdentifier": "cred-1",
    "CONDORG_CLUSTER": "42",
    "CONDORG_SUBCLUSTER": "3",
}
QUEUE = "vo.glidein_jobs"
# An IDTOKEN-shaped JWT without expiry (the signature is never checked here).
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJnbGlkZWluQHZvIn0.c2lnbmF0dXJl\n"

_START = re.compile(r"=== Payload (\w+) starting (.+) \((\d+)\) ===")
_FAILED = re.compile(r"=== Payload (\w+) failed: (\w+): (.*) ===")
_ENDED = re.compile(r"=== Payload (\w+) ended (.+) \((\d+)\) after (\d+) ===")
_TOTAL = re.compile(r"Total jobs (\d+) utilization (\d+(?:\.\d+)?)")


@dataclass
class Report:
    """What the factory's log parser reads from a payload's stdout."""

    kind: str
    jobs: int
    utilization: float
    duration: int
    failures: list[tuple[str, str]] = field(default_factory=list)


def parse_report(stdout: str) -> Report:
    """The payload's report block; asserts its shape along the way."""
    lines = [line for line in stdout.splitlines() if line.startswith(("===", "Total jobs"))]
    start, end = _START.fullmatch(lines[0]), _ENDED.fullmatch(lines[-4])
    assert start is not None and end is not None, stdout
    assert lines[-3] == "=== Stats of main ===", stdout
    assert lines[-1] == "=== End Stats of main ===", stdout
    total = _TOTAL.fullmatch(lines[-2])
    assert total is not None, stdout
    assert start.group(1) == end.group(1)
    assert int(end.group(3)) - int(start.group(3)) == int(end.group(4))
    failures = [m.group(2, 3) for m in map(_FAILED.fullmatch, lines[1:-4]) if m]
    utilization = float(total.group(2))
    assert 0.0 <= utilization <= 1.0
    return Report(start.group(1), int(total.group(1)), utilization, int(end.group(4)), failures)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def report(self) -> Report:
        return parse_report(self.stdout)


@dataclass
class Glidein:
    """A glidein work dir with a staged payload dir, ready to run payload_startup.sh."""

    payload_dir: Path
    work: Path
    env: dict[str, str]

    def configure(self, values: dict[str, str]) -> None:
        base = {
            **IDENTITY,
            "GLIDEIN_WORK_DIR": str(self.work),
            "TMP_DIR": str(self.work / "tmp"),
            "GLIDEIN_PAYLOAD_DIR": str(self.payload_dir),
        }
        # An earlier line names another payload: the last occurrence of a key wins.
        lines = ["GLIDEIN_PAYLOAD condor"]
        lines += [f"{key} {value}" for key, value in {**base, **values}.items()]
        (self.work / "glidein_config").write_text("\n".join(lines) + "\n")

    def start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["bash", str(self.payload_dir / "payload_startup.sh"), "glidein_config"],
            cwd=self.work,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def finish(self, process: subprocess.Popen[str], timeout: float = 60) -> Run:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(f"payload still running after {timeout} s:\n{stdout}\n{stderr}")
        return Run(process.returncode, stdout, stderr)

    def run(self, values: dict[str, str], timeout: float = 60) -> Run:
        self.configure(values)
        return self.finish(self.start(), timeout)


@pytest.fixture
def glidein(tmp_path: Path) -> Iterator[Glidein]:
    payload_dir, work = tmp_path / "main", tmp_path / "glide_test"
    payload_dir.mkdir()
    (work / "tmp").mkdir(parents=True)
    for name, source in STAGED.items():
        (payload_dir / name).write_bytes(source.read_bytes())
        (payload_dir / name).chmod(0o644)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    yield Glidein(payload_dir, work, env)


def _celery(redis_url: str, **overrides: str) -> dict[str, str]:
    return {
        "GLIDEIN_PAYLOAD": "celery",
        "GLIDEIN_CELERY_BROKER": redis_url,
        "GLIDEIN_CELERY_QUEUE": QUEUE,
        "GLIDEIN_CELERY_APP": "vo_app:app",
        "GLIDEIN_CELERY_PYTHONPATH": str(Path(__file__).parent),
        "GLIDEIN_CELERY_PYTHON": sys.executable,
        "GLIDEIN_CELERY_IDLE_TIMEOUT": "2",
        **overrides,
    }


def _backend(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + "/1"


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_celery_glidein_runs_every_queued_task_then_leaves_when_idle(
    glidein: Glidein, redis_url: str
) -> None:
    vo = make_app(broker=redis_url, backend=_backend(redis_url))
    results = [vo.send_task(ADD, args=(i, i), queue=QUEUE) for i in range(5)]
    glidein.env["VO_APP_RESULT_BACKEND"] = _backend(redis_url)
    run = glidein.run(_celery(redis_url))
    assert run.returncode == 0, run.stderr
    report = run.report
    assert (report.kind, report.jobs, report.failures) == ("celery", 5, [])
    assert [r.get(timeout=10) for r in results] == [2 * i for i in range(5)]
    assert "worker glidein_ce_one_42.3@" in run.stderr
    assert report.duration >= 2


def test_celery_glidein_at_its_walltime_exits_124_and_leaves_the_task_for_another_worker(
    glidein: Glidein, redis_url: str, redis_client: redis.Redis
) -> None:
    make_app(broker=redis_url).send_task(SLEEP_FOR, args=(60,), queue=QUEUE)
    began = time.monotonic()
    run = glidein.run(
        _celery(redis_url, GLIDEIN_CELERY_IDLE_TIMEOUT="30", GLIDEIN_CELERY_WALLTIME="3")
    )
    assert run.returncode == 124, run.stderr
    assert time.monotonic() - began < 20
    assert (run.report.jobs, run.report.failures) == (0, [])
    assert "hard walltime of 3 s reached" in run.stderr
    # acks_late: the interrupted task's message is still unacknowledged, so it is redelivered.
    assert redis_client.hlen("unacked") == 1


def test_celery_glidein_finishes_its_running_task_on_sigterm_and_exits_143(
    glidein: Glidein, redis_url: str, redis_client: redis.Redis
) -> None:
    vo = make_app(broker=redis_url, backend=_backend(redis_url))
    result = vo.send_task(SLEEP_FOR, args=(2,), queue=QUEUE)
    glidein.env["VO_APP_RESULT_BACKEND"] = _backend(redis_url)
    glidein.configure(_celery(redis_url, GLIDEIN_CELERY_IDLE_TIMEOUT="30"))
    process = glidein.start()
    _wait_for(lambda: redis_client.hlen("unacked") == 1, 30, "the worker to take the task")
    process.send_signal(signal.SIGTERM)
    run = glidein.finish(process)
    assert run.returncode == 143, run.stderr
    assert run.report.jobs == 1
    assert result.get(timeout=10) == 2
    assert redis_client.hlen("unacked") == 0


def test_celery_glidein_with_a_thread_pool_counts_every_task(
    glidein: Glidein, redis_url: str
) -> None:
    vo = make_app(broker=redis_url, backend=_backend(redis_url))
    results = [vo.send_task(SLEEP_FOR, args=(0.5,), queue=QUEUE) for _ in range(4)]
    glidein.env["VO_APP_RESULT_BACKEND"] = _backend(redis_url)
    run = glidein.run(_celery(redis_url, GLIDEIN_CELERY_CONCURRENCY="2"))
    assert run.returncode == 0, run.stderr
    assert "pool threads x2" in run.stderr
    assert run.report.jobs == 4
    assert run.report.utilization > 0
    assert [r.get(timeout=10) for r in results] == [0.5] * 4


@pytest.mark.parametrize(
    ("overrides", "category", "fragment"),
    [
        ({"GLIDEIN_CELERY_APP": "vo_app:nothing"}, "VO_Config", "cannot import vo_app:nothing"),
        ({"GLIDEIN_CELERY_APP": "vo_app:ADD"}, "VO_Config", "is a str, not a Celery app"),
        ({"GLIDEIN_CELERY_BROKER": ""}, "Config", "GLIDEIN_CELERY_BROKER: required"),
        ({"GLIDEIN_CELERY_CONCURRENCY": "many"}, "Config", "GLIDEIN_CELERY_CONCURRENCY"),
        ({"GLIDEIN_CELERY_PYTHON": "/nonexistent/python3"}, "WN_Resource", "no python"),
    ],
)
def test_celery_glidein_with_bad_parameters_fails_with_a_category(
    glidein: Glidein, overrides: dict[str, str], category: str, fragment: str
) -> None:
    run = glidein.run(_celery("redis://127.0.0.1:1/0", **overrides))
    assert run.returncode == 1, run.stderr
    [(found_category, detail)] = run.report.failures
    assert found_category == category
    assert fragment in detail
    assert run.report.jobs == 0


def test_celery_glidein_that_never_reaches_its_broker_fails_with_network(glidein: Glidein) -> None:
    run = glidein.run(_celery(f"redis://:secret@127.0.0.1:{free_port()}/0"))
    assert run.returncode == 1, run.stderr
    assert run.report.failures == [("Network", "no connection to the broker within 2 s")]
    assert "secret" not in run.stdout + run.stderr


def _condor(glidein: Glidein, **overrides: str) -> dict[str, str]:
    token = glidein.work / "credential_fe.main_ce_one.idtoken"
    token.write_text(TOKEN)
    return {
        "GLIDEIN_Collector": "vo.example.org:9620-9640",
        "GLIDECLIENT_Start": "TARGET.RequestCpus <= 1",
        "GLIDECLIENT_Group_Start": 'TARGET.Owner =!= "bad"',
        "GLIDEIN_CONDOR_TOKEN": str(token),
        "GLIDEIN_PYTHON": sys.executable,
        **overrides,
    }


STAND_IN = """#!/bin/bash
# Stand-in for condor_master: records how it was started, then behaves as told.
record={record}
printf '%s\\n' "$@" > "$record/args"
printf '%s\\n' "$CONDOR_CONFIG" > "$record/condor_config_path"
env | grep -i '^_condor_' > "$record/condor_env"
local_dir=$(sed -n 's/^LOCAL_DIR = //p' "$CONDOR_CONFIG")
printf 'ClusterId = 7\\nRemoteWallClockTime = 1\\n*** ProcId = 0 ClusterId = 7\\n' \\
    > "$local_dir/log/startd_history"
{behaviour}
"""
EXIT_LIKE_DAEMON_SHUTDOWN = "exit 99"
WAIT_FOR_SIGTERM = """trap 'echo TERM > "$record/signal"; exit 0' TERM
touch "$record/started"
while :; do sleep 0.1; done"""


def _condor_release(tmp_path: Path, behaviour: str) -> tuple[Path, Path]:
    release, record = tmp_path / "condor", tmp_path / "record"
    (release / "sbin").mkdir(parents=True)
    record.mkdir()
    master = release / "sbin" / "condor_master"
    master.write_text(STAND_IN.format(record=record, behaviour=behaviour))
    master.chmod(master.stat().st_mode | stat.S_IXUSR)
    return release, record


_PARAMS = (
    "import json, htcondor2, sys; "
    "print(json.dumps({n: htcondor2.param.get(n) for n in sys.argv[1:]}))"
)


def test_condor_glidein_starts_condor_master_with_the_rendered_config(
    glidein: Glidein, tmp_path: Path
) -> None:
    release, record = _condor_release(tmp_path, EXIT_LIKE_DAEMON_SHUTDOWN)
    glidein.env["_CONDOR_COLLECTOR_HOST"] = "site-collector.example"
    run = glidein.run(_condor(glidein, CONDOR_DIR=str(release)))
    assert run.returncode == 0, run.stdout + run.stderr
    local = glidein.work / "condor_local"
    assert (record / "args").read_text().split() == ["-f", "-pidfile", f"{local}/condor_master.pid"]
    config = Path((record / "condor_config_path").read_text().strip())
    assert config == local / "condor_config"
    assert (record / "condor_env").read_text() == ""
    token = local / "tokens.d" / "glidein.idtoken"
    assert token.read_text() == TOKEN
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    names = ["COLLECTOR_HOST", "START", "GLIDEIN_ClusterId", "SEC_TOKEN_DIRECTORY", "STARTD_NAME"]
    env = {"CONDOR_CONFIG": str(config), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", _PARAMS, *names],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    params = json.loads(done.stdout)
    assert re.fullmatch(r"vo\.example\.org:96[234]\d", params["COLLECTOR_HOST"])
    assert '(TARGET.RequestCpus <= 1) && (TARGET.Owner =!= "bad")' in params["START"]
    assert params["GLIDEIN_ClusterId"] == "42"
    assert params["SEC_TOKEN_DIRECTORY"] == str(local / "tokens.d")
    assert params["STARTD_NAME"].startswith("glidein_42_3_")
    assert (run.report.kind, run.report.jobs, run.report.failures) == ("condor", 1, [])


def test_condor_glidein_forwards_sigterm_to_condor_master(glidein: Glidein, tmp_path: Path) -> None:
    release, record = _condor_release(tmp_path, WAIT_FOR_SIGTERM)
    glidein.configure(_condor(glidein, CONDOR_DIR=str(release)))
    process = glidein.start()
    _wait_for((record / "started").exists, 30, "the stand-in condor_master to start")
    process.send_signal(signal.SIGTERM)
    run = glidein.finish(process)
    assert (record / "signal").read_text() == "TERM\n"
    assert run.returncode == 0, run.stderr
    assert run.report.failures == []


@pytest.mark.parametrize(
    ("overrides", "category", "fragment"),
    [
        ({}, "WN_Resource", "no HTCondor tarball for this node"),
        ({"CONDOR_DIR": "/nonexistent/condor"}, "WN_Resource", "has no executable"),
        (
            {"CONDOR_DIR": "<release>", "GLIDEIN_Collector": "bad host!"},
            "Config",
            "GLIDEIN_Collector: expected host",
        ),
        (
            {"CONDOR_DIR": "<release>", "GLIDEIN_Max_Walltime": "900"},
            "Config",
            "GLIDEIN_Max_Walltime: 900 s",
        ),
        (
            {"CONDOR_DIR": "<release>", "GLIDEIN_CONDOR_TOKEN": ""},
            "VO_Proxy",
            "GLIDEIN_CONDOR_TOKEN is not set",
        ),
        (
            {"CONDOR_DIR": "<release>", "GLIDEIN_PYTHON": "/nonexistent/python3"},
            "WN_Resource",
            "no python interpreter",
        ),
    ],
)
def test_condor_glidein_that_cannot_start_fails_with_a_category(
    glidein: Glidein, tmp_path: Path, overrides: dict[str, str], category: str, fragment: str
) -> None:
    release, record = _condor_release(tmp_path, EXIT_LIKE_DAEMON_SHUTDOWN)
    values = {k: str(release) if v == "<release>" else v for k, v in overrides.items()}
    run = glidein.run(_condor(glidein, **values))
    assert run.returncode == 1, run.stderr
    [(found_category, detail)] = run.report.failures
    assert (run.report.kind, found_category) == ("condor", category)
    assert fragment in detail
    assert not (record / "args").exists()


def test_unknown_payload_kind_fails_with_config(glidein: Glidein) -> None:
    run = glidein.run({"GLIDEIN_PAYLOAD": "slurm"})
    assert run.returncode == 1
    assert run.report.failures == [
        ("Config", "GLIDEIN_PAYLOAD 'slurm' is not one of: condor celery")
    ]


def test_gconfig_get_reads_the_last_value_of_a_key_with_its_spaces(tmp_path: Path) -> None:
    config = tmp_path / "glidein_config"
    config.write_text("A 1\nAB wrong\nA two  words \nB\nC x\r\nD.E dot\nDXE no\n")
    script = (
        f"source {GLIDEIN / 'payload_startup.sh'}; PAYLOAD_GLIDEIN_CONFIG={config}\n"
        'for key in A B C D.E AB; do printf "%s=[%s]\\n" "$key" "$(gconfig_get "$key")"; done\n'
        'gconfig_get MISSING; echo "missing rc=$?"\n'
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [
        "A=[two  words ]",
        "B=[]",
        "C=[x]",
        "D.E=[dot]",
        "AB=[wrong]",
        "missing rc=1",
    ]


def test_payload_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(shellcheck).exists():
        if under_ci():
            pytest.fail("shellcheck is not installed, and CI=true requires it")
        pytest.skip("shellcheck is not installed (make venv installs it)")
    done = subprocess.run(
        [shellcheck, "-x", *(str(GLIDEIN / s) for s in SCRIPTS)],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
