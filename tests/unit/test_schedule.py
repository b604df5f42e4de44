"""The schedule a config asks for: three tasks per enabled entry, three factory-wide ones."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.core.config import FactoryConfig, load_config
from gwms_tasks.queues import FACTORY_QUEUE, TaskName
from gwms_tasks.schedule import (
    EXPIRES_FRACTION,
    ScheduleItem,
    ScheduleKind,
    desired_schedule,
    is_factory_schedule_name,
)

FACTORY_WIDE = {"advertise_global", "credentials", "aggregate"}


def config_with(
    entries: dict[str, dict[str, Any]], loop_delay: float = 60, advertise_delay: int = 5
) -> FactoryConfig:
    data = {
        "factory": {
            "name": "f1",
            "web_url": "http://factory.example.org/stage",
            "stage_dir": "/srv/stage",
            "work_dir": "/srv/work",
            "log_dir": "/srv/log",
            "client_log_base_dir": "/srv/client_log",
            "client_proxies_base_dir": "/srv/client_proxies",
            "loop_delay": loop_delay,
            "advertise_delay": advertise_delay,
        },
        "redis": {"state_url": "redis://localhost/0", "broker_url": "redis://localhost/1"},
        "dashboard": {
            "kind": "redis",
            "url": "redis://localhost/2",
            "ad_lifetime": int(loop_delay * advertise_delay) + 1,
        },
        "frontends": {"fe1": {"identity": "fe1@fe.example.org", "security_classes": {"m": "u1"}}},
        "entries": {
            name: {"auth_method": "scitoken", "backend": {"kind": "simulated"}, **extra}
            for name, extra in entries.items()
        },
    }
    return load_config(yaml.safe_dump(data), "test.yaml")


def test_each_enabled_entry_gets_find_work_monitor_and_advertise() -> None:
    schedule = desired_schedule(config_with({"ce1": {}, "ce2": {}}))

    assert set(schedule) == FACTORY_WIDE | {
        f"{kind}:{entry}"
        for entry in ("ce1", "ce2")
        for kind in ("find_work", "monitor", "advertise")
    }
    assert schedule["find_work:ce2"].task is TaskName.FIND_WORK
    assert schedule["monitor:ce1"].kwargs() == {"entry": "ce1"}
    assert schedule["credentials"].kwargs() == {}


def test_disabled_entry_gets_no_tasks() -> None:
    schedule = desired_schedule(config_with({"ce1": {}, "off": {"enabled": False}}))

    assert not any(name.endswith(":off") for name in schedule)
    assert "find_work:ce1" in schedule


def test_adding_an_entry_adds_exactly_its_three_tasks() -> None:
    before = desired_schedule(config_with({"ce1": {}}))
    after = desired_schedule(config_with({"ce1": {}, "ce_new": {}}))

    assert set(after) - set(before) == {"find_work:ce_new", "monitor:ce_new", "advertise:ce_new"}
    assert set(before) - set(after) == set()
    assert all(after[name] == item for name, item in before.items())


def test_advertising_runs_every_advertise_delay_loops_and_the_rest_every_loop() -> None:
    schedule = desired_schedule(config_with({"ce1": {}}, loop_delay=30, advertise_delay=4))

    assert {name: item.interval for name, item in schedule.items()} == {
        "find_work:ce1": 30,
        "monitor:ce1": 30,
        "advertise:ce1": 120,
        "advertise_global": 120,
        "credentials": 30,
        "aggregate": 30,
    }


@given(
    loop_delay=st.floats(min_value=0.5, max_value=3600),
    advertise_delay=st.integers(min_value=1, max_value=20),
)
def test_every_item_expires_before_its_next_run_on_the_factory_queue(
    loop_delay: float, advertise_delay: int
) -> None:
    schedule = desired_schedule(config_with({"ce1": {}}, loop_delay, advertise_delay))

    for name, item in schedule.items():
        assert item.name == name
        assert 0 < item.expires < item.interval
        assert item.expires == pytest.approx(item.interval * EXPIRES_FRACTION)
        assert item.options() == {"queue": FACTORY_QUEUE, "expires": item.expires}
        assert is_factory_schedule_name(name)


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        ("find_work:ce1", True),
        ("monitor:ce.2-x", True),
        ("advertise:ce1", True),
        ("credentials", True),
        ("aggregate", True),
        ("advertise_global", True),
        ("find_work", False),  # a per-entry kind needs its entry
        ("find_work:", False),
        ("find_work:ce1:extra", False),
        ("credentials:ce1", False),  # factory-wide kinds take no entry
        ("nightly_report", False),
        ("celery.backend_cleanup", False),
    ],
)
def test_only_names_the_factory_produces_are_its_own(name: str, ours: bool) -> None:
    assert is_factory_schedule_name(name) is ours


def test_item_name_is_its_kind_then_its_entry() -> None:
    assert ScheduleItem(ScheduleKind.MONITOR, 60, "ce1").name == "monitor:ce1"
    assert ScheduleItem(ScheduleKind.AGGREGATE, 60).name == "aggregate"
