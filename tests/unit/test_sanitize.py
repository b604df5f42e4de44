"""Stale and held glidein handling (gwms_tasks.core.sanitize)."""

from __future__ import annotations

import json

import pytest

from gwms_tasks.core.limits import EntryLimits, HeldPolicy, StaleAges
from gwms_tasks.core.model import Glidein
from gwms_tasks.core.sanitize import (
    JobAction,
    SanitizeAction,
    SanitizeReason,
    decide_sanitize,
    held_disposition,
)
from gwms_tasks.core.status import JobStatus

NOW = 1_700_000_000.0
STALE = StaleAges(idle=1000.0, running=5000.0)
LIMITS = EntryLimits(max_remove_per_cycle=5, max_release_per_cycle=2)
POLICY = HeldPolicy(
    recoverable={12: frozenset(), 30: frozenset({2})},
    max_releases=10,
    release_backoff=300.0,
    forcex_after=20,
)


def glidein(
    job_id: str,
    status: JobStatus,
    age: float = 0.0,
    code: int | None = None,
    subcode: int | None = None,
    holds: int = 0,
    server_time: float | None = None,
) -> Glidein:
    clock = NOW if server_time is None else server_time
    return Glidein(
        job_id=job_id,
        entry="ce1",
        client="vo.main",
        security_class="sc",
        credential_id="cred1",
        frontend="vo:sc",
        job_status=status,
        entered_current_status=clock - age,
        server_time=server_time,
        hold_reason_code=code,
        hold_reason_subcode=subcode,
        num_system_holds=holds,
    )


def held(job_id: str, code: int | None = 12, subcode: int | None = None, holds: int = 1,
         age: float = 10_000.0) -> Glidein:  # fmt: skip
    return glidein(job_id, JobStatus.HELD, age=age, code=code, subcode=subcode, holds=holds)


def decide(queue: list[Glidein], **kwargs: object) -> list[tuple[str, SanitizeReason]]:
    decision = decide_sanitize(
        queue,
        STALE,
        kwargs.get("policy", POLICY),  # type: ignore[arg-type]
        kwargs.get("limits", LIMITS),  # type: ignore[arg-type]
        NOW,
        kwargs.get("already_removed", frozenset()),  # type: ignore[arg-type]
    )
    return [(item.job_id, item.reason) for item in decision.actions]


@pytest.mark.parametrize(
    ("queued", "expected"),
    [
        (glidein("1.0", JobStatus.IDLE, age=1001), SanitizeReason.STALE_IDLE),
        (glidein("1.0", JobStatus.IDLE, age=1000), None),
        (glidein("1.0", JobStatus.RUNNING, age=5001), SanitizeReason.STALE_RUNNING),
        (glidein("1.0", JobStatus.RUNNING, age=4999), None),
        (glidein("1.0", JobStatus.COMPLETED, age=10**9), None),
        (glidein("1.0", JobStatus.REMOVED, age=10**9), None),
        (glidein("1.0", JobStatus.TRANSFERRING_OUTPUT, age=10**9), None),
        (held("1.0", code=99), SanitizeReason.HELD_UNRECOVERABLE),
        (held("1.0", code=None), SanitizeReason.HELD_UNRECOVERABLE),
        (held("1.0", code=99, holds=21), SanitizeReason.HELD_FORCEX),
        (held("1.0", code=99, holds=20), SanitizeReason.HELD_UNRECOVERABLE),
        (held("1.0", code=12, holds=11), SanitizeReason.HELD_TOO_OFTEN),
        (held("1.0", code=12, holds=25), SanitizeReason.HELD_FORCEX),
        (held("1.0", code=12, holds=10), SanitizeReason.HELD_RECOVERABLE),
        (held("1.0", code=30, subcode=2), SanitizeReason.HELD_RECOVERABLE),
        (held("1.0", code=30, subcode=3), SanitizeReason.HELD_UNRECOVERABLE),
        (held("1.0", code=30, subcode=None), SanitizeReason.HELD_UNRECOVERABLE),
    ],
    ids=lambda value: getattr(value, "value", None) or repr(value)[:60],
)
def test_sweep_reason_for_one_glidein(queued: Glidein, expected: SanitizeReason | None) -> None:
    assert decide([queued]) == ([] if expected is None else [("1.0", expected)])


def test_reason_sets_the_action() -> None:
    decision = decide_sanitize(
        [held("1.0", code=99, holds=21), held("2.0", code=99), held("3.0", code=12)],
        STALE, POLICY, LIMITS, NOW,
    )  # fmt: skip

    assert decision.job_ids(JobAction.REMOVE_FORCEX) == ("1.0",)
    assert decision.job_ids(JobAction.REMOVE) == ("2.0",)
    assert decision.job_ids(JobAction.RELEASE) == ("3.0",)


def test_empty_policy_removes_every_held_glidein() -> None:
    queue = [held("1.0", code=12), held("2.0", code=30, subcode=2)]

    assert decide(queue, policy=HeldPolicy()) == [
        ("1.0", SanitizeReason.HELD_UNRECOVERABLE),
        ("2.0", SanitizeReason.HELD_UNRECOVERABLE),
    ]


@pytest.mark.parametrize(
    ("holds", "age", "released"),
    [(2, 600.0, True), (2, 599.0, False), (0, 0.0, True), (10, 3000.0, True), (10, 2999.0, False)],
)
def test_recoverable_release_waits_holds_times_backoff(
    holds: int, age: float, released: bool
) -> None:
    decision = decide_sanitize([held("1.0", holds=holds, age=age)], STALE, POLICY, LIMITS, NOW)

    assert decision.job_ids(JobAction.RELEASE) == (("1.0",) if released else ())
    assert decision.backing_off == (() if released else ("1.0",))


def test_age_uses_the_backend_clock_when_it_reports_one() -> None:
    late_server = glidein("1.0", JobStatus.IDLE, age=1001, server_time=NOW - 50_000)

    assert decide([late_server]) == [("1.0", SanitizeReason.STALE_IDLE)]


def test_releases_stop_at_the_cap_with_no_extra() -> None:
    queue = [held(f"{n}.0") for n in range(1, 5)]

    decision = decide_sanitize(queue, STALE, POLICY, LIMITS, NOW)

    assert decision.job_ids(JobAction.RELEASE) == ("1.0", "2.0")
    assert decision.deferred == {SanitizeReason.HELD_RECOVERABLE: 2}


def test_each_removal_kind_has_its_own_cap() -> None:
    stale_idle = [glidein(f"{n}.0", JobStatus.IDLE, age=2000) for n in range(1, 8)]
    stale_running = [glidein(f"{n}.0", JobStatus.RUNNING, age=9000) for n in range(11, 13)]

    decision = decide_sanitize(stale_idle + stale_running, STALE, POLICY, LIMITS, NOW)

    removed = decision.job_ids(JobAction.REMOVE)
    assert removed == ("1.0", "2.0", "3.0", "4.0", "5.0", "11.0", "12.0")
    assert decision.deferred == {SanitizeReason.STALE_IDLE: 2}


def test_unrecoverable_and_too_often_held_share_one_cap() -> None:
    queue = [held(f"{n}.0", code=99) for n in range(1, 4)]
    queue += [held(f"{n}.0", code=12, holds=11) for n in range(4, 7)]

    decision = decide_sanitize(queue, STALE, POLICY, LIMITS, NOW)

    assert decision.job_ids(JobAction.REMOVE) == ("1.0", "2.0", "3.0", "4.0", "5.0")
    assert decision.deferred == {SanitizeReason.HELD_TOO_OFTEN: 1}


def test_actions_follow_the_sweep_order() -> None:
    queue = [
        held("1.0", code=12),
        held("2.0", code=99),
        held("3.0", code=99, holds=30),
        glidein("4.0", JobStatus.RUNNING, age=9000),
        glidein("5.0", JobStatus.IDLE, age=2000),
    ]

    assert [reason for _, reason in decide(queue)] == [
        SanitizeReason.STALE_IDLE,
        SanitizeReason.STALE_RUNNING,
        SanitizeReason.HELD_FORCEX,
        SanitizeReason.HELD_UNRECOVERABLE,
        SanitizeReason.HELD_RECOVERABLE,
    ]


def test_glideins_already_being_removed_are_left_alone() -> None:
    queue = [held("1.0", code=99), held("2.0", code=12), glidein("3.0", JobStatus.IDLE, age=2000)]

    assert decide(queue, already_removed=frozenset({"1.0", "2.0"})) == [
        ("3.0", SanitizeReason.STALE_IDLE)
    ]


def test_held_disposition_is_public_for_pages_that_show_held_glideins() -> None:
    assert (
        held_disposition(held("1.0", code=12, holds=3), POLICY) is SanitizeReason.HELD_RECOVERABLE
    )


def test_explain_and_dict() -> None:
    decision = decide_sanitize(
        [glidein("1.0", JobStatus.IDLE, age=2000), held("2.0", holds=3, age=10),
         held("3.0"), held("4.0"), held("5.0")],
        STALE, POLICY, LIMITS, NOW,
    )  # fmt: skip

    assert decision.explain() == (
        "sanitize: remove 1 (stale_idle 1), remove with forcex 0, "
        "release 2 (held_recoverable 2); 1 held in back-off; "
        "1 left for later cycles by per-cycle caps"
    )
    data = json.loads(json.dumps(decision.to_dict()))
    assert data["actions"][0] == {"job_id": "1.0", "action": "remove", "reason": "stale_idle"}
    assert data["deferred"] == {"held_recoverable": 1}
    assert data["backing_off"] == ["2.0"]


def test_action_value_object() -> None:
    assert SanitizeAction("1.0", SanitizeReason.HELD_FORCEX).action is JobAction.REMOVE_FORCEX
