"""Every Redis key name of gwms-tasks, in one place.

Layout (``P`` = the configured prefix, ``gwms`` by default; names are joined with ``:``):

State store (persistent Redis: AOF, noeviction):
    P:entry:<entry>:snapshot              hash   last glidein query of the entry (fail-closed)
    P:entry:<entry>:decisions             hash   client -> JSON of the last decision
    P:entry:<entry>:inflight              hash   submit_key -> JSON of a queued submit task
    P:userkey:<username>                  string public key of that user's worker (PEM)
    P:ledger:<submit_key>                 hash   submit ledger record (idempotency)
    P:failed                              hash   failed_id -> JSON failed submit
    P:lock:<name>                         string lock token, with expiry
    P:ts:<entry>:<resolution>             zset   ring buffer of samples, scored by bucket start
    P:downtimes                           string the downtime file text (the CLI edits it)
    P:counters:<entry>                    hash   monotonically increasing counters
    P:completed:<entry>                   list   recent completed-glidein outcomes (JSON)
    P:completed:<entry>:seen:<job_id>     string marker of a recorded job (idempotency), with expiry
    P:completed:<entry>:min:<start>       hash   completed stats of one minute ("<stat>|<scope>"),
                                                 with expiry
    P:completed:<entry>:minutes           zset   the minute buckets kept, scored by their start
    P:completed:<entry>:totals            hash   completed stats since recording began
    P:completed:<entry>:mark              string finished_at of the newest outcome recorded
    P:config                              hash   accepted factory config: text, sha256, source
    P:redbeat:<schedule name>             hash   RedBeat schedule entry (+ P:redbeat::schedule zset,
                                                 P:redbeat::lock); see gwms_tasks/schedule.py
    P:site:<site>:queue / :job:<id> / ... local site backend (see adapters/local_site.py)
    P:sim:<entry>                         hash   simulated backend state
    P:credentials                         hash   [client, credential id] (JSON) -> JSON metadata
                                                 of a credential received (never its content)

Dashboard (may be a different Redis; each writer is an ACL user allowed only under its prefix):
    P:dash:w:<writer>:<ad_type>           hash   Name -> JSON {attrs, expires}
    P:dash:changes:<writer>               channel  pub/sub notice of changed ad Names
    P:dash:w:<writer>:frontend:explain    hash   a frontend's last cycle per group (JSON), under
                                                 its own writer prefix: the only keys its ACL
                                                 user may write
    P:dash:w:<writer>:<ad_type>:to:<bucket>  hash  Name -> ReqGlidein of the writer's request
                                                 ads whose ReqGlidein hashes to <bucket>
                                                 (request index: adapters/redis_dashboard_index.py)
    P:dash:w:<writer>:<ad_type>:to-expr   hash   Name -> "" of those whose ReqGlidein is an
                                                 expression
    P:dash:w:<writer>:<ad_type>:indexed   hash   present while the writer keeps the index
"""

from __future__ import annotations

DEFAULT_PREFIX = "gwms"


class Keys:
    """Key names under one prefix (so tests and several factories can share a Redis)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix or ":" in prefix or " " in prefix:
            raise ValueError(f"invalid Redis key prefix {prefix!r}")
        self.prefix = prefix

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # entry state
    def snapshot(self, entry: str) -> str:
        return self._k("entry", entry, "snapshot")

    def decisions(self, entry: str) -> str:
        return self._k("entry", entry, "decisions")

    def inflight(self, entry: str) -> str:
        return self._k("entry", entry, "inflight")

    def user_public_key(self, username: str) -> str:
        return self._k("userkey", username)

    def counters(self, entry: str) -> str:
        return self._k("counters", entry)

    def completed(self, entry: str) -> str:
        return self._k("completed", entry)

    # submissions
    def ledger(self, submit_key: str) -> str:
        return self._k("ledger", submit_key)

    def failed_submits(self) -> str:
        return self._k("failed")

    # coordination
    def lock(self, name: str) -> str:
        return self._k("lock", name)

    # monitoring
    def time_series(self, entry: str, resolution: str) -> str:
        return self._k("ts", entry, resolution)

    # operations
    def downtimes(self) -> str:
        return self._k("downtimes")

    # configuration and schedule
    def accepted_config(self) -> str:
        return self._k("config")

    def redbeat_prefix(self) -> str:
        """RedBeat's ``redbeat_key_prefix``: entry keys are this + the schedule name."""
        return self._k("redbeat") + ":"

    # local site backend
    def site_queue(self, site: str) -> str:
        return self._k("site", site, "queue")

    def site_job(self, site: str, job_id: str) -> str:
        return self._k("site", site, "job", job_id)

    def site_jobs(self, site: str) -> str:
        return self._k("site", site, "jobs")

    def site_sequence(self, site: str) -> str:
        return self._k("site", site, "seq")

    def site_finished(self, site: str) -> str:
        return self._k("site", site, "finished")

    # simulated backend
    def simulated(self, entry: str) -> str:
        return self._k("sim", entry)

    # dashboard
    def dashboard_writer_prefix(self, writer: str) -> str:
        """Every key a dashboard writer may write starts with this (its ACL key pattern)."""
        return self._k("dash", "w", writer) + ":"

    def dashboard_ads(self, writer: str, ad_type: str) -> str:
        return self._k("dash", "w", writer, ad_type)

    def dashboard_ads_pattern(self, ad_type: str) -> str:
        return self._k("dash", "w", "*", ad_type)

    def dashboard_channel(self, writer: str) -> str:
        return self._k("dash", "changes", writer)

    def dashboard_channel_pattern(self) -> str:
        return self._k("dash", "changes", "*")

    # credentials received from frontends (metadata only)
    def credentials(self) -> str:
        return self._k("credentials")

    # completed glideins (gwms_tasks/adapters/redis_completed.py)
    def completed_seen(self, entry: str, job_id: str) -> str:
        return self._k("completed", entry, "seen", job_id)

    def completed_minute(self, entry: str, bucket_start: int) -> str:
        return self._k("completed", entry, "min", str(bucket_start))

    def completed_minutes(self, entry: str) -> str:
        return self._k("completed", entry, "minutes")

    def completed_totals(self, entry: str) -> str:
        return self._k("completed", entry, "totals")

    def completed_mark(self, entry: str) -> str:
        return self._k("completed", entry, "mark")

    def frontend_explanations(self, writer: str) -> str:
        """A frontend's stored cycle explanations (group -> JSON), under its writer prefix."""
        return self._k("dash", "w", writer, "frontend", "explain")

    # request index of the dashboard (gwms_tasks/adapters/redis_dashboard_index.py)
    def dashboard_target_index(self, writer: str, ad_type: str, bucket: str) -> str:
        return self._k("dash", "w", writer, ad_type, "to", bucket)

    def dashboard_expr_index(self, writer: str, ad_type: str) -> str:
        return self._k("dash", "w", writer, ad_type, "to-expr")

    def dashboard_index_marker(self, writer: str, ad_type: str) -> str:
        return self._k("dash", "w", writer, ad_type, "indexed")
