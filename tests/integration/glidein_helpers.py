"""Helpers to run the real glidein_startup.sh against a real staging web server."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from gwms_tasks.core.escaping import GlideinStartup, glidein_arguments
from gwms_tasks.core.staging import (
    DEFAULT_LAST_SCRIPT,
    EntrySpec,
    StagedFile,
    StagingIndex,
    StagingSpec,
)
from gwms_tasks.glidein import BUILTIN_FILES, startup_script
from gwms_tasks.services.staging_build import load_builtin_files
from web.staging import staging_app

ENTRY = "ce_test"

# Stands in for part 2's payload_startup.sh: copies glidein_config and its cwd to STANDIN_OUT,
# prints payload and stats markers, optionally sleeps (exiting 42 on SIGTERM), exits STANDIN_EXIT.
STANDIN_PAYLOAD = b"""#!/bin/bash
config=$1
value() { grep "^$1 " "$config" | tail -n 1 | cut -d' ' -f2-; }
out=$(value STANDIN_OUT)
cp "$config" "$out/glidein_config"
pwd >"$out/cwd"
ls "$(value GLIDEIN_PAYLOAD_DIR)" >"$out/payload_dir_listing"
echo "=== Payload starting $(date) ($(date +%s)) ==="
sleeper=""
trap 'echo "payload got TERM"; [ -n "$sleeper" ] && kill "$sleeper"; exit 42' TERM
seconds=$(value STANDIN_SLEEP)
if [ -n "$seconds" ]; then
    sleep "$seconds" &
    sleeper=$!
    touch "$out/sleeping"
    wait "$sleeper"
fi
echo "=== Stats of main ==="
echo "Total jobs 3 utilization 42.5"
echo "=== End Stats of main ==="
echo "=== Payload ended $(date) ($(date +%s)) after 0 ==="
exit "${STANDIN_EXIT:-$(value STANDIN_EXIT)}"
"""


def builtin_scripts() -> tuple[StagedFile, ...]:
    """The real built-in files but the payloads (part 2 writes those; a stand-in replaces them)."""
    return load_builtin_files([b for b in BUILTIN_FILES if not b.name.startswith("payload_")])


def make_spec(
    *,
    main_files: Sequence[StagedFile] = (),
    entry_files: Sequence[StagedFile] = (),
    entry_constants: Mapping[str, str] | None = None,
    constants: Mapping[str, str] | None = None,
) -> StagingSpec:
    """A spec with the real scripts, the stand-in payload and one entry."""
    payload = StagedFile(DEFAULT_LAST_SCRIPT, STANDIN_PAYLOAD)
    return StagingSpec(
        builtin_files=(*builtin_scripts(), payload),
        files=tuple(main_files),
        constants=dict(constants or {}),
        entries=(
            EntrySpec(ENTRY, constants=dict(entry_constants or {}), files=tuple(entry_files)),
        ),
    )


@dataclass(frozen=True)
class StagingServer:
    """A running web server for one stage dir."""

    url: str
    stage_dir: Path


@contextmanager
def serve_staging(stage_dir: Path) -> Iterator[StagingServer]:
    """Serve ``stage_dir`` with uvicorn and web/staging.py on a free 127.0.0.1 port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(staging_app(stage_dir), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield StagingServer(url=f"http://127.0.0.1:{port}", stage_dir=stage_dir)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def startup_for(index: StagingIndex, web_url: str, work_base: Path) -> GlideinStartup:
    """The factory-side arguments of a test glidein of the test entry."""
    entry = index.entry(ENTRY)
    return GlideinStartup(
        glidein_name="gfactory_instance",
        entry_name=ENTRY,
        client_name="fe.main",
        schedd="schedd.test",
        factory_name="test_factory",
        web_url=web_url,
        main_descript=index.main.descript,
        main_sign=index.main.sign,
        entry_descript=entry.descript,
        entry_sign=entry.sign,
        credential_id="cred1",
        startup_dir=str(work_base),
        sign_type=index.sign_type,
    )


def glidein_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a test glidein: no proxies that would divert 127.0.0.1 downloads."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(extra or {})
    return env


def run_glidein(
    args: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run the real glidein_startup.sh with ``args`` and wait for it."""
    return subprocess.run(
        ["bash", str(startup_script()), *args],
        cwd=cwd,
        env=glidein_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def standard_args(
    index: StagingIndex, url: str, work_base: Path, params: Mapping[str, str]
) -> list[str]:
    """Arguments of a glidein of the test entry, failure sleep off, cluster 12.3."""
    all_params = {"GLIDEIN_FAIL_SLEEP": "0", "GLIDEIN_MIN_DISK_MB": "1", **params}
    return glidein_arguments(
        startup_for(index, url, work_base), all_params, cluster="12", subcluster="3"
    )


def read_glidein_config(path: Path) -> dict[str, str]:
    """glidein_config as the glidein reads it: first space separates, later lines win."""
    result: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        result[key] = value
    return result
