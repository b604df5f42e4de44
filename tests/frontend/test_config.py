"""The frontend config: every mistake gets a message naming the key path and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from gwms_tasks.cli import gwms
from gwms_tasks.errors import ConfigError
from gwms_tasks.frontend.core_config import CelerySource, CredentialType, load_frontend_config
from gwms_tasks.frontend.files import read_frontend_config
from tests.frontend.builders import IDENTITY, config_of, frontend_data, with_changes

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "frontend.yaml"
CREDENTIAL = {"id": "p", "path": "x", "type": "scitoken", "security_class": "c"}
GROUP_KEYS = (
    "enabled, job_source, entry_constraint, match, credentials, params, limits, remove_excess"
)

CASES: dict[str, tuple[str, Any, str]] = {
    "unknown_key": (
        "groups.main.colour",
        "red",
        f"groups.main.colour: unknown key (expected one of: {GROUP_KEYS})",
    ),
    "identity_not_the_acl_user": (
        "frontend.identity",
        "someone_else",
        f"frontend.identity: expected the ACL user of dashboard.url ({IDENTITY!r}): the "
        "dashboard authenticates the frontend as that user",
    ),
    "url_without_user": (
        "dashboard.url",
        "redis://127.0.0.1:6379/2",
        f"dashboard.url: expected the frontend's ACL user in the URL, like redis://{IDENTITY}:"
        "<password>@host:port/db",
    ),
    "bad_constraint": (
        "groups.main.entry_constraint",
        "GLIDEIN_Site ==",
        "groups.main.entry_constraint: expected a ClassAd constraint: not a valid ClassAd "
        "expression: 'GLIDEIN_Site =='",
    ),
    "bad_match": (
        "groups.main.match",
        "job.X <=",
        "groups.main.match: expected a ClassAd expression: not a valid ClassAd expression: "
        "'job.X <='",
    ),
    "no_submit_credential": (
        "groups.main.credentials",
        [CREDENTIAL | {"type": "idtoken"}],
        "groups.main.credentials: expected at least one scitoken or grid_proxy",
    ),
    "duplicate_credential": (
        "groups.main.credentials",
        [CREDENTIAL, CREDENTIAL | {"path": "y"}],
        "groups.main.credentials: credential id 'p' is given 2 times",
    ),
    "bad_credential_type": (
        "groups.main.credentials",
        [CREDENTIAL | {"type": "kerberos"}],
        "groups.main.credentials[0].type: expected one of: scitoken, grid_proxy, idtoken; "
        "got 'kerberos'",
    ),
    "unsafe_credential_id": (
        "groups.main.credentials",
        [CREDENTIAL | {"id": "a/b"}],
        "groups.main.credentials[0].id: expected a credential id of letters, digits, '.', '_' "
        "or '-', got 'a/b'",
    ),
    "credential_id_with_a_newline": (
        "groups.main.credentials",
        [CREDENTIAL | {"id": "p\n"}],
        "groups.main.credentials[0].id: expected a credential id of letters, digits, '.', '_' "
        "or '-', got 'p\\n'",
    ),
    "credential_id_too_long": (
        "groups.main.credentials",
        [CREDENTIAL | {"id": "p" * 201}],
        "groups.main.credentials[0].id: expected a credential id of letters, digits, '.', '_' "
        f"or '-', got '{'p' * 57}...'",
    ),
    "unsafe_key_prefix": (
        "dashboard.key_prefix",
        "gwms:x",
        "dashboard.key_prefix: expected a name of letters, digits, '.', '_' or '-', got 'gwms:x'",
    ),
    "bad_source_kind": (
        "groups.main.job_source",
        {"kind": "rabbit"},
        "groups.main.job_source.kind: expected one of: celery, schedd; got 'rabbit'",
    ),
    "celery_source_not_redis": (
        "groups.main.job_source",
        {"kind": "celery", "broker_url": "amqp://mq//", "queue": "q"},
        "groups.main.job_source.broker_url: expected a Redis URL (redis://, rediss://, "
        "unix://), got 'amqp://mq//'",
    ),
    "negative_limit": (
        "groups.main.limits.max_idle_per_entry",
        -1,
        "groups.main.limits.max_idle_per_entry: expected an integer >= 0, got -1",
    ),
    "no_ramp_up": (
        "groups.main.limits.max_new_idle_per_cycle",
        0,
        "groups.main.limits.max_new_idle_per_cycle: expected an integer >= 1, got 0",
    ),
    "bad_remove_mode": (
        "groups.main.remove_excess.mode",
        "SOME",
        "groups.main.remove_excess.mode: expected one of: NO, WAIT, IDLE, ALL; got 'SOME'",
    ),
    "no_factory": ("factories", [], "factories: expected at least one factory"),
    "factory_twice": (
        "factories",
        [{"name": "f", "identity": "x"}, {"name": "f", "identity": "y"}],
        "factories[1]: gfactory_instance@f is given twice",
    ),
    "no_group": ("groups", {}, "groups: expected at least one group"),
    "param_list": (
        "groups.main.params",
        {"GLIDEIN_X": [1, 2]},
        "groups.main.params.GLIDEIN_X: expected a string, an integer or true/false, got a list",
    ),
    "job_source_missing": (
        "groups.main.job_source",
        None,
        "groups.main.job_source: expected a mapping with a 'kind' of: celery, schedd, got null",
    ),
    "ad_lifetime_too_short": (
        "dashboard.ad_lifetime",
        60,
        "dashboard.ad_lifetime: expected more than twice frontend.loop_delay (60 s), or "
        "requests expire between two cycles",
    ),
    "loop_delay_zero": (
        "frontend.loop_delay",
        0,
        "frontend.loop_delay: expected a number > 0, got 0",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_names_the_key_and_what_was_expected(tmp_path: Path, case: str) -> None:
    path, value, message = CASES[case]
    text = yaml.safe_dump(with_changes(frontend_data(tmp_path), path, value))

    with pytest.raises(ConfigError) as caught:
        load_frontend_config(text, "fe.yaml")

    assert caught.value.problems == [message]
    assert caught.value.source == "fe.yaml"


def test_several_problems_are_all_listed(tmp_path: Path) -> None:
    data = with_changes(frontend_data(tmp_path), "groups.main.limits.max_idle_per_entry", "x")
    data = with_changes(data, "frontend.name", "fe@1")

    with pytest.raises(ConfigError) as caught:
        config_of(data)

    assert len(caught.value.problems) == 2


def test_example_config_is_valid_and_read_as_documented() -> None:
    config = read_frontend_config(EXAMPLE)

    group = config.groups["main"]
    assert isinstance(group.job_source, CelerySource)
    assert group.job_source.priority_steps == (0, 3, 6, 9)
    assert [c.type for c in group.credentials] == [CredentialType.SCITOKEN, CredentialType.IDTOKEN]
    assert group.params["GLIDEIN_CELERY_QUEUE"] == "vo_jobs"
    assert config.queue == "gwms.frontend.cms_frontend"
    assert config.client_name("main") == "cms_frontend.main"


def test_config_is_frozen(tmp_path: Path) -> None:
    config = config_of(frontend_data(tmp_path))

    with pytest.raises(ValueError, match="frozen"):
        config.frontend.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.groups["x"] = config.groups["main"]  # type: ignore[index]


def test_unreadable_config_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"frontend: caf\xe9\n")

    with pytest.raises(ConfigError, match="cannot read the file"):
        read_frontend_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        read_frontend_config(tmp_path / "latin1.yaml")


def test_cli_check_prints_a_summary_and_warns_of_missing_credentials(tmp_path: Path) -> None:
    data = frontend_data(tmp_path)
    (tmp_path / "pool.idtoken").unlink()
    (tmp_path / "fe.yaml").write_text(yaml.safe_dump(data))

    result = CliRunner().invoke(gwms, ["frontend", "config", "check", str(tmp_path / "fe.yaml")])

    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'fe.yaml'}: OK" in result.stdout
    assert "dashboard redis://vofrontend_cms%40frontend.cms.example.org:***@" in result.stdout
    assert "secret" not in result.stdout
    assert "group cms_frontend.main: celery queue vo_jobs" in result.stdout
    assert "warning: credential cms_pool" in result.stderr


def test_cli_check_of_a_bad_file_prints_every_problem_and_fails(tmp_path: Path) -> None:
    data = with_changes(frontend_data(tmp_path), "groups.main.limits.max_idle_per_entry", "lots")
    (tmp_path / "fe.yaml").write_text(yaml.safe_dump(data))

    result = CliRunner().invoke(gwms, ["frontend", "config", "check", str(tmp_path / "fe.yaml")])

    assert result.exit_code == 1
    assert result.stderr == (
        f"{tmp_path / 'fe.yaml'}: groups.main.limits.max_idle_per_entry: expected an integer "
        ">= 0, got 'lots'\n"
    )
