"""The scale benchmark runs end to end with tiny arguments and prints its figures.

So that it never rots. It runs as ``make bench`` runs it (``python bench/scale.py``), from
another directory.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "scale.py"
NUMBER = r"\d+\.\d+"


def _bench(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    tiny = ("--entries", "2", "--frontends", "2", "--cycles", "1")
    return subprocess.run(
        [sys.executable, str(SCRIPT), *tiny, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def _assert_figures(out: str, backend: str) -> None:
    assert "2 entries x 2 frontends x 10 glideins, 1 cycle (" in out
    assert f"on {backend}" in out
    assert (
        "requests accepted 4, rejected 0, find-work not done 0; submit orders 4, "
        "glideins submitted 40, remove/release orders 0; glideins at the backends 40"
    ) in out
    assert re.search(rf"^cycle 1: {NUMBER} s \(find-work {NUMBER} s, submit {NUMBER} s", out, re.M)
    for step in ("find-work", "submit", "monitor"):
        assert re.search(rf"^  {step} +{NUMBER} +{NUMBER} +{NUMBER}$", out, re.M), step
    assert "first cycle (4 requests with glideins to submit" in out
    assert re.search(rf"publish -> glideins at the backend +mean {NUMBER} s, p95 {NUMBER} s", out)
    assert re.search(rf"its entry's find-work -> glideins +mean {NUMBER} ms, p95 {NUMBER} ms", out)
    assert re.search(rf"^peak memory: ru_maxrss {NUMBER} MiB", out, re.M)


def test_the_bench_runs_on_the_memory_twins_with_tracemalloc(tmp_path: Path) -> None:
    done = _bench(tmp_path, "--memory", "--tracemalloc")

    assert done.returncode == 0, done.stderr
    _assert_figures(done.stdout, "in-memory twins")
    assert re.search(rf"tracemalloc peak {NUMBER} MiB", done.stdout)


def test_the_bench_runs_on_redis_with_an_acl_user_per_frontend(
    tmp_path: Path, redis_url: str
) -> None:
    done = _bench(tmp_path, "--redis-url", redis_url)

    assert done.returncode == 0, done.stderr
    _assert_figures(done.stdout, f"Redis at {redis_url}")
    assert "tracemalloc off" in done.stdout


@pytest.mark.parametrize("bad", ["0", "-3", "many"])
def test_the_bench_refuses_a_size_that_is_not_a_positive_integer(tmp_path: Path, bad: str) -> None:
    done = _bench(tmp_path, "--memory", "--glideins", bad)

    assert done.returncode == 2
    assert "--glideins: expected a positive integer" in done.stderr
