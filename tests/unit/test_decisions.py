"""How many glideins one request gets, and the reason (gwms_tasks.core.decisions)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from gwms_tasks.core.decisions import (
    Demand,
    DownReason,
    RemoveExcess,
    SubmitReason,
    decide_submit,
)
from gwms_tasks.core.limits import EntryLimits, GlideinLimits
from gwms_tasks.core.model import StatusCounts
from gwms_tasks.errors import PermanentError

LIMITS = EntryLimits(
    per_entry=GlideinLimits(max_idle=20, max_held=10, max_glideins=50),
    default_per_frontend=GlideinLimits(max_idle=15, max_held=5, max_glideins=40),
    max_submit_per_cycle=8,
)


def make_demand(**overrides: object) -> Demand:
    values: dict[str, object] = {
        "work_key": "cred1_ce1@gfactory_instance@fact@vo.main",
        "client": "vo.main",
        "security_class": "sc",
        "credential_id": "cred1",
        "frontend": "vo",
        "req_idle": 5,
        "req_max": 100,
    }
    values.update(overrides)
    return Demand(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    """One submit situation: the request, the counts at each scope, and what must be decided."""

    name: str
    expected_count: int
    expected_reason: SubmitReason
    req_idle: int = 5
    req_max: int = 100
    client: StatusCounts = field(default_factory=StatusCounts)
    frontend: StatusCounts = field(default_factory=StatusCounts)
    entry: StatusCounts = field(default_factory=StatusCounts)
    limits: EntryLimits = LIMITS


CASES = [
    Case("request_fully_granted", 3, SubmitReason.SUBMITTING_REQUESTED,
         client=StatusCounts(pending=2), frontend=StatusCounts(pending=2),
         entry=StatusCounts(pending=2)),
    Case("queue_already_holds_requested_idle", 0, SubmitReason.REQUEST_MET,
         client=StatusCounts(wait=2, pending=3), frontend=StatusCounts(pending=5),
         entry=StatusCounts(pending=5)),
    Case("zero_request_submits_nothing", 0, SubmitReason.REQUEST_ZERO, req_idle=0),
    Case("request_max_clips_the_count", 2, SubmitReason.MAX_GLIDEINS_REQUESTED, req_max=6,
         client=StatusCounts(pending=1, running=3), frontend=StatusCounts(pending=1, running=3),
         entry=StatusCounts(pending=1, running=3)),
    Case("request_max_already_reached", 0, SubmitReason.MAX_GLIDEINS_REQUESTED, req_max=4,
         client=StatusCounts(pending=1, running=3), frontend=StatusCounts(pending=1, running=3),
         entry=StatusCounts(pending=1, running=3)),
    Case("request_max_met_exactly_by_the_request_is_still_a_grant", 4,
         SubmitReason.SUBMITTING_REQUESTED, req_max=7,
         client=StatusCounts(pending=1, running=2), frontend=StatusCounts(pending=1, running=2),
         entry=StatusCounts(pending=1, running=2)),
    Case("entry_idle_room_clips_the_count", 2, SubmitReason.ENTRY_MAX_IDLE,
         entry=StatusCounts(pending=18)),
    Case("entry_at_max_idle_submits_nothing", 0, SubmitReason.ENTRY_MAX_IDLE,
         entry=StatusCounts(pending=20)),
    Case("entry_glidein_room_clips_the_count", 2, SubmitReason.ENTRY_MAX_GLIDEINS,
         entry=StatusCounts(pending=5, running=43)),
    Case("entry_at_max_glideins_submits_nothing", 0, SubmitReason.ENTRY_MAX_GLIDEINS,
         entry=StatusCounts(pending=5, running=45)),
    Case("entry_at_max_held_submits_nothing", 0, SubmitReason.ENTRY_MAX_HELD,
         entry=StatusCounts(held=10)),
    Case("frontend_idle_room_clips_the_count", 2, SubmitReason.FRONTEND_MAX_IDLE,
         frontend=StatusCounts(pending=13), entry=StatusCounts(pending=13)),
    Case("frontend_at_max_idle_submits_nothing", 0, SubmitReason.FRONTEND_MAX_IDLE,
         frontend=StatusCounts(pending=15), entry=StatusCounts(pending=15)),
    Case("frontend_glidein_room_clips_the_count", 2, SubmitReason.FRONTEND_MAX_GLIDEINS,
         frontend=StatusCounts(pending=2, running=36),
         entry=StatusCounts(pending=2, running=36)),
    Case("frontend_at_max_held_submits_nothing", 0, SubmitReason.FRONTEND_MAX_HELD,
         frontend=StatusCounts(held=5), entry=StatusCounts(held=5)),
    Case("per_cycle_maximum_clips_a_large_request", 8, SubmitReason.MAX_PER_CYCLE, req_idle=12),
    Case("configured_frontend_limit_overrides_the_default", 1, SubmitReason.FRONTEND_MAX_IDLE,
         limits=EntryLimits(
             per_entry=LIMITS.per_entry,
             default_per_frontend=LIMITS.default_per_frontend,
             per_frontend={"vo:sc": GlideinLimits(max_idle=1, max_held=5, max_glideins=40)},
             max_submit_per_cycle=8,
         )),
    Case("zero_per_cycle_maximum_submits_nothing", 0, SubmitReason.MAX_PER_CYCLE,
         limits=EntryLimits(max_submit_per_cycle=0)),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_submit_count_and_reason(case: Case) -> None:
    demand = make_demand(req_idle=case.req_idle, req_max=case.req_max)

    decision = decide_submit(demand, case.client, case.frontend, case.entry, case.limits, None)

    assert (decision.count, decision.reason) == (case.expected_count, case.expected_reason)


@pytest.mark.parametrize("down", list(DownReason))
def test_request_in_downtime_submits_nothing_and_names_the_downtime(down: DownReason) -> None:
    decision = decide_submit(
        make_demand(down=down), StatusCounts(), StatusCounts(), StatusCounts(), LIMITS, None
    )

    assert decision.count == 0
    assert decision.reason is SubmitReason.of_down(down)
    assert decision.reason.value == down.value
    assert decision.down is down
    assert decision.adjusted_idle == 0
    assert decision.requested_idle == 5


def test_entry_downtime_outranks_the_request_downtime() -> None:
    demand = make_demand(down=DownReason.NOT_WHITELISTED)

    decision = decide_submit(
        demand, StatusCounts(), StatusCounts(), StatusCounts(), LIMITS, DownReason.ENTRY_DOWNTIME
    )

    assert decision.reason is SubmitReason.ENTRY_DOWNTIME


def test_blocked_entry_zeroes_the_adjusted_idle_but_a_frontend_limit_does_not() -> None:
    demand = make_demand(req_idle=7)
    entry_full = decide_submit(
        demand, StatusCounts(), StatusCounts(), StatusCounts(held=10), LIMITS, None
    )
    frontend_full = decide_submit(
        demand, StatusCounts(), StatusCounts(held=5), StatusCounts(held=5), LIMITS, None
    )

    assert entry_full.adjusted_idle == 0
    assert frontend_full.adjusted_idle == 7


def test_explain_names_the_entry_idle_bound_with_its_numbers() -> None:
    default_limits = EntryLimits()  # entry max idle 2000, per-cycle maximum 100
    entry = StatusCounts(pending=1997)

    decision = decide_submit(
        make_demand(req_idle=5), StatusCounts(), StatusCounts(), entry, default_limits, None
    )

    assert decision.explain() == "submit 3: limited by entry max idle (count=1997, limit=2000)"


@pytest.mark.parametrize(
    ("demand", "client", "expected"),
    [
        (make_demand(req_idle=5), StatusCounts(pending=2),
         "submit 3: request granted (requested idle=5, idle=2)"),
        (make_demand(req_idle=0), StatusCounts(), "submit 0: no idle glideins requested"),
        (make_demand(down=DownReason.FRONTEND_DOWNTIME), StatusCounts(),
         "submit 0: frontend in downtime"),
        (make_demand(req_idle=5, req_max=3), StatusCounts(running=3),
         "submit 0: blocked by requested max glideins (count=3, limit=3)"),
        (make_demand(req_idle=12), StatusCounts(),
         "submit 8: limited by max submits per cycle (wanted=12, limit=8)"),
    ],
)  # fmt: skip
def test_explain_sentence(demand: Demand, client: StatusCounts, expected: str) -> None:
    decision = decide_submit(demand, client, client, client, LIMITS, None)

    assert decision.explain() == expected


def test_frontend_bound_explanation_names_the_frontend_key() -> None:
    decision = decide_submit(
        make_demand(), StatusCounts(), StatusCounts(held=5), StatusCounts(held=5), LIMITS, None
    )

    assert decision.explain() == "submit 0: blocked by frontend vo:sc max held (count=5, limit=5)"


def test_decision_dict_is_plain_json_with_inputs_and_explanation() -> None:
    decision = decide_submit(
        make_demand(), StatusCounts(pending=1), StatusCounts(pending=4),
        StatusCounts(pending=18), LIMITS, None,
    )  # fmt: skip

    data = json.loads(json.dumps(decision.to_dict()))

    assert data["count"] == 2
    assert data["reason"] == "entry_max_idle"
    assert data["down"] is None
    assert data["client"]["idle"] == 1
    assert data["frontend"]["pending"] == 4
    assert data["entry"]["idle"] == 18
    assert data["entry_limits"] == {"max_idle": 20, "max_held": 10, "max_glideins": 50}
    assert data["frontend_key"] == "vo:sc"
    assert data["explanation"] == decision.explain()


@pytest.mark.parametrize(
    ("raw", "mode", "noted"),
    [
        (None, RemoveExcess.NO, False),
        ("NO", RemoveExcess.NO, False),
        ("WAIT", RemoveExcess.WAIT, False),
        ("IDLE", RemoveExcess.IDLE, False),
        ("ALL", RemoveExcess.ALL, False),
        ("UNREG", RemoveExcess.NO, True),
        ("wait", RemoveExcess.NO, True),
        ("", RemoveExcess.NO, True),
    ],
)
def test_remove_excess_parse(raw: str | None, mode: RemoveExcess, noted: bool) -> None:
    parsed, note = RemoveExcess.parse(raw)

    assert parsed is mode
    assert (note is not None) == noted
    if note is not None:
        assert repr(raw) in note and "treated as NO" in note


def test_unreg_note_says_it_is_unsupported() -> None:
    _, note = RemoveExcess.parse("UNREG")

    assert note == "ReqRemoveExcess 'UNREG' is not supported by this factory; treated as NO"


@pytest.mark.parametrize("name", ["req_idle", "req_max", "remove_margin"])
def test_negative_request_value_is_rejected_with_its_name(name: str) -> None:
    with pytest.raises(PermanentError, match=rf"{name} must be an integer >= 0, got -1"):
        make_demand(**{name: -1})


def test_demand_keys_match_the_glidein_tags() -> None:
    demand = make_demand()

    assert demand.frontend_key == "vo:sc"
    assert demand.credential_key == ("vo.main", "sc", "cred1")
