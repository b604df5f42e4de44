"""The six ad types: commands, Name formats, flags, golden renders and round trips (§1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks import GLIDEINWMS_VERSION_STRING
from gwms_tasks.core.ads import (
    AdCommand,
    AdType,
    AdvertisedLimits,
    FactoryClientAd,
    FactoryEntryAd,
    FactoryGlobalAd,
    FactoryLimit,
    FactoryPublicKey,
    FactoryWeb,
    FrontendWeb,
    GlideClientAd,
    GlideClientGlobalAd,
    GlideResourceAd,
    LimitTriggered,
    RemoveExcess,
    RequestKey,
    client_ad_name,
    entry_ad_name,
    format_per_frontend,
    global_ad_name,
    global_request_ad_name,
    invalidation_ad,
    parse_per_frontend,
    proxy_flags,
    request_ad_name,
    split_req_name,
    submit_attr_from_suffix,
    submit_attr_name,
)
from gwms_tasks.core.classad_text import AdFormatError, AdValue, parse_ads, render_ad
from gwms_tasks.core.limits import EntryLimits, GlideinLimits

KEY = FactoryPublicKey("0123abcd", "-----BEGIN PUBLIC KEY-----\nMFww\n-----END PUBLIC KEY-----\n")
GLOBAL = FactoryGlobalAd("fac", "gfactory_instance", 1700000000, KEY)
ENTRY = FactoryEntryAd(
    entry_name="ce1",
    glidein_name="gfactory_instance",
    factory_name="fac",
    daemon_start_time=1700000000,
    public_key=KEY,
    auth_method="grid_proxy",
    web=FactoryWeb("http://fac/stage", "description.a1.cfg", "abc1", "description.b2.cfg", "abc2"),
    limits=AdvertisedLimits(
        GlideinLimits(2000, 1000, 10000),
        GlideinLimits(100, 50, 5000),
        {"fe:main": GlideinLimits(10, 5, 50)},
    ),
    attributes={
        "GLIDEIN_Gatekeeper": "ce1.example.org ce1.example.org:9619",
        "GLIDEIN_GridType": "condor",
        "GLIDEIN_Site": "Example",
        "GLIDEIN_CPUS": 8,
    },
    params={"GLIDEIN_Collector": "Fake", "GLIDEIN_Report_Failed": "NEVER"},
    submit_attrs={"+maxMemory": 2500},
    monitor={"TotalStatusIdle": 3, "TotalStatusRunning": 7},
    in_downtime=False,
    downtime_comment="",
)
CLIENT = FactoryClientAd.for_entry(
    ENTRY,
    "fe.main",
    {"StatusIdle": 3, "RequestedIdle": 5},
    [
        LimitTriggered(FactoryLimit.IDLE_GLIDEINS_PER_ENTRY, 2000, 2000),
        LimitTriggered(FactoryLimit.TOTAL_PER_CLASS, 50, 50, "fe:main"),
    ],
)
WEB = FrontendWeb(
    "http://fe/stage",
    "sha1",
    "description.c.cfg",
    "def1",
    "http://fe/stage/group_main",
    "description.d.cfg",
    "def2",
    "http://fe/mon",
)
RKEY = RequestKey("0123abcd", "aa11", "bb22")
REQUEST = GlideClientAd(
    cred_id="cred7",
    req_name="ce1@gfactory_instance@fac",
    client_name="fe.main",
    frontend_name="fe",
    group_name="main",
    web=WEB,
    idle_glideins=5,
    max_glideins=20,
    remove_excess=RemoveExcess.IDLE,
    remove_excess_margin=2,
    idle_lifetime=3600,
    key=RKEY,
    params={"GLIDEIN_Collector": "pool.example.org:9618"},
    config={"MaxRunningTotal": 100},
    monitor={"Idle": 12, "Running": 4},
    enc_params={"SecurityName": "cc33", "SubmitProxy": "dd44"},
)
GLOBAL_REQUEST = GlideClientGlobalAd(
    "gfactory_instance",
    "fac",
    "fe.main",
    "fe",
    "main",
    RKEY,
    {
        "SecurityName": "cc33",
        "NumberOfCredentials": "ee55",
        "cred7": "ff66",
        "SecurityClasscred7": "0a0b",
    },
)
# As the frontend builds it: from the two factory ads it read back from the dashboard.
RESOURCE = GlideResourceAd.build(
    {**parse_ads(render_ad(ENTRY.to_attrs(sequence=0)))[0], "AuthenticatedIdentity": "f@host"},
    parse_ads(render_ad(CLIENT.to_attrs(sequence=0)))[0],
    client_name="fe.main",
    frontend_name="fe",
    group_name="main",
    client_monitor={"JobsIdle": 12},
    client_config={"MaxRunningTotal": 100},
)
SAMPLES: dict[str, object] = {
    "glidefactoryglobal": GLOBAL,
    "glidefactory": ENTRY,
    "glidefactoryclient": CLIENT,
    "glideclient": REQUEST,
    "glideclientglobal": GLOBAL_REQUEST,
    "glideresource": RESOURCE,
}

GOLDEN = {
    "glidefactoryglobal": """\
DaemonStartTime = 1700000000
FactoryName = "fac"
GlideinMyType = "glidefactoryglobal"
GlideinName = "gfactory_instance"
GlideinWMSVersion = "@VERSION@"
MyType = "glidefactoryglobal"
Name = "gfactory_instance@fac"
PubKeyID = "0123abcd"
PubKeyType = "RSA"
PubKeyValue = "-----BEGIN PUBLIC KEY-----\\nMFww\\n-----END PUBLIC KEY-----\\n"
SupportedSignTypes = "sha1,sha256"
UpdateSequenceNumber = 4
""",
    "glidefactory": """\
DaemonStartTime = 1700000000
EntryName = "ce1"
FactoryName = "fac"
GLIDEIN_CPUS = 8
GLIDEIN_Downtime_Comment = ""
GLIDEIN_Gatekeeper = "ce1.example.org ce1.example.org:9619"
GLIDEIN_GridType = "condor"
GLIDEIN_In_Downtime = False
GLIDEIN_Site = "Example"
GLIDEIN_SupportedAuthenticationMethod = "grid_proxy"
GlideinAllowx509_Proxy = "True"
GlideinConfigDefaultPerFrontendMaxGlideins = 5000
GlideinConfigDefaultPerFrontendMaxHeld = 50
GlideinConfigDefaultPerFrontendMaxIdle = 100
GlideinConfigPerEntryMaxGlideins = 10000
GlideinConfigPerEntryMaxHeld = 1000
GlideinConfigPerEntryMaxIdle = 2000
GlideinConfigPerFrontendMaxGlideins = "fe:main=50"
GlideinConfigPerFrontendMaxHeld = "fe:main=5"
GlideinConfigPerFrontendMaxIdle = "fe:main=10"
GlideinMonitorTotalStatusIdle = 3
GlideinMonitorTotalStatusRunning = 7
GlideinMyType = "glidefactory"
GlideinName = "gfactory_instance"
GlideinParamGLIDEIN_Collector = "Fake"
GlideinParamGLIDEIN_Report_Failed = "NEVER"
GlideinRequireGlideinProxy = "False"
GlideinRequirex509_Proxy = "True"
GlideinSubmit_PLUS_maxMemory = 2500
GlideinWMSVersion = "@VERSION@"
MyType = "glidefactory"
Name = "ce1@gfactory_instance@fac"
PubKeyID = "0123abcd"
PubKeyType = "RSA"
PubKeyValue = "-----BEGIN PUBLIC KEY-----\\nMFww\\n-----END PUBLIC KEY-----\\n"
SupportedSignTypes = "sha1,sha256"
UpdateSequenceNumber = 4
WebDescriptFile = "description.a1.cfg"
WebDescriptSign = "abc1"
WebEntryDescriptFile = "description.b2.cfg"
WebEntryDescriptSign = "abc2"
WebSignType = "sha1"
WebURL = "http://fac/stage"
""",
    "glidefactoryclient": """\
GLIDEIN_CPUS = 8
GLIDEIN_Downtime_Comment = ""
GLIDEIN_Gatekeeper = "ce1.example.org ce1.example.org:9619"
GLIDEIN_GridType = "condor"
GLIDEIN_In_Downtime = False
GLIDEIN_Site = "Example"
GLIDEIN_SupportedAuthenticationMethod = "grid_proxy"
GlideinMonitorRequestedIdle = 5
GlideinMonitorStatus_GlideFactoryLimitIdleGlideinsPerEntry = "count=2000, limit=2000"
GlideinMonitorStatus_GlideFactoryLimitTotalPerClass_fe_3Amain = "count=50, limit=50"
GlideinMonitorStatusIdle = 3
GlideinMyType = "glidefactoryclient"
GlideinParamGLIDEIN_Collector = "Fake"
GlideinParamGLIDEIN_Report_Failed = "NEVER"
GlideinWMSVersion = "@VERSION@"
MyType = "glidefactoryclient"
Name = "ce1@gfactory_instance@fac@fe.main"
ReqClientName = "fe.main"
ReqClientReqName = "ce1@gfactory_instance@fac"
ReqEntryName = "ce1"
ReqFactoryName = "fac"
ReqGlidein = "ce1@gfactory_instance@fac"
ReqGlideinName = "gfactory_instance"
UpdateSequenceNumber = 4
""",
    "glideclient": """\
ClientName = "fe.main"
FrontendHAMode = "master"
FrontendName = "fe"
GlideinConfigMaxRunningTotal = 100
GlideinEncParamSecurityName = "cc33"
GlideinEncParamSubmitProxy = "dd44"
GlideinMonitorIdle = 12
GlideinMonitorRunning = 4
GlideinMyType = "glideclient"
GlideinParamGLIDEIN_Collector = "pool.example.org:9618"
GlideinWMSVersion = "@VERSION@"
GroupName = "main"
MyType = "glideclient"
Name = "cred7_ce1@gfactory_instance@fac@fe.main"
ReqEncIdentity = "bb22"
ReqEncKeyCode = "aa11"
ReqGlidein = "ce1@gfactory_instance@fac"
ReqIdleGlideins = 5
ReqIdleLifetime = "3600"
ReqMaxGlideins = 20
ReqName = "ce1@gfactory_instance@fac"
ReqPubKeyID = "0123abcd"
ReqRemoveExcess = "IDLE"
ReqRemoveExcessMargin = 2
UpdateSequenceNumber = 4
WebDescriptFile = "description.c.cfg"
WebDescriptSign = "def1"
WebGroupDescriptFile = "description.d.cfg"
WebGroupDescriptSign = "def2"
WebGroupURL = "http://fe/stage/group_main"
WebMonitoringURL = "http://fe/mon"
WebSignType = "sha1"
WebURL = "http://fe/stage"
""",
    "glideclientglobal": """\
ClientName = "fe.main"
FrontendHAMode = "master"
FrontendName = "fe"
GlideinEncParamcred7 = "ff66"
GlideinEncParamNumberOfCredentials = "ee55"
GlideinEncParamSecurityClasscred7 = "0a0b"
GlideinEncParamSecurityName = "cc33"
GlideinMyType = "glideclientglobal"
GlideinWMSVersion = "@VERSION@"
GroupName = "main"
MyType = "glideclientglobal"
Name = "gfactory_instance@fac@fe.main"
ReqEncIdentity = "bb22"
ReqEncKeyCode = "aa11"
ReqPubKeyID = "0123abcd"
UpdateSequenceNumber = 4
""",
    "glideresource": """\
DaemonStartTime = 1700000000
EntryName = "ce1"
FactoryName = "fac"
GlideClientConfigMaxRunningTotal = 100
GlideClientMonitorJobsIdle = 12
GlideClientName = "fe.main"
GlideFactoryConfigDefaultPerFrontendMaxGlideins = 5000
GlideFactoryConfigDefaultPerFrontendMaxHeld = 50
GlideFactoryConfigDefaultPerFrontendMaxIdle = 100
GlideFactoryConfigPerEntryMaxGlideins = 10000
GlideFactoryConfigPerEntryMaxHeld = 1000
GlideFactoryConfigPerEntryMaxIdle = 2000
GlideFactoryConfigPerFrontendMaxGlideins = "fe:main=50"
GlideFactoryConfigPerFrontendMaxHeld = "fe:main=5"
GlideFactoryConfigPerFrontendMaxIdle = "fe:main=10"
GlideFactoryMonitorRequestedIdle = 5
GlideFactoryMonitorStatus_GlideFactoryLimitIdleGlideinsPerEntry = "count=2000, limit=2000"
GlideFactoryMonitorStatus_GlideFactoryLimitTotalPerClass_fe_3Amain = "count=50, limit=50"
GlideFactoryMonitorStatusIdle = 3
GlideFactoryName = "ce1@gfactory_instance@fac"
GlideFrontendName = "fe"
GlideGroupName = "main"
GLIDEIN_CPUS = 8
GLIDEIN_Downtime_Comment = ""
GLIDEIN_Gatekeeper = "ce1.example.org ce1.example.org:9619"
GLIDEIN_GridType = "condor"
GLIDEIN_In_Downtime = False
GLIDEIN_Site = "Example"
GLIDEIN_SupportedAuthenticationMethod = "grid_proxy"
GlideinAllowx509_Proxy = "True"
GlideinMyType = "glideresource"
GlideinName = "gfactory_instance"
GlideinRequireGlideinProxy = "False"
GlideinRequirex509_Proxy = "True"
GlideinSubmit_PLUS_maxMemory = 2500
GlideinWMSVersion = "@VERSION@"
MyType = "glideresource"
Name = "ce1@gfactory_instance@fac@fe.main"
PubKeyID = "0123abcd"
PubKeyType = "RSA"
PubKeyValue = "-----BEGIN PUBLIC KEY-----\\nMFww\\n-----END PUBLIC KEY-----\\n"
SupportedSignTypes = "sha1,sha256"
UpdateSequenceNumber = 4
WebDescriptFile = "description.a1.cfg"
WebDescriptSign = "abc1"
WebEntryDescriptFile = "description.b2.cfg"
WebEntryDescriptSign = "abc2"
WebSignType = "sha1"
WebURL = "http://fac/stage"
""",
}


def _render(ad: object, sequence: int = 4) -> str:
    return render_ad(ad.to_attrs(sequence=sequence))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("ad_type", "update", "invalidate"),
    [
        (AdType.GLIDEFACTORY, "UPDATE_AD_GENERIC", "INVALIDATE_ADS_GENERIC"),
        (AdType.GLIDEFACTORY_GLOBAL, "UPDATE_AD_GENERIC", "INVALIDATE_ADS_GENERIC"),
        (AdType.GLIDEFACTORY_CLIENT, "UPDATE_LICENSE_AD", "INVALIDATE_LICENSE_ADS"),
        (AdType.GLIDECLIENT, "UPDATE_MASTER_AD", "INVALIDATE_MASTER_ADS"),
        (AdType.GLIDECLIENT_GLOBAL, "UPDATE_MASTER_AD", "INVALIDATE_MASTER_ADS"),
        (AdType.GLIDERESOURCE, "UPDATE_AD_GENERIC", "INVALIDATE_ADS_GENERIC"),
    ],
)
def test_each_ad_type_lands_in_the_collector_table_of_the_reference(
    ad_type: AdType, update: str, invalidate: str
) -> None:
    assert ad_type.update_command is AdCommand(update)
    assert ad_type.invalidate_command is AdCommand(invalidate)


def test_ad_types_are_the_glidein_my_type_values() -> None:
    assert [str(t) for t in AdType] == [
        "glidefactory",
        "glidefactoryglobal",
        "glidefactoryclient",
        "glideclient",
        "glideclientglobal",
        "glideresource",
    ]


def test_names_are_joined_as_frontends_and_factories_join_them() -> None:
    req_name = entry_ad_name("ce1", "gfactory_instance", "fac")
    assert req_name == "ce1@gfactory_instance@fac"
    assert global_ad_name("gfactory_instance", "fac") == "gfactory_instance@fac"
    assert client_ad_name(req_name, "fe.main") == "ce1@gfactory_instance@fac@fe.main"
    assert (
        request_ad_name("cred7", req_name, "fe.main") == "cred7_ce1@gfactory_instance@fac@fe.main"
    )
    assert global_request_ad_name("gfactory_instance", "fac", "fe.main") == (
        "gfactory_instance@fac@fe.main"
    )
    assert split_req_name(req_name) == ("ce1", "gfactory_instance", "fac")


@pytest.mark.parametrize(
    "req_name", ["ce1@g", "ce1@g@f@x", "@g@f", "ce1@g@", "ce 1@g@f", "ce1@g@f\n", "", "ce1@g@f;x"]
)
def test_a_malformed_req_name_is_refused(req_name: str) -> None:
    with pytest.raises(AdFormatError):
        split_req_name(req_name)


@pytest.mark.parametrize(
    ("entry", "glidein", "factory"), [("a@b", "g", "f"), ("e", "", "f"), ("e", "g", "f f")]
)
def test_a_name_part_with_a_separator_or_space_is_refused(
    entry: str, glidein: str, factory: str
) -> None:
    with pytest.raises(AdFormatError, match="invalid"):
        entry_ad_name(entry, glidein, factory)


@pytest.mark.parametrize(
    ("auth_method", "allow_and_require_x509", "require_glidein_proxy"),
    [
        ("grid_proxy", "True", "False"),
        ("grid_proxy+voms_attr", "True", "False"),
        ("scitoken", "False", "True"),
        ("key_pair+vm_id+vm_type", "False", "True"),
        ("cert_pair", "False", "True"),
    ],
)
def test_proxy_flags_follow_whether_the_auth_method_has_grid_proxy(
    auth_method: str, allow_and_require_x509: str, require_glidein_proxy: str
) -> None:
    assert proxy_flags(auth_method) == {
        "GlideinAllowx509_Proxy": allow_and_require_x509,
        "GlideinRequirex509_Proxy": allow_and_require_x509,
        "GlideinRequireGlideinProxy": require_glidein_proxy,
    }


@pytest.mark.parametrize(
    ("name", "attr"),
    [
        ("+maxMemory", "GlideinSubmit_PLUS_maxMemory"),
        ("request_cpus", "GlideinSubmitrequest_cpus"),
    ],
)
def test_a_leading_plus_of_a_submit_attribute_is_written_plus(name: str, attr: str) -> None:
    assert submit_attr_name(name) == attr
    assert submit_attr_from_suffix(attr.removeprefix("GlideinSubmit")) == name


def test_per_frontend_limits_are_written_fe_sc_equals_n_and_read_back() -> None:
    values = {"fe2:sc": 7, "fe:main": 5}
    assert format_per_frontend(values) == "fe2:sc=7,fe:main=5"
    assert parse_per_frontend("fe:main=5, fe2:sc=7") == values
    assert format_per_frontend({}) == ""
    assert parse_per_frontend("") == {}


@pytest.mark.parametrize("text", ["fe:main", "fe:main=x", "=5", "fe:main;5", "fe:main=5=6"])
def test_a_malformed_per_frontend_limit_is_refused(text: str) -> None:
    with pytest.raises(AdFormatError, match="fe:sc=N"):
        parse_per_frontend(text)


@pytest.mark.parametrize("key", ["fe main", "fe,x", "a=b", ""])
def test_a_per_frontend_key_that_would_break_the_format_is_refused(key: str) -> None:
    with pytest.raises(AdFormatError):
        format_per_frontend({key: 1})


def test_frontends_without_their_own_limit_read_back_with_the_default_parts() -> None:
    attrs = ENTRY.to_attrs(sequence=0)
    attrs["GlideinConfigPerFrontendMaxHeld"] = ""
    read = FactoryEntryAd.from_attrs(attrs).limits
    assert read.per_frontend == {
        "fe:main": GlideinLimits(max_idle=10, max_held=50, max_glideins=50)
    }


def test_advertised_limits_come_from_the_entry_limits() -> None:
    limits = EntryLimits(per_frontend={"fe:main": GlideinLimits(1, 2, 3)})
    advertised = AdvertisedLimits.of(limits)
    assert advertised.per_entry == limits.per_entry
    assert advertised.per_frontend == {"fe:main": GlideinLimits(1, 2, 3)}


@pytest.mark.parametrize("kind", list(GOLDEN))
def test_each_ad_type_renders_exactly_as_golden(kind: str) -> None:
    assert _render(SAMPLES[kind]) == GOLDEN[kind].replace("@VERSION@", GLIDEINWMS_VERSION_STRING)


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_each_ad_type_survives_render_parse_and_from_attrs(kind: str) -> None:
    ad = SAMPLES[kind]
    (attrs,) = parse_ads(_render(ad, sequence=9))
    assert attrs["UpdateSequenceNumber"] == 9
    assert type(ad).from_attrs(attrs) == ad  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_every_ad_carries_its_type_twice_and_the_version(kind: str) -> None:
    attrs = SAMPLES[kind].to_attrs(sequence=0)  # type: ignore[attr-defined]
    assert attrs["MyType"] == attrs["GlideinMyType"] == kind
    assert attrs["GlideinWMSVersion"] == GLIDEINWMS_VERSION_STRING
    assert attrs["Name"] == SAMPLES[kind].name  # type: ignore[attr-defined]


def test_a_negative_update_sequence_number_is_refused() -> None:
    with pytest.raises(AdFormatError, match="UpdateSequenceNumber"):
        GLOBAL.to_attrs(sequence=-1)


def test_the_public_key_is_written_on_one_line_and_read_back_with_newlines() -> None:
    text = _render(GLOBAL)
    assert "\\nMFww\\n" in text
    (attrs,) = parse_ads(text)
    assert FactoryGlobalAd.from_attrs(attrs).public_key.pem == KEY.pem


def test_a_public_key_with_doubled_backslashes_reads_back_with_newlines() -> None:
    attrs = dict(GLOBAL.to_attrs(sequence=0))
    attrs["PubKeyValue"] = "-----BEGIN\\\\nMFww\\n"
    assert FactoryGlobalAd.from_attrs(attrs).public_key.pem == "-----BEGIN\nMFww\n"


def _without(attrs: Mapping[str, AdValue], name: str) -> dict[str, AdValue]:
    return {k: v for k, v in attrs.items() if k != name}


@pytest.mark.parametrize(
    ("kind", "attr"),
    [
        ("glidefactoryglobal", "PubKeyID"),
        ("glidefactory", "GLIDEIN_In_Downtime"),
        ("glidefactory", "GlideinConfigPerEntryMaxIdle"),
        ("glidefactory", "WebURL"),
        ("glidefactoryclient", "ReqClientName"),
        ("glideclient", "ReqIdleGlideins"),
        ("glideclient", "WebGroupURL"),
        ("glideclientglobal", "ReqEncKeyCode"),
        ("glideresource", "GlideGroupName"),
    ],
)
def test_a_missing_attribute_is_named_with_the_ad(kind: str, attr: str) -> None:
    ad = SAMPLES[kind]
    attrs = _without(ad.to_attrs(sequence=0), attr)  # type: ignore[attr-defined]
    with pytest.raises(AdFormatError) as caught:
        type(ad).from_attrs(attrs)  # type: ignore[attr-defined]
    assert f"{kind} ad {ad.name!r}: attribute {attr}: missing" in str(caught.value)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kind", "attr", "value", "expected"),
    [
        ("glidefactoryglobal", "DaemonStartTime", "soon", "expected an integer, got str 'soon'"),
        ("glidefactory", "GLIDEIN_In_Downtime", "False", "expected a boolean"),
        ("glidefactory", "GlideinMonitorTotalStatusIdle", "3", "expected an integer"),
        ("glidefactory", "GlideinConfigPerFrontendMaxIdle", "fe:main", "expected fe:sc=N"),
        ("glidefactoryclient", "ReqEntryName", 5, "expected a string, got int"),
        ("glidefactoryclient", "GlideinMonitorStatus_GlideFactoryLimitIdlePerClass", "x", "flag"),
        ("glideclient", "ReqIdleGlideins", True, "expected an integer, got bool"),
        ("glideclient", "ReqRemoveExcess", "SOME", "expected one of NO, WAIT, IDLE, ALL, UNREG"),
        ("glideclient", "ReqIdleLifetime", "1h", "expected an integer"),
        ("glideclient", "Name", "cred7_ce2@gfactory_instance@fac@fe.main", "expected <credential"),
        ("glideclient", "GlideinEncParamSubmitProxy", 12, "expected a string"),
        ("glideclientglobal", "FrontendHAMode", "primary", "expected one of master, slave"),
        ("glideclientglobal", "Name", "fac@fe.main", "expected <glidein>@<factory>@fe.main"),
        ("glideresource", "GlideinMyType", "glidefactory", "expected 'glideresource'"),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_naming_the_attribute(
    kind: str, attr: str, value: AdValue, expected: str
) -> None:
    ad = SAMPLES[kind]
    attrs = {**ad.to_attrs(sequence=0), attr: value}  # type: ignore[attr-defined]
    with pytest.raises(AdFormatError) as caught:
        type(ad).from_attrs(attrs)  # type: ignore[attr-defined]
    assert f"attribute {attr}" in str(caught.value)
    assert expected in str(caught.value)


def test_a_request_written_by_a_legacy_frontend_reads_its_max_running_glideins() -> None:
    attrs = _without(REQUEST.to_attrs(sequence=0), "ReqMaxGlideins")
    attrs["ReqMaxRunningGlideins"] = 33
    assert GlideClientAd.from_attrs(attrs).max_glideins == 33


def test_a_request_idle_lifetime_is_a_quoted_string_that_reads_back_as_seconds() -> None:
    (attrs,) = parse_ads(_render(REQUEST))
    assert attrs["ReqIdleLifetime"] == "3600"
    assert GlideClientAd.from_attrs({**attrs, "ReqIdleLifetime": 60}).idle_lifetime == 60


def test_a_request_without_a_key_has_no_key_attributes() -> None:
    attrs = GlideClientAd("c", REQUEST.req_name, "fe.main", "fe", "main", WEB, 1, 2).to_attrs(
        sequence=0
    )
    assert not {"ReqPubKeyID", "ReqEncKeyCode", "ReqEncIdentity"} & set(attrs)
    assert GlideClientAd.from_attrs(attrs).key is None


def test_a_client_ad_repeats_the_entry_attributes_and_params() -> None:
    attrs = CLIENT.to_attrs(sequence=0)
    assert attrs["GLIDEIN_Site"] == "Example"
    assert attrs["GLIDEIN_SupportedAuthenticationMethod"] == "grid_proxy"
    assert attrs["GLIDEIN_In_Downtime"] is False
    assert attrs["GlideinParamGLIDEIN_Collector"] == "Fake"
    assert attrs["ReqClientReqName"] == attrs["ReqGlidein"] == "ce1@gfactory_instance@fac"


def test_the_resource_ad_renames_factory_config_and_copies_only_factory_monitoring() -> None:
    attrs = RESOURCE.to_attrs(sequence=0)
    assert attrs["GlideFactoryConfigPerEntryMaxIdle"] == 2000
    assert not any(name.startswith("GlideinConfig") for name in attrs)
    assert not any(name.startswith(("GlideinParam", "GlideinMonitor")) for name in attrs)
    assert "AuthenticatedIdentity" not in attrs
    assert attrs["GlideFactoryMonitorStatusIdle"] == 3
    assert attrs["GlideFactoryName"] == "ce1@gfactory_instance@fac"
    assert attrs["Name"] == "ce1@gfactory_instance@fac@fe.main"


def test_an_attribute_that_would_read_back_as_another_section_is_refused() -> None:
    for attributes in ({"GlideinParamX": 1}, {"WebURL": "x"}, {"EntryName": "y"}, {"Name": "z"}):
        entry = replace(ENTRY, attributes=attributes)
        with pytest.raises(AdFormatError, match="collides"):
            entry.to_attrs(sequence=0)


def test_an_entry_in_downtime_says_so_with_a_boolean_and_a_comment() -> None:
    entry = replace(ENTRY, in_downtime=True, downtime_comment="CE moves")
    (attrs,) = parse_ads(_render(entry))
    assert attrs["GLIDEIN_In_Downtime"] is True
    assert FactoryEntryAd.from_attrs(attrs).downtime_comment == "CE moves"


def test_an_entry_ad_without_a_downtime_comment_reads_as_an_empty_comment() -> None:
    attrs = _without(ENTRY.to_attrs(sequence=0), "GLIDEIN_Downtime_Comment")
    assert FactoryEntryAd.from_attrs(attrs) == ENTRY


def test_an_invalidation_ad_carries_an_unquoted_requirements_expression() -> None:
    ad = invalidation_ad(
        AdType.GLIDEFACTORY_CLIENT, '(ReqFactoryName =?= "fac") && (ReqGlideinName =?= "g")'
    )
    text = render_ad(ad)
    assert 'MyType = "Query"\n' in text
    assert 'TargetType = "glidefactoryclient"\n' in text
    assert 'Requirements = (ReqFactoryName =?= "fac") && (ReqGlideinName =?= "g")\n' in text


@given(
    st.sampled_from(list(FactoryLimit)),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.from_regex(r"[A-Za-z0-9._-]{1,12}:[A-Za-z0-9._-]{1,12}", fullmatch=True),
)
def test_a_limit_flag_reads_back_from_its_attribute(
    limit: FactoryLimit, count: int, maximum: int, key: str
) -> None:
    flag = LimitTriggered(limit, count, maximum, key if limit.per_class else None)
    (attrs,) = parse_ads(render_ad({"GlideinMonitor" + flag.monitor_name: flag.text}))
    ((name, text),) = attrs.items()
    assert LimitTriggered.parse(name.removeprefix("GlideinMonitor"), str(text)) == flag


def test_a_per_class_limit_needs_a_frontend_key_and_an_entry_limit_none() -> None:
    with pytest.raises(AdFormatError):
        LimitTriggered(FactoryLimit.IDLE_PER_CLASS, 1, 1)
    with pytest.raises(AdFormatError):
        LimitTriggered(FactoryLimit.IDLE_GLIDEINS_PER_ENTRY, 1, 1, "fe:sc")
    with pytest.raises(AdFormatError):
        LimitTriggered(FactoryLimit.TOTAL_PER_CLASS, 1, 1, "no colon")
