"""The factory's Celery app and its workers, as real processes against a private Redis.

The workers are started through ``gwms_tasks.worker_start`` (what ``gwms worker ...`` calls)
with stand-in tasks that record who ran them (``celery_app_probe``). As root, the user worker
runs for a Unix user created for the test; otherwise for the user running the tests.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from celery import Celery
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.celery_app import (
    CONFIG_ENV,
    CeleryTimings,
    app_from_env,
    factory_config_of,
    make_celery,
)
from gwms_tasks.core.config import load_config
from gwms_tasks.errors import ConfigError, PermanentError
from gwms_tasks.privileges import lookup_user
from gwms_tasks.queues import FACTORY_QUEUE, TaskName, user_queue, valid_username
from tests.integration.celery_app_probe import (
    PROBE_MODULE,
    PROBE_URL_ENV,
    Process,
    broker_db,
    can_create_users,
    config_yaml,
    runs,
    start_process,
    temporary_users,
    wait_for,
)

HOST = socket.gethostname()
START_FACTORY = (
    "import sys; from pathlib import Path; from gwms_tasks.worker_start import "
    "start_factory_worker as start; "
    "sys.exit(start(Path(sys.argv[1]), 1, 'INFO', include=(sys.argv[2],)))"
)
START_USER = (
    "from tests.integration.celery_app_probe import preload_stdlib; preload_stdlib(); "
    "import sys; from pathlib import Path; from gwms_tasks.worker_start import "
    "start_user_worker as start; "
    "sys.exit(start(Path(sys.argv[1]), sys.argv[3], 'INFO', concurrency=1, include=(sys.argv[2],)))"
)


def _app(text: str) -> Celery:
    return make_celery(load_config(text, "test.yaml"), include=())


# ------------------------------------------------------------------------- settings


def test_app_speaks_json_only_and_acknowledges_late() -> None:
    conf = _app(config_yaml(state_url="redis://h/0", broker_url="redis://h/1")).conf

    assert (conf.task_serializer, conf.result_serializer, conf.event_serializer) == ("json",) * 3
    assert conf.accept_content == ["json"]
    assert conf.result_accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_default_queue == FACTORY_QUEUE
    assert conf.task_ignore_result is True
    assert (conf.worker_send_task_events, conf.task_send_sent_event) == (True, True)


def test_schedule_and_its_lock_live_in_the_state_redis_under_the_gwms_prefix() -> None:
    conf = _app(config_yaml(state_url="redis://state/0", broker_url="amqp://mq//")).conf

    assert conf.broker_url == "amqp://mq//"
    assert conf.redbeat_redis_url == "redis://state/0"
    assert conf.redbeat_key_prefix == "gwms:redbeat:"
    assert conf.beat_scheduler == "redbeat.RedBeatScheduler"


@given(loop_delay=st.floats(min_value=0.1, max_value=86400))
def test_no_running_task_is_ever_redelivered_and_beat_keeps_its_lock(loop_delay: float) -> None:
    timings = CeleryTimings.for_loop_delay(loop_delay)

    assert timings.visibility_timeout >= 2 * timings.task_time_limit
    assert timings.visibility_timeout >= 3600
    assert 30 <= timings.beat_lock_timeout <= 120
    assert timings.beat_max_loop_interval <= timings.beat_lock_timeout / 4
    assert timings.beat_max_loop_interval <= loop_delay


def test_visibility_timeout_reaches_the_broker_transport() -> None:
    text = config_yaml(state_url="redis://h/0", broker_url="redis://h/1", loop_delay=900)
    conf = _app(text).conf

    assert conf.broker_transport_options["visibility_timeout"] == 9000
    assert conf.task_time_limit == 4500


def test_user_task_without_user_queue_is_refused_before_reaching_the_broker() -> None:
    # Port 1 is closed: a message that got as far as the broker would fail differently.
    app = _app(config_yaml(state_url="redis://h/0", broker_url="redis://127.0.0.1:1/1"))

    with pytest.raises(PermanentError, match="must be sent to a user queue"):
        app.send_task(TaskName.SUBMIT, kwargs={"entry": "ce1"})


def test_tasks_reach_the_config_their_app_was_built_from() -> None:
    text = config_yaml(state_url="redis://h/0", broker_url="redis://h/1")
    config = load_config(text, "test.yaml")

    assert factory_config_of(make_celery(config, include=())) is config
    with pytest.raises(PermanentError, match="not built by make_celery"):
        factory_config_of(Celery("other"))


def test_app_from_env_without_the_variable_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        app_from_env({})
    assert caught.value.source == CONFIG_ENV
    assert "not set" in caught.value.problems[0]


def test_app_from_env_reports_a_bad_config_file(tmp_path: Path) -> None:
    bad = tmp_path / "factory.yaml"
    bad.write_text("factory: [not, a, mapping]\n")

    with pytest.raises(ConfigError) as caught:
        app_from_env({CONFIG_ENV: str(bad)})
    assert caught.value.source == str(bad)


def test_celery_command_line_builds_the_app_from_gwms_config(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(config_yaml(state_url="redis://h/0", broker_url="redis://h/1"))
    celery = Path(sys.executable).with_name("celery")

    report = subprocess.run(
        [str(celery), "-A", "gwms_tasks.celery_app:app", "report"],
        env={"PATH": "/usr/bin:/bin", CONFIG_ENV: str(config)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert "task_acks_late: True" in report.stdout
    assert "accept_content: ['json']" in report.stdout


# -------------------------------------------------------------------------- workers


@pytest.fixture
def local_user() -> Iterator[str]:
    """A user a worker can run as: a created one as root, else the user running the tests."""
    if can_create_users():
        with temporary_users(1) as (name,):
            yield name
        return
    name = getpass.getuser()
    if name == "root" or not valid_username(name):
        pytest.skip(f"no usable local user (running as {name!r} without useradd)")
    yield name


@dataclass
class Site:
    """The config of a test factory, a producer app, and the state/broker Redis clients."""

    config_path: Path
    state_url: str
    app: Celery
    state: redis.Redis
    broker: redis.Redis
    user: str
    tmp: Path

    def start(self, code: str, log: str, *args: str) -> Process:
        argv = [sys.executable, "-c", code, str(self.config_path), PROBE_MODULE, *args]
        return start_process(argv, self.tmp / log, {PROBE_URL_ENV: self.state_url})

    def wait_until_online(self, *nodes: str, process: Process) -> None:
        def online() -> bool:
            assert process.popen.poll() is None, process.output()
            replies = self.app.control.ping(destination=list(nodes), timeout=0.5)
            return {name for reply in replies for name in reply} == set(nodes)

        wait_for(online, 60, f"workers {nodes} to answer a ping", interval=0)


@pytest.fixture
def site(redis_url: str, local_user: str, tmp_path: Path) -> Iterator[Site]:
    text = config_yaml(
        state_url=redis_url, broker_url=broker_db(redis_url), users={"main": local_user}
    )
    config_path = tmp_path / "factory.yaml"
    config_path.write_text(text)
    app = _app(text)
    state, broker = redis.Redis.from_url(redis_url), redis.Redis.from_url(broker_db(redis_url))
    yield Site(config_path, redis_url, app, state, broker, local_user, tmp_path)
    app.close()
    state.close()
    broker.close()


@pytest.fixture
def factory_worker(site: Site) -> Iterator[Process]:
    process = site.start(START_FACTORY, "factory.log")
    try:
        site.wait_until_online(f"factory@{HOST}", process=process)
        yield process
    finally:
        process.stop()


@pytest.fixture
def user_worker(site: Site) -> Iterator[Process]:
    process = site.start(START_USER, "user.log", site.user)
    try:
        site.wait_until_online(f"user-{site.user}@{HOST}", process=process)
        yield process
    finally:
        process.stop()


@pytest.mark.redis
@pytest.mark.slow
def test_each_worker_consumes_only_its_own_queue(
    site: Site, factory_worker: Process, user_worker: Process
) -> None:
    nodes = [f"factory@{HOST}", f"user-{site.user}@{HOST}"]
    queues = site.app.control.inspect(destination=nodes, timeout=2).active_queues()

    assert {node: [q["name"] for q in found] for node, found in queues.items()} == {
        f"factory@{HOST}": [FACTORY_QUEUE],
        f"user-{site.user}@{HOST}": [user_queue(site.user)],
    }


@pytest.mark.redis
@pytest.mark.slow
def test_user_task_runs_as_its_user_and_factory_task_on_the_factory_worker(
    site: Site, factory_worker: Process, user_worker: Process
) -> None:
    site.app.send_task(TaskName.SUBMIT, kwargs={"count": 3}, queue=user_queue(site.user))
    site.app.send_task(TaskName.FIND_WORK, kwargs={"entry": "ce1"})

    wait_for(lambda: len(runs(site.state)) == 2, 30, "both tasks to run")
    by_task = {run["task"]: run for run in runs(site.state)}
    assert by_task[TaskName.SUBMIT] == {
        "task": TaskName.SUBMIT,
        "kwargs": {"count": 3},
        "uid": lookup_user(site.user).uid,
        "queue": user_queue(site.user),
        "hostname": f"user-{site.user}@{HOST}",
        "expires": None,
        "factory": "test_factory",
    }
    assert by_task[TaskName.FIND_WORK]["queue"] == FACTORY_QUEUE
    assert by_task[TaskName.FIND_WORK]["hostname"] == f"factory@{HOST}"


@pytest.mark.redis
@pytest.mark.slow
def test_pickle_message_is_refused_and_discarded_while_json_runs(
    site: Site, factory_worker: Process
) -> None:
    site.app.send_task(TaskName.MONITOR, kwargs={"entry": "pickled"}, serializer="pickle")
    site.app.send_task(TaskName.MONITOR, kwargs={"entry": "json"})

    wait_for(lambda: len(runs(site.state)) >= 1, 30, "the JSON task to run")
    assert [run["kwargs"] for run in runs(site.state)] == [{"entry": "json"}]
    assert "Refusing to deserialize untrusted content of type pickle" in factory_worker.output()
    assert site.broker.llen(FACTORY_QUEUE) == 0
    assert site.broker.hlen("unacked") == 0


@pytest.mark.redis
@pytest.mark.slow
def test_task_whose_worker_process_is_killed_runs_again_once(
    site: Site, factory_worker: Process
) -> None:
    site.app.send_task(TaskName.MONITOR, kwargs={"entry": "ce1", "die_once": "t1"})

    wait_for(lambda: bool(runs(site.state)), 30, "the task to run again")
    assert site.state.exists("probe:died:t1")
    assert [run["kwargs"] for run in runs(site.state)] == [{"entry": "ce1", "die_once": "t1"}]
    assert "WorkerLostError" in factory_worker.output()
    wait_for(lambda: site.broker.hlen("unacked") == 0, 10, "the redelivered task to be acked")
    assert site.broker.llen(FACTORY_QUEUE) == 0


def test_user_worker_for_a_user_no_frontend_maps_to_refuses_to_start(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(
        config_yaml(state_url="redis://h/0", broker_url="redis://h/1", users={"main": "fe_one"})
    )

    done = subprocess.run(
        [sys.executable, "-c", START_USER, str(config), PROBE_MODULE, "fe_other"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode != 0
    assert "no frontend security class maps to local user 'fe_other'" in done.stderr


# ------------------------------------------------------------------------- RabbitMQ

RABBITMQ = ("127.0.0.1", 5672)


def _rabbitmq_reachable() -> bool:
    try:
        with socket.create_connection(RABBITMQ, timeout=1):
            return shutil.which("rabbitmqctl") is not None
    except OSError:
        return False


@pytest.fixture
def rabbitmq_vhost() -> Iterator[str]:
    """A private vhost on the local RabbitMQ (guest may use it), deleted afterwards."""
    if not _rabbitmq_reachable():
        pytest.skip("no RabbitMQ with rabbitmqctl on 127.0.0.1:5672")
    vhost = f"gwms-test-{uuid.uuid4().hex[:8]}"
    ctl = ["rabbitmqctl", "-q"]
    made = subprocess.run([*ctl, "add_vhost", vhost], capture_output=True, timeout=60, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot create a RabbitMQ vhost: {made.stderr.decode(errors='replace')}")
    try:
        subprocess.run(
            [*ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            capture_output=True,
            timeout=60,
            check=True,
        )
        yield vhost
    finally:
        subprocess.run([*ctl, "delete_vhost", vhost], capture_output=True, timeout=60, check=False)


@pytest.mark.redis
@pytest.mark.slow
def test_rabbitmq_broker_carries_a_task_to_the_factory_worker(
    redis_url: str, rabbitmq_vhost: str, tmp_path: Path
) -> None:
    broker = f"amqp://guest:guest@{RABBITMQ[0]}:{RABBITMQ[1]}/{rabbitmq_vhost}"
    text = config_yaml(state_url=redis_url, broker_url=broker, users={"main": "fe_one"})
    config_path = tmp_path / "factory.yaml"
    config_path.write_text(text)
    app = _app(text)
    state = redis.Redis.from_url(redis_url)
    argv = [sys.executable, "-c", START_FACTORY, str(config_path), PROBE_MODULE]
    worker = start_process(argv, tmp_path / "factory.log", {PROBE_URL_ENV: redis_url})
    try:
        wait_for(
            lambda: bool(app.control.ping(timeout=0.5)) or worker.popen.poll() is not None,
            60,
            "the worker on RabbitMQ to answer",
            interval=0,
        )
        app.send_task(TaskName.ADVERTISE, kwargs={"entry": "ce1"})
        wait_for(lambda: bool(runs(state)), 30, "the task to run")
    finally:
        worker.stop()
        app.close()
    assert runs(state)[0]["kwargs"] == {"entry": "ce1"}
    assert runs(state)[0]["queue"] == FACTORY_QUEUE
    assert "Connected to amqp://guest:**@127.0.0.1:5672/" in worker.output()
