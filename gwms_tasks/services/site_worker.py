"""The site worker: runs the glideins of one local site as real processes on this machine.

One worker serves one site (a Redis lock with expiry makes sure of it; several workers for
different sites can share a machine). Every tick (0.2 s by default) it:

* reaps ended processes and finalises their jobs (COMPLETED with the exit code, or REMOVED
  when the factory removed them); a process killed by signal N gets exit code 128+N, as a
  shell reports it. The rest of the job's process group is killed with it.
* kills the processes whose job the factory removed, and those past the site's walltime:
  SIGTERM to the process group, SIGKILL after the grace period;
* once a second, marks newly queued jobs PENDING, removes those idle beyond their
  idle_lifetime and forgets jobs finished more than ``retention`` seconds ago;
* takes idle jobs, oldest first, while a slot is free: each one is put on hold with
  probability ``hold_fraction`` (HoldReasonCode 13, NumSystemHolds + 1), otherwise started.

A job is started as ``executable <arguments> -cluster C -subcluster P`` in its own session,
with its environment on top of PATH, HOME and LANG of the worker, in the directory
``<workdir>/<site>/<C>.<P>/``, writing ``job.C.P.out`` and ``job.C.P.err`` there. A job that
cannot be started (missing executable, unwritable directory) goes on hold with
HoldReasonCode 6. Finished jobs, their records and directories are kept for ``retention``
seconds so that the monitor can parse their output.

Stopping (``stop_event``) kills the running glideins (ending ``shutdown``). A worker that
died instead leaves RUNNING jobs behind: the next worker of the site marks each of them
COMPLETED with ``LOST_EXIT_CODE`` (ending ``lost``), first killing its process when it is
still alive on this host (recognised by the pid and the start time recorded in the job, read
from ``/proc``: process recovery is Linux-only).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import redis
from redis.exceptions import LockNotOwnedError

from gwms_tasks.adapters.local_site import SiteQueue
from gwms_tasks.adapters.local_site_job import LOST_EXIT_CODE, Ending, HoldCode, SiteJob
from gwms_tasks.adapters.redis_state import redis_errors
from gwms_tasks.core.status import JobStatus
from gwms_tasks.errors import ConfigError, GwmsError, PermanentError, TransientError
from gwms_tasks.keys import DEFAULT_PREFIX, Keys
from gwms_tasks.process_identity import _start_ticks
from gwms_tasks.runtime import redis_client

log = logging.getLogger(__name__)

INHERITED_ENVIRONMENT = ("PATH", "HOME", "LANG")
"""The only variables of the worker's own environment a glidein gets."""

SCAN_INTERVAL = 1.0
"""Seconds between two scans of the queue (PENDING, idle lifetime) and of finished jobs."""
_SITE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Tunables of a site worker (the defaults suit production).

    Attributes:
        walltime: seconds a glidein may run before the site kills it (None: no limit).
        kill_grace: seconds between SIGTERM and SIGKILL.
        tick: seconds between two passes of the loop.
        retention: seconds finished jobs (records and directories) are kept.
        lock_ttl: expiry of the site lock; a worker that died blocks its successor this long.
    """

    walltime: float | None = None
    kill_grace: float = 10.0
    tick: float = 0.2
    retention: float = 24 * 3600.0
    lock_ttl: float = 5.0

    def problems(self) -> list[str]:
        """What is wrong with these settings, one line per problem."""
        positive = {"tick": self.tick, "retention": self.retention, "lock_ttl": self.lock_ttl}
        if self.walltime is not None:
            positive["walltime"] = self.walltime
        found = [
            f"{name}: expected a number > 0, got {v!r}" for name, v in positive.items() if v <= 0
        ]
        if self.kill_grace < 0:
            found.append(f"kill_grace: expected a number >= 0, got {self.kill_grace!r}")
        return found


@dataclass
class _Process:
    """A glidein process this worker started (mutable: its stop request changes)."""

    job: SiteJob
    popen: subprocess.Popen[bytes]
    outputs: tuple[str, str]
    started: float  # monotonic
    stop: Ending | None = None
    term_sent: float | None = None  # monotonic


class SiteWorker:
    """Serves one local site with ``slots`` slots.

    Args:
        client: the state Redis (where the site's backend queues jobs).
        keys: the key names.
        site: the site name.
        slots: how many glideins run at once.
        hold_fraction: probability that a job is put on hold instead of run.
        workdir: where job directories are made (``<workdir>/<site>/<cluster>.<proc>``).
        rng: the source of the hold decisions.
        executable: what each job runs (``glidein_startup.sh`` in production).
        settings: walltime, grace period and other tunables.
        clock: epoch seconds, for the times written into job records.

    Raises:
        ConfigError: a bad site name, slot count, fraction, executable or setting.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        site: str,
        slots: int,
        hold_fraction: float,
        workdir: Path,
        rng: random.Random,
        executable: Path,
        settings: WorkerSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings or WorkerSettings()
        _check(site, slots, hold_fraction, executable, self._settings)
        self._site, self._slots, self._hold_fraction = site, slots, hold_fraction
        # Absolute: jobs run in their own directory, and the monitor reads outputs from anywhere.
        self._site_dir, self._executable = workdir.absolute() / site, executable.absolute()
        self._rng = rng
        self._clock = clock
        self._queue = SiteQueue(client, keys, site, clock)
        self._lock = client.lock(
            keys.lock(f"site-worker:{site}"),
            timeout=self._settings.lock_ttl,
            sleep=0.1,
            blocking_timeout=self._settings.lock_ttl + 1.0,
            thread_local=False,
        )
        self._identity = (socket.gethostname(), os.getpid())
        self._hold_reason = f"held by local site {site} on purpose (hold_fraction {hold_fraction})"
        self._running: dict[str, _Process] = {}
        self._unrecorded: list[Callable[[], object]] = []  # job records still to write
        self._last_scan = -math.inf

    @property
    def running(self) -> list[str]:
        """Ids of the jobs whose process this worker is running."""
        return sorted(self._running)

    def run(self, stop_event: threading.Event) -> None:
        """Serve the site until ``stop_event`` is set, then kill the running glideins.

        Raises:
            PermanentError: another live worker serves the site, or took it over.
            ConfigError: the work directory cannot be created.
            TransientError: Redis was unreachable at start.
        """
        try:
            self._site_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"site worker {self._site}", [f"workdir: {exc}"]) from exc
        with self._site_lock():
            try:
                self._recover()
                while not stop_event.is_set():
                    self._tick()
                    stop_event.wait(self._settings.tick)
            finally:
                self._shutdown()

    # -- the loop -----------------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        self._reap(now)
        try:
            self._keep_lock()
            self._record()
            self._honour_kill_requests(now)
            if now - self._last_scan >= SCAN_INTERVAL:
                self._queue.see_queue()
                self._prune()
                self._last_scan = now
            self._start_jobs()
        except TransientError as exc:
            log.warning("site %s: %s; retrying", self._site, exc)

    def _reap(self, now: float) -> None:
        grace = self._settings.kill_grace
        walltime = self._settings.walltime
        for job_id, proc in list(self._running.items()):
            if _has_exited(proc.popen.pid):
                code = _collect(proc.popen)
                del self._running[job_id]
                ending = proc.stop or Ending.EXITED
                log.info("site %s: job %s ended (%s, code %d)", self._site, job_id, ending, code)
                finish = functools.partial(self._queue.finish, job_id, code, ending, proc.outputs)
                self._unrecorded.append(finish)
            elif proc.term_sent is not None and now - proc.term_sent >= grace:
                _signal_group(proc.popen.pid, signal.SIGKILL)
            elif proc.stop is None and walltime is not None and now - proc.started >= walltime:
                self._stop(proc, Ending.WALLTIME, now)

    def _record(self) -> None:
        """Write what happened to jobs, in order; a Redis outage leaves the rest for later."""
        while self._unrecorded:
            self._unrecorded[0]()
            self._unrecorded.pop(0)

    def _honour_kill_requests(self, now: float) -> None:
        candidates = [job_id for job_id, proc in self._running.items() if proc.stop is None]
        for job_id in self._queue.kill_requested(candidates):
            self._stop(self._running[job_id], Ending.REMOVED, now)

    def _stop(self, proc: _Process, ending: Ending, now: float) -> None:
        log.info("site %s: stopping job %s (%s)", self._site, proc.job.job_id, ending)
        proc.stop, proc.term_sent = ending, now
        _signal_group(proc.popen.pid, signal.SIGTERM)

    def _start_jobs(self) -> None:
        while len(self._running) < self._slots:
            hold = self._rng.random() < self._hold_fraction
            job = self._queue.claim(hold, self._identity, self._hold_reason)
            if job is None:
                return
            if hold:
                log.info("site %s: job %s put on hold", self._site, job.job_id)
            else:
                self._launch(job)

    def _launch(self, job: SiteJob) -> None:
        directory = self._site_dir / job.job_id
        stem = f"job.{job.cluster}.{job.proc}"
        outputs = (str(directory / f"{stem}.out"), str(directory / f"{stem}.err"))
        command = [str(self._executable), *job.arguments, "-cluster", job.cluster]
        command += ["-subcluster", job.proc]
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with open(outputs[0], "wb") as out, open(outputs[1], "wb") as err:
                popen = subprocess.Popen(
                    command,
                    cwd=directory,
                    env=_environment(job),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,  # its own process group, killed as a whole
                )
        except OSError as exc:
            self._failed_start(job, exc)
            return
        self._running[job.job_id] = _Process(job, popen, outputs, time.monotonic())
        log.info("site %s: job %s started as pid %d", self._site, job.job_id, popen.pid)
        process = {"pid": str(popen.pid), "stdout": outputs[0], "stderr": outputs[1]}
        self._queue.started(job.job_id, process | {"pid_start": _start_ticks(popen.pid) or ""})

    def _failed_start(self, job: SiteJob, exc: OSError) -> None:
        reason = f"local site {self._site} could not start the glidein: {exc}"
        log.warning("site %s: job %s: %s", self._site, job.job_id, reason)

        def hold() -> None:
            code = HoldCode.FAILED_TO_CREATE_PROCESS
            if not self._queue.hold(job.job_id, code, reason, running=True):
                self._queue.finish(job.job_id, None, Ending.REMOVED, None)  # removed meanwhile

        self._unrecorded.append(hold)
        self._record()

    def _prune(self) -> None:
        for job in self._queue.prune(self._clock() - self._settings.retention):
            directory = self._site_dir / job.job_id
            if job.stdout and Path(job.stdout).parent == directory:
                shutil.rmtree(directory, ignore_errors=True)

    # -- start and stop -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _site_lock(self) -> Iterator[None]:
        with redis_errors(f"take the lock of site {self._site!r}"):
            acquired = self._lock.acquire()
        if not acquired:
            raise PermanentError(f"site {self._site!r} is already served by a live site worker")
        try:
            yield
        finally:
            with contextlib.suppress(GwmsError), redis_errors("release the site lock"):
                self._lock.release()

    def _keep_lock(self) -> None:
        with redis_errors(f"refresh the lock of site {self._site!r}"):
            try:
                self._lock.reacquire()
            except LockNotOwnedError:
                # Expired while Redis was out of reach: take it again unless another worker has.
                if not self._lock.acquire(blocking=False):
                    raise PermanentError(
                        f"site {self._site!r} was taken over by another site worker"
                    ) from None

    def _recover(self) -> None:
        """Finalise, as lost, the jobs a dead worker of this site left RUNNING."""
        for job in self._queue.live_jobs():
            if job.job_status not in (JobStatus.RUNNING, JobStatus.REMOVED):
                continue
            if job.host == self._identity[0] and job.pid and job.pid_start:
                _kill_orphan(job.pid, job.pid_start, self._settings.kill_grace)
            outputs = (job.stdout, job.stderr or "") if job.stdout else None
            self._queue.finish(job.job_id, LOST_EXIT_CODE, Ending.LOST, outputs)
            log.warning("site %s: job %s was lost by its worker", self._site, job.job_id)

    def _shutdown(self) -> None:
        now = time.monotonic()
        for proc in self._running.values():
            if proc.stop is None:
                self._stop(proc, Ending.SHUTDOWN, now)
        deadline = now + self._settings.kill_grace + 5.0
        while self._running and time.monotonic() < deadline:
            self._reap(time.monotonic())
            time.sleep(0.05)
        if self._running:
            log.error("site %s: processes of jobs %s would not die", self._site, self.running)
        try:
            self._record()
        except GwmsError as exc:
            log.error(
                "site %s: could not record ended jobs (%s): they will be lost", self._site, exc
            )


def _check(
    site: str, slots: int, hold_fraction: float, executable: Path, settings: WorkerSettings
) -> None:
    problems = [] if _SITE.match(site) else [f"site: {site!r} is not a valid site name"]
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        problems.append(f"slots: expected an integer >= 1, got {slots!r}")
    if not 0.0 <= hold_fraction <= 1.0:
        problems.append(f"hold_fraction: expected a number in [0, 1], got {hold_fraction!r}")
    if not (executable.is_file() and os.access(executable, os.X_OK)):
        problems.append(f"executable: {executable} is not an executable file")
    problems += settings.problems()
    if problems:
        raise ConfigError(f"site worker {site}", problems)


def _environment(job: SiteJob) -> dict[str, str]:
    inherited = {name: os.environ[name] for name in INHERITED_ENVIRONMENT if name in os.environ}
    return inherited | dict(job.environment)


def _has_exited(pid: int) -> bool:
    """Whether a child has ended, leaving it unreaped (so its pid and group stay reserved)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _collect(popen: subprocess.Popen[bytes]) -> int:
    """Kill what is left of an ended child's process group, reap it, return its exit code."""
    _signal_group(popen.pid, signal.SIGKILL)
    code = popen.wait()
    return 128 - code if code < 0 else code


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _kill_orphan(pid: int, start: str, grace: float) -> None:
    """Kill the process group of a glidein a dead worker left running (if it is still it).

    Its leader may be a zombie nobody has reaped yet: the group (where others may live on) is
    signalled all the same, but the wait for the leader to end stops there.
    """
    if _start_ticks(pid) != start:
        return
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _start_ticks(pid) == start and not _is_zombie(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    """Whether ``pid`` has ended but is not reaped yet (state Z or X in /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] in (["Z"], ["X"])


def run_site_worker(
    redis_url: str,
    site: str,
    slots: int,
    hold_fraction: float,
    workdir: str | Path,
    executable: str | Path,
    prefix: str = DEFAULT_PREFIX,
    settings: WorkerSettings | None = None,
) -> None:
    """Serve a site until SIGTERM or SIGINT (what ``gwms site run`` calls).

    Raises:
        ConfigError: a bad Redis URL, prefix or worker argument.
        PermanentError: another live worker serves the site.
        TransientError: Redis was unreachable at start.
    """
    client = redis_client(redis_url, f"site worker {site}")
    try:
        keys = Keys(prefix)
    except ValueError as exc:
        client.close()
        raise ConfigError(f"site worker {site}", [str(exc)]) from exc
    rng = random.Random()
    worker = SiteWorker(
        client, keys, site, slots, hold_fraction, Path(workdir), rng, Path(executable), settings
    )
    stop = threading.Event()
    with _stop_on_signals(stop):
        try:
            worker.run(stop)
        finally:
            client.close()


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM/SIGINT while inside (only the main thread may install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
