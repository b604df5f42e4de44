"""The Condor-G submit description (reference §4.1-§4.4), checked command by command.

Values are also pushed through the real ``htcondor2.Submit`` and ``classad2`` so that quoting is
checked by HTCondor's own parsers, not by string comparison alone.
"""

from __future__ import annotations

import dataclasses
import time

import classad2
import htcondor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.core.submit_description import (
    HALF_DAY,
    EntrySubmitSettings,
    GridType,
    SlotsLayout,
    SubmitAttr,
    build_submit_description,
    check_submission,
    client_log_dir,
    format_arguments,
    grid_resource,
    literal,
    log_nr,
    periodic_remove,
)
from gwms_tasks.errors import ConfigError, PermanentError
from gwms_tasks.ports import GlideinTags, Submission

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
TAGS = GlideinTags(
    factory="fact",
    glidein="gfactory_instance",
    entry="ce1",
    client="fe.main",
    security_class="sc1",
    credential_id="cred1",
    frontend="fe:sc1",
    username="feuser",
    submit_key="key-1",
)
ARGS = ("-v", "std", "-name", "gfactory_instance", "-entry", "ce1")


def settings(grid_type: GridType = GridType.CONDOR, **changes: object) -> EntrySubmitSettings:
    base: dict[str, object] = {
        "grid_type": grid_type,
        "gatekeeper": "ce.example.org ce.example.org:9619",
        "executable": "/srv/gwms/glidein_startup.sh",
        "log_base_dir": "/var/log/gwms/client",
        "web_url": "http://factory.example.org/factory/stage",
    }
    if grid_type is GridType.BATCH:
        base |= {"gatekeeper": "pilot@login.example.org", "batch_lrms": "slurm"}
    return EntrySubmitSettings(**(base | changes))  # type: ignore[arg-type]


def submission(
    count: int = 3,
    arguments: tuple[str, ...] = ARGS,
    environment: dict[str, str] | None = None,
    idle_lifetime: int = 0,
    **tag_changes: str,
) -> Submission:
    tags = dataclasses.replace(TAGS, **tag_changes)
    return Submission(tags, count, arguments, environment or {}, idle_lifetime)


def describe(grid_type: GridType = GridType.CONDOR, **kwargs: object) -> dict[str, str]:
    setting_changes = kwargs.pop("settings", {})
    assert isinstance(setting_changes, dict)
    return build_submit_description(
        settings(grid_type, **setting_changes),
        submission(**kwargs),  # type: ignore[arg-type]
        NOW,
    )


def job_attr(description: dict[str, str], name: str) -> object:
    """The value a job attribute gets: expanded by HTCondor, then evaluated as ClassAd."""
    expanded = htcondor2.Submit(description).expand(f"MY.{name}")
    return classad2.ExprTree(expanded).eval()


# -- the common commands ---------------------------------------------------------------------


def test_condor_entry_submits_a_grid_universe_job_to_its_gatekeeper() -> None:
    description = describe()
    assert description["universe"] == "grid"
    assert description["grid_resource"] == "condor ce.example.org ce.example.org:9619"
    assert description["executable"] == "/srv/gwms/glidein_startup.sh"
    assert description["transfer_executable"] == "True"
    assert description["notification"] == "Never"
    assert description["+Owner"] == "undefined"
    assert description["when_to_transfer_output"] == "ON_EXIT"
    assert description["job_ad_information_attrs"] == "GlideinOverloadEnabled"


@pytest.mark.parametrize(
    "grid_type", [g for g in GridType if g not in (GridType.EC2, GridType.GCE)]
)
def test_every_supported_grid_type_gives_a_description_htcondor_accepts(
    grid_type: GridType,
) -> None:
    description = describe(grid_type, environment={"X509_USER_PROXY": "/creds/proxy"})
    parsed = htcondor2.Submit(description)
    assert parsed.expand("universe") == "grid"
    assert job_attr(description, "GlideinEntryName") == "ce1"


def test_only_condor_entries_ask_for_no_output_transfer_attribute() -> None:
    assert describe()["+TransferOutput"] == '""'
    assert "+TransferOutput" not in describe(GridType.ARC)


# -- tags --------------------------------------------------------------------------------------


def test_every_glidein_is_tagged_for_the_factory_queries_and_accounting() -> None:
    description = describe()
    expected = {
        "GlideinFactory": "fact",
        "GlideinName": "gfactory_instance",
        "GlideinEntryName": "ce1",
        "GlideinEntrySubmitFile": "entry_ce1/job.condor",
        "GlideinClient": "fe.main",
        "GlideinFrontendName": "fe:sc1",
        "GlideinCredentialIdentifier": "cred1",
        "GlideinSecurityClass": "sc1",
        "GlideinWebBase": "http://factory.example.org/factory/stage",
        "GlideinLogNr": "20231114",
        "GlideinWorkDir": ".",
        "GlideinSlotsLayout": "fixed",
        "GlideinSubmitKey": "key-1",
        "fename": "feuser",
        "GlideinOverloadEnabled": False,
    }
    assert {name: job_attr(description, name) for name in expected} == expected


def test_hostile_tag_values_reach_the_job_unchanged_and_inert() -> None:
    hostile = 'x" && true || "$(Cluster)$ENV(HOME)\\\n'
    description = describe(credential_id=hostile, security_class="é ü")
    assert job_attr(description, "GlideinCredentialIdentifier") == hostile
    assert job_attr(description, "GlideinSecurityClass") == "é ü"


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00")))
def test_any_text_round_trips_through_literal_and_htcondor(value: str) -> None:
    description = {"+Tag": literal(value, "Tag")}
    assert job_attr(description, "Tag") == value


def test_a_nul_character_in_a_tag_is_refused() -> None:
    with pytest.raises(PermanentError, match="GlideinSubmitKey"):
        describe(submit_key="a\x00b")


def test_optional_tags_appear_only_when_configured() -> None:
    plain = describe()
    assert "+GlideinMaxWalltime" not in plain
    assert "+GlideinProxyURL" not in plain
    assert "+ProjectName" not in plain
    rich = describe(
        settings={"max_walltime": 86400, "proxy_url": "http://squid:3128"},
        environment={"GLIDEIN_PROJECT_ID": "TG-123", "GLIDEIN_OVERLOAD_ENABLED": "true"},
    )
    assert job_attr(rich, "GlideinMaxWalltime") == 86400
    assert job_attr(rich, "GlideinProxyURL") == "http://squid:3128"
    assert job_attr(rich, "ProjectName") == "TG-123"
    assert job_attr(rich, "GlideinOverloadEnabled") is True


def test_an_unresolved_overload_percentage_is_refused() -> None:
    with pytest.raises(PermanentError, match="GLIDEIN_OVERLOAD_ENABLED"):
        describe(environment={"GLIDEIN_OVERLOAD_ENABLED": "50%"})


def test_partitionable_layout_and_custom_submit_file_are_tagged() -> None:
    description = describe(
        settings={"slots_layout": SlotsLayout.PARTITIONABLE, "entry_submit_file": "job.ce1.condor"}
    )
    assert job_attr(description, "GlideinSlotsLayout") == "partitionable"
    assert job_attr(description, "GlideinEntrySubmitFile") == "job.ce1.condor"


# -- grid resource -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grid_type", "gatekeeper", "expected"),
    [
        (GridType.CONDOR, "ce.org ce.org:9619", "condor ce.org ce.org:9619"),
        (GridType.ARC, "https://arc.org:443/arex", "arc https://arc.org:443/arex"),
        (GridType.NORDUGRID, "arc.org", "nordugrid arc.org"),
        (
            GridType.CREAM,
            "cream.org:8443/ce-cream/services/CREAM2 pbs q",
            "cream cream.org:8443/ce-cream/services/CREAM2 pbs q",
        ),
    ],
)
def test_grid_resource_names_the_grid_type_and_gatekeeper(
    grid_type: GridType, gatekeeper: str, expected: str
) -> None:
    assert grid_resource(settings(grid_type, gatekeeper=gatekeeper), {}) == expected


def test_batch_grid_resource_takes_the_user_from_the_gatekeeper() -> None:
    assert grid_resource(settings(GridType.BATCH), {}) == "batch slurm pilot@login.example.org"


def test_batch_grid_resource_prefers_the_requested_remote_user_and_adds_options() -> None:
    entry = settings(GridType.BATCH, gatekeeper="login.example.org:2222", bosco_dir="bosco")
    environment = {
        "GLIDEIN_REMOTE_USERNAME": "vo_pilot",
        "GRID_RESOURCE_OPTIONS": "--rgahp-key /creds/key --rgahp-nopass",
    }
    assert grid_resource(entry, environment) == (
        "batch slurm --rgahp-key /creds/key --rgahp-nopass --rgahp-glite ~/bosco/glite"
        " vo_pilot@login.example.org:2222"
    )


def test_batch_entry_without_any_remote_user_is_refused() -> None:
    entry = settings(GridType.BATCH, gatekeeper="login.example.org")
    with pytest.raises(PermanentError, match="no remote user name"):
        grid_resource(entry, {})


def test_batch_options_with_quotes_are_refused() -> None:
    with pytest.raises(PermanentError, match="GRID_RESOURCE_OPTIONS"):
        grid_resource(settings(GridType.BATCH), {"GRID_RESOURCE_OPTIONS": '--x "y"'})


# -- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grid_type", "words", "expected"),
    [
        (GridType.CONDOR, ["-v", "std"], "-v std -cluster $(Cluster) -subcluster $(Process)"),
        (GridType.BATCH, ["-v", "std"], "-v std -cluster $(Cluster) -subcluster $(Process)"),
        (GridType.ARC, ["-v", "std"], '"-v std -cluster $(Cluster) -subcluster $(Process)"'),
        (GridType.CONDOR, ['a"b'], 'a\\"b -cluster $(Cluster) -subcluster $(Process)'),
        (GridType.CREAM, ['a"b'], '"a""b -cluster $(Cluster) -subcluster $(Process)"'),
        (GridType.NORDUGRID, ["it's"], "\"'it''s' -cluster $(Cluster) -subcluster $(Process)\""),
        (GridType.CONDOR, ["$HOME"], "$(DOLLAR)HOME -cluster $(Cluster) -subcluster $(Process)"),
    ],
)
def test_arguments_follow_the_quoting_rule_of_the_grid_type(
    grid_type: GridType, words: list[str], expected: str
) -> None:
    assert format_arguments(words, grid_type) == expected


def test_a_dollar_in_an_argument_is_not_expanded_by_htcondor() -> None:
    expanded = htcondor2.Submit({"arguments": format_arguments(["$ENV(HOME)"], GridType.CONDOR)})
    assert expanded.expand("arguments").startswith("$ENV(HOME) -cluster")


@pytest.mark.parametrize("word", ["", "two words", "tab\there", "new\nline"])
def test_arguments_that_cannot_be_one_word_are_refused(word: str) -> None:
    with pytest.raises(PermanentError, match="whitespace"):
        format_arguments(["-v", word], GridType.CONDOR)


# -- credentials -------------------------------------------------------------------------------


def test_condor_entry_with_a_proxy_and_tokens_sends_all_of_them() -> None:
    description = describe(
        environment={
            "X509_USER_PROXY": "/creds/credential_fe.main_cred1",
            "SCITOKENS_FILE": "/creds/credential_fe.main_ce1.scitoken",
            "IDTOKENS_FILE": "/creds/credential_fe.main_ce1.idtoken",
        }
    )
    assert description["x509userproxy"] == "/creds/credential_fe.main_cred1"
    assert job_attr(description, "SciTokensFile") == "/creds/credential_fe.main_ce1.scitoken"
    assert description["transfer_input_files"] == "/creds/credential_fe.main_ce1.idtoken"
    assert description["encrypt_input_files"] == description["transfer_input_files"]
    assert description["environment"] == '"IDTOKENS_FILE=/creds/credential_fe.main_ce1.idtoken"'


def test_entry_without_credentials_in_the_environment_sends_none() -> None:
    description = describe()
    for command in ("x509userproxy", "+SciTokensFile", "transfer_input_files", "environment"):
        assert command not in description


def test_batch_entry_ships_the_pilot_proxy_and_names_it_in_the_job_environment() -> None:
    description = describe(GridType.BATCH, environment={"X509_USER_PROXY": "/creds/pilot_proxy"})
    assert "x509userproxy" not in description
    assert description["transfer_input_files"] == "/creds/pilot_proxy"
    assert description["environment"] == '"X509_USER_PROXY=pilot_proxy"'


def test_batch_entry_without_a_proxy_transfers_dev_null_in_its_place() -> None:
    assert describe(GridType.BATCH)["transfer_input_files"] == "/dev/null"


@pytest.mark.parametrize(
    "path", ["/creds/a b", "/creds/a,b", "/creds/$(HOME)", '/creds/"x', "/creds/p\n"]
)
def test_credential_paths_that_would_break_the_description_are_refused(path: str) -> None:
    with pytest.raises(PermanentError, match="X509_USER_PROXY"):
        describe(environment={"X509_USER_PROXY": path})


def test_nordugrid_rsl_gets_the_project_appended() -> None:
    description = describe(
        GridType.NORDUGRID,
        settings={"rsl": "(queue=grid)"},
        environment={"GLIDEIN_PROJECT_ID": "TG-123"},
    )
    assert description["nordugrid_rsl"] == "(queue=grid)(project=TG-123)"


def test_cream_rsl_becomes_cream_attributes() -> None:
    description = describe(GridType.CREAM, settings={"rsl": "Memory=2000"})
    assert description["cream_attributes"] == "Memory=2000"
    assert "nordugrid_rsl" not in description


# -- lifetime and logs -------------------------------------------------------------------------


def _evaluates_true(expression: str, **job: object) -> bool:
    return classad2.ExprTree(expression).eval(classad2.ClassAd(job)) is True


def test_periodic_remove_removes_glideins_idle_longer_than_their_lifetime() -> None:
    expression = periodic_remove(600, None)
    now = time.time()
    assert _evaluates_true(expression, JobStatus=1, QDate=int(now - 3600))
    assert not _evaluates_true(expression, JobStatus=1, QDate=int(now - 60))
    assert not _evaluates_true(expression, JobStatus=2, QDate=int(now - 3600))
    skip = {"GlideinSkipIdleRemoval": True}
    assert not _evaluates_true(expression, JobStatus=1, QDate=int(now - 3600), **skip)


def test_periodic_remove_with_no_idle_lifetime_keeps_idle_glideins() -> None:
    assert not _evaluates_true(periodic_remove(0, None), JobStatus=1, QDate=0)


def test_periodic_remove_removes_glideins_running_half_a_day_past_walltime() -> None:
    expression = periodic_remove(0, 3600)
    now = time.time()
    overdue = {"JobStatus": 2, "GlideinMaxWalltime": 3600, "QDate": 0}
    assert _evaluates_true(
        expression, EnteredCurrentStatus=int(now - 3600 - HALF_DAY - 60), **overdue
    )
    assert not _evaluates_true(expression, EnteredCurrentStatus=int(now - 3600), **overdue)


def test_submission_idle_lifetime_reaches_periodic_remove() -> None:
    assert describe(idle_lifetime=7200)["periodic_remove"] == periodic_remove(7200, None)


def test_a_negative_idle_lifetime_is_refused() -> None:
    with pytest.raises(PermanentError, match="idle lifetime"):
        describe(idle_lifetime=-1)


def test_pilot_accounting_keeps_finished_glideins_for_half_a_day() -> None:
    assert "leave_in_queue" not in describe()
    kept = describe(settings={"advertise_pilot_accounting": True})
    assert kept["leave_in_queue"] == f"((time() - EnteredCurrentStatus) < {HALF_DAY})"


def test_logs_go_under_the_client_log_dir_of_user_glidein_and_entry() -> None:
    description = describe()
    directory = "/var/log/gwms/client/user_feuser/glidein_gfactory_instance/entry_ce1"
    assert client_log_dir(settings(), TAGS) == directory
    assert description["log"] == f"{directory}/condor_activity_20231114_fe.main.log"
    assert description["output"] == f"{directory}/job.$(Cluster).$(Process).out"
    assert description["error"] == f"{directory}/job.$(Cluster).$(Process).err"


def test_log_number_is_the_utc_date() -> None:
    assert log_nr(NOW) == "20231114"
    assert log_nr(NOW + 2 * 3600) == "20231115"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client", "../etc"),
        ("client", "fe/main"),
        ("username", ".."),
        ("username", "a b"),
        ("username", "fe_cms\n"),
    ],
)
def test_names_unsafe_in_a_log_path_are_refused(field: str, value: str) -> None:
    with pytest.raises(PermanentError, match="file name"):
        tags = dataclasses.replace(TAGS, **{field: value})
        build_submit_description(settings(), Submission(tags, 1, ARGS), NOW)


# -- configured submit attrs -------------------------------------------------------------------


def test_configured_submit_attrs_are_written_raw() -> None:
    attrs = (SubmitAttr("+maxMemory", "2048"), SubmitAttr("request_cpus", "8"))
    description = describe(settings={"submit_attrs": attrs})
    assert description["+maxMemory"] == "2048"
    assert description["request_cpus"] == "8"


def test_nordugrid_entries_take_only_submit_attrs_meant_for_all_grid_types() -> None:
    attrs = (SubmitAttr("+A", "1"), SubmitAttr("+B", "2", all_grid_types=True))
    description = describe(GridType.NORDUGRID, settings={"submit_attrs": attrs})
    assert "+A" not in description
    assert description["+B"] == "2"


@pytest.mark.parametrize("name", ["+GlideinClient", "MY.GlideinSubmitKey", "Arguments", "log"])
def test_submit_attrs_cannot_override_what_the_factory_sets(name: str) -> None:
    with pytest.raises(ConfigError, match="cannot be overridden"):
        settings(submit_attrs=(SubmitAttr(name, "1"),))


# -- settings and grid types -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"grid_type": GridType.EC2}, "not supported"),
        ({"grid_type": GridType.GCE}, "not supported"),
        ({"grid_type": GridType.BATCH}, "batch_lrms"),
        ({"batch_lrms": "slurm"}, "batch_lrms"),
        ({"rsl": "(queue=x)"}, "rsl"),
        ({"executable": "/srv/glidein startup.sh"}, "executable"),
        ({"gatekeeper": "ce.org\nqueue 1000"}, "gatekeeper"),
        ({"web_url": "http://$(HOME)"}, "web_url"),
        ({"cluster_size": 0}, "cluster_size"),
        ({"max_walltime": 0}, "max_walltime"),
        ({"submit_attrs": (SubmitAttr("+A", "1\nqueue 99"),)}, "submit_attrs"),
        ({"submit_attrs": (SubmitAttr("bad name", "1"),)}, "submit_attrs"),
        ({"submit_attrs": (SubmitAttr("+A\n", "1"),)}, "submit_attrs"),
        ({"executable": "/srv/glidein_startup.sh\n"}, "executable"),
    ],
)
def test_unusable_entry_settings_are_config_errors(
    changes: dict[str, object], problem: str
) -> None:
    grid_type = changes.pop("grid_type", GridType.CONDOR)
    assert isinstance(grid_type, GridType)
    base = {
        "gatekeeper": "ce.org ce.org:9619",
        "executable": "/srv/glidein_startup.sh",
        "log_base_dir": "/var/log/client",
        "web_url": "http://f/stage",
    }
    with pytest.raises(ConfigError, match=problem):
        EntrySubmitSettings(grid_type=grid_type, **(base | changes))  # type: ignore[arg-type]


# -- submission checks -------------------------------------------------------------------------


def test_submission_tagged_for_another_entry_is_refused() -> None:
    with pytest.raises(PermanentError, match="ce2@gfactory_instance@fact"):
        check_submission(submission(entry="ce1"), "fact", "gfactory_instance", "ce2")


def test_submission_of_a_negative_count_is_refused() -> None:
    with pytest.raises(PermanentError, match="negative"):
        check_submission(submission(count=-1), "fact", "gfactory_instance", "ce1")


def test_matching_submission_passes_the_check() -> None:
    check_submission(submission(), "fact", "gfactory_instance", "ce1")
