"""Job-to-entry matching with the ClassAd library, and the even split of the jobs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.core.classad_text import AdExpr, AdFormatError
from gwms_tasks.frontend.core_jobs import JobGroup, group_jobs
from gwms_tasks.frontend.core_match import MatchExpr, split_jobs, to_classad

ENTRIES = {
    "a@g@f": {"GLIDEIN_CPUS": 4, "GLIDEIN_Site": "A"},
    "b@g@f": {"GLIDEIN_CPUS": 8, "GLIDEIN_Site": "B"},
    "c@g@f": {"GLIDEIN_CPUS": AdExpr("2 * 8"), "GLIDEIN_Site": "C"},
}
CPUS = MatchExpr.compile("job.RequestCpus <= entry.GLIDEIN_CPUS")


@pytest.mark.parametrize(
    ("expression", "job", "entry", "expected"),
    [
        ("job.RequestCpus <= entry.GLIDEIN_CPUS", {"RequestCpus": 4}, ENTRIES["a@g@f"], True),
        ("job.RequestCpus <= entry.GLIDEIN_CPUS", {"RequestCpus": 5}, ENTRIES["a@g@f"], False),
        # an entry attribute that is an expression is evaluated in the entry
        ("job.RequestCpus <= entry.GLIDEIN_CPUS", {"RequestCpus": 16}, ENTRIES["c@g@f"], True),
        # a missing attribute makes the expression undefined: no match
        ("job.RequestCpus <= entry.GLIDEIN_CPUS", {}, ENTRIES["a@g@f"], False),
        ("job.RequestCpus =?= undefined || job.RequestCpus <= 1", {}, ENTRIES["a@g@f"], True),
        (
            'member(entry.GLIDEIN_Site, split(job.DESIRED_Sites, ","))',
            {"DESIRED_Sites": "B,C"},
            ENTRIES["b@g@f"],
            True,
        ),
        ("1", {}, {}, True),
        ("0", {}, {}, False),
        ('"yes"', {}, {}, False),
        ("job.RequestCpus / 0", {"RequestCpus": 1}, {}, False),
    ],
)
def test_match_expression_sees_the_job_and_the_entry(
    expression: str, job: dict[str, object], entry: dict[str, object], expected: bool
) -> None:
    expr = MatchExpr.compile(expression)

    assert expr.matches(to_classad(job), to_classad(entry)) is expected  # type: ignore[arg-type]


def test_invalid_match_expression_is_refused() -> None:
    with pytest.raises(AdFormatError, match="not a valid ClassAd expression"):
        MatchExpr.compile("job.RequestCpus <=")


def test_jobs_matching_several_entries_are_split_evenly() -> None:
    groups = [JobGroup({"RequestCpus": 4}, 10), JobGroup({"RequestCpus": 8}, 3)]

    result = split_jobs(groups, ENTRIES, CPUS)

    # 10 jobs on a, b, c: 3 each and one more for a (the first by name among the fewest);
    # then 3 jobs on b and c: one each, and the one left to b (both have 4, b is first).
    assert dict(result.per_entry) == {"a@g@f": 4, "b@g@f": 5, "c@g@f": 4}
    assert result.unmatched == 0


def test_lone_jobs_do_not_all_land_on_the_same_entry() -> None:
    groups = [JobGroup({"RequestCpus": n}, 1) for n in (1, 2, 3)]

    result = split_jobs(groups, ENTRIES, CPUS)

    assert dict(result.per_entry) == {"a@g@f": 1, "b@g@f": 1, "c@g@f": 1}


@pytest.mark.parametrize("site", ["A\x00B", "A\udc80"])
def test_a_job_value_classad2_would_cut_or_choke_on_is_a_problem_not_a_match(
    site: str,
) -> None:
    expr = MatchExpr.compile('job.Site =?= "A"')

    result = split_jobs([JobGroup({"Site": site}, 2)], ENTRIES, expr)

    assert (sum(result.per_entry.values()), result.unmatched) == (0, 2)
    assert len(result.problems) == 1 and "attribute Site" in result.problems[0]


def test_jobs_no_entry_matches_are_counted_unmatched() -> None:
    result = split_jobs([JobGroup({"RequestCpus": 64}, 7)], ENTRIES, CPUS)

    assert (sum(result.per_entry.values()), result.unmatched) == (0, 7)


def test_jobs_are_grouped_by_identical_attributes_of_the_same_type() -> None:
    jobs = [{"A": 1}, {"A": 1}, {"A": True}, {"A": "1"}, {}, {"A": 1}]

    groups = group_jobs(jobs)

    assert [(dict(g.attrs), g.count) for g in groups] == [
        ({"A": 1}, 3),
        ({"A": True}, 1),
        ({"A": "1"}, 1),
        ({}, 1),
    ]


@given(
    groups=st.lists(
        st.builds(JobGroup, st.fixed_dictionaries({"RequestCpus": st.integers(1, 20)}),
                  st.integers(1, 50)),
        max_size=8,
    ),
)  # fmt: skip
def test_every_job_is_counted_exactly_once(groups: list[JobGroup]) -> None:
    result = split_jobs(groups, ENTRIES, CPUS)

    assert sum(result.per_entry.values()) + result.unmatched == sum(g.count for g in groups)
