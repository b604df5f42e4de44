"""One cycle of one entry (gwms_tasks.core.plan)."""

from __future__ import annotations

import json
from itertools import count

import pytest

from gwms_tasks.core.decisions import Demand, DownReason, RemoveExcess, SubmitReason
from gwms_tasks.core.limits import EntryLimits, GlideinLimits, HeldPolicy, StaleAges
from gwms_tasks.core.model import Glidein, StatusCounts
from gwms_tasks.core.plan import EntryPlan, plan_entry
from gwms_tasks.core.removal import RemovalStage
from gwms_tasks.core.sanitize import JobAction, SanitizeReason
from gwms_tasks.core.status import JobStatus
from gwms_tasks.errors import PermanentError

NOW = 1_700_000_000.0
LIMITS = EntryLimits(
    per_entry=GlideinLimits(max_idle=10, max_held=10, max_glideins=100),
    default_per_frontend=GlideinLimits(max_idle=8, max_held=5, max_glideins=100),
    max_submit_per_cycle=50,
    max_remove_per_cycle=5,
)
KINDS: dict[str, tuple[JobStatus, str | None]] = {
    "wait": (JobStatus.IDLE, None),
    "pending": (JobStatus.IDLE, "PENDING"),
    "running": (JobStatus.RUNNING, None),
    "held": (JobStatus.HELD, None),
}


class Queue:
    """Builds glideins with unique job ids."""

    def __init__(self) -> None:
        self._ids = count(1)

    def add(self, spec: str, frontend: str = "vo", client: str = "vo.main",
            cred: str = "cred1") -> list[Glidein]:  # fmt: skip
        made = []
        for kind in spec.split():
            status, grid = KINDS[kind]
            made.append(
                Glidein(
                    job_id=f"{next(self._ids)}.0",
                    entry="ce1",
                    client=client,
                    security_class="sc",
                    credential_id=cred,
                    frontend=f"{frontend}:sc",
                    job_status=status,
                    grid_job_status=grid,
                    entered_current_status=NOW - 60,
                    hold_reason_code=99 if status is JobStatus.HELD else None,
                )
            )
        return made


def make_demand(frontend: str = "vo", client: str = "vo.main", cred: str = "cred1",
                **overrides: object) -> Demand:  # fmt: skip
    values: dict[str, object] = {
        "work_key": f"{cred}_ce1@g@f@{client}",
        "client": client,
        "security_class": "sc",
        "credential_id": cred,
        "frontend": frontend,
        "req_idle": 5,
        "req_max": 100,
    }
    values.update(overrides)
    return Demand(**values)  # type: ignore[arg-type]


def plan(glideins: list[Glidein], demands: list[Demand], limits: EntryLimits = LIMITS,
         entry_down: DownReason | None = None) -> EntryPlan:  # fmt: skip
    return plan_entry(glideins, demands, limits, HeldPolicy(), StaleAges(), entry_down, NOW)


def test_earlier_submissions_count_against_the_entry_limit_of_later_demands() -> None:
    demands = [
        make_demand("fe1", "fe1.main", req_idle=8),
        make_demand("fe2", "fe2.main", req_idle=8),
    ]

    result = plan([], demands)

    first, second = result.demands
    assert (first.submit.count, first.submit.reason) == (8, SubmitReason.SUBMITTING_REQUESTED)
    assert (second.submit.count, second.submit.reason) == (2, SubmitReason.ENTRY_MAX_IDLE)
    assert second.submit.entry.wait == 8
    assert result.final_entry_counts.idle == 10


def test_earlier_submissions_count_against_the_frontend_limit_of_a_sibling_group() -> None:
    demands = [
        make_demand(client="vo.a", req_idle=6),
        make_demand(client="vo.b", req_idle=6),
    ]

    second = plan([], demands).demands[1]

    assert (second.submit.count, second.submit.reason) == (2, SubmitReason.FRONTEND_MAX_IDLE)
    assert second.submit.frontend.wait == 6


def test_a_demand_that_submits_removes_nothing_and_one_that_does_not_may_remove() -> None:
    queue = Queue()
    glideins = queue.add("wait wait wait", client="vo.b", cred="b")
    demands = [
        make_demand(client="vo.a", cred="a", req_idle=1, remove_excess=RemoveExcess.WAIT),
        make_demand(client="vo.b", cred="b", req_idle=0, remove_excess=RemoveExcess.WAIT),
    ]

    submitting, removing = plan(glideins, demands).demands

    assert submitting.submit.count == 1
    assert submitting.removal is None
    assert removing.submit.count == 0
    assert removing.removal is not None
    # The class counts include the glidein submitted just before: 3 queued + 1 new, 0 wanted.
    assert removing.removal.wanted == 4
    assert removing.removal.job_ids == ("1.0", "2.0", "3.0")


def test_entry_downtime_submits_nothing_but_still_removes_and_sanitizes() -> None:
    queue = Queue()
    glideins = queue.add("wait wait") + queue.add("held", client="vo.other", cred="x")
    demand = make_demand(req_idle=0, remove_excess=RemoveExcess.WAIT)

    result = plan(glideins, [demand], entry_down=DownReason.ENTRY_DOWNTIME)

    only = result.demands[0]
    assert only.submit.count == 0
    assert only.submit.reason is SubmitReason.ENTRY_DOWNTIME
    assert only.removal is not None
    assert only.removal.job_ids == ("1.0", "2.0")
    assert result.sanitize.job_ids(JobAction.REMOVE) == ("3.0",)


def test_sweep_runs_in_a_cycle_that_submits() -> None:
    queue = Queue()
    glideins = queue.add("held", client="vo.other", cred="x")

    result = plan(glideins, [make_demand(req_idle=2)])

    assert result.submitted == 2
    assert [(a.job_id, a.reason) for a in result.sanitize.actions] == [
        ("1.0", SanitizeReason.HELD_UNRECOVERABLE)
    ]


def test_sweep_skips_glideins_chosen_for_excess_removal() -> None:
    queue = Queue()
    glideins = queue.add("held held")
    demand = make_demand(req_idle=0, req_max=0, remove_excess=RemoveExcess.ALL)

    result = plan(glideins, [demand])

    removal = result.demands[0].removal
    assert removal is not None and removal.stage is RemovalStage.HELD
    assert removal.job_ids == ("1.0", "2.0")
    assert result.sanitize.actions == ()


def test_a_frontend_idle_limit_counts_this_cycles_submissions() -> None:
    queue = Queue()
    glideins = queue.add("pending " * 4) + queue.add("pending", frontend="fe2")

    result = plan(glideins, [make_demand(req_idle=20)])

    assert result.demands[0].submit.count == 4
    assert result.demands[0].submit.reason is SubmitReason.FRONTEND_MAX_IDLE


def test_the_held_limit_blocks_the_entry() -> None:
    glideins = Queue().add("held " * 10, frontend="fe2")

    result = plan(glideins, [make_demand()])

    assert result.demands[0].submit.reason is SubmitReason.ENTRY_MAX_HELD


def test_a_demand_counts_only_the_glideins_of_its_own_credential() -> None:
    queue = Queue()
    glideins = queue.add("running pending", cred="c1") + queue.add("wait", cred="c2")
    glideins += queue.add("running", client="vo.other", cred="o")
    demands = [
        make_demand(cred="c1", req_idle=3, req_max=10),
        make_demand(cred="c2", req_idle=1, req_max=5, down=DownReason.NOT_WHITELISTED),
    ]

    result = plan(glideins, demands)

    assert result.demands[0].counts == StatusCounts(pending=1, running=1)
    assert result.demands[1].counts == StatusCounts(wait=1)
    assert result.entry_counts == StatusCounts(wait=1, pending=1, running=2)


def test_two_demands_with_one_work_key_are_refused() -> None:
    with pytest.raises(PermanentError, match="share the work key"):
        plan([], [make_demand(), make_demand()])


def test_plan_dict_is_plain_json() -> None:
    queue = Queue()
    glideins = queue.add("wait held")

    data = json.loads(json.dumps(plan(glideins, [make_demand(req_idle=0)]).to_dict()))

    assert data["submitted"] == 0
    assert data["entry_counts"]["held"] == 1
    assert data["demands"][0]["submit"]["reason"] == "request_zero"
    assert data["demands"][0]["removal"]["reason"] == "not_requested"
    assert data["sanitize"]["actions"] == [
        {"job_id": "2.0", "action": "remove", "reason": "held_unrecoverable"}
    ]


def test_the_frontend_with_fewer_glideins_is_served_first_when_the_entry_is_short() -> None:
    queue = Queue()
    glideins = queue.add("running " * 6, frontend="big", client="big.main")
    big = make_demand(frontend="big", client="big.main", req_idle=8)
    small = make_demand(frontend="small", client="small.main", req_idle=8)
    for order in ([big, small], [small, big]):
        result = plan(glideins, order, LIMITS)  # entry max idle 10 for both together
        submitted = {p.demand.frontend: p.submit.count for p in result.demands}
        assert submitted == {"small": 8, "big": 2}
        assert [p.demand.frontend for p in result.demands] == [d.frontend for d in order]
