"""Start the demo's processes, notice when one dies, and stop them all cleanly.

Each process runs in its own session (a Ctrl-C in the terminal reaches the demo only, which then
stops the processes in reverse order: SIGTERM, a grace period, then SIGKILL of the whole process
group, so no glidein or pool process is left behind). Output goes to ``<logs>/<name>.log``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class DemoError(Exception):
    """The demo cannot go on (a process died, a timeout); the message says why."""


@dataclass
class Managed:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Supervisor:
    """The processes of one demo run."""

    logs: Path
    env: Mapping[str, str] = field(default_factory=dict)
    processes: list[Managed] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str]) -> Managed:
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        managed = Managed(name, popen, log)
        self.processes.append(managed)
        return managed

    def gwms(self, name: str, *args: str) -> Managed:
        """Start a ``gwms`` command with this interpreter."""
        return self.start(name, [sys.executable, "-m", "gwms_tasks.cli", *args])

    def check(self) -> None:
        """Raise DemoError when a process ended on its own."""
        for managed in self.processes:
            code = managed.popen.poll()
            if code is not None:
                raise DemoError(
                    f"{managed.name} exited with code {code}; the end of {managed.log}:\n"
                    f"{managed.tail()}"
                )

    def stop_all(self, grace: float = 15.0) -> None:
        for managed in reversed(self.processes):
            _signal(managed, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for managed in reversed(self.processes):
            remaining = max(0.1, deadline - time.monotonic())
            with contextlib.suppress(subprocess.TimeoutExpired):
                managed.popen.wait(remaining)
            _signal(managed, signal.SIGKILL)  # the group: pool processes, glideins
            managed.popen.wait()
        self.processes.clear()


def _signal(managed: Managed, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(managed.popen.pid, signum)
