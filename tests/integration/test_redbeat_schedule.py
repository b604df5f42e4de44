"""The beat schedule in RedBeat: synced from the config, reloaded without restarting anything.

The last tests run a real ``celery beat`` (RedBeat) and a real worker with stand-in tasks.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import schedule as every
from redbeat.schedulers import RedBeatSchedulerEntry

from gwms_tasks.celery_app import CONFIG_ENV, make_celery
from gwms_tasks.core.config import load_config
from gwms_tasks.errors import ConfigError, TransientError
from gwms_tasks.keys import Keys
from gwms_tasks.queues import FACTORY_QUEUE, TaskName
from gwms_tasks.schedule import (
    SyncReport,
    current_config,
    current_config_hash,
    desired_schedule,
    refresh_config,
    reload,
    sync_redbeat,
    token_digest,
)
from tests.integration.celery_app_probe import (
    PROBE_MODULE,
    PROBE_URL_ENV,
    Process,
    broker_db,
    config_yaml,
    runs,
    start_celery,
    start_process,
    wait_for,
)
from tests.redis_server import free_port

pytestmark = pytest.mark.redis

KEYS = Keys()
PREFIX = KEYS.redbeat_prefix()
SCHEDULE = PREFIX + ":schedule"
START_FACTORY = (
    "import sys; from pathlib import Path; from gwms_tasks.worker_start import "
    "start_factory_worker as start; "
    "sys.exit(start(Path(sys.argv[1]), 1, 'INFO', include=(sys.argv[2],)))"
)
START_BEAT = (
    "import sys; from pathlib import Path; from gwms_tasks.worker_start import start_beat; "
    "sys.exit(start_beat(Path(sys.argv[1]), 'INFO'))"
)
OPERATOR_TOKEN = "operator-token-never-in-redis-1234"


def _text(redis_url: str, entries: tuple[str, ...], **options: Any) -> str:
    return config_yaml(
        state_url=redis_url, broker_url=broker_db(redis_url), entries=entries, **options
    )


def _app(text: str) -> Celery:
    return make_celery(load_config(text, "test.yaml"), include=())


def _sync(redis_url: str, *entries: str, **options: Any) -> SyncReport:
    text = _text(redis_url, entries, **options)
    app = _app(text)
    try:
        return sync_redbeat(app, desired_schedule(load_config(text, "test.yaml")))
    finally:
        app.close()


def _scheduled(client: redis.Redis) -> set[str]:
    return {key.decode().removeprefix(PREFIX) for key in client.zrange(SCHEDULE, 0, -1)}


def _snapshot(redis_url: str) -> dict[tuple[int, bytes], bytes | None]:
    """Every key of the state and broker databases with its serialized value."""
    found = {}
    for db in (0, 1):
        client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + f"/{db}")
        found |= {(db, key): client.dump(key) for key in client.keys("*")}
        client.close()
    return found


def _entry_names(*entries: str) -> set[str]:
    per_entry = {f"{kind}:{e}" for e in entries for kind in ("find_work", "monitor", "advertise")}
    return per_entry | {"advertise_global", "credentials", "aggregate"}


# ----------------------------------------------------------------------------- sync


def test_new_entry_gains_its_three_tasks(redis_url: str, redis_client: redis.Redis) -> None:
    first = _sync(redis_url, "ce1")
    second = _sync(redis_url, "ce1", "ce2")

    assert set(first.added) == _entry_names("ce1")
    assert second == SyncReport(added=("advertise:ce2", "find_work:ce2", "monitor:ce2"))
    assert _scheduled(redis_client) == _entry_names("ce1", "ce2")


def test_entries_are_stored_with_their_task_kwargs_queue_and_expiry(
    redis_url: str, redis_client: redis.Redis
) -> None:
    text = _text(redis_url, ("ce1",), loop_delay=60, advertise_delay=5)
    _sync(redis_url, "ce1", loop_delay=60, advertise_delay=5)
    app = _app(text)

    entry = RedBeatSchedulerEntry.from_key(PREFIX + "advertise:ce1", app=app)

    assert entry.task == TaskName.ADVERTISE
    assert entry.kwargs == {"entry": "ce1"}
    assert entry.options == {"queue": FACTORY_QUEUE, "expires": 270.0}
    assert entry.schedule.run_every.total_seconds() == 300
    app.close()


def test_removed_entry_loses_its_tasks_and_other_entries_stay(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = _app(_text(redis_url, ("ce1",)))
    for foreign in ("nightly_report", "find_work:ce1:extra"):
        RedBeatSchedulerEntry(foreign, "other.task", every(3600), app=app).save()
    _sync(redis_url, "ce1", "ce2")

    report = _sync(redis_url, "ce2")

    assert report == SyncReport(removed=("advertise:ce1", "find_work:ce1", "monitor:ce1"))
    assert _scheduled(redis_client) == _entry_names("ce2") | {
        "nightly_report",
        "find_work:ce1:extra",
    }
    assert not redis_client.exists(PREFIX + "find_work:ce1")
    assert redis_client.exists(PREFIX + "nightly_report")
    app.close()


def test_disabled_entry_loses_its_tasks(redis_url: str, redis_client: redis.Redis) -> None:
    _sync(redis_url, "ce1", "ce2")
    disabled = {
        "entries": {
            "ce1": {"auth_method": "scitoken", "backend": {"kind": "simulated"}},
            "ce2": {"auth_method": "scitoken", "backend": {"kind": "simulated"}, "enabled": False},
        }
    }

    report = _sync(redis_url, "ce1", "ce2", extra=disabled)

    assert set(report.removed) == {"advertise:ce2", "find_work:ce2", "monitor:ce2"}


def test_changed_cadence_rewrites_entries_and_keeps_their_last_run(
    redis_url: str, redis_client: redis.Redis
) -> None:
    _sync(redis_url, "ce1", loop_delay=60)
    app = _app(_text(redis_url, ("ce1",), loop_delay=60))
    last_run = datetime.now(UTC) - timedelta(seconds=10)
    RedBeatSchedulerEntry.from_key(PREFIX + "find_work:ce1", app=app).reschedule(last_run)

    report = _sync(redis_url, "ce1", loop_delay=30)

    assert set(report.changed) == _entry_names("ce1")
    entry = RedBeatSchedulerEntry.from_key(PREFIX + "find_work:ce1", app=app)
    assert entry.schedule.run_every.total_seconds() == 30
    assert entry.last_run_at == last_run
    # next run 30 s after the last one, not at once: no extra cycle because of the reload
    due_now, next_check = entry.is_due()
    assert not due_now
    assert next_check == pytest.approx(20, abs=2)
    app.close()


def test_sync_of_an_unchanged_config_touches_nothing(redis_url: str) -> None:
    _sync(redis_url, "ce1", "ce2")

    assert _sync(redis_url, "ce1", "ce2") == SyncReport()


def test_unreadable_stored_entry_is_rewritten(redis_url: str, redis_client: redis.Redis) -> None:
    _sync(redis_url, "ce1")
    redis_client.hset(PREFIX + "monitor:ce1", "definition", "{not json")

    assert _sync(redis_url, "ce1") == SyncReport(changed=("monitor:ce1",))


# --------------------------------------------------------------------------- reload


def test_bad_config_reload_is_refused_and_changes_nothing(redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(_text(redis_url, ("ce1",)))
    reload(config)
    before = _snapshot(redis_url)
    config.write_text(_text(redis_url, ("ce1", "ce2"), extra={"surprise": 1}))

    with pytest.raises(ConfigError) as caught:
        reload(config)

    assert caught.value.source == str(config)
    assert any("surprise" in problem for problem in caught.value.problems)
    assert _snapshot(redis_url) == before


def test_missing_config_file_is_refused_and_changes_nothing(redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(_text(redis_url, ("ce1",)))
    reload(config)
    before = _snapshot(redis_url)

    with pytest.raises(ConfigError, match="cannot read the file"):
        reload(tmp_path / "gone.yaml")
    assert _snapshot(redis_url) == before


def test_reload_stores_the_accepted_config_for_workers(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(_text(redis_url, ("ce1",)))

    first = reload(config)
    accepted = current_config(redis_client, KEYS)

    assert first.config_changed
    assert accepted is not None
    assert accepted.config == load_config(config.read_text(), "x")
    assert accepted.sha256 == first.sha256 == current_config_hash(redis_client, KEYS)
    assert accepted.source == str(config)
    assert refresh_config(redis_client, KEYS, first.sha256) is None

    config.write_text(_text(redis_url, ("ce1", "ce2")))
    second = reload(config)
    refreshed = refresh_config(redis_client, KEYS, first.sha256)

    assert second.config_changed
    assert second.sync.added == ("advertise:ce2", "find_work:ce2", "monitor:ce2")
    assert refreshed is not None
    assert set(refreshed.config.entries) == {"ce1", "ce2"}
    assert not reload(config).config_changed


def test_no_accepted_config_before_the_first_reload(redis_client: redis.Redis) -> None:
    assert current_config(redis_client, KEYS) is None
    assert current_config_hash(redis_client, KEYS) is None
    assert refresh_config(redis_client, KEYS, None) is None


def test_operator_token_never_reaches_redis(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(_text(redis_url, ("ce1",), extra={"web": {"operator_token": OPERATOR_TOKEN}}))

    reload(config)
    accepted = current_config(redis_client, KEYS)

    assert accepted is not None
    stored = accepted.config.web.operator_token
    assert stored is not None
    expected = "sha256:" + hashlib.sha256(OPERATOR_TOKEN.encode()).hexdigest()
    assert stored.get_secret_value() == expected  # its digest: the web servers check against it
    assert not any(
        OPERATOR_TOKEN.encode() in (value or b"") for value in _snapshot(redis_url).values()
    )


def test_a_new_or_removed_operator_token_changes_the_stored_config(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    config = tmp_path / "factory.yaml"
    texts = [
        _text(redis_url, ("ce1",), extra={"web": {"operator_token": OPERATOR_TOKEN}}),
        _text(redis_url, ("ce1",), extra={"web": {"operator_token": OPERATOR_TOKEN + "-new"}}),
        _text(redis_url, ("ce1",)),
    ]
    tokens = []
    for text in texts:
        config.write_text(text)
        assert reload(config).config_changed
        accepted = current_config(redis_client, KEYS)
        assert accepted is not None
        token = accepted.config.web.operator_token
        tokens.append(None if token is None else token.get_secret_value())

    assert tokens == [token_digest(OPERATOR_TOKEN), token_digest(OPERATOR_TOKEN + "-new"), None]


def test_a_token_configured_as_its_digest_is_stored_as_it_is(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    digest = token_digest(OPERATOR_TOKEN)
    config = tmp_path / "factory.yaml"
    config.write_text(_text(redis_url, ("ce1",), extra={"web": {"operator_token": digest}}))

    reload(config)
    accepted = current_config(redis_client, KEYS)

    assert accepted is not None and accepted.config.web.operator_token is not None
    assert accepted.config.web.operator_token.get_secret_value() == digest


def test_tampered_accepted_config_is_refused(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(_text(redis_url, ("ce1",)))
    reload(config)
    redis_client.hset(KEYS.accepted_config(), "text", _text(redis_url, ("ce1", "rogue")))

    with pytest.raises(ConfigError, match="does not match its sha256"):
        current_config(redis_client, KEYS)


def test_unreachable_redis_makes_reload_a_transient_failure(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(_text(f"redis://127.0.0.1:{free_port()}/0", ("ce1",)))

    with pytest.raises(TransientError, match="beat schedule"):
        reload(config)


# ------------------------------------------------------------------- real processes


def _ran(client: redis.Redis, task: str, entry: str) -> int:
    return sum(1 for r in runs(client) if r["task"] == task and r["kwargs"].get("entry") == entry)


@pytest.fixture
def factory_worker(redis_url: str, tmp_path: Path) -> Iterator[Process]:
    config = tmp_path / "worker.yaml"
    config.write_text(_text(redis_url, ("ce1",), loop_delay=1))
    argv = [sys.executable, "-c", START_FACTORY, str(config), PROBE_MODULE]
    worker = start_process(argv, tmp_path / "worker.log", {PROBE_URL_ENV: redis_url})
    yield worker
    worker.stop()


@pytest.mark.slow
def test_beat_fires_entries_and_follows_reloads_without_restart(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, factory_worker: Process
) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(_text(redis_url, ("ce1",), loop_delay=1, advertise_delay=2))
    reload(config)
    beat = start_celery(
        ["-A", "gwms_tasks.celery_app:app", "beat", "-S", "redbeat.RedBeatScheduler", "-l", "INFO"],
        tmp_path / "beat.log",
        {CONFIG_ENV: str(config), PROBE_URL_ENV: redis_url},
    )
    try:
        wait_for(lambda: _ran(redis_client, TaskName.FIND_WORK, "ce1") >= 2, 60, "find_work:ce1")
        assert all(run["expires"] for run in runs(redis_client))
        assert 0 < redis_client.pttl(PREFIX + ":lock") <= 30_000

        config.write_text(_text(redis_url, ("ce1", "ce2"), loop_delay=1, advertise_delay=2))
        reload(config)
        wait_for(lambda: _ran(redis_client, TaskName.MONITOR, "ce2") >= 1, 15, "monitor:ce2")

        config.write_text(_text(redis_url, ("ce2",), loop_delay=1, advertise_delay=2))
        reload(config)
        time.sleep(2)  # let messages sent before the reload run or expire
        ce1_runs = _ran(redis_client, TaskName.FIND_WORK, "ce1")
        ce2_runs = _ran(redis_client, TaskName.FIND_WORK, "ce2")
        time.sleep(3)
        assert _ran(redis_client, TaskName.FIND_WORK, "ce1") == ce1_runs
        assert _ran(redis_client, TaskName.FIND_WORK, "ce2") > ce2_runs
        assert beat.popen.poll() is None, beat.output()
        assert not redis_client.exists(PREFIX + "celery.backend_cleanup")
    finally:
        beat.stop()
    assert "beat: Acquired lock" in beat.output()


@pytest.mark.slow
def test_starting_beat_syncs_the_schedule_of_its_config(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(_text(redis_url, ("ce1", "ce2")))
    argv = [sys.executable, "-c", START_BEAT, str(config)]
    beat = start_process(argv, tmp_path / "beat.log", {})
    try:
        wait_for(lambda: "beat: Acquired lock" in beat.output(), 60, "beat to take its lock")
    finally:
        beat.stop()
    assert _scheduled(redis_client) == _entry_names("ce1", "ce2")
    assert current_config_hash(redis_client, KEYS) is not None


@pytest.mark.slow
def test_standby_beat_waits_for_the_lock_and_takes_over_when_the_active_one_dies(
    redis_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(_text(redis_url, ("ce1",), loop_delay=1))
    reload(config)
    args = ["-A", "gwms_tasks.celery_app:app", "beat", "-l", "INFO"]
    env = {CONFIG_ENV: str(config)}
    active = start_celery(args, tmp_path / "active.log", env)
    standby = None
    try:
        wait_for(lambda: "beat: Acquired lock" in active.output(), 60, "the first beat's lock")
        standby = start_celery(args, tmp_path / "standby.log", env)
        wait_for(lambda: "beat: Starting..." in standby.output(), 60, "the standby to start")
        time.sleep(3)
        assert "Sending due task" not in standby.output()

        active.popen.kill()
        killed_at = time.monotonic()
        wait_for(lambda: "Sending due task" in standby.output(), 60, "the standby to take over")
        # the lock expires 30 s (3 loops, at least 30 s) after the last renewal
        assert time.monotonic() - killed_at < 30 + 5
    finally:
        active.stop()
        if standby is not None:
            standby.stop()
