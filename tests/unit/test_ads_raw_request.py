"""The factory's tolerant reading of a glideclient ad (§1.4, §2.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.core.ads import (
    FrontendWeb,
    GlideClientAd,
    RawRequest,
    RemoveExcess,
    ReqField,
    RequestKey,
)
from gwms_tasks.core.classad_text import AdExpr, AdValue, parse_ads, render_ad

REQUEST = GlideClientAd(
    cred_id="cred7",
    req_name="ce1@gfactory_instance@fac",
    client_name="fe.main",
    frontend_name="fe",
    group_name="main",
    web=FrontendWeb(
        "http://fe/stage", "sha1", "d.cfg", "s1", "http://fe/stage/group_main", "g.cfg", "s2", "m"
    ),
    idle_glideins=5,
    max_glideins=20,
    remove_excess=RemoveExcess.WAIT,
    remove_excess_margin=2,
    idle_lifetime=3600,
    key=RequestKey("0123abcd", "aa11", "bb22"),
    params={"GLIDEIN_Collector": "pool:9618"},
    config={"MaxRunningTotal": 100},
    monitor={"Idle": 12},
    enc_params={"SecurityName": "cc33", "ce1.idtoken": "dd44"},
)


def _attrs(**changes: AdValue | None) -> dict[str, AdValue]:
    attrs: dict[str, AdValue] = {**REQUEST.to_attrs(sequence=3), "AuthenticatedIdentity": "fe@h"}
    for name, value in changes.items():
        if value is None:
            attrs.pop(name, None)
        else:
            attrs[name] = value
    return attrs


def test_a_request_splits_into_identity_key_and_sections() -> None:
    raw = RawRequest.from_attrs(_attrs())
    assert (raw.name, raw.client_name, raw.frontend_name, raw.group_name, raw.ha_mode) == (
        "cred7_ce1@gfactory_instance@fac@fe.main",
        "fe.main",
        "fe",
        "main",
        "master",
    )
    assert (raw.req_name, raw.req_glidein, raw.entry_name) == (
        "ce1@gfactory_instance@fac",
        "ce1@gfactory_instance@fac",
        "ce1",
    )
    assert (raw.pub_key_id, raw.enc_key_code, raw.enc_identity) == ("0123abcd", "aa11", "bb22")
    assert raw.authenticated_identity == "fe@h"
    assert raw.req == {
        "IdleGlideins": 5,
        "MaxGlideins": 20,
        "RemoveExcess": "WAIT",
        "RemoveExcessMargin": 2,
        "IdleLifetime": "3600",
    }
    assert raw.web["URL"] == "http://fe/stage"
    assert raw.web["GroupURL"] == "http://fe/stage/group_main"
    assert raw.params == {"GLIDEIN_Collector": "pool:9618"}
    assert raw.enc_params == {"SecurityName": "cc33", "ce1.idtoken": "dd44"}
    assert raw.monitor == {"Idle": 12}
    assert raw.config == {"MaxRunningTotal": 100}
    assert raw.problems == ()


def test_reserved_names_never_count_as_request_values() -> None:
    raw = RawRequest.from_attrs(_attrs())
    assert set(raw.req) == set(ReqField)
    assert not {"Name", "Glidein", "PubKeyID", "EncKeyCode", "EncIdentity"} & set(raw.req)


def test_a_request_read_back_from_text_splits_the_same() -> None:
    (parsed,) = parse_ads(render_ad(_attrs()))
    assert RawRequest.from_attrs(parsed) == RawRequest.from_attrs(_attrs())


def test_a_legacy_max_running_glideins_counts_as_max_glideins() -> None:
    raw = RawRequest.from_attrs(_attrs(ReqMaxGlideins=None, ReqMaxRunningGlideins=40))
    assert raw.req["MaxGlideins"] == 40
    assert "MaxRunningGlideins" not in raw.req


def test_max_glideins_wins_over_the_legacy_name_when_both_are_there() -> None:
    raw = RawRequest.from_attrs(_attrs(ReqMaxRunningGlideins=40))
    assert raw.req["MaxGlideins"] == 20


def test_an_unkeyed_request_without_identity_reads_as_none() -> None:
    raw = RawRequest.from_attrs(
        _attrs(
            ReqPubKeyID=None, ReqEncKeyCode=None, ReqEncIdentity=None, AuthenticatedIdentity=None
        )
    )
    assert (raw.pub_key_id, raw.enc_key_code, raw.enc_identity) == (None, None, None)
    assert raw.authenticated_identity is None
    assert raw.problems == ()


@pytest.mark.parametrize(
    ("attr", "value", "field"),
    [
        ("ClientName", 5, "client_name"),
        ("Name", AdExpr("Other + 1"), "name"),
        ("ReqName", True, "req_name"),
        ("ReqEncKeyCode", 1.5, "enc_key_code"),
    ],
)
def test_a_text_field_of_the_wrong_type_reads_as_none_with_a_problem(
    attr: str, value: AdValue, field: str
) -> None:
    raw = RawRequest.from_attrs(_attrs(**{attr: value}))
    assert getattr(raw, field) is None
    assert len(raw.problems) == 1
    assert raw.problems[0].startswith(f"{attr}: expected a string")


def test_request_numbers_keep_whatever_the_ad_said() -> None:
    raw = RawRequest.from_attrs(_attrs(ReqIdleGlideins="lots", ReqRemoveExcess=7))
    assert raw.req["IdleGlideins"] == "lots"
    assert raw.req["RemoveExcess"] == 7


def test_an_empty_ad_reads_as_an_empty_request() -> None:
    raw = RawRequest.from_attrs({})
    assert raw.name is None
    assert raw.entry_name is None
    assert raw.req == raw.web == raw.params == raw.enc_params == {}


_NAMES = st.sampled_from(
    [
        "Name", "ClientName", "ReqName", "ReqGlidein", "ReqPubKeyID", "ReqIdleGlideins",
        "ReqMaxRunningGlideins", "Web", "WebURL", "GlideinParam", "GlideinParamX",
        "GlideinEncParamSecurityName", "AuthenticatedIdentity", "Req", "Other",
    ]
) | st.text(max_size=12)  # fmt: skip
_VALUES = st.one_of(
    st.integers(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=8), st.none()
)


@given(st.dictionaries(_NAMES, _VALUES, max_size=12))
def test_reading_never_fails_whatever_the_ad_holds(attrs: dict[str, object]) -> None:
    raw = RawRequest.from_attrs(attrs)
    for field in ("name", "client_name", "req_name", "pub_key_id", "authenticated_identity"):
        value = getattr(raw, field)
        assert value is None or isinstance(value, str)
    assert all(("Req" + name) in attrs or name == "MaxGlideins" for name in raw.req)
