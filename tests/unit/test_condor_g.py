"""The Condor-G backend against a recording double of htcondor2.Schedd (tests/schedd_double.py).

No schedd runs on these machines; the double implements submit/query/act with the real
signatures, builds job ads from the real ``htcondor2.Submit`` and evaluates the query
constraint with classad2, so quoting and the §4.5 constraint are exercised for real.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import htcondor2
import pytest

from gwms_tasks.adapters.condor_g import (
    QUEUE_PROJECTION,
    CondorGBackend,
    connect_schedd,
    glidein_from_ad,
    queue_constraint,
)
from gwms_tasks.core.status import GlideinStatus, JobStatus
from gwms_tasks.core.submit_description import EntrySubmitSettings, GridType
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.ports import GlideinTags, Submission
from tests.schedd_double import Call, RecordingSchedd

NOW = 1_700_000_000.0
FACTORY, GLIDEIN, ENTRY = "fact", "gfactory_instance", "ce1"
TAGS = GlideinTags(FACTORY, GLIDEIN, ENTRY, "fe.main", "sc1", "cred1", "fe:sc1", "feuser", "k1")
SETTINGS = EntrySubmitSettings(
    grid_type=GridType.CONDOR,
    gatekeeper="ce.example.org ce.example.org:9619",
    executable="/srv/gwms/glidein_startup.sh",
    log_base_dir="/var/log/gwms/client",
    web_url="http://factory.example.org/stage",
    cluster_size=10,
)


def make_backend(
    schedd: RecordingSchedd, entry: str = ENTRY, factory: str = FACTORY
) -> CondorGBackend:
    return CondorGBackend(schedd, SETTINGS, factory, GLIDEIN, entry, clock=lambda: NOW)


def submission(count: int, **tag_changes: str) -> Submission:
    return Submission(dataclasses.replace(TAGS, **tag_changes), count, ["-v", "std"])


@pytest.fixture
def schedd() -> RecordingSchedd:
    return RecordingSchedd(clock=lambda: NOW)


def submits(schedd: RecordingSchedd) -> list[Call]:
    return [call for call in schedd.calls if call.method == "submit"]


# -- submit ------------------------------------------------------------------------------------


def test_submission_is_split_into_clusters_of_cluster_size(schedd: RecordingSchedd) -> None:
    ids = make_backend(schedd).submit(submission(25))
    assert [call.args[1] for call in submits(schedd)] == [10, 10, 5]
    assert ids == [f"1.{p}" for p in range(10)] + [f"2.{p}" for p in range(10)] + [
        f"3.{p}" for p in range(5)
    ]


def test_each_job_gets_its_own_cluster_and_process_in_the_arguments(
    schedd: RecordingSchedd,
) -> None:
    make_backend(schedd).submit(submission(12))
    assert schedd.jobs["2.1"]["Args"] == "-v std -cluster 2 -subcluster 1"
    assert schedd.jobs["1.0"]["GridResource"] == "condor ce.example.org ce.example.org:9619"


def test_submitting_zero_glideins_does_not_call_the_schedd(schedd: RecordingSchedd) -> None:
    assert make_backend(schedd).submit(submission(0)) == []
    assert schedd.calls == []


def test_submission_for_another_entry_is_refused_before_the_schedd(
    schedd: RecordingSchedd,
) -> None:
    with pytest.raises(PermanentError, match="ce2"):
        make_backend(schedd).submit(submission(3, entry="ce2"))
    assert schedd.calls == []


# -- query -------------------------------------------------------------------------------------


def test_query_asks_for_the_entry_with_the_protocol_constraint_and_projection(
    schedd: RecordingSchedd,
) -> None:
    make_backend(schedd).query()
    assert schedd.calls == [
        Call("query", (queue_constraint(FACTORY, GLIDEIN, ENTRY), QUEUE_PROJECTION))
    ]
    assert queue_constraint(FACTORY, GLIDEIN, ENTRY) == (
        '(GlideinFactory =?= "fact") && (GlideinName =?= "gfactory_instance")'
        ' && (GlideinEntryName =?= "ce1") && (GlideinCredentialIdentifier =!= UNDEFINED)'
    )


def test_query_returns_the_tags_and_submit_key_of_each_glidein(schedd: RecordingSchedd) -> None:
    backend = make_backend(schedd)
    backend.submit(submission(2, client="fe.other", credential_id='c"$x'))
    glideins = backend.query()
    assert [(g.job_id, g.client, g.credential_id, g.submit_key) for g in glideins] == [
        ("1.0", "fe.other", 'c"$x', "k1"),
        ("1.1", "fe.other", 'c"$x', "k1"),
    ]
    assert all(g.entry == ENTRY and g.server_time == NOW for g in glideins)


def test_query_sees_only_its_own_entry_and_factory(schedd: RecordingSchedd) -> None:
    make_backend(schedd).submit(submission(2))
    other_entry = make_backend(schedd, entry="ce2")
    other_entry.submit(submission(1, entry="ce2"))
    other_factory = make_backend(schedd, factory="fact2")
    other_factory.submit(submission(4, factory="fact2"))
    assert [len(make_backend(schedd).query()), len(other_entry.query())] == [2, 1]
    assert len(other_factory.query()) == 4


def test_an_entry_name_cannot_inject_into_the_constraint(schedd: RecordingSchedd) -> None:
    make_backend(schedd).submit(submission(2))
    hostile = make_backend(schedd, entry='x") || (True || "')
    assert hostile.query() == []


def test_query_maps_grid_status_and_hold_details(schedd: RecordingSchedd) -> None:
    backend = make_backend(schedd)
    backend.submit(submission(4))
    schedd.set_attrs("1.1", GridJobStatus="INLRMS:Q")
    schedd.set_attrs("1.2", JobStatus=2, GridJobStatus="STAGE_OUT", EnteredCurrentStatus=NOW - 5)
    schedd.system_hold("1.3", code=30, subcode=256, reason="Globus error")
    by_id = {g.job_id: g for g in backend.query()}
    assert by_id["1.0"].status is GlideinStatus.WAIT
    assert by_id["1.1"].status is GlideinStatus.PENDING
    assert by_id["1.2"].status is GlideinStatus.STAGE_OUT
    assert by_id["1.2"].entered_current_status == NOW - 5
    held = by_id["1.3"]
    assert (held.job_status, held.hold_reason_code, held.hold_reason_subcode) == (
        JobStatus.HELD,
        30,
        256,
    )
    assert (held.hold_reason, held.num_system_holds) == ("Globus error", 1)


def test_query_leaves_out_removed_and_completed_glideins(schedd: RecordingSchedd) -> None:
    backend = make_backend(schedd)
    backend.submit(submission(3))
    schedd.set_attrs("1.0", JobStatus=3)
    schedd.set_attrs("1.1", JobStatus=4)
    assert [g.job_id for g in backend.query()] == ["1.2"]


def test_query_skips_jobs_lacking_the_glidein_tags(
    schedd: RecordingSchedd, caplog: pytest.LogCaptureFixture
) -> None:
    backend = make_backend(schedd)
    backend.submit(submission(2))
    del schedd.jobs["1.0"]["GlideinClient"]
    with caplog.at_level(logging.WARNING):
        assert [g.job_id for g in backend.query()] == ["1.1"]
    assert "skipped 1 job ads" in caplog.text


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"ClusterId": None}, "no cluster"),
        ({"JobStatus": 9}, "unknown status"),
        ({"JobStatus": "1"}, "status is text"),
        ({"ProcId": True}, "boolean proc"),
        ({"GlideinFrontendName": 7}, "tag is not text"),
    ],
)
def test_malformed_job_ads_are_skipped(change: dict[str, Any], why: str) -> None:
    ad = {
        "ClusterId": 4,
        "ProcId": 0,
        "JobStatus": 1,
        "GlideinClient": "fe.main",
        "GlideinSecurityClass": "sc1",
        "GlideinCredentialIdentifier": "cred1",
        "GlideinFrontendName": "fe:sc1",
    }
    assert glidein_from_ad(ad, ENTRY) is not None
    assert (
        glidein_from_ad({k: v for k, v in (ad | change).items() if v is not None}, ENTRY) is None
    ), why


def test_a_glidein_submitted_by_old_glideinwms_has_no_submit_key_but_counts() -> None:
    ad = {
        "ClusterId": 4,
        "ProcId": 2,
        "JobStatus": 2,
        "GlideinClient": "fe.main",
        "GlideinSecurityClass": "sc1",
        "GlideinCredentialIdentifier": "cred1",
        "GlideinFrontendName": "fe:sc1",
    }
    glidein = glidein_from_ad(ad, ENTRY)
    assert glidein is not None
    assert (glidein.job_id, glidein.submit_key, glidein.status) == (
        "4.2",
        None,
        GlideinStatus.RUNNING,
    )


# -- release and remove ------------------------------------------------------------------------


def test_release_asks_the_schedd_to_release_those_jobs(schedd: RecordingSchedd) -> None:
    backend = make_backend(schedd)
    backend.submit(submission(2))
    schedd.system_hold("1.0", code=30)
    backend.release(["1.0"])
    assert schedd.calls[-1] == Call("act", (htcondor2.JobAction.Release, ("1.0",)))
    assert schedd.jobs["1.0"]["JobStatus"] == 1


def test_remove_with_forcex_removes_then_forgets_the_jobs(schedd: RecordingSchedd) -> None:
    backend = make_backend(schedd)
    backend.submit(submission(3))
    backend.remove(["1.0", "1.2"], forcex=True)
    assert [c.args[0] for c in schedd.calls[-2:]] == [
        htcondor2.JobAction.Remove,
        htcondor2.JobAction.RemoveX,
    ]
    assert sorted(schedd.jobs) == ["1.1"]


def test_plain_remove_leaves_the_jobs_removing_and_out_of_the_query(
    schedd: RecordingSchedd,
) -> None:
    backend = make_backend(schedd)
    backend.submit(submission(2))
    backend.remove(["1.0"])
    assert schedd.jobs["1.0"]["JobStatus"] == 3
    assert [g.job_id for g in backend.query()] == ["1.1"]


def test_release_or_remove_of_nothing_does_not_call_the_schedd(schedd: RecordingSchedd) -> None:
    backend = make_backend(schedd)
    backend.release([])
    backend.remove([], forcex=True)
    assert schedd.calls == []


# -- errors ------------------------------------------------------------------------------------

UNREACHABLE = htcondor2.HTCondorException("Failed to connect to schedd, errmsg=CEDAR:6001:x")
REFUSED = htcondor2.HTCondorException("Submit requirement NoGrid evaluated to false")


def test_an_unreachable_schedd_at_submit_is_transient(schedd: RecordingSchedd) -> None:
    schedd.fail_next("submit", UNREACHABLE)
    with pytest.raises(TransientError, match="unreachable"):
        make_backend(schedd).submit(submission(3))


def test_a_refused_submission_is_permanent(schedd: RecordingSchedd) -> None:
    schedd.fail_next("submit", REFUSED)
    with pytest.raises(PermanentError, match="refused"):
        make_backend(schedd).submit(submission(3))


def test_a_failure_after_some_clusters_names_the_jobs_already_queued(
    schedd: RecordingSchedd,
) -> None:
    backend = make_backend(schedd)
    real_submit = schedd.submit

    def second_cluster_fails(description: htcondor2.Submit, count: int = 0) -> Any:
        if schedd.next_cluster == 2:
            raise UNREACHABLE
        return real_submit(description, count)

    schedd.submit = second_cluster_fails  # type: ignore[method-assign]
    with pytest.raises(TransientError, match=r"10 jobs, 1\.0 to 1\.9, were submitted before"):
        backend.submit(submission(15))
    assert [g.submit_key for g in backend.query()] == ["k1"] * 10


def test_a_failed_query_is_transient_so_callers_fail_closed(schedd: RecordingSchedd) -> None:
    schedd.fail_next("query", htcondor2.HTCondorException("Failed to fetch ads from schedd"))
    with pytest.raises(TransientError, match="query"):
        make_backend(schedd).query()


def test_a_failed_action_is_transient(schedd: RecordingSchedd) -> None:
    schedd.fail_next("act", htcondor2.HTCondorException("Error when performing action"))
    with pytest.raises(TransientError, match="Remove"):
        make_backend(schedd).remove(["1.0"])


def test_a_malformed_job_id_is_permanent(schedd: RecordingSchedd) -> None:
    with pytest.raises(PermanentError, match="invalid job ids"):
        make_backend(schedd).release(["1.0", "not-a-job"])


def test_an_unreachable_collector_gives_a_transient_error() -> None:
    with pytest.raises(TransientError, match="schedd_a"):
        connect_schedd("schedd_a", pool="127.0.0.1:9")
