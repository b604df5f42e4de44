"""Lock owners: a process is declared dead only when this host, boot and pid namespace can tell."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gwms_tasks.process_identity import owner_is_dead, this_process

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def _parts(owner: str) -> list[str]:
    """``[host, boot id, pid namespace, pid, start ticks]``."""
    host, rest = owner.split(":", 1)
    return [host, *rest.split(":")]


def _owner(parts: list[str]) -> str:
    return ":".join(parts)


def _exited_process_owner() -> str:
    """The owner name of a process of ours that has exited (and been reaped)."""
    code = "from gwms_tasks.process_identity import this_process; print(this_process())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_this_process_names_host_boot_namespace_pid_and_start() -> None:
    host, boot_id, namespace, pid, ticks = _parts(this_process())
    assert pid == str(os.getpid())
    assert boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert namespace == str(os.stat("/proc/self/ns/pid").st_ino)
    assert ticks.isdigit() and host


def test_a_running_owner_is_alive() -> None:
    assert not owner_is_dead(f"{this_process()}/token")


def test_an_owner_that_exited_is_dead() -> None:
    assert owner_is_dead(f"{_exited_process_owner()}/token")


def test_a_reused_pid_with_another_start_time_is_dead() -> None:
    parts = _parts(this_process())
    parts[4] = str(int(parts[4]) + 1)
    assert owner_is_dead(f"{_owner(parts)}/token")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (0, "another-host"),
        (1, "00000000-0000-0000-0000-000000000000"),  # a previous boot
        (2, "1"),  # another container's pid namespace
        (1, "?"),
        (2, "?"),
        (4, "?"),  # written where /proc could not be read
    ],
)
def test_an_exited_owner_is_never_dead_where_we_cannot_tell(field: int, value: str) -> None:
    parts = _parts(_exited_process_owner())
    parts[field] = value
    assert not owner_is_dead(f"{_owner(parts)}/token")


def test_an_exited_owner_that_could_not_read_its_start_time_is_not_dead() -> None:
    pid = _parts(_exited_process_owner())[3]
    assert not owner_is_dead(f"{socket.gethostname()}:{pid}:?/token")


@pytest.mark.parametrize(
    "token",
    ["", "random-token-only", "host:123:456/token", "host:boot:ns:pid:1/token"],
)
def test_tokens_without_an_owner_it_can_read_are_never_dead(token: str) -> None:
    assert not owner_is_dead(token)
