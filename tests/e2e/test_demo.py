"""The whole pilot loop, as `make demo` runs it: every process real, from demand to drain.

Redis, the factory worker, beat, the user worker (as the demo user when root), the web server,
two site workers running real `glidein_startup.sh` glideins with the celery payload, Flower and
the frontend: N user jobs must all complete on glideins, the glideins must leave on their idle
timeout (ending well), and the counts the frontend read must equal what the factory advertised
at every frontend cycle that could be checked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import under_ci

REPO = Path(__file__).resolve().parents[2]
JOBS = 6

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None and not under_ci(), reason="needs redis-server"
)


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    # Not under pytest's private tmp: the demo user's worker must reach into it.
    base = Path(tempfile.mkdtemp(prefix="gwms-demo-test-"))
    base.chmod(0o755)
    yield base / "demo"
    shutil.rmtree(base, ignore_errors=True)


def _leftovers(marker: str) -> list[str]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and str(os.getpid()) != proc.name:
            found.append(cmdline)
    return found


def test_demo_runs_user_jobs_on_pilots_that_drain_and_counts_agree(demo_dir: Path) -> None:
    argv = [sys.executable, "-m", "gwms_tasks.demo", "--jobs", str(JOBS), "--quiet"]
    argv += ["--job-seconds", "1", "--idle-timeout", "10", "--timeout", "300"]
    done = subprocess.run(
        [*argv, "--dir", str(demo_dir)],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=420,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert "monitoring pages" in done.stdout and "Flower" in done.stdout
    summary = json.loads((demo_dir / "summary.json").read_text())
    assert summary["jobs_done"] == JOBS
    assert summary["glideins_completed"] >= 1
    # Pilots leave on their idle timeout: the celery payload then ends with code 0.
    assert summary["glideins_ok"] == summary["glideins_completed"] - summary["failed_validation"]
    assert summary["failed_validation"] == 0
    assert summary["mismatches"] == []
    assert summary["checked_cycles"] >= 3
    assert _leftovers(str(demo_dir)) == [], "the demo left processes behind"
