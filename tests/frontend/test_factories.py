"""Which factory ads the frontend believes, and the reason for each one it does not."""

from __future__ import annotations

import pytest

from gwms_tasks.core.ads import AdType
from gwms_tasks.core.classad_text import matches
from gwms_tasks.core.crypto import FactoryKey, FactoryPublicKey
from gwms_tasks.frontend.core_config import TrustedFactory
from gwms_tasks.frontend.core_factories import (
    FactoryView,
    IgnoreReason,
    client_constraint,
    read_factories,
    select_entries,
)
from gwms_tasks.frontend.core_plan import GlideinCounts
from gwms_tasks.ports import AuthenticatedAd
from tests.frontend.builders import CLIENT, FACTORY_WRITER, FactorySite, req_name

TRUSTED = (TrustedFactory(name="demo_factory", identity=FACTORY_WRITER),)


@pytest.fixture(scope="module")
def site() -> FactorySite:
    return FactorySite(FactoryKey.generate())


def ad(attrs: dict[str, object], identity: str | None = FACTORY_WRITER) -> AuthenticatedAd:
    return AuthenticatedAd(attrs, identity)  # type: ignore[arg-type]


def view(
    site: FactorySite,
    globals_: list[AuthenticatedAd] | None = None,
    entries: list[AuthenticatedAd] | None = None,
    clients: list[AuthenticatedAd] | None = None,
) -> FactoryView:
    default_global = [ad(site.global_ad())]
    default_entry = [ad(site.entry("ce1").to_attrs(sequence=1))]
    return read_factories(
        default_global if globals_ is None else globals_,
        default_entry if entries is None else entries,
        clients or [],
        TRUSTED,
        CLIENT,
    )


def test_trusted_factory_entry_comes_with_the_global_key_and_its_glideins(
    site: FactorySite,
) -> None:
    entry = site.entry("ce1")
    other_client = site.client(entry, 50, 50) | {
        "Name": f"{req_name('ce1')}@other.main",
        "ReqClientName": "other.main",
    }

    result = view(site, clients=[ad(site.client(entry, 2, 7, 1)), ad(other_client)])

    [offered] = result.entries
    assert offered.key == req_name("ce1")
    assert offered.instance.public_key.pub_key_id == site.key.pub_key_id
    assert offered.glideins == GlideinCounts(idle=2, running=7, held=1)
    assert result.ignored == ()


def test_entry_without_client_ad_has_no_glideins(site: FactorySite) -> None:
    [offered] = view(site).entries

    assert (offered.glideins, offered.client_attrs) == (GlideinCounts(), None)


@pytest.mark.parametrize("ad_type", ["global", "entry", "client"])
def test_ads_written_by_another_identity_are_ignored(site: FactorySite, ad_type: str) -> None:
    entry = site.entry("ce1")
    forged = {
        "global": dict(globals_=[ad(site.global_ad(), "mallory")]),
        "entry": dict(entries=[ad(entry.to_attrs(sequence=1), "mallory")]),
        "client": dict(clients=[ad(site.client(entry, 90, 0), "mallory")]),
    }[ad_type]

    result = view(site, **forged)  # type: ignore[arg-type]

    reasons = [(i.reason, i.detail) for i in result.ignored]
    assert (
        IgnoreReason.UNTRUSTED_IDENTITY,
        "written by 'mallory', but gfactory_instance@demo_factory is trusted only as 'factory'",
    ) in reasons
    assert all(e.glideins == GlideinCounts() for e in result.entries)


def test_unauthenticated_ad_is_not_trusted(site: FactorySite) -> None:
    result = view(site, entries=[ad(site.entry("ce1").to_attrs(sequence=1), None)])

    assert result.entries == ()
    assert result.ignored[0].reason == IgnoreReason.UNTRUSTED_IDENTITY


def test_entries_of_a_factory_without_global_ad_are_left_out(site: FactorySite) -> None:
    result = view(site, globals_=[])

    assert result.entries == ()
    [ignored] = result.ignored
    assert (ignored.ad_type, ignored.reason) == (AdType.GLIDEFACTORY, IgnoreReason.NO_GLOBAL_AD)


def test_factory_not_configured_is_left_out(site: FactorySite) -> None:
    stranger = site.entry("ce9", factory="stranger").to_attrs(sequence=1)

    result = view(site, entries=[ad(stranger)])

    assert result.entries == ()
    assert result.ignored[0].reason == IgnoreReason.UNKNOWN_FACTORY


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"PubKeyID": "0" * 32}, "is not the id of the key"),
        ({"PubKeyType": "DSA"}, "is not RSA"),
        ({"PubKeyValue": "not a key"}, "not a PEM public key"),
    ],
)
def test_global_ad_with_an_unusable_key_is_left_out(
    site: FactorySite, change: dict[str, str], detail: str
) -> None:
    result = view(site, globals_=[ad(site.global_ad() | change)])

    assert result.instances == ()
    bad_key = [i for i in result.ignored if i.reason == IgnoreReason.BAD_KEY]
    assert len(bad_key) == 1 and detail in bad_key[0].detail


def test_malformed_ad_is_left_out_with_the_parsers_words(site: FactorySite) -> None:
    broken = site.entry("ce1").to_attrs(sequence=1)
    del broken["EntryName"]

    result = view(site, entries=[ad(broken)])

    [ignored] = result.ignored
    assert ignored.reason == IgnoreReason.MALFORMED
    assert "attribute EntryName: missing" in ignored.explain()


def test_key_in_the_ad_form_with_escaped_newlines_is_read(site: FactorySite) -> None:
    escaped = site.global_ad() | {"PubKeyValue": site.key.public_pem.decode().replace("\n", "\\n")}

    [instance] = view(site, globals_=[ad(escaped)]).instances

    assert instance.public_key == FactoryPublicKey.from_pem(site.key.public_pem)


def test_entry_constraint_selects_entries_and_notes_unusable_ones(site: FactorySite) -> None:
    entries = [
        ad(site.entry("ce1").to_attrs(sequence=1)),
        ad(
            site.entry("ce2", attributes={"GLIDEIN_Site": "B", "GLIDEIN_CPUS": 1}).to_attrs(
                sequence=1
            )
        ),
    ]
    offered = view(site, entries=entries).entries

    chosen, notes = select_entries(offered, "GLIDEIN_CPUS >= 2")

    assert [e.key for e in chosen] == [req_name("ce1")]
    assert notes == []


def test_client_constraint_names_the_client() -> None:
    assert client_constraint("fe.main") == 'ReqClientName =?= "fe.main"'


def test_client_constraint_quotes_the_client_name() -> None:
    constraint = client_constraint('fe" || true || "')

    assert not matches(constraint, {"ReqClientName": "other"})
    assert matches(constraint, {"ReqClientName": 'fe" || true || "'})
