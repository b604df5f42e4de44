"""The factory config: typed values, defaults, the glideinWMS rules built on it, clear errors."""

from __future__ import annotations

import copy
import json
import string
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gwms_tasks.core.config import (
    DEFAULT_AD_LIFETIME,
    CondorDashboard,
    FactoryConfig,
    RedisDashboard,
    load_config,
)
from gwms_tasks.core.config_entry import WhitelistVerdict
from gwms_tasks.core.config_grid import (
    AuthToken,
    GridKind,
    format_recoverable_exitcodes,
    parse_recoverable_exitcodes,
)
from gwms_tasks.core.config_parts import (
    BackendKind,
    CondorGBackend,
    LocalSiteBackend,
    SimulatedBackend,
    StagingFileType,
)
from gwms_tasks.core.escaping import SlotsLayout, Verbosity
from gwms_tasks.core.limits import (
    DEFAULT_ENTRY_LIMITS,
    DEFAULT_FRONTEND_LIMITS,
    GlideinLimits,
    HeldPolicy,
    StaleAges,
)
from gwms_tasks.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "factory.yaml"

MINIMAL: dict[str, Any] = {
    "factory": {
        "name": "f1",
        "web_url": "http://factory.example.org/stage",
        "stage_dir": "/srv/stage",
        "work_dir": "/srv/work",
        "log_dir": "/srv/log",
        "client_log_base_dir": "/srv/client_log",
        "client_proxies_base_dir": "/srv/client_proxies",
    },
    "redis": {"state_url": "redis://localhost/0", "broker_url": "amqp://localhost//"},
    "dashboard": {"kind": "redis", "url": "redis://localhost/2"},
    "frontends": {
        "fe_cms": {
            "identity": "cms@fe.example.org",
            "security_classes": {"analysis": "fe_cms", "pilot": "fe_cms_pilot"},
        },
        "fe_dune": {"identity": "dune@fe.example.org", "security_classes": {"main": "fe_dune"}},
    },
    "entries": {"ce1": {"gatekeeper": "ce1.example.org", "auth_method": "scitoken"}},
}


def build(changes: dict[str, Any] | None = None, entry: dict[str, Any] | None = None) -> str:
    """YAML of MINIMAL with ``changes`` merged in at the top and ``entry`` merged into ce1."""
    data = copy.deepcopy(MINIMAL)
    _merge(data, changes or {})
    _merge(data["entries"]["ce1"], entry or {})
    return yaml.safe_dump(data, sort_keys=False)


def _merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(text, "test.yaml")
    return caught.value.problems


def example() -> FactoryConfig:
    return load_config(EXAMPLE.read_text(), str(EXAMPLE))


# --- the example and the defaults ---------------------------------------------------------


def test_example_entries_get_their_typed_backends_and_grid_settings() -> None:
    config = example()
    ce = config.entries["ce_osg_htcondor"]
    assert isinstance(ce.backend, CondorGBackend)
    assert ce.grid_type.kind is GridKind.CONDOR
    assert ce.auth_method.tokens == (AuthToken.SCITOKEN,)
    assert ce.slots_layout is SlotsLayout.PARTITIONABLE
    local = config.entries["local_cluster"].backend
    assert isinstance(local, LocalSiteBackend)
    assert (local.kind, local.slots, local.hold_fraction, local.site) == (
        BackendKind.LOCAL_SITE,
        4,
        0.05,
        "LOCAL_DEMO",
    )
    simulated = config.entries["simulated_site"].backend
    assert isinstance(simulated, SimulatedBackend)
    assert (simulated.capacity, simulated.queue_time, simulated.failure_rate) == (500, 120.0, 0.02)


def test_example_maps_each_security_class_to_its_own_user() -> None:
    config = example()
    assert config.local_users() == {"fe_cms", "fe_cms_pilot", "fe_dune", "fe_dune_test"}
    assert config.username_for("cms_frontend", "production") == "fe_cms_pilot"
    assert config.username_for("cms_frontend", "main") is None
    assert config.username_for("atlas_frontend", "main") is None


def test_entry_without_limits_gets_the_glideinwms_defaults() -> None:
    entry = load_config(build(), "t").entries["ce1"]
    limits = entry.entry_limits()
    assert limits.per_entry == DEFAULT_ENTRY_LIMITS
    assert limits.default_per_frontend == DEFAULT_FRONTEND_LIMITS
    assert limits.per_frontend == {}
    assert (
        limits.max_submit_per_cycle,
        limits.max_remove_per_cycle,
        limits.max_release_per_cycle,
    ) == (100, 5, 20)
    assert (entry.submit.cluster_size, entry.submit.sleep, entry.remove.sleep) == (10, 0.2, 0.2)
    assert entry.stale_ages() == StaleAges(idle=604800.0, running=2678400.0)
    assert entry.held_policy() == HeldPolicy()
    assert (entry.verbosity, entry.slots_layout, entry.trust_domain) == (
        Verbosity.STD,
        SlotsLayout.FIXED,
        "grid",
    )
    assert entry.grid_type.kind is GridKind.CONDOR
    assert isinstance(entry.backend, CondorGBackend)


def test_factory_defaults_follow_glideinwms() -> None:
    config = load_config(build(), "t")
    factory = config.factory
    assert (factory.glidein_name, factory.loop_delay, factory.advertise_delay) == (
        "gfactory_instance",
        60.0,
        5,
    )
    assert (factory.num_factories, factory.key.length, factory.key.old_key_grace) == (1, 2048, 900)
    assert factory.downtimes_file is None
    assert factory.work_dir == PurePosixPath("/srv/work")
    assert isinstance(config.dashboard, RedisDashboard)
    assert config.dashboard.ad_lifetime == DEFAULT_AD_LIFETIME
    assert (config.web.listen_port, config.web.public_read, config.web.operator_token) == (
        8080,
        True,
        None,
    )
    assert config.flower.port == 5555


def test_condor_dashboard_names_its_collector() -> None:
    data = yaml.safe_load(build())
    data["dashboard"] = {"kind": "condor", "collector": "cm.example.org:9618"}
    config = load_config(yaml.safe_dump(data), "t")
    assert isinstance(config.dashboard, CondorDashboard)
    assert config.dashboard.collector == "cm.example.org:9618"


# --- limits ------------------------------------------------------------------------------


def test_per_frontend_override_inherits_the_bounds_it_leaves_out() -> None:
    entry = load_config(
        build(
            entry={
                "limits": {
                    "default_per_frontend": {"max_idle": 40, "max_held": 4, "max_glideins": 400},
                    "per_frontend": {"fe_cms:pilot": {"max_idle": 7}},
                }
            }
        ),
        "t",
    ).entries["ce1"]
    limits = entry.entry_limits()
    assert limits.for_frontend("fe_cms:pilot") == GlideinLimits(7, 4, 400)
    assert limits.for_frontend("fe_cms:analysis") == GlideinLimits(40, 4, 400)


def test_per_entry_limits_are_shared_between_factories() -> None:
    config = load_config(
        build(
            {"factory": {"num_factories": 3}},
            entry={"limits": {"per_entry": {"max_idle": 100, "max_held": 10, "max_glideins": 7}}},
        ),
        "t",
    )
    assert config.entry_limits("ce1").per_entry == GlideinLimits(33, 3, 2)
    assert config.entry_limits("ce1").default_per_frontend == DEFAULT_FRONTEND_LIMITS


def test_a_zero_submit_rate_is_allowed_but_a_zero_remove_rate_is_not() -> None:
    paused = load_config(build(entry={"submit": {"max_per_cycle": 0}}), "t").entries["ce1"]
    assert paused.entry_limits().max_submit_per_cycle == 0
    assert problems_of(build(entry={"remove": {"max_per_cycle": 0}})) == [
        "entries.ce1.remove.max_per_cycle: expected an integer >= 1, got 0"
    ]


# --- attributes ---------------------------------------------------------------------------

ATTRIBUTE_FLAGS = [
    # publish, const, parameter -> published un-prefixed, GlideinParam, constants file
    (True, True, True, True, False, True),
    (True, False, True, False, True, False),
    (True, True, False, True, False, True),
    (True, False, False, True, False, False),
    (False, True, True, False, False, True),
    (False, False, True, False, False, False),
]


@pytest.mark.parametrize(
    ("publish", "const", "parameter", "published", "param", "constant"), ATTRIBUTE_FLAGS
)
def test_attribute_flags_decide_where_the_attribute_goes(
    publish: bool, const: bool, parameter: bool, published: bool, param: bool, constant: bool
) -> None:
    attribute = {"value": 8, "publish": publish, "const": const, "parameter": parameter}
    entry = load_config(build(entry={"attributes": {"GLIDEIN_CPUS": attribute}}), "t").entries[
        "ce1"
    ]
    assert ("GLIDEIN_CPUS" in entry.published_attributes()) is published
    assert ("GLIDEIN_CPUS" in entry.params()) is param
    assert ("GLIDEIN_CPUS" in entry.const_attributes()) is constant


def test_attribute_values_keep_their_yaml_types() -> None:
    entry = example().entries["ce_osg_htcondor"]
    assert entry.published_attributes()["GLIDEIN_CPUS"] == 8
    assert entry.published_attributes()["GLIDEIN_Site"] == "OSG_EXAMPLE"
    assert entry.const_attributes()["USE_MATCH_AUTH"] is True
    assert entry.params() == {"CONDOR_VERSION": "default"}
    assert entry.submit_attrs["+xcount"] == 8


def test_a_float_attribute_value_is_refused() -> None:
    assert problems_of(build(entry={"attributes": {"X": {"value": 1.5}}})) == [
        "entries.ce1.attributes.X.value: expected a string, an integer or true/false, got 1.5"
    ]


# --- recoverable exit codes ---------------------------------------------------------------

EXITCODES = [
    ("", {}),
    ("   ", {}),
    ("12", {12: frozenset()}),
    ("3 13 14,12", {3: frozenset({13, 14}), 12: frozenset()}),
    (" 13 2 4 5 , 28 ,30 22", {13: frozenset({2, 4, 5}), 28: frozenset(), 30: frozenset({22})}),
]


@pytest.mark.parametrize(("text", "codes"), EXITCODES)
def test_recoverable_exitcodes_become_the_held_policy(
    text: str, codes: dict[int, frozenset[int]]
) -> None:
    entry = load_config(build(entry={"recoverable_exitcodes": text}), "t").entries["ce1"]
    assert dict(entry.held_policy().recoverable) == codes


BAD_EXITCODES = [
    ("3,", "group 2 '' is not a list of non-negative integers"),
    ("3 -1", "group 1 '3 -1' is not a list of non-negative integers"),
    ("12,12 4", "hold code 12 is listed twice (group 2)"),
    ("²", "group 1 '²' is not a list of non-negative integers"),
]


@pytest.mark.parametrize(("text", "reason"), BAD_EXITCODES)
def test_bad_recoverable_exitcodes_say_which_group_is_wrong(text: str, reason: str) -> None:
    (problem,) = problems_of(build(entry={"recoverable_exitcodes": text}))
    assert problem.startswith(f"entries.ce1.recoverable_exitcodes: {reason}")


@given(
    st.dictionaries(
        st.integers(0, 10**6), st.frozensets(st.integers(0, 10**6), max_size=4), max_size=6
    )
)
def test_recoverable_exitcodes_read_back_what_was_written(codes: dict[int, frozenset[int]]) -> None:
    assert dict(parse_recoverable_exitcodes(format_recoverable_exitcodes(codes))) == codes


# --- grid types and auth methods -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "lrms"),
    [
        ("condor", GridKind.CONDOR, None),
        ("batch slurm", GridKind.BATCH, "slurm"),
        ("  batch   pbs ", GridKind.BATCH, "pbs"),
        ("arc", GridKind.ARC, None),
        ("nordugrid", GridKind.NORDUGRID, None),
        ("cream", GridKind.CREAM, None),
    ],
)
def test_grid_types_of_glideinwms_are_accepted(text: str, kind: GridKind, lrms: str | None) -> None:
    entry = load_config(build(entry={"grid_type": text}), "t").entries["ce1"]
    assert (entry.grid_type.kind, entry.grid_type.lrms) == (kind, lrms)
    assert str(entry.grid_type) == " ".join(text.split())


@pytest.mark.parametrize("text", ["gt5", "batch", "batch torque", "condor ce", "Condor", "ec3"])
def test_unknown_or_globus_grid_types_are_refused(text: str) -> None:
    (problem,) = problems_of(build(entry={"grid_type": text}))
    assert problem.startswith("entries.ce1.grid_type: ")
    assert "expected one of: condor, batch <condor|lsf|pbs|sge|slurm>" in problem


def test_cloud_entries_need_a_vm_unless_the_request_brings_one() -> None:
    assert problems_of(build(entry={"grid_type": "gce", "vm_type": "n1-standard-4"})) == [
        "entries.ce1.vm_id: required for grid type gce unless auth_method has vm_id"
    ]
    config = load_config(
        build(entry={"grid_type": "ec2", "auth_method": "key_pair+vm_id+vm_type"}), "t"
    )
    assert AuthToken.VM_ID in config.entries["ce1"].auth_method


@pytest.mark.parametrize(
    ("text", "proxy"),
    [
        ("grid_proxy", True),
        ("grid_proxy+voms_attr", True),
        ("scitoken", False),
        ("key_pair+username", False),
        ("idtoken+scitoken", False),
    ],
)
def test_auth_methods_of_glideinwms_are_accepted(text: str, proxy: bool) -> None:
    method = load_config(build(entry={"auth_method": text}), "t").entries["ce1"].auth_method
    assert str(method) == text
    assert method.uses_grid_proxy is proxy


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("grid_proxy++voms_attr", "unknown auth token ''"),
        ("voms_attr+project_id", "'voms_attr+project_id' names no credential"),
        ("idtoken", "idtoken alone is not a usable entry auth method"),
        ("scitoken+scitoken", "a token is repeated in 'scitoken+scitoken'"),
        ("", "expected tokens joined by '+', like 'grid_proxy+voms_attr'; got ''"),
    ],
)
def test_bad_auth_methods_say_what_is_wrong(text: str, reason: str) -> None:
    (problem,) = problems_of(build(entry={"auth_method": text}))
    assert problem.startswith(f"entries.ce1.auth_method: {reason}")


def test_gatekeeper_is_optional_for_local_and_simulated_backends() -> None:
    entries = {
        "local": {"auth_method": "scitoken", "backend": {"kind": "local_site"}},
        "sim": {"auth_method": "scitoken", "backend": {"kind": "simulated"}},
    }
    config = load_config(build({"entries": entries}), "t")
    assert config.entries["local"].gatekeeper is None
    assert config.entries["sim"].gatekeeper is None


# --- frontends, identities, whitelists ----------------------------------------------------


def test_frontend_for_identity_is_the_first_frontend_with_it() -> None:
    frontends = {
        "fe_b": {"identity": "same@host", "security_classes": {"x": "user_b"}},
        "fe_a": {"identity": "same@host", "security_classes": {"x": "user_a"}},
    }
    config = load_config(build({"frontends": frontends}), "t")
    assert config.frontend_for_identity("same@host") == "fe_b"
    assert config.frontend_for_identity("other@host") is None


WHITELIST = [
    ([], "fe_cms", "pilot", WhitelistVerdict.ALLOWED),
    ([{"frontend": "fe_cms"}], "fe_cms", "pilot", WhitelistVerdict.ALLOWED),
    ([{"frontend": "fe_cms"}], "fe_dune", "main", WhitelistVerdict.NOT_LISTED),
    (
        [{"frontend": "fe_cms", "security_class": "analysis"}],
        "fe_cms",
        "pilot",
        WhitelistVerdict.CLASS_NOT_ALLOWED,
    ),
    (
        [
            {"frontend": "fe_cms", "security_class": "analysis"},
            {"frontend": "fe_cms", "security_class": "pilot"},
        ],
        "fe_cms",
        "pilot",
        WhitelistVerdict.ALLOWED,
    ),
]


@pytest.mark.parametrize(("allowed", "frontend", "security_class", "verdict"), WHITELIST)
def test_whitelist_verdicts_follow_glideinwms(
    allowed: list[dict[str, str]], frontend: str, security_class: str, verdict: WhitelistVerdict
) -> None:
    entry = load_config(build(entry={"allow_frontends": allowed}), "t").entries["ce1"]
    assert entry.whitelist_mode is bool(allowed)
    assert entry.whitelist(frontend, security_class) is verdict


def test_whitelist_of_an_unknown_frontend_is_refused() -> None:
    assert problems_of(build(entry={"allow_frontends": [{"frontend": "fe_atlas"}]})) == [
        "entries.ce1.allow_frontends[0].frontend: expected a configured frontend (fe_cms, fe_dune)"
    ]


@pytest.mark.parametrize("name", ["All", "factory"])
def test_scope_words_of_downtimes_cannot_name_an_entry(name: str) -> None:
    entry = MINIMAL["entries"]["ce1"]
    assert problems_of(build({"entries": {name: entry}})) == [
        f"entries.{name}: '{name}' is reserved (it means every scope in downtimes and whitelists)"
    ]


def test_a_frontend_without_security_classes_is_refused() -> None:
    data = yaml.safe_load(build())
    data["frontends"]["fe_dune"]["security_classes"] = {}
    assert problems_of(yaml.safe_dump(data)) == [
        "frontends.fe_dune.security_classes: expected at least one security class"
    ]


# --- staging files, lifetime, cadence -----------------------------------------------------


def test_operator_files_keep_their_options() -> None:
    config = example()
    (global_exec, periodic) = config.files
    assert (global_exec.name, global_exec.type, global_exec.period) == (
        "site_check.sh",
        StagingFileType.EXEC,
        0,
    )
    assert (periodic.period, periodic.prefix) == (1800, "GLIDEIN_PS_MON_")
    (tarball,) = config.entries["local_cluster"].files
    assert (tarball.type, tarball.untar_dir, tarball.config_out, tarball.cond_download) == (
        StagingFileType.UNTAR,
        "demo_payload",
        "DEMO_PAYLOAD_DIR",
        "TRUE",
    )


def test_file_options_that_do_not_fit_the_file_type_are_refused() -> None:
    files = [{"path": "/srv/x.tgz", "period": 60, "untar_dir": "x"}]
    assert problems_of(build(entry={"files": files})) == [
        "entries.ce1.files[0].period: only 'exec' files run periodically, this one is regular",
        "entries.ce1.files[0].untar_dir: only 'untar' files are unpacked, this one is regular",
    ]


def test_lifetime_knobs_become_glidein_attributes() -> None:
    lifetime = example().entries["ce_osg_htcondor"].lifetime
    assert lifetime.glidein_attributes() == {
        "GLIDEIN_Retire_Time": 21600,
        "GLIDEIN_Retire_Time_Spread": 2160,
        "GLIDEIN_Job_Max_Time": 129600,
        "GLIDEIN_Graceful_Shutdown": 120,
        "GLIDEIN_Max_Idle": 1200,
        "GLIDEIN_Max_Tail": 400,
        "GLIDEIN_Max_Walltime": 172800,
    }


def test_ads_must_outlive_the_advertise_period() -> None:
    changes = {"factory": {"loop_delay": 120}, "dashboard": {"ad_lifetime": 600}}
    assert problems_of(build(changes)) == [
        "dashboard.ad_lifetime: expected more than loop_delay x advertise_delay (600 s), "
        "or ads expire between two advertisements"
    ]


def test_a_short_operator_token_is_refused() -> None:
    assert problems_of(build({"web": {"operator_token": "letmein"}})) == [
        "web.operator_token: expected a token of at least 16 characters"
    ]


# --- error reporting ----------------------------------------------------------------------


def test_values_are_not_coerced_from_other_types() -> None:
    assert problems_of(
        build(entry={"enabled": "yes please", "submit": {"max_per_cycle": 2.5}})
    ) == [
        "entries.ce1.enabled: expected true or false, got 'yes please'",
        "entries.ce1.submit.max_per_cycle: expected an integer >= 0, got 2.5",
    ]


def test_an_enum_key_lists_its_choices() -> None:
    assert problems_of(build(entry={"verbosity": "loud"})) == [
        "entries.ce1.verbosity: expected one of: std, nodebug, fast, check; got 'loud'"
    ]


def test_a_missing_section_lists_its_keys() -> None:
    data = yaml.safe_load(build())
    del data["redis"]
    assert problems_of(yaml.safe_dump(data)) == [
        "redis: missing required key (expected a mapping with keys: state_url, broker_url)"
    ]


def test_duplicate_keys_are_refused_but_yaml_merge_keys_may_be_overridden() -> None:
    text = build().replace(
        "entries:\n",
        "entries:\n  ce0: &base\n    gatekeeper: ce0.example.org\n    auth_method: scitoken\n"
        "  ce2:\n    <<: *base\n    gatekeeper: ce2.example.org\n",
    )
    config = load_config(text, "t")
    assert config.entries["ce2"].gatekeeper == "ce2.example.org"
    assert config.entries["ce2"].auth_method.tokens == (AuthToken.SCITOKEN,)


def test_an_impossible_date_is_reported_where_it_is() -> None:
    assert problems_of("factory:\n  name: 2024-13-45\n") == [
        "line 2, column 9: '2024-13-45' is not a valid date: month must be in 1..12"
    ]


def test_python_tags_are_not_constructed() -> None:
    (problem,) = problems_of("factory: !!python/object/apply:os.system ['true']\n")
    assert problem.startswith("line 1, column 10: could not determine a constructor")


# --- immutability and round trip ----------------------------------------------------------


def test_the_loaded_config_cannot_be_changed() -> None:
    config = example()
    with pytest.raises(ValidationError):
        config.factory.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.entries["x"] = config.entries["local_cluster"]  # type: ignore[index]
    with pytest.raises(TypeError):
        config.frontends["cms_frontend"].security_classes["x"] = "root"  # type: ignore[index]
    with pytest.raises(AttributeError):
        config.entries["local_cluster"].files.append(config.files[0])  # type: ignore[attr-defined]


def test_config_written_back_as_json_reads_the_same() -> None:
    config = example()
    text = json.dumps(config.model_dump(mode="json"))
    assert load_config(text, "dump.json") == config


# --- no input crashes the loader ----------------------------------------------------------


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_any_text_is_a_config_or_a_config_error(text: str) -> None:
    try:
        load_config(text, "fuzz.yaml")
    except ConfigError as exc:
        assert exc.problems
        assert all(": " in problem for problem in exc.problems)


# No spaces in generated words: the messages are checked for pydantic phrases.
_WORD = string.ascii_letters + string.digits + "_.-:/@+'{}"
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False),
    st.text(alphabet=_WORD, max_size=20),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(alphabet=_WORD, max_size=5), st.integers(), max_size=2),
)


def _paths(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found.extend(_paths(value, (*prefix, key)))
    return found


EXAMPLE_DATA = yaml.safe_load(EXAMPLE.read_text())
EXAMPLE_PATHS = _paths(EXAMPLE_DATA)


@settings(max_examples=300)
@given(st.sampled_from(EXAMPLE_PATHS), _LEAVES)
def test_any_value_anywhere_is_accepted_or_a_config_error_in_plain_words(
    path: tuple[str, ...], value: object
) -> None:
    data = copy.deepcopy(EXAMPLE_DATA)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        load_config(yaml.safe_dump(data), "fuzz.yaml")
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert ": " in problem
            assert "Input should" not in problem
            assert "pydantic" not in problem
