"""Local site grid backend: glideins run for real as processes on this machine.

A *site* is a named queue in Redis, served by one site worker
(:mod:`gwms_tasks.services.site_worker`) with N slots. :class:`LocalSiteBackend` is the
GridBackend of one entry on that site; :class:`SiteQueue` owns the site's Redis layout and
every transition of a job, for the backend and the worker alike.

Redis layout (names from :mod:`gwms_tasks.keys`, ``S`` the site):
    site_job(S, id)   hash  one glidein: its tags, ``arguments`` (JSON list), ``environment``
                            (JSON object), ``idle_lifetime``, ``status`` (JobStatus number),
                            ``grid`` ("" while waiting, PENDING once the worker has seen it,
                            RUNNING), ``submitted``, ``entered``, ``hold_code``/
                            ``hold_subcode``/``hold_reason``, ``holds`` (NumSystemHolds),
                            ``kill`` ("1": removal requested), ``host``/``worker_pid`` (the
                            worker running it), ``pid``/``pid_start`` (its process), ``stdout``,
                            ``stderr``, ``exit_code``, ``ending``, ``finished``.
    site_jobs(S)      set   ids not finalised yet (idle, held, running, removed while running)
    site_queue(S)     list  FIFO of idle ids: submit and release push right, the worker pops left
    site_sequence(S)  int   the cluster counter: one INCR per submit call
    site_finished(S)  zset  finalised ids scored by when they ended; the worker prunes it

Job ids are ``<cluster>.<proc>``: one cluster per submit call, procs 0..count-1, unique per
site. Several entries (and factories) may share a site: a backend sees and acts on only the
jobs tagged with its own factory, glidein and entry. Every transition is one MULTI/EXEC or one
Lua script, so a job is never both queued and running, and a removal never races a start.
The claim and scan scripts build job keys from the key prefix they are given: a site's keys
must live on one Redis server (not a Redis Cluster).

Transitions: submit -> IDLE (queued); the worker marks queued jobs PENDING, then takes each
to RUNNING or (with the site's hold fraction) HELD; release: HELD -> IDLE (queued again,
NumSystemHolds kept); remove: IDLE/HELD -> REMOVED at once, RUNNING -> a kill request the
worker carries out (``forcex`` also marks it REMOVED at once); the process ends -> COMPLETED
with its exit code, or REMOVED when it was killed on request.

Secrets: arguments and environment values are stored in Redis as given and are visible in
the process table of the site. They must hold no secret: credentials are passed as paths of
files (``X509_USER_PROXY``, ``IDTOKENS_FILE``, ...), never as values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from string import Template
from typing import Any, cast

import redis

from gwms_tasks.adapters.local_site_job import (
    Ending,
    GridStatus,
    HoldCode,
    SiteJob,
    check_job_ids,
    job_from_fields,
    submit_fields,
)
from gwms_tasks.adapters.redis_state import redis_errors, text, text_hash
from gwms_tasks.core.model import Glidein
from gwms_tasks.core.status import JobStatus
from gwms_tasks.core.submit_description import check_submission
from gwms_tasks.keys import Keys
from gwms_tasks.ports import Submission

_LUA_NAMES = {
    "IDLE": int(JobStatus.IDLE),
    "RUNNING": int(JobStatus.RUNNING),
    "REMOVED": int(JobStatus.REMOVED),
    "COMPLETED": int(JobStatus.COMPLETED),
    "HELD": int(JobStatus.HELD),
    "GRID_PENDING": GridStatus.PENDING.value,
    "GRID_RUNNING": GridStatus.RUNNING.value,
    "ENDING_REMOVED": Ending.REMOVED.value,
}
_OWNED = """
local tags = redis.call('HMGET', KEYS[1], 'factory', 'glidein', 'entry', 'status')
if tags[1] ~= ARGV[3] or tags[2] ~= ARGV[4] or tags[3] ~= ARGV[5] then return 0 end
local status = tags[4]
"""


def _lua(body: str) -> str:
    return Template(body).substitute(_LUA_NAMES, OWNED=_OWNED)


# KEYS: job, queue. ARGV: id, now, factory, glidein, entry.
_RELEASE = _lua("""$OWNED
if status ~= '$HELD' then return 0 end
redis.call('HSET', KEYS[1], 'status', '$IDLE', 'grid', '', 'entered', ARGV[2])
redis.call('HDEL', KEYS[1], 'hold_code', 'hold_subcode', 'hold_reason')
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
""")
# KEYS: job, queue, jobs, finished. ARGV: id, now, factory, glidein, entry, forcex.
_REMOVE = _lua("""$OWNED
if status == '$IDLE' or status == '$HELD' then
  redis.call('HSET', KEYS[1], 'status', '$REMOVED', 'grid', '', 'entered', ARGV[2],
             'finished', ARGV[2])
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
  return 1
end
if status ~= '$RUNNING' then return 0 end
redis.call('HSET', KEYS[1], 'kill', '1')
if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'status', '$REMOVED', 'entered', ARGV[2]) end
return 1
""")
# KEYS: queue. ARGV: job key prefix, now, hold ("1"/"0"), host, worker pid, code, reason.
_CLAIM = _lua("""
while true do
  local id = redis.call('LPOP', KEYS[1])
  if not id then return false end
  local key = ARGV[1] .. id
  if redis.call('HGET', key, 'status') == '$IDLE' then
    if ARGV[3] == '1' then
      redis.call('HSET', key, 'status', '$HELD', 'grid', '', 'entered', ARGV[2],
                 'hold_code', ARGV[6], 'hold_subcode', '0', 'hold_reason', ARGV[7])
      redis.call('HINCRBY', key, 'holds', 1)
    else
      redis.call('HSET', key, 'status', '$RUNNING', 'grid', '$GRID_RUNNING',
                 'entered', ARGV[2], 'host', ARGV[4], 'worker_pid', ARGV[5])
      redis.call('HDEL', key, 'kill', 'pid', 'pid_start', 'exit_code', 'ending')
    end
    return {id, redis.call('HGETALL', key)}
  end
end
""")
# KEYS: queue, jobs, finished. ARGV: job key prefix, now.
_SEE = _lua("""
local expired = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. id
  local f = redis.call('HMGET', key, 'status', 'grid', 'idle_lifetime', 'submitted')
  if f[1] == '$IDLE' then
    local life = tonumber(f[3]) or 0
    if life > 0 and tonumber(ARGV[2]) - tonumber(f[4]) > life then
      redis.call('HSET', key, 'status', '$REMOVED', 'grid', '', 'entered', ARGV[2],
                 'finished', ARGV[2])
      table.insert(expired, id)
    elseif not f[2] or f[2] == '' then
      redis.call('HSET', key, 'grid', '$GRID_PENDING')
    end
  end
end
for _, id in ipairs(expired) do
  redis.call('LREM', KEYS[1], 0, id)
  redis.call('SREM', KEYS[2], id)
  redis.call('ZADD', KEYS[3], ARGV[2], id)
end
return #expired
""")
# KEYS: job, queue. ARGV: id, now, code, reason, expected status (IDLE or RUNNING).
# An idle job leaves the queue; a job being removed is not held.
_HOLD = _lua("""
local f = redis.call('HMGET', KEYS[1], 'status', 'kill')
if f[1] ~= ARGV[5] or f[2] == '1' then return 0 end
redis.call('HSET', KEYS[1], 'status', '$HELD', 'grid', '', 'entered', ARGV[2],
           'hold_code', ARGV[3], 'hold_subcode', '0', 'hold_reason', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'holds', 1)
redis.call('HDEL', KEYS[1], 'host', 'worker_pid', 'pid', 'pid_start')
redis.call('LREM', KEYS[2], 0, ARGV[1])
return 1
""")
# KEYS: job, jobs, finished. ARGV: id, now, exit code ("" when unknown), ending, stdout, stderr.
_FINISH = _lua("""
local f = redis.call('HMGET', KEYS[1], 'status', 'kill', 'finished')
if f[3] or (f[1] ~= '$RUNNING' and f[1] ~= '$REMOVED') then return 0 end
local final = '$COMPLETED'
if f[1] == '$REMOVED' or f[2] == '1' or ARGV[4] == '$ENDING_REMOVED' then final = '$REMOVED' end
if final ~= f[1] then redis.call('HSET', KEYS[1], 'entered', ARGV[2]) end
redis.call('HSET', KEYS[1], 'status', final, 'grid', '', 'exit_code', ARGV[3],
           'ending', ARGV[4], 'finished', ARGV[2])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'stdout', ARGV[5], 'stderr', ARGV[6]) end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
""")


class SiteQueue:
    """The Redis side of one local site: every read and transition of its jobs.

    Args:
        client: the state Redis.
        keys: the key names.
        site: the site name.
        clock: epoch seconds, for the times written into job hashes.
    """

    def __init__(
        self, client: redis.Redis, keys: Keys, site: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.site = site
        self._r, self._clock = client, clock
        self._job_prefix = keys.site_job(site, "")
        self._queue, self._jobs = keys.site_queue(site), keys.site_jobs(site)
        self._seq, self._finished = keys.site_sequence(site), keys.site_finished(site)
        self._scripts = {
            name: client.register_script(body)
            for name, body in [
                ("release", _RELEASE), ("remove", _REMOVE), ("claim", _CLAIM),
                ("see", _SEE), ("hold", _HOLD), ("finish", _FINISH),
            ]
        }  # fmt: skip

    def job_key(self, job_id: str) -> str:
        return self._job_prefix + job_id

    # -- the backend's side -------------------------------------------------------------------

    def submit(self, submission: Submission) -> list[str]:
        """Queue ``submission.count`` jobs in one transaction; return their ids."""
        common = submit_fields(submission, self._clock())
        if submission.count == 0:
            return []
        with redis_errors(f"submit {submission.count} glideins to local site {self.site!r}"):
            cluster = int(self._r.incr(self._seq))
            ids = [f"{cluster}.{proc}" for proc in range(submission.count)]
            pipe = self._r.pipeline(transaction=True)
            for job_id in ids:
                pipe.hset(self.job_key(job_id), mapping=cast(Any, common))
            pipe.sadd(self._jobs, *ids)
            pipe.rpush(self._queue, *ids)
            pipe.execute()
        return ids

    def live_jobs(self) -> list[SiteJob]:
        """Every job not finalised yet (idle, held, running, removed while running)."""
        with redis_errors(f"list the jobs of local site {self.site!r}"):
            members = cast(set[bytes], self._r.smembers(self._jobs))
        ids = sorted((text(m) for m in members), key=_id_order)
        return self.jobs(ids)

    def jobs(self, job_ids: Sequence[str]) -> list[SiteJob]:
        """The jobs among ``job_ids`` whose hash exists, in order."""
        with redis_errors(f"read jobs of local site {self.site!r}"):
            pipe = self._r.pipeline(transaction=False)  # read-only: no MULTI needed
            for job_id in job_ids:
                pipe.hgetall(self.job_key(job_id))
            replies = pipe.execute() if job_ids else []
        pairs = zip(job_ids, map(text_hash, replies), strict=True)
        return [job_from_fields(job_id, fields) for job_id, fields in pairs if fields]

    def release(self, job_id: str, owner: tuple[str, str, str]) -> bool:
        """HELD -> IDLE, queued again, if the job belongs to ``(factory, glidein, entry)``."""
        keys = [self.job_key(job_id), self._queue]
        return self._run("release", job_id, keys, [job_id, repr(self._clock()), *owner])

    def remove(self, job_id: str, owner: tuple[str, str, str], forcex: bool) -> bool:
        """Remove an owned job: at once when idle or held, by a kill request when running."""
        keys = [self.job_key(job_id), self._queue, self._jobs, self._finished]
        args = [job_id, repr(self._clock()), *owner, "1" if forcex else "0"]
        return self._run("remove", job_id, keys, args)

    def finished(self, since: float) -> list[SiteJob]:
        """Finalised jobs that ended at or after ``since``, oldest first."""
        with redis_errors(f"list finished jobs of local site {self.site!r}"):
            ids = cast(list[bytes], self._r.zrangebyscore(self._finished, since, "+inf"))
        return self.jobs([text(i) for i in ids])

    # -- the worker's side --------------------------------------------------------------------

    def claim(self, hold: bool, worker: tuple[str, int], reason: str) -> SiteJob | None:
        """Take the oldest idle job: to RUNNING for ``worker`` (host, pid), or to HELD."""
        args = [self._job_prefix, repr(self._clock()), "1" if hold else "0", worker[0]]
        args += [str(worker[1]), str(int(HoldCode.TRANSFER_INPUT_ERROR)), reason]
        with redis_errors(f"take a job from local site {self.site!r}"):
            reply = self._scripts["claim"](keys=[self._queue], args=args)
        if not reply:
            return None
        flat = [text(part) for part in reply[1]]
        return job_from_fields(text(reply[0]), dict(zip(flat[::2], flat[1::2], strict=True)))

    def see_queue(self) -> int:
        """Mark waiting jobs PENDING and remove those idle beyond their idle_lifetime."""
        keys = [self._queue, self._jobs, self._finished]
        with redis_errors(f"scan the queue of local site {self.site!r}"):
            args = [self._job_prefix, repr(self._clock())]
            return int(self._scripts["see"](keys=keys, args=args))

    def started(self, job_id: str, process: Mapping[str, str]) -> None:
        """Record the process of a running job (pid, pid_start, stdout, stderr)."""
        with redis_errors(f"record the process of job {job_id}"):
            self._r.hset(self.job_key(job_id), mapping=cast(Any, dict(process)))

    def hold(self, job_id: str, code: HoldCode, reason: str, running: bool = False) -> bool:
        """Put an idle job (or, with ``running``, a running one) on hold, NumSystemHolds + 1.

        The worker holds the running jobs it could not start; ``running=False`` is the site
        holding a queued job. Returns False when the job is not in that state or is being
        removed.
        """
        status = JobStatus.RUNNING if running else JobStatus.IDLE
        args = [job_id, repr(self._clock()), str(int(code)), reason, str(int(status))]
        return self._run("hold", job_id, [self.job_key(job_id), self._queue], args)

    def kill_requested(self, job_ids: Sequence[str]) -> list[str]:
        """The ids among ``job_ids`` whose removal was requested."""
        with redis_errors(f"read kill requests of local site {self.site!r}"):
            pipe = self._r.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hget(self.job_key(job_id), "kill")
            flags = pipe.execute() if job_ids else []
        return [j for j, flag in zip(job_ids, flags, strict=True) if flag and text(flag) == "1"]

    def finish(
        self, job_id: str, exit_code: int | None, ending: Ending, outputs: tuple[str, str] | None
    ) -> bool:
        """Finalise a job whose process ended: COMPLETED, or REMOVED if it was removed.

        ``outputs`` (stdout and stderr paths) are written again here, so that they are kept
        even when recording them at the start failed.
        """
        keys = [self.job_key(job_id), self._jobs, self._finished]
        code = "" if exit_code is None else str(exit_code)
        args = [job_id, repr(self._clock()), code, ending, *(outputs or ("", ""))]
        return self._run("finish", job_id, keys, args)

    def prune(self, before: float) -> list[SiteJob]:
        """Forget jobs finalised before ``before``; return them (their files are the caller's)."""
        with redis_errors(f"prune finished jobs of local site {self.site!r}"):
            reply = self._r.zrangebyscore(self._finished, "-inf", f"({before!r}")
        ids = [text(i) for i in cast(list[bytes], reply)]
        jobs = self.jobs(ids)
        if ids:
            with redis_errors(f"prune finished jobs of local site {self.site!r}"):
                pipe = self._r.pipeline(transaction=True)
                pipe.delete(*[self.job_key(job_id) for job_id in ids])
                pipe.zrem(self._finished, *ids)
                pipe.execute()
        return jobs

    def _run(self, script: str, job_id: str, keys: list[str], args: list[str]) -> bool:
        with redis_errors(f"{script} job {job_id} of local site {self.site!r}"):
            return bool(self._scripts[script](keys=keys, args=args))


def _id_order(job_id: str) -> tuple[int, ...]:
    """Numeric order of ``cluster.proc`` ids (anything else sorts first)."""
    parts = job_id.split(".")
    return tuple(map(int, parts)) if all(p.isdigit() for p in parts) else (-1,)


class LocalSiteBackend:
    """GridBackend of one entry whose glideins run at a local site.

    Args:
        client: the state Redis, shared with the site worker.
        keys: the key names.
        site: the site name (the site worker serving it must use the same).
        factory / glidein / entry: the identity whose glideins this backend holds.
        clock: epoch seconds, for submit, release and remove times.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        site: str,
        factory: str,
        glidein: str,
        entry: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = SiteQueue(client, keys, site, clock)
        self._owner = (factory, glidein, entry)

    def submit(self, submission: Submission) -> list[str]:
        """Queue the glideins (all or none, in one transaction); ids ``<cluster>.<proc>``.

        Raises:
            PermanentError: tags of another entry, a negative count, arguments or environment
                that cannot be passed to a process.
            TransientError: Redis is unreachable; nothing was queued.
        """
        check_submission(submission, *self._owner)
        return self._queue.submit(submission)

    def query(self) -> list[Glidein]:
        """Live glideins of this entry (removed and completed ones excluded)."""
        return [
            job.glidein()
            for job in self._queue.live_jobs()
            if self._owns(job) and job.job_status not in (JobStatus.REMOVED, JobStatus.COMPLETED)
        ]

    def release(self, job_ids: Sequence[str]) -> None:
        """Held glideins go back to the end of the queue; others and unknown ids are skipped."""
        for job_id in check_job_ids(job_ids):
            self._queue.release(job_id, self._owner)

    def remove(self, job_ids: Sequence[str], forcex: bool = False) -> None:
        """Remove glideins: idle and held ones at once, running ones by a kill request.

        The site worker acts on a kill request within about a second (SIGTERM to the process
        group, SIGKILL after its grace period); the glidein stays RUNNING until its process
        has ended, unless ``forcex``, which marks it REMOVED at once. Unknown ids and glideins
        of other entries are skipped.
        """
        for job_id in check_job_ids(job_ids):
            self._queue.remove(job_id, self._owner, forcex)

    def finished(self, since: float) -> list[SiteJob]:
        """Glideins of this entry that ran and ended at or after ``since``, oldest first.

        Each carries its status (COMPLETED, or REMOVED when killed on request), ``ending``,
        ``exit_code`` (``LOST_EXIT_CODE`` when lost) and the ``stdout``/``stderr`` paths, for
        the monitor's log parser. Records are kept for the site worker's retention period.
        """
        return [job for job in self._queue.finished(since) if self._owns(job) and job.stdout]

    def _owns(self, job: SiteJob) -> bool:
        tags = job.tags
        return (tags.factory, tags.glidein, tags.entry) == self._owner
