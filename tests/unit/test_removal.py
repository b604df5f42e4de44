"""Removal of excess glideins (gwms_tasks.core.removal)."""

from __future__ import annotations

import json

import pytest

from gwms_tasks.core.decisions import Demand, DownReason, RemoveExcess
from gwms_tasks.core.limits import EntryLimits
from gwms_tasks.core.model import Glidein, StatusCounts
from gwms_tasks.core.removal import RemovalReason, RemovalStage, decide_removal
from gwms_tasks.core.status import JobStatus

LIMITS = EntryLimits(max_remove_per_cycle=5)

# kind -> (JobStatus, GridJobStatus)
KINDS: dict[str, tuple[JobStatus, str | None]] = {
    "wait": (JobStatus.IDLE, None),
    "pending": (JobStatus.IDLE, "PENDING"),
    "stage_in": (JobStatus.IDLE, "STAGE_IN"),
    "idle_other": (JobStatus.RUNNING, "SOMETHING_ODD"),
    "running": (JobStatus.RUNNING, None),
    "stage_out": (JobStatus.RUNNING, "STAGE_OUT"),
    "held": (JobStatus.HELD, None),
}


def glideins(spec: str, client: str = "vo.main", start: int = 1) -> list[Glidein]:
    """Glideins from a spec like ``"wait wait pending held"``; job ids count from ``start``."""
    made = []
    for offset, kind in enumerate(spec.split()):
        status, grid = KINDS[kind]
        made.append(
            Glidein(
                job_id=f"{start + offset}.0",
                entry="ce1",
                client=client,
                security_class="sc",
                credential_id="cred1",
                frontend="vo:sc",
                job_status=status,
                grid_job_status=grid,
            )
        )
    return made


def make_demand(mode: RemoveExcess, **overrides: object) -> Demand:
    values: dict[str, object] = {
        "work_key": "cred1_ce1@g@f@vo.main",
        "client": "vo.main",
        "security_class": "sc",
        "credential_id": "cred1",
        "frontend": "vo",
        "req_idle": 0,
        "req_max": 100,
        "remove_excess": mode,
    }
    values.update(overrides)
    return Demand(**values)  # type: ignore[arg-type]


def ids(decision_ids: tuple[str, ...]) -> list[int]:
    return [int(job_id.split(".")[0]) for job_id in decision_ids]


def test_mode_no_removes_nothing_even_in_excess() -> None:
    queue = glideins("wait wait wait")

    decision = decide_removal(make_demand(RemoveExcess.NO), queue, StatusCounts(wait=3), LIMITS)

    assert decision.job_ids == ()
    assert decision.reason is RemovalReason.NOT_REQUESTED
    assert decision.explain() == "remove 0: removal not requested (NO)"


@pytest.mark.parametrize(
    ("idle", "margin", "expected_ids", "reason"),
    [
        (6, 2, [], RemovalReason.WITHIN_REQUEST),
        (6, 1, [1], RemovalReason.IDLE_EXCESS),
        (7, 1, [1, 2], RemovalReason.IDLE_EXCESS),
        (10, 0, [1, 2, 3], RemovalReason.IDLE_EXCESS),
    ],
)
def test_wait_removes_frontend_idle_beyond_request_plus_margin_from_unsubmitted(
    idle: int, margin: int, expected_ids: list[int], reason: RemovalReason
) -> None:
    demand = make_demand(RemoveExcess.WAIT, req_idle=4, remove_margin=margin)

    decision = decide_removal(demand, glideins("wait wait wait"), StatusCounts(wait=idle), LIMITS)

    assert ids(decision.job_ids) == expected_ids
    assert decision.reason is reason


def test_wait_never_touches_glideins_already_queued_at_the_site() -> None:
    demand = make_demand(RemoveExcess.WAIT)

    decision = decide_removal(demand, glideins("pending pending"), StatusCounts(pending=2), LIMITS)

    assert decision.job_ids == ()
    assert decision.reason is RemovalReason.IDLE_EXCESS
    assert decision.stage is RemovalStage.NONE
    assert decision.explain() == (
        "remove 0: vo:sc idle=2 > requested idle 0 + margin 0, "
        "but this client has no glidein to remove"
    )


def test_idle_takes_only_one_stage_per_cycle_unsubmitted_first() -> None:
    queue = glideins("pending wait pending wait")

    decision = decide_removal(
        make_demand(RemoveExcess.IDLE), queue, StatusCounts(wait=2, pending=2), LIMITS
    )

    assert decision.stage is RemovalStage.UNSUBMITTED
    assert ids(decision.job_ids) == [2, 4]


def test_idle_removes_queued_idle_when_nothing_is_unsubmitted() -> None:
    queue = glideins("running pending stage_in idle_other")

    decision = decide_removal(
        make_demand(RemoveExcess.IDLE), queue, StatusCounts(pending=3, running=1), LIMITS
    )

    assert decision.stage is RemovalStage.QUEUED_IDLE
    assert ids(decision.job_ids) == [2, 3, 4]
    assert decision.explain() == "remove 3 queued idle: vo:sc idle=3 > requested idle 0 + margin 0"


def test_all_removes_running_beyond_requested_max_and_every_held_capped_per_cycle() -> None:
    demand = make_demand(RemoveExcess.ALL, req_max=6)
    queue = glideins("held running running running running running held")

    decision = decide_removal(demand, queue, StatusCounts(running=10, held=2), LIMITS)

    assert decision.reason is RemovalReason.GLIDEIN_EXCESS
    assert decision.wanted == 4
    assert decision.stage is RemovalStage.RUNNING_AND_HELD
    assert ids(decision.job_ids) == [2, 3, 4, 5, 1]
    assert decision.capped
    assert decision.explain() == (
        "remove 5 running/held: vo:sc idle+running=10 > requested max 6 + margin 0 "
        "(capped at 5 per cycle)"
    )


def test_all_with_idle_excess_below_max_uses_the_idle_count() -> None:
    demand = make_demand(RemoveExcess.ALL, req_idle=2, req_max=7)

    decision = decide_removal(
        demand, glideins("wait wait wait wait"), StatusCounts(wait=5, running=3), LIMITS
    )

    assert decision.reason is RemovalReason.IDLE_EXCESS
    assert decision.wanted == 3
    assert ids(decision.job_ids) == [1, 2, 3]


def test_all_with_zero_max_removes_held_glideins_when_nothing_else_is_in_excess() -> None:
    demand = make_demand(RemoveExcess.ALL, req_max=0)

    decision = decide_removal(demand, glideins("held held"), StatusCounts(held=2), LIMITS)

    assert decision.reason is RemovalReason.UNWANTED_HELD
    assert decision.stage is RemovalStage.HELD
    assert ids(decision.job_ids) == [1, 2]


def test_held_glideins_stay_when_the_request_still_wants_glideins() -> None:
    demand = make_demand(RemoveExcess.ALL, req_max=1)

    decision = decide_removal(demand, glideins("held held"), StatusCounts(held=2), LIMITS)

    assert decision.job_ids == ()
    assert decision.reason is RemovalReason.WITHIN_REQUEST


def test_downtime_does_not_turn_requested_idle_into_excess() -> None:
    demand = make_demand(RemoveExcess.IDLE, req_idle=10, down=DownReason.FRONTEND_DOWNTIME)

    decision = decide_removal(
        demand, glideins("wait pending"), StatusCounts(wait=4, pending=4), LIMITS
    )

    assert decision.job_ids == ()
    assert decision.reason is RemovalReason.WITHIN_REQUEST


def test_only_glideins_of_the_request_credential_are_candidates() -> None:
    other = glideins("wait wait", client="vo.other", start=1)
    mine = glideins("wait", start=3)

    decision = decide_removal(
        make_demand(RemoveExcess.WAIT), other + mine, StatusCounts(wait=3), LIMITS
    )

    assert ids(decision.job_ids) == [3]


def test_zero_removal_cap_removes_nothing_and_says_so() -> None:
    decision = decide_removal(
        make_demand(RemoveExcess.WAIT), glideins("wait"), StatusCounts(wait=1),
        EntryLimits(max_remove_per_cycle=0),
    )  # fmt: skip

    assert decision.job_ids == ()
    assert decision.capped


def test_removal_dict_is_plain_json() -> None:
    decision = decide_removal(
        make_demand(RemoveExcess.WAIT), glideins("wait"), StatusCounts(wait=1), LIMITS
    )

    data = json.loads(json.dumps(decision.to_dict()))

    assert data["job_ids"] == ["1.0"]
    assert data["stage"] == "unsubmitted"
    assert data["reason"] == "idle_excess"
    assert data["mode"] == "WAIT"
    assert data["frontend"]["wait"] == 1
    assert data["explanation"] == "remove 1 unsubmitted: vo:sc idle=1 > requested idle 0 + margin 0"


def test_within_request_explanation_under_all_mentions_the_max() -> None:
    demand = make_demand(RemoveExcess.ALL, req_idle=3, req_max=10)

    decision = decide_removal(demand, [], StatusCounts(wait=2, running=4), LIMITS)

    assert decision.explain() == (
        "remove 0: vo:sc within request (idle=2 <= requested idle 3 + margin 0; "
        "idle+running=6 <= requested max 10 + margin 0)"
    )
