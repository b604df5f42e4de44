"""The glidein startd's condor_config: quoting, checks, policy expressions, rendering."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import classad2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.core.condor_config import (
    MONITOR_JOB_RETIREMENT,
    GlideinIdentity,
    GlideinPaths,
    SlotsLayout,
    StartdSettings,
    check_expression,
    classad_quote,
    collector_host,
    combine_start_expressions,
    config_string,
    daemon_name,
    render_condor_config,
    startd_policy,
)
from gwms_tasks.core.lifetime import LifetimeKnobs, glidein_lifetime
from gwms_tasks.errors import ConfigError

FAR_FUTURE = 4_000_000_000
PAST = 1_000_000_000
IDENTITY = GlideinIdentity(
    factory="fact1",
    name="gfactory_instance",
    entry="ce_one",
    client_name="fe.main",
    client_group="main",
    credential_id="cred-1",
    cluster_id=42,
    proc_id=3,
    schedd="schedd@factory",
)
SETTINGS = StartdSettings(
    identity=IDENTITY,
    collector_host="vo.example.org:9618",
    ccb_address=None,
    start_expression=combine_start_expressions("TARGET.RequestCpus <= 1", 'TARGET.Owner =!= "bad"'),
    layout=SlotsLayout.FIXED,
    cpus=2,
    monitor_slot=True,
    daemon_name="glidein_42_3_77",
)
PATHS = GlideinPaths("/glide/condor_local", "/glide/condor", "/glide/condor_local/tokens.d")
LIFETIME = glidein_lifetime(LifetimeKnobs(), 1_700_000_000.0, 0.0)

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


@given(_text)
def test_our_quoting_writes_exactly_what_classad2_quote_writes(value: str) -> None:
    assert classad_quote(value) == classad2.quote(value)
    assert classad2.unquote(classad_quote(value)) == value


@given(_text)
def test_config_strings_hold_no_dollar_and_read_back_unchanged(value: str) -> None:
    literal = config_string(value)
    assert "$" not in literal
    assert "\n" not in literal
    assert classad2.unquote(literal) == value


def test_nul_cannot_be_quoted() -> None:
    with pytest.raises(ValueError, match="NUL"):
        classad_quote("a\x00b")


@pytest.mark.parametrize(
    ("client", "group", "combined"),
    [
        (None, None, "True"),
        ("", "True", "True"),
        ("RequestCpus <= 1", None, "(RequestCpus <= 1)"),
        (None, " x > 1 ", "(x > 1)"),
        ("a", "b || c", "(a) && (b || c)"),
    ],
)
def test_frontend_and_group_start_expressions_must_both_hold(
    client: str | None, group: str | None, combined: str
) -> None:
    assert combine_start_expressions(client, group) == combined


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("a\nSTARTD_CRON_JOBLIST = evil", "control characters"),
        ("a > 1 \\", "trailing backslash"),
        ("Owner == $(OWNER)", "config macro"),
        ('Owner == "$ENV(HOME)"', "config macro"),
        ("(a > 1", "unclosed '('"),
        ("a > 1)", "unbalanced ')'"),
        ("member(a, {1, 2]", "unbalanced ']'"),
        ('Owner == "bob', "unterminated quoted literal"),
    ],
)
def test_expressions_that_could_break_the_config_are_refused(expression: str, problem: str) -> None:
    found = check_expression("GLIDECLIENT_Start", expression)
    assert found is not None
    assert found.startswith("GLIDECLIENT_Start: ")
    assert problem in found


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "True",
        'regexp("^cms.*$", Owner) && (RequestMemory <= 2048)',
        'member("x", {"a", "b)"}) || (Name =?= "a\\"(b")',
        'stringListMember(TARGET.VO, "cms,atlas")',
    ],
)
def test_ordinary_expressions_pass_the_checks(expression: str) -> None:
    assert check_expression("GLIDECLIENT_Start", expression) is None


@pytest.mark.parametrize(
    ("value", "fraction", "expected"),
    [
        ("vo.example.org", 0.0, "vo.example.org"),
        ("vo.example.org:9618", 0.7, "vo.example.org:9618"),
        ("vo.example.org:9620-9640", 0.0, "vo.example.org:9620"),
        ("vo.example.org:9620-9640", 0.999, "vo.example.org:9640"),
        ("a:9618?sock=collector1, [::1]:9620", 0.5, "a:9618?sock=collector1, [::1]:9620"),
    ],
)
def test_collector_ports_are_chosen_within_their_range(
    value: str, fraction: float, expected: str
) -> None:
    assert collector_host("GLIDEIN_Collector", value, fraction) == expected


@pytest.mark.parametrize(
    "value", ["", "host:0", "host:70000", "host:9640-9620", "bad host!", "h:1$(X)", "-h:1"]
)
def test_malformed_collectors_are_refused(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        collector_host("GLIDEIN_Collector", value, 0.5)
    assert caught.value.problems[0].startswith("GLIDEIN_Collector: ")


def test_daemon_name_refuses_an_instance_that_is_not_a_plain_token() -> None:
    assert daemon_name(42, 3, "1234") == "glidein_42_3_1234"
    with pytest.raises(ConfigError, match="instance"):
        daemon_name(42, 3, "x y")


def _slot(slot_type: int, **attrs: object) -> classad2.ClassAd:
    ad = classad2.ClassAd()
    ad.update(
        {
            "SlotTypeID": slot_type,
            "GLIDEIN_ToRetire": FAR_FUTURE,
            "GLIDEIN_ToDie": FAR_FUTURE,
            "GLIDEIN_START_TIME": PAST,
            "GLIDEIN_Max_Idle": 1200,
            "GLIDEIN_Max_Tail": 400,
            **attrs,
        }
    )
    return ad


def _job(**attrs: object) -> classad2.ClassAd:
    job = classad2.ClassAd()
    job.update({"RequestCpus": 1, "Owner": "alice", **attrs})
    return job


def _evaluate(
    expression: str, machine: classad2.ClassAd, job: classad2.ClassAd | None = None
) -> object:
    return classad2.ExprTree(expression).eval(scope=machine, target=job)


def test_user_slot_starts_a_job_only_when_both_frontend_expressions_hold() -> None:
    start = startd_policy(SETTINGS).start
    assert _evaluate(start, _slot(1), _job()) is True
    assert _evaluate(start, _slot(1), _job(RequestCpus=4)) is False
    assert _evaluate(start, _slot(1), _job(Owner="bad")) is False


def test_user_slot_starts_nothing_after_the_glidein_retired() -> None:
    start = startd_policy(SETTINGS).start
    assert _evaluate(start, _slot(1, GLIDEIN_ToRetire=PAST), _job()) is False


def test_monitoring_slot_takes_only_monitoring_jobs() -> None:
    start = startd_policy(SETTINGS).start
    assert _evaluate(start, _slot(2), _job()) is False
    assert _evaluate(start, _slot(2), _job(GLIDEIN_Is_Monitor=True)) is True
    assert _evaluate(start, _slot(2, GLIDEIN_ToRetire=PAST), _job(JOB_Is_Monitor=True)) is True


def test_without_monitoring_slot_every_slot_is_a_user_slot() -> None:
    policy = startd_policy(dataclasses.replace(SETTINGS, monitor_slot=False))
    assert policy.is_monitor_slot == "False"
    assert _evaluate(policy.start, _slot(2), _job()) is True


def test_monitoring_jobs_get_a_short_retirement_and_user_jobs_run_until_die() -> None:
    retirement = startd_policy(SETTINGS).max_job_retirement_time
    assert _evaluate(retirement, _slot(2, JobStart=PAST)) == MONITOR_JOB_RETIREMENT
    assert _evaluate(retirement, _slot(1, JobStart=PAST, GLIDEIN_ToDie=PAST + 500)) == 500


def _idle(slot: int, **attrs: object) -> dict[str, object]:
    defaults = {"Activity": "Idle", "State": "Unclaimed", "JobStarts": 0}
    return {f"Slot{slot}_{key}": value for key, value in {**defaults, **attrs}.items()}


@pytest.mark.parametrize(
    ("attrs", "shuts_down"),
    [
        # Just started, nothing run yet, young: stays.
        ({**_idle(1), **_idle(2), "GLIDEIN_START_TIME": FAR_FUTURE - 10}, False),
        # Never claimed for longer than GLIDEIN_Max_Idle: leaves.
        ({**_idle(1), **_idle(2)}, True),
        # One slot busy: stays, even past retire.
        (
            {**_idle(1), **_idle(2, State="Claimed", Activity="Busy"), "GLIDEIN_ToRetire": PAST},
            False,
        ),
        # Ran jobs, idle for longer than GLIDEIN_Max_Tail on every slot: leaves.
        (
            {
                **_idle(1, JobStarts=3, ExpectedMachineGracefulDrainingCompletion=PAST),
                **_idle(2, JobStarts=1, ExpectedMachineGracefulDrainingCompletion=PAST),
            },
            True,
        ),
        # Ran jobs and just became idle: stays.
        (
            {
                **_idle(1, JobStarts=3, ExpectedMachineGracefulDrainingCompletion=FAR_FUTURE),
                **_idle(2, JobStarts=1, ExpectedMachineGracefulDrainingCompletion=FAR_FUTURE),
                "GLIDEIN_START_TIME": FAR_FUTURE - 10,
            },
            False,
        ),
        # Past die: leaves whatever runs.
        ({**_idle(1, State="Claimed", Activity="Busy"), "GLIDEIN_ToDie": PAST}, True),
    ],
)
def test_fixed_slots_shut_down_when_every_user_slot_is_idle_or_at_die_time(
    attrs: dict[str, object], shuts_down: bool
) -> None:
    shutdown = startd_policy(SETTINGS).daemon_shutdown
    assert _evaluate(shutdown, _slot(1, **attrs)) is shuts_down


def test_partitionable_slot_with_dynamic_slots_is_not_idle() -> None:
    settings = dataclasses.replace(SETTINGS, layout=SlotsLayout.PARTITIONABLE, cpus=8)
    shutdown = startd_policy(settings).daemon_shutdown
    retired = {**_idle(1), "GLIDEIN_ToRetire": PAST, "GLIDEIN_START_TIME": FAR_FUTURE - 10}
    # The partitionable slot and the monitoring slot, nothing carved out: leaves.
    assert _evaluate(shutdown, _slot(1, TotalSlots=2, **retired)) is True
    # A dynamic slot runs a job: the partitionable slot only looks idle.
    assert _evaluate(shutdown, _slot(1, TotalSlots=3, **retired)) is False
    assert (
        _evaluate(shutdown, _slot(1, TotalSlots=3, DynamicSlot=True, GLIDEIN_ToDie=PAST)) is False
    )


def test_bad_start_expression_never_reaches_the_policy() -> None:
    settings = dataclasses.replace(SETTINGS, start_expression="a\nSTART = True")
    with pytest.raises(ConfigError, match="start_expression: control characters"):
        startd_policy(settings)


def test_rendered_config_states_collector_security_identity_and_slots() -> None:
    text = render_condor_config(SETTINGS, LIFETIME, PATHS)
    lines = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)
    assert lines["COLLECTOR_HOST"] == "vo.example.org:9618"
    assert lines["SEC_DEFAULT_INTEGRITY"] == "REQUIRED"
    assert lines["SEC_DEFAULT_AUTHENTICATION"] == "REQUIRED"
    assert lines["SEC_DEFAULT_AUTHENTICATION_METHODS"] == "IDTOKENS"
    assert lines["SEC_TOKEN_DIRECTORY"] == PATHS.token_dir
    assert lines["GLIDEIN_ToRetire"] == str(LIFETIME.retire_at)
    assert lines["GLIDEIN_ToDie"] == str(LIFETIME.die_at)
    assert lines["GLIDEIN_ClusterId"] == "42"
    assert lines["GLIDEIN_Factory"] == '"fact1"'
    assert lines["NUM_CPUS"] == "3"
    assert lines["NUM_SLOTS_TYPE_1"] == "2"
    assert lines["NUM_SLOTS_TYPE_2"] == "1"
    published = lines["STARTD_ATTRS"].split(", ")
    for attr in (
        "GLIDEIN_Factory",
        "GLIDEIN_Name",
        "GLIDEIN_Entry_Name",
        "GLIDECLIENT_Name",
        "GLIDEIN_ClusterId",
        "GLIDEIN_ProcId",
        "GLIDEIN_Schedd",
        "GLIDEIN_CredentialIdentifier",
        "GLIDEIN_ToRetire",
        "GLIDEIN_ToDie",
        "IS_MONITOR_VM",
    ):
        assert attr in published


def test_partitionable_layout_offers_one_slot_with_every_user_cpu() -> None:
    settings = dataclasses.replace(SETTINGS, layout=SlotsLayout.PARTITIONABLE, cpus=8)
    text = render_condor_config(settings, LIFETIME, PATHS)
    assert "SLOT_TYPE_1 = cpus=8\nNUM_SLOTS_TYPE_1 = 1\nSLOT_TYPE_1_PARTITIONABLE = True\n" in text


@pytest.mark.parametrize(
    "paths",
    [
        GlideinPaths("/glide/$(HOME)", "/c", "/t"),
        GlideinPaths("/glide", "/c\nSTART = True", "/t"),
        GlideinPaths("/glide", "/c", ""),
    ],
)
def test_paths_that_could_break_the_config_are_refused(paths: GlideinPaths) -> None:
    with pytest.raises(ConfigError, match="control characters and '\\$' are not allowed"):
        render_condor_config(SETTINGS, LIFETIME, paths)


AWKWARD = {
    "factory": 'fa"ct\\ory $(HOME) $$(X) $ENV(PATH) end\\',
    "credential_id": "ünïcode\ttab",
    "entry": "#not a comment",
}

_READ_BACK = """
import json, sys
import classad2, htcondor2
names = sys.argv[1:]
print(json.dumps({n: htcondor2.param.get(n) for n in names}))
"""


def test_htcondor_reads_back_every_value_as_written(tmp_path: Path) -> None:
    identity = dataclasses.replace(IDENTITY, **AWKWARD)
    config = tmp_path / "condor_config"
    config.write_text(
        render_condor_config(dataclasses.replace(SETTINGS, identity=identity), LIFETIME, PATHS)
    )
    names = [
        "GLIDEIN_Factory",
        "GLIDEIN_CredentialIdentifier",
        "GLIDEIN_Entry_Name",
        "START",
        "STARTD.DAEMON_SHUTDOWN",
        "LOCAL_DIR",
        "NUM_CPUS",
    ]
    env = {"CONDOR_CONFIG": str(config), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", _READ_BACK, *names],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    params = json.loads(done.stdout)
    assert classad2.unquote(params["GLIDEIN_Factory"]) == AWKWARD["factory"]
    assert classad2.unquote(params["GLIDEIN_CredentialIdentifier"]) == AWKWARD["credential_id"]
    assert classad2.unquote(params["GLIDEIN_Entry_Name"]) == AWKWARD["entry"]
    policy = startd_policy(SETTINGS)
    assert params["START"] == policy.start
    assert params["STARTD.DAEMON_SHUTDOWN"] == policy.daemon_shutdown
    assert (params["LOCAL_DIR"], params["NUM_CPUS"]) == (PATHS.local_dir, 3)
