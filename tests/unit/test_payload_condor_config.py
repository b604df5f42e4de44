"""The condor payload's worker-node edge: glidein_config to typed settings, startd history stats."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from gwms_tasks.core.condor_config import SlotsLayout
from gwms_tasks.core.lifetime import LifetimeKnobs
from gwms_tasks.errors import ConfigError
from gwms_tasks.glidein.payload_condor_config import (
    history_stats,
    knobs_from_glidein_config,
    parse_glidein_config,
    settings_from_glidein_config,
)

ROOT = Path(__file__).resolve().parents[2] / "gwms_tasks"
# What runs on the worker node, with the worker node's python.
SHIPPED = {
    ROOT / "errors.py": set(),
    ROOT / "core" / "lifetime.py": {"gwms_tasks.errors"},
    ROOT / "core" / "condor_config.py": {"gwms_tasks.errors", "gwms_tasks.core.lifetime"},
    ROOT / "glidein" / "payload_condor_config.py": {
        "gwms_tasks.errors",
        "gwms_tasks.core.lifetime",
        "gwms_tasks.core.condor_config",
    },
    ROOT / "glidein" / "payload_celery.py": {"celery"},
}
GLIDEIN_CONFIG = """\
GLIDEIN_Factory fact1
GLIDEIN_Name gfactory_instance
GLIDEIN_Entry_Name ce_one
GLIDECLIENT_Name fe.main
GLIDECLIENT_Group main
GLIDEIN_CredentialIdentifier cred-1
CONDORG_CLUSTER 42
CONDORG_SUBCLUSTER 3
GLIDEIN_Collector vo.example.org:9618
"""


def test_glidein_config_keeps_the_last_value_of_a_key_with_its_spaces() -> None:
    values = parse_glidein_config("A 1\nB two words \r\nA  leading space\nC\n\nA_B x\n")
    assert values == {"A": " leading space", "B": "two words ", "C": "", "A_B": "x"}


def test_defaults_give_fixed_single_cpu_slots_with_a_monitoring_slot() -> None:
    settings = settings_from_glidein_config(
        parse_glidein_config(GLIDEIN_CONFIG), instance="77", detected_cpus=16, fraction=0.0
    )
    assert (settings.layout, settings.cpus, settings.monitor_slot) == (SlotsLayout.FIXED, 1, True)
    assert settings.daemon_name == "glidein_42_3_77"
    assert settings.identity.cluster_id == 42
    assert settings.identity.schedd is None
    assert settings.start_expression == "True"


def test_cpus_auto_takes_the_node_and_partitionable_layout_is_read() -> None:
    extra = "GLIDEIN_CPUS auto\nSLOTS_LAYOUT partitionable\nGLIDEIN_Monitoring_Enabled False\n"
    settings = settings_from_glidein_config(
        parse_glidein_config(GLIDEIN_CONFIG + extra), instance="1", detected_cpus=12, fraction=0.0
    )
    assert (settings.layout, settings.cpus, settings.monitor_slot) == (
        SlotsLayout.PARTITIONABLE,
        12,
        False,
    )


def test_every_problem_of_a_bad_glidein_config_is_reported_at_once() -> None:
    text = (
        "GLIDEIN_Name x\nGLIDEIN_Factory a\x07b\nCONDORG_CLUSTER -3\nGLIDEIN_Collector bad host!\n"
        "GLIDECLIENT_Start (a\nSLOTS_LAYOUT dynamic\nGLIDEIN_CPUS zero\n"
    )
    with pytest.raises(ConfigError) as caught:
        settings_from_glidein_config(
            parse_glidein_config(text), instance="1", detected_cpus=1, fraction=0.0
        )
    problems = "\n".join(caught.value.problems)
    for expected in (
        "GLIDEIN_Factory: control characters",
        "GLIDEIN_Entry_Name: required",
        "GLIDECLIENT_Name: required",
        "GLIDEIN_CredentialIdentifier: required",
        "CONDORG_CLUSTER: expected a non-negative integer, got '-3'",
        "CONDORG_SUBCLUSTER: required",
        "GLIDEIN_Collector: expected host[:port|:low-high], got 'host!'",
        "GLIDECLIENT_Start: unclosed '('",
        "SLOTS_LAYOUT: expected fixed or partitionable, got 'dynamic'",
        "GLIDEIN_CPUS: expected a positive integer, auto or node, got 'zero'",
    ):
        assert expected in problems
    assert caught.value.source == "glidein_config"


def test_lifetime_knobs_come_from_the_glidein_parameters() -> None:
    values = parse_glidein_config(
        "GLIDEIN_Max_Walltime 86400\nGLIDEIN_Retire_Time_Spread 0\nGLIDEIN_Max_Tail 60\n"
        "GLIDEIN_Ignore_X509_Duration False\nX509_EXPIRE 1000500\nGLIDEIN_Job_Max_Time \n"
    )
    knobs = knobs_from_glidein_config(values, now=1_000_000.0, token_expiry=1_000_300.0)
    assert knobs == LifetimeKnobs(
        max_walltime=86400,
        retire_spread=0,
        max_tail=60,
        credential_lifetime=300,
        ignore_credential_lifetime=False,
    )


def test_zero_x509_expire_means_no_proxy() -> None:
    knobs = knobs_from_glidein_config({"X509_EXPIRE": "0"}, now=1_000_000.0)
    assert knobs.credential_lifetime is None


def test_malformed_lifetime_knobs_are_all_reported() -> None:
    values = {
        "GLIDEIN_Max_Walltime": "1d",
        "GLIDEIN_Max_Idle": "-5",
        "GLIDEIN_Ignore_X509_Duration": "maybe",
        "X509_EXPIRE": "soon",
    }
    with pytest.raises(ConfigError) as caught:
        knobs_from_glidein_config(values, now=0.0)
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "GLIDEIN_Max_Walltime",
        "GLIDEIN_Max_Idle",
        "GLIDEIN_Ignore_X509_Duration",
        "X509_EXPIRE",
    ]


def test_startd_history_counts_jobs_and_their_wall_time() -> None:
    history = (
        'ClusterId = 10\nRemoteWallClockTime = 120.0\nOwner = "alice"\n'
        '*** ProcId = 0 ClusterId = 10 Owner = "alice"\n'
        "ClusterId = 11\nJobCurrentStartDate = 1000\nCompletionDate = 1300\n"
        "*** ProcId = 0 ClusterId = 11\n"
        "ClusterId = 12\n*** ProcId = 0 ClusterId = 12\n"
        "ClusterId = 13\nRemoteWallClockTime = 5\n"  # being written: no banner yet
    )
    assert history_stats(history) == (3, 420.0)
    assert history_stats("") == (0, 0.0)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(SHIPPED), ids=lambda p: p.name)
def test_worker_node_modules_import_only_the_standard_library_and_their_peers(path: Path) -> None:
    allowed = SHIPPED[path]
    foreign = {
        name
        for name in _imports(path)
        if name.split(".")[0] not in sys.stdlib_module_names
        and name not in allowed
        and name.split(".")[0] not in allowed
    }
    assert foreign == set()


@pytest.mark.parametrize("path", sorted(SHIPPED), ids=lambda p: p.name)
def test_worker_node_modules_parse_as_python_3_9(path: Path) -> None:
    ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))
