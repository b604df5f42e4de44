"""Request validation: every bad request is rejected with a reason, good ones become Requests."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gwms_tasks.core.ads import client_ad_name
from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.core.crypto import FactoryKey, SymKey
from gwms_tasks.core.decisions import DownReason, RemoveExcess
from gwms_tasks.core.keyring import Keyring
from gwms_tasks.core.requests import (
    Rejection,
    RejectReason,
    Request,
    ValidationContext,
    validate_request,
)
from tests.builders import FrontendSide, example_config

CMS_ID = "vofrontend_cms@frontend.cms.example.org"
DUNE_ID = "vofrontend_dune@frontend.dune.example.org"


@pytest.fixture(scope="module")
def factory_key() -> FactoryKey:
    return FactoryKey.generate()


@pytest.fixture(scope="module")
def config() -> FactoryConfig:
    return example_config()


def _ctx(
    config: FactoryConfig,
    key: FactoryKey,
    entry: str = "simulated_site",
    down: Callable[[str, str], DownReason | None] = lambda fe, sc: None,
) -> ValidationContext:
    return ValidationContext(config, entry, Keyring(key), now=1000.0, down_for=down)


def _validate(
    attrs: dict[str, Any],
    config: FactoryConfig,
    key: FactoryKey,
    identity: str | None = CMS_ID,
    entry: str = "simulated_site",
) -> Request | Rejection:
    return validate_request(attrs, identity, _ctx(config, key, entry))


def test_a_well_formed_request_is_accepted_with_its_demand(config, factory_key) -> None:
    fe = FrontendSide(factory_key)
    result = _validate(fe.request("simulated_site", idle=7, max_glideins=30), config, factory_key)
    assert isinstance(result, Request), result
    assert result.demand.req_idle == 7
    assert result.demand.req_max == 30
    assert result.demand.frontend == "cms_frontend"
    assert result.demand.security_class == "production"
    assert result.username == "fe_cms_pilot"
    assert result.demand.down is None
    assert result.secrets == {"frontend_scitoken": "eyJ.token.sig"}
    assert "eyJ" not in repr(result)


def test_oaep_sha256_and_cipher_label_from_311_frontends_are_accepted(config, factory_key) -> None:
    fe = FrontendSide(factory_key, oaep_hash="sha256")
    assert isinstance(_validate(fe.request("simulated_site"), config, factory_key), Request)


def test_request_params_override_entry_params_but_not_constants(config, factory_key) -> None:
    fe = FrontendSide(factory_key)
    ad = fe.request(
        "ce_osg_htcondor", params={"CONDOR_VERSION": "23.0", "GLIDEIN_Site": "EVIL", "X": 1}
    )
    result = _validate(ad, config, factory_key, entry="ce_osg_htcondor")
    assert isinstance(result, Request), result
    assert result.params["CONDOR_VERSION"] == "23.0"
    assert "GLIDEIN_Site" not in result.params
    assert result.params["X"] == "1"


def _set(name: str, value: Any) -> Callable[[dict[str, Any], FrontendSide], None]:
    def mutate(ad: dict[str, Any], fe: FrontendSide) -> None:
        ad[name] = value

    return mutate


def _drop(name: str) -> Callable[[dict[str, Any], FrontendSide], None]:
    return lambda ad, fe: ad.pop(name)


def _append(name: str, text: str) -> Callable[[dict[str, Any], FrontendSide], None]:
    return lambda ad, fe: ad.__setitem__(name, ad[name] + text)


def _client_name(client: str) -> Callable[[dict[str, Any], FrontendSide], None]:
    """ClientName set to ``client`` and the Name made consistent with it (as a frontend would)."""

    def mutate(ad: dict[str, Any], fe: FrontendSide) -> None:
        ad["Name"] = ad["Name"].removesuffix(ad["ClientName"]) + client
        ad["ClientName"] = client

    return mutate


def _enc(name: str, value: str) -> Callable[[dict[str, Any], FrontendSide], None]:
    return lambda ad, fe: ad.__setitem__(f"GlideinEncParam{name}", fe.sym.encrypt_hex(value))


def _other_key_identity(ad: dict[str, Any], fe: FrontendSide) -> None:
    other = SymKey.generate(random_bytes=lambda n: b"\x07" * n)
    ad["ReqEncIdentity"] = other.encrypt_hex(CMS_ID)


MUTATIONS: list[tuple[str, Callable[[dict[str, Any], FrontendSide], None], RejectReason]] = [
    ("unsafe Name", _set("Name", "cred1_x y@z"), RejectReason.UNSAFE_NAME),
    ("Name missing", _drop("Name"), RejectReason.UNSAFE_NAME),
    ("ClientName not a string", _set("ClientName", 5), RejectReason.UNSAFE_NAME),
    (
        "other factory",
        _set("ReqName", "simulated_site@gfactory_instance@other"),
        RejectReason.WRONG_FACTORY,
    ),
    ("bad ReqName", _set("ReqName", "just_a_name"), RejectReason.UNSAFE_NAME),
    ("'@' in ClientName", _client_name("cms@x"), RejectReason.UNSAFE_NAME),
    ("newline after ClientName", _client_name("cms_frontend.main\n"), RejectReason.UNSAFE_NAME),
    ("Name of another client", _set("ClientName", "dune.main"), RejectReason.UNSAFE_NAME),
    ("newline after Name", _append("Name", "\n"), RejectReason.UNSAFE_NAME),
    (
        "space in credential id of Name",
        _set("Name", "cred 1_simulated_site@gfactory_instance@demo_factory@cms_frontend.main"),
        RejectReason.UNSAFE_NAME,
    ),
    ("v2 request", _enc("x509_proxy_0", "proxy"), RejectReason.V2_PROTOCOL),
    ("no key", _drop("ReqPubKeyID"), RejectReason.NOT_ENCRYPTED),
    ("unknown key id", _set("ReqPubKeyID", "00" * 16), RejectReason.UNKNOWN_KEY),
    ("garbage key code", _set("ReqEncKeyCode", "zz"), RejectReason.UNDECRYPTABLE_KEY),
    ("key code missing", _drop("ReqEncKeyCode"), RejectReason.UNDECRYPTABLE_KEY),
    ("identity by other key", _other_key_identity, RejectReason.UNDECRYPTABLE_PARAM),
    (
        "undecryptable param",
        _set("GlideinEncParamSecurityClass", "abcd"),
        RejectReason.UNDECRYPTABLE_PARAM,
    ),
    ("unknown security name", _enc("SecurityName", "nobody"), RejectReason.UNKNOWN_FRONTEND),
    ("unknown security class", _enc("SecurityClass", "root"), RejectReason.UNKNOWN_SECURITY_CLASS),
    ("negative idle", _set("ReqIdleGlideins", -1), RejectReason.BAD_NUMBER),
    ("idle not a number", _set("ReqIdleGlideins", "many"), RejectReason.BAD_NUMBER),
    ("max missing", _drop("ReqMaxGlideins"), RejectReason.BAD_NUMBER),
    ("bool as number", _set("ReqMaxGlideins", True), RejectReason.BAD_NUMBER),
    ("web missing", _drop("WebDescriptSign"), RejectReason.MISSING_WEB),
    ("proxy on a scitoken entry", _enc("SubmitProxy", "p1"), RejectReason.CREDENTIALS),
]


@pytest.mark.parametrize(("what", "mutate", "reason"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_each_bad_request_is_rejected_with_its_reason(
    config, factory_key, what, mutate, reason
) -> None:
    fe = FrontendSide(factory_key)
    ad = fe.request("simulated_site")
    mutate(ad, fe)
    result = _validate(ad, config, factory_key)
    assert isinstance(result, Rejection), f"{what} was accepted"
    assert result.reason is reason, result.explain()
    assert result.detail


def test_encrypted_identity_must_match_the_authenticated_identity(config, factory_key) -> None:
    fe = FrontendSide(factory_key)
    result = _validate(fe.request("simulated_site"), config, factory_key, identity=DUNE_ID)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.IDENTITY_MISMATCH


def test_a_frontend_cannot_claim_another_frontends_security_name(config, factory_key) -> None:
    dune = FrontendSide(factory_key, identity=DUNE_ID, security_name="cms_frontend")
    result = _validate(dune.request("simulated_site"), config, factory_key, identity=DUNE_ID)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.FRONTEND_IDENTITY_MISMATCH


def test_request_without_authenticated_identity_is_rejected(config, factory_key) -> None:
    fe = FrontendSide(factory_key)
    result = _validate(fe.request("simulated_site"), config, factory_key, identity=None)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.NO_AUTHENTICATED_IDENTITY


def test_whitelist_class_not_allowed_is_rejected(config, factory_key) -> None:
    dune = FrontendSide(
        factory_key, identity=DUNE_ID, security_name="dune_frontend", security_class="test"
    )
    ad = dune.request("ce_osg_htcondor")
    result = _validate(ad, config, factory_key, identity=DUNE_ID, entry="ce_osg_htcondor")
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.CLASS_NOT_WHITELISTED


def test_downtime_of_the_frontend_marks_the_demand_down(config, factory_key) -> None:
    fe = FrontendSide(factory_key)
    ctx = _ctx(
        config,
        factory_key,
        down=lambda frontend, sc: (
            DownReason.FRONTEND_DOWNTIME if frontend == "cms_frontend" else None
        ),
    )
    result = validate_request(fe.request("simulated_site"), CMS_ID, ctx)
    assert isinstance(result, Request)
    assert result.demand.down is DownReason.FRONTEND_DOWNTIME


def test_grid_proxy_entry_takes_the_proxy_id_as_credential_id(config, factory_key) -> None:
    fe = FrontendSide(factory_key)
    ad = fe.request("local_cluster", enc={"SubmitProxy": "proxy_42"})
    result = _validate(ad, config, factory_key, entry="local_cluster")
    assert isinstance(result, Request), result
    assert result.demand.credential_id == "proxy_42"
    assert result.submit_credential == "proxy_42"


def test_a_credential_id_that_could_leave_the_credential_directory_is_rejected(
    config, factory_key
) -> None:
    fe = FrontendSide(factory_key)
    ad = fe.request("local_cluster", enc={"SubmitProxy": "../../etc/passwd"})
    result = _validate(ad, config, factory_key, entry="local_cluster")
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.CREDENTIALS
    assert "credential id" in result.detail


def test_a_credential_id_with_a_trailing_newline_is_rejected(config, factory_key) -> None:
    fe = FrontendSide(factory_key)
    ad = fe.request("local_cluster", enc={"SubmitProxy": "proxy_42\n"})
    result = _validate(ad, config, factory_key, entry="local_cluster")
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.CREDENTIALS


def test_content_put_in_place_of_a_credential_id_is_not_echoed(config, factory_key) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIBsecretbody\n-----END CERTIFICATE-----\n"
    fe = FrontendSide(factory_key)
    ad = fe.request("local_cluster", enc={"SubmitProxy": pem})
    result = _validate(ad, config, factory_key, entry="local_cluster")
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.CREDENTIALS
    assert "MIIB" not in result.explain() and "BEGIN" not in result.explain()
    assert f"{len(pem)} characters" in result.detail


def test_grid_proxy_entry_without_proxy_is_rejected(config, factory_key) -> None:
    fe = FrontendSide(factory_key)
    ad = fe.request("local_cluster", enc={})
    result = _validate(ad, config, factory_key, entry="local_cluster")
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.CREDENTIALS


def test_unreg_remove_excess_is_taken_as_no_with_a_note(config, factory_key) -> None:
    fe = FrontendSide(factory_key)
    ad = fe.request("simulated_site")
    ad["ReqRemoveExcess"] = "UNREG"
    result = _validate(ad, config, factory_key)
    assert isinstance(result, Request)
    assert result.demand.remove_excess is RemoveExcess.NO
    assert result.notes and "UNREG" in result.notes[0]


_VALUES = st.one_of(
    st.none(),
    st.integers(-(2**40), 2**40),
    st.booleans(),
    st.text(max_size=40),
    st.floats(allow_nan=True),
    st.binary(max_size=20).map(bytes.hex),
)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_fuzzed_requests_are_either_valid_or_rejected_with_a_reason(
    config, factory_key, data: st.DataObject
) -> None:
    fe = FrontendSide(factory_key)
    ad: dict[str, Any] = fe.request("simulated_site")
    names = sorted(ad)
    for _ in range(data.draw(st.integers(0, 6))):
        action = data.draw(st.sampled_from(["set", "drop", "add", "flip"]))
        name = data.draw(st.sampled_from(names))
        if action == "set":
            ad[name] = data.draw(_VALUES)
        elif action == "drop":
            ad.pop(name, None)
        elif action == "add":
            ad[data.draw(st.text(min_size=1, max_size=12))] = data.draw(_VALUES)
        elif isinstance(ad.get(name), str) and ad[name]:
            text = ad[name]
            pos = data.draw(st.integers(0, len(text) - 1))
            ad[name] = text[:pos] + random.Random(pos).choice("0af@ _") + text[pos + 1 :]
    identity = data.draw(st.sampled_from([CMS_ID, DUNE_ID, None, "x"]))
    result = _validate(ad, config, factory_key, identity=identity)
    assert isinstance(result, Request | Rejection)
    if isinstance(result, Request):  # its glidefactoryclient ad can be named
        assert client_ad_name(result.req_name, result.demand.client)
    if isinstance(result, Rejection):
        assert isinstance(result.reason, RejectReason)
        assert result.detail
