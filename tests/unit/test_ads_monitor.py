"""Monitoring values of factory ads (§1.1, §1.3, §8 item 14)."""

from __future__ import annotations

import pytest

from gwms_tasks.core.ads import (
    CLIENT_MONITOR_VALUES,
    COMPLETED_JOBS_BINS,
    REQUESTED_VALUES,
    STATUS_VALUES,
    ClientMonitor,
    FactoryLimit,
    LimitTriggered,
    MonitorSection,
    Requested,
    monitor_totals,
    monitor_values,
)
from gwms_tasks.core.classad_text import AdFormatError, check_attr_name
from gwms_tasks.core.model import StatusCounts

COUNTS = StatusCounts(wait=1, pending=2, stage_in=3, idle_other=4, running=5, stage_out=6, held=7)


def test_status_values_come_from_the_detailed_counts() -> None:
    values = monitor_values(COUNTS, Requested(), running_cores=40)
    assert {k: v for k, v in values.items() if k.startswith("Status")} == {
        "StatusIdle": 10,
        "StatusRunning": 5,
        "StatusHeld": 7,
        "StatusWait": 1,
        "StatusPending": 2,
        "StatusStageIn": 3,
        "StatusIdleOther": 4,
        "StatusStageOut": 6,
        "StatusRunningCores": 40,
    }


def test_requested_and_client_values_follow_their_fields() -> None:
    requested = Requested(idle=8, adjusted_idle=6, max_glideins=50, idle_cores=64, max_cores=400)
    client = ClientMonitor(info_age=30, jobs_idle=100, jobs_running=20, jobs_run_here=15,
                           glide_idle=6, glide_running=5, glide_total=12, cores_idle=48,
                           cores_running=40, cores_total=96)  # fmt: skip
    values = monitor_values(StatusCounts(), requested, client)
    assert {k: v for k, v in values.items() if k.startswith("Requested")} == {
        "RequestedIdle": 8,
        "RequestedAdjustedIdle": 6,
        "RequestedMaxGlideins": 50,
        "RequestedIdleCores": 64,
        "RequestedMaxCores": 400,
    }
    assert values["ClientMonitorInfoAge"] == 30
    assert values["ClientMonitorJobsRunHere"] == 15
    assert values["ClientMonitorGlideTotal"] == 12
    assert values["ClientMonitorCoresTotal"] == 96


def test_without_client_counters_no_client_monitor_values_are_published() -> None:
    values = monitor_values(COUNTS, Requested())
    assert not any(name.startswith(MonitorSection.CLIENT_MONITOR) for name in values)
    assert len(values) == len(STATUS_VALUES) + len(REQUESTED_VALUES)


def test_every_monitor_name_is_a_valid_attribute_name_once_prefixed() -> None:
    values = monitor_values(COUNTS, Requested(), ClientMonitor())
    assert len(values) == len(STATUS_VALUES) + len(REQUESTED_VALUES) + len(CLIENT_MONITOR_VALUES)
    for name in [*values, *(f"CompletedJobsPerEntry{b}" for b in COMPLETED_JOBS_BINS)]:
        check_attr_name("GlideinMonitor" + name)


def test_entry_totals_sum_the_clients_under_total() -> None:
    one = monitor_values(COUNTS, Requested(idle=8))
    two = monitor_values(StatusCounts(running=2), Requested(idle=1))
    totals = monitor_totals([one, two])
    assert totals["TotalStatusRunning"] == 7
    assert totals["TotalStatusIdle"] == 10
    assert totals["TotalRequestedIdle"] == 9
    assert set(totals) == {"Total" + name for name in one}


def test_no_clients_make_no_totals() -> None:
    assert monitor_totals([]) == {}


def test_client_counters_are_taken_from_the_request_monitor_values() -> None:
    request_monitor = {"Idle": 100, "Running": 20, "RunningHere": 15, "GlideinsIdle": 6,
                       "GlideinsRunning": 5, "GlideinsTotal": 12, "GlideinsIdleCores": 48,
                       "GlideinsRunningCores": 40, "GlideinsTotalCores": "many"}  # fmt: skip
    client = ClientMonitor.from_request(request_monitor, info_age=30)
    assert client == ClientMonitor(30, 100, 20, 15, 6, 5, 12, 48, 40, 0)


def test_a_limit_flag_reads_count_and_limit() -> None:
    flag = LimitTriggered(FactoryLimit.IDLE_PER_CLASS, 12, 10, "vo_frontend:main-1")
    assert flag.text == "count=12, limit=10"
    assert flag.monitor_name == "Status_GlideFactoryLimitIdlePerClass_vo_5Ffrontend_3Amain_2D1"
    assert LimitTriggered.parse(flag.monitor_name, flag.text) == flag


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("Status_GlideFactoryLimitIdleGlideinsPerEntry", "count=1"),
        ("Status_GlideFactoryLimitNoSuchLimit", "count=1, limit=2"),
        ("StatusIdle", "count=1, limit=2"),
        ("Status_GlideFactoryLimitIdlePerClass_nocolon", "count=1, limit=2"),
    ],
)
def test_a_malformed_limit_flag_is_refused(name: str, text: str) -> None:
    with pytest.raises(AdFormatError):
        LimitTriggered.parse(name, text)
