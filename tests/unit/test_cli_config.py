"""`gwms config check` and the file-reading edge: every broken config gets its exact message."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gwms_tasks.cli import gwms
from gwms_tasks.config_file import read_config, read_downtimes
from gwms_tasks.core.config import load_config
from gwms_tasks.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "configs"
EXAMPLE = ROOT / "examples" / "factory.yaml"

ENTRY_KEYS = (
    "enabled, grid_type, gatekeeper, auth_method, trust_domain, schedd, backend, startup_dir, "
    "verbosity, slots_layout, proxy_url, rsl, vm_id, vm_type, attributes, submit_attrs, limits, "
    "submit, remove, release, stale_age, recoverable_exitcodes, lifetime, allow_frontends, files"
)
TOP_KEYS = "factory, redis, dashboard, web, flower, entries, files, frontends"
NAME = "a name of letters, digits, '.', '_' or '-'"
USER = "a POSIX user name (a letter or '_' first, then up to 31 letters, digits, '.', '_' or '-')"
GRID_TYPES = "condor, batch <condor|lsf|pbs|sge|slurm>, arc, nordugrid, cream, ec2, gce"
AUTH_TOKENS = (
    "grid_proxy, cert_pair, key_pair, auth_file, username_password, idtoken, scitoken, vm_id, "
    "vm_type, project_id, voms_attr, username"
)

EXPECTED: dict[str, list[str]] = {
    "bad_unknown_key": [f"entries.ce_osg.colour: unknown key (expected one of: {ENTRY_KEYS})"],
    "bad_wrong_type": [
        "entries.ce_osg.limits.per_entry.max_idle: expected an integer >= 0, got 'lots'"
    ],
    "bad_negative_limit": [
        "entries.ce_osg.limits.per_entry.max_held: expected an integer >= 0, got -5"
    ],
    "bad_auth_token": [
        "entries.ce_osg.auth_method: unknown auth token 'kerberos' "
        f"(expected tokens of: {AUTH_TOKENS})"
    ],
    "bad_per_frontend_unknown": [
        "entries.ce_osg.limits.per_frontend.fe_atlas:analysis: expected a configured "
        "frontend:security_class (fe_cms:analysis, fe_cms:production)"
    ],
    "bad_unsafe_entry_name": [f"entries.ce@osg: expected {NAME}, got 'ce@osg'"],
    "bad_yaml_syntax": [
        "line 25, column 4: YAML syntax error: expected <block end>, but found "
        "'<block mapping start>' (while parsing a block mapping); check the indentation of "
        "this line"
    ],
    "bad_empty": [f"the configuration is empty (expected a mapping with keys: {TOP_KEYS})"],
    "bad_top_level_list": [f"top level: expected a mapping with keys: {TOP_KEYS}, got a list"],
    "bad_gt2_grid_type": [
        "entries.ce_osg.grid_type: grid type 'gt2' (Globus GRAM) is not supported by "
        f"glideinWMS 3.10; expected one of: {GRID_TYPES}"
    ],
    "bad_recoverable_exitcodes": [
        "entries.ce_osg.recoverable_exitcodes: group 2 'x 7' is not a list of non-negative "
        "integers; expected 'code [subcode ...],code,...', like '3 13 14,12'"
    ],
    "bad_missing_key": ["factory.web_url: missing required key (expected an http(s) URL)"],
    "bad_missing_gatekeeper": [
        "entries.ce_osg.gatekeeper: missing required key (the condor_g backend needs a CE)"
    ],
    "bad_duplicate_entry": ["line 28, column 3: duplicate key 'ce_osg' (first given on line 23)"],
    "bad_shared_user": [
        "frontends.fe_dune.security_classes.main: user 'fe_cms' already serves frontend "
        "'fe_cms' (each local user serves one frontend, so frontends stay isolated)"
    ],
    "bad_backend_kind": [
        "entries.ce_osg.backend.kind: expected one of: condor_g, local_site, simulated; got 'cloud'"
    ],
    "bad_whitelist_class": [
        "entries.ce_osg.allow_frontends[0].security_class: expected a security class of "
        "fe_cms (All, analysis, production)"
    ],
    "bad_web_url_scheme": [
        "factory.web_url: expected an http(s) URL (http://, https://), "
        "got 'ftp://factory.example.org/stage'"
    ],
    "bad_several_problems": [
        f"factory.name: expected {NAME}, got 'test factory'",
        "entries.ce_osg.limits.per_entry.max_idle: expected an integer >= 0, got 'lots'",
        f"frontends.fe_cms.security_classes.admin: expected {USER}, got 'root user'",
    ],
}


def test_every_broken_fixture_has_its_expected_messages() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("bad_*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_check_prints_each_problem_and_exits_1(name: str) -> None:
    path = FIXTURES / f"{name}.yaml"
    result = CliRunner().invoke(gwms, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"{path}: {message}" for message in EXPECTED[name]]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_load_config_raises_the_same_problems(name: str) -> None:
    text = (FIXTURES / f"{name}.yaml").read_text()
    with pytest.raises(ConfigError) as caught:
        load_config(text, "factory.yaml")
    assert caught.value.source == "factory.yaml"
    assert caught.value.problems == EXPECTED[name]


def test_config_check_of_the_example_prints_a_summary_and_exits_0() -> None:
    result = CliRunner().invoke(gwms, ["config", "check", str(EXAMPLE)])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{EXAMPLE}: OK"
    assert "entries: 3 (3 enabled)" in lines
    assert "frontends: 2" in lines
    assert (
        "  ce_osg_htcondor: condor_g (grid condor to ce.osg.example.org "
        "ce.osg.example.org:9619), auth scitoken"
    ) in lines
    assert (
        "  local_cluster: local_site (4 local slots as site LOCAL_DEMO), auth grid_proxy" in lines
    )
    assert "    limits per entry: idle 400, held 100, glideins 2000" in lines
    assert "    only for: cms_frontend:All, dune_frontend:main" in lines
    assert (
        "  cms_frontend (vofrontend_cms@frontend.cms.example.org): "
        "analysis -> fe_cms, production -> fe_cms_pilot"
    ) in lines


def _write_config(tmp_path: Path, extra_factory: str = "", web: str = "") -> Path:
    """The minimal valid fixture base, with extra lines under ``factory:`` and a web section."""
    text = (FIXTURES / "bad_missing_gatekeeper.yaml").read_text()
    text = text.replace("entries:\n  ce_osg:\n", "entries:\n  ce_osg:\n    gatekeeper: ce.x\n")
    text = text.replace("factory:\n", f"factory:\n{extra_factory}")
    path = tmp_path / "factory.yaml"
    path.write_text(text + web)
    return path


def test_config_check_hides_the_operator_token_and_url_passwords(tmp_path: Path) -> None:
    token = "s3cret-operator-token-0123"
    path = _write_config(tmp_path, web=f"web:\n  operator_token: {token}\n")
    path.write_text(path.read_text().replace("redis://127.0.0.1", "redis://gwms:hunter2@127.0.0.1"))
    result = CliRunner().invoke(gwms, ["config", "check", str(path)])
    assert result.exit_code == 0, result.stderr
    assert token not in result.stdout
    assert "hunter2" not in result.stdout
    assert "state redis://gwms:***@127.0.0.1:6379/0" in result.stdout
    assert "write actions enabled" in result.stdout


def test_config_check_reports_a_bad_line_of_the_downtimes_file(tmp_path: Path) -> None:
    downtimes = tmp_path / "downtimes"
    downtimes.write_text("2024-05-01T10:00:00 None ce_osg\nyesterday None\n")
    path = _write_config(tmp_path, extra_factory=f"  downtimes_file: {downtimes}\n")
    result = CliRunner().invoke(gwms, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{downtimes}: line 2: START: expected an ISO-8601 time like "
        "2024-05-01T10:00:00+00:00, got 'yesterday'"
    ]


def test_config_check_of_a_missing_file_says_it_cannot_read_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    result = CliRunner().invoke(gwms, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert result.stderr == f"{path}: cannot read the file: No such file or directory\n"


def test_read_config_of_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        read_config(tmp_path)
    assert caught.value.problems == ["cannot read the file: Is a directory"]


def test_read_config_of_binary_junk_names_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "factory.yaml"
    path.write_bytes(b"factory:\n  name: \xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        read_config(path)
    assert caught.value.problems == ["not UTF-8 text (bad byte at offset 17)"]


def test_read_downtimes_of_a_missing_file_means_no_downtimes(tmp_path: Path) -> None:
    assert read_downtimes(tmp_path / "downtimes").periods == ()


def test_read_downtimes_reads_the_periods_of_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "downtimes"
    path.write_text("2024-05-01T10:00:00+00:00 None ce_osg # CE upgrade\n")
    (period,) = read_downtimes(path).periods
    assert (period.start, period.end, period.scope.entry, period.comment) == (
        1714557600.0,
        None,
        "ce_osg",
        "CE upgrade",
    )


def test_gwms_help_lists_the_config_group() -> None:
    result = CliRunner().invoke(gwms, ["--help"])
    assert result.exit_code == 0
    assert "Check factory configuration files." in result.stdout
