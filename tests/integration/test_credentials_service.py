"""Credential forwarding end to end on the in-memory twins: global ads -> orders -> files."""

from __future__ import annotations

import base64
import datetime
import gzip
import json
import logging
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gwms_tasks.adapters.memory_backend import MemoryGridBackend
from gwms_tasks.adapters.memory_credentials import MemoryCredentialIndex
from gwms_tasks.adapters.memory_dashboard import MemoryDashboardHub
from gwms_tasks.adapters.memory_dispatcher import MemoryDispatcher
from gwms_tasks.adapters.memory_state import MemoryState
from gwms_tasks.adapters.user_keys import MemoryUserKeys
from gwms_tasks.core.ads import AdType
from gwms_tasks.core.classad_text import AdValue
from gwms_tasks.core.crypto import CryptoError, FactoryKey
from gwms_tasks.core.downtimes import Downtimes
from gwms_tasks.core.envelope import UserKey, open_sealed, seal
from gwms_tasks.core.keyring import Keyring
from gwms_tasks.core.staging import SignedDescription, SignType, StagingIndex
from gwms_tasks.errors import PermanentError
from gwms_tasks.services.credential_store import compressed, store_credential
from gwms_tasks.services.credentials import (
    RESEND_LOOPS,
    CredentialKind,
    describe_credential,
    process_global_ads,
)
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.find_work import find_work
from gwms_tasks.services.orders import CredentialOrder, SubmitOrder
from gwms_tasks.services.submit import UserDeps, execute_submit
from tests.builders import FrontendSide, example_config

CMS = "vofrontend_cms@frontend.cms.example.org"
DUNE = "vofrontend_dune@frontend.dune.example.org"
USER = "fe_cms_pilot"
PROXY_ENTRY = "local_cluster"
SECRET = "-----BEGIN SECRET-----\nsuper-secret-proxy-bytes\n-----END SECRET-----\n"


class World:
    """A factory worker, a frontend writing global ads, and the user worker of fe_cms_pilot."""

    def __init__(self, factory_key: FactoryKey, user_key: UserKey, tmp: Path) -> None:
        self.now = 1_000_000.0
        self.config = example_config()
        self.hub = MemoryDashboardHub(clock=lambda: self.now)
        self.dispatcher = MemoryDispatcher()
        self.user_keys = MemoryUserKeys()
        self.user_keys.publish(USER, user_key.public_pem)
        self.index = MemoryCredentialIndex()
        self.frontend = FrontendSide(factory_key)
        self.factory_key = factory_key
        self.user_key = user_key
        self.state = MemoryState(clock=lambda: self.now)
        self.backend = MemoryGridBackend(
            "demo_factory", "gfactory_instance", PROXY_ENTRY, lambda: self.now
        )
        staging = StagingIndex(
            SignType.SHA1,
            SignedDescription("description.aaaa.cfg", "a" * 40),
            {PROXY_ENTRY: SignedDescription("description.bbbb.cfg", "b" * 40)},
        )
        self.deps = FactoryDeps(
            config=self.config,
            state=self.state,
            dashboard=self.hub.handle("factory"),
            backend_for=lambda entry: self.backend,
            dispatcher=self.dispatcher,
            user_keys=self.user_keys,
            keyring=lambda: Keyring(factory_key),
            downtimes=Downtimes,
            staging=lambda: staging,
            clock=lambda: self.now,
        )
        self.user = UserDeps(
            username=USER,
            state=self.state,
            backend_for=lambda entry: self.backend,
            user_key=user_key,
            credential_dir=tmp / "user_fe_cms_pilot" / "glidein_gfactory_instance",
            clock=lambda: self.now,
        )

    def publish(self, ad: dict[str, AdValue], writer: str = CMS) -> None:
        self.hub.handle(writer).advertise(AdType.GLIDECLIENT_GLOBAL, [ad])

    def ship(self, credentials: dict[str, tuple[str, str]], **kwargs: Any) -> None:
        self.publish(self.frontend.global_ad(credentials, **kwargs))

    def process(self) -> dict[str, Any]:
        return process_global_ads(self.deps, self.index)

    def orders(self, username: str = USER) -> list[CredentialOrder]:
        return [CredentialOrder.from_json(o) for o in self.dispatcher.credentials.get(username, [])]

    def store_all(self) -> list[str]:
        outcomes = [store_credential(self.user, order) for order in self.orders()]
        self.dispatcher.credentials.pop(USER, None)
        return outcomes


@pytest.fixture(scope="module")
def keys() -> tuple[FactoryKey, UserKey, FactoryKey]:
    return FactoryKey.generate(), UserKey.generate(), FactoryKey.generate()


@pytest.fixture
def world(keys: tuple[FactoryKey, UserKey, FactoryKey], tmp_path: Path) -> World:
    return World(keys[0], keys[1], tmp_path)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the factory side -------------------------------------------------------------------------


def test_a_valid_global_ad_sends_the_credential_sealed_for_its_user(world: World) -> None:
    world.ship({"proxy1": ("production", SECRET)})
    result = world.process()
    assert (result["accepted"], result["sent"], result["rejected"]) == (1, 1, 0)
    [order] = world.orders()
    assert (order.username, order.client, order.credential_id) == (
        USER,
        "cms_frontend.main",
        "proxy1",
    )
    assert (order.frontend, order.security_class) == ("cms_frontend", "production")
    assert open_sealed(world.user_key, order.sealed_content) == SECRET.encode()


def test_the_index_records_metadata_of_what_was_sent(world: World) -> None:
    world.ship({"proxy1": ("production", SECRET)})
    world.process()
    [known] = world.index.list("cms_frontend")
    assert (known.client, known.credential_id, known.username) == (
        "cms_frontend.main",
        "proxy1",
        USER,
    )
    assert (known.kind, known.received_at, known.expires_at) == ("file", world.now, None)
    assert len(known.fingerprint) == 16


def test_the_content_never_appears_in_clear_outside_the_user_worker(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world.ship({"proxy1": ("production", SECRET), "other": ("nosuch", SECRET)})
    result = world.process()
    needle = "super-secret-proxy-bytes"
    orders = json.dumps(world.dispatcher.credentials)
    assert needle not in orders
    assert needle not in repr(world.index.list())
    assert needle not in json.dumps(result)
    assert needle not in caplog.text
    assert SECRET.encode().hex() not in orders


def test_an_unchanged_credential_is_not_sent_again_until_the_resend_period(world: World) -> None:
    world.ship({"proxy1": ("production", SECRET)})
    world.process()
    world.now += world.config.factory.loop_delay
    again = world.process()
    assert (again["sent"], again["unchanged"]) == (0, 1)
    world.now += RESEND_LOOPS * world.config.factory.loop_delay
    due = world.process()
    assert (due["sent"], due["unchanged"]) == (1, 0)
    assert len(world.orders()) == 2


def test_a_changed_credential_is_sent_at_once(world: World) -> None:
    world.ship({"proxy1": ("production", SECRET)})
    world.process()
    world.now += 1
    world.ship({"proxy1": ("production", SECRET + "renewed\n")})
    result = world.process()
    assert result["sent"] == 1
    assert open_sealed(world.user_key, world.orders()[-1].sealed_content).endswith(b"renewed\n")


def test_an_unmapped_security_class_is_skipped_and_the_others_still_sent(world: World) -> None:
    world.ship({"proxy1": ("production", SECRET), "strange": ("nosuch", SECRET)})
    result = world.process()
    assert (result["sent"], result["skipped"]) == (1, 1)
    assert result["skips"] == {"cms_frontend.main/strange": "unmapped_security_class"}
    assert [o.credential_id for o in world.orders()] == ["proxy1"]


def test_a_user_whose_worker_never_started_gets_nothing_until_it_publishes_its_key(
    world: World, keys: tuple[FactoryKey, UserKey, FactoryKey]
) -> None:
    world.ship({"ana1": ("analysis", SECRET)})
    first = world.process()
    assert first["skips"] == {"cms_frontend.main/ana1": "user_worker_not_started"}
    assert world.dispatcher.credentials == {} and world.index.list() == []
    world.user_keys.publish("fe_cms", keys[1].public_pem)
    assert world.process()["sent"] == 1
    assert [o.username for o in world.orders("fe_cms")] == ["fe_cms"]


def test_a_too_long_credential_id_is_skipped(world: World) -> None:
    world.ship({"x" * 201: ("production", SECRET)})
    assert world.process()["skips"] == {f"cms_frontend.main/{'x' * 201}": "unsafe_credential_id"}
    assert world.dispatcher.credentials == {}


def test_an_ad_for_another_factory_is_left_alone(world: World) -> None:
    world.ship({"proxy1": ("production", SECRET)}, factory="other_factory")
    result = world.process()
    assert (result["ads"], result["other_factory"], result["rejected"]) == (1, 1, 0)
    assert world.dispatcher.credentials == {}


def _tampered(world: World) -> dict[str, AdValue]:
    ad = world.frontend.global_ad({"proxy1": ("production", SECRET)})
    ad["GlideinEncParamproxy1"] = str(ad["GlideinEncParamproxy1"])[:-2]  # one byte cut off
    return ad


def _foreign_key(world: World, other: FactoryKey) -> dict[str, AdValue]:
    return FrontendSide(other).global_ad({"proxy1": ("production", SECRET)})


def _bad_key_code(world: World) -> dict[str, AdValue]:
    ad = world.frontend.global_ad({"proxy1": ("production", SECRET)})
    return {**ad, "ReqEncKeyCode": "00" * 256}


BadAd = Callable[[World, FactoryKey], tuple[dict[str, AdValue], str]]
CASES: dict[str, BadAd] = {  # the expected reason -> (the ad, who writes it)
    "identity_mismatch": lambda w, o: (w.frontend.global_ad({"p": ("production", SECRET)}), DUNE),
    "undecryptable_param": lambda w, o: (_tampered(w), CMS),
    "unknown_key": lambda w, o: (_foreign_key(w, o), CMS),
    "undecryptable_key": lambda w, o: (_bad_key_code(w), CMS),
    "unknown_frontend": lambda w, o: (
        w.frontend.global_ad({"p": ("production", SECRET)}, security_name="nobody"),
        CMS,
    ),
    "frontend_identity_mismatch": lambda w, o: (
        w.frontend.global_ad({"p": ("main", SECRET)}, security_name="dune_frontend"),
        CMS,
    ),
    "malformed": lambda w, o: (
        {k: v for k, v in w.frontend.global_ad({}).items() if k != "ReqPubKeyID"},
        CMS,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_global_ad_is_rejected_with_its_reason_and_nothing_is_sent(
    world: World, keys: tuple[FactoryKey, UserKey, FactoryKey], case: str
) -> None:
    ad, writer = CASES[case](world, keys[2])
    world.publish(ad, writer)
    other_group = FrontendSide(world.factory_key, client_name="cms_frontend.other")
    world.publish(other_group.global_ad({"good": ("production", SECRET)}))
    result = world.process()
    name = str(ad["Name"])
    assert result["rejected"] == 1
    assert result["rejections"][name].startswith(case + ": ")
    assert [o.credential_id for o in world.orders()] == ["good"]
    assert [c.credential_id for c in world.index.list()] == ["good"]


@pytest.mark.parametrize("client", ["cms_frontend.main\n", "cms@frontend.main"])
def test_a_global_ad_with_an_unsafe_client_name_is_rejected(world: World, client: str) -> None:
    ad = world.frontend.global_ad({"proxy1": ("production", SECRET)})
    ad["Name"] = str(ad["Name"]).removesuffix(str(ad["ClientName"])) + client
    ad["ClientName"] = client
    world.publish(ad)
    result = world.process()
    assert result["rejected"] == 1
    assert result["rejections"][ad["Name"]].startswith("malformed: ")
    assert world.dispatcher.credentials == {}


# --- the user worker side ---------------------------------------------------------------------


def test_the_stored_credential_is_0600_in_a_0700_dir_with_the_exact_content(
    world: World,
) -> None:
    world.ship({"proxy1": ("production", SECRET)})
    world.process()
    assert world.store_all() == ["stored"]
    path = world.user.credential_dir / "credential_cms_frontend.main_proxy1"
    assert path.read_bytes() == SECRET.encode()
    assert mode_of(path) == 0o600
    assert mode_of(world.user.credential_dir) == 0o700
    packed = (path.parent / (path.name + "_compressed")).read_bytes()
    assert packed.startswith(b"glidein_credentials=")
    assert gzip.decompress(base64.b64decode(packed.split(b"=", 1)[1])) == SECRET.encode()
    assert mode_of(path.parent / (path.name + "_compressed")) == 0o600


def test_a_renewed_credential_replaces_the_file_and_keeps_the_previous_as_old(
    world: World,
) -> None:
    world.ship({"proxy1": ("production", SECRET)})
    world.process()
    world.store_all()
    world.now += 1
    world.ship({"proxy1": ("production", "renewed")})
    world.process()
    assert world.store_all() == ["stored"]
    path = world.user.credential_dir / "credential_cms_frontend.main_proxy1"
    assert path.read_bytes() == b"renewed"
    assert (path.parent / (path.name + ".old")).read_bytes() == SECRET.encode()
    assert mode_of(path.parent / (path.name + ".old")) == 0o600


def test_a_resent_unchanged_credential_leaves_the_file_alone(world: World) -> None:
    world.ship({"proxy1": ("production", SECRET)})
    world.process()
    [order] = world.orders()
    assert store_credential(world.user, order) == "stored"
    path = world.user.credential_dir / "credential_cms_frontend.main_proxy1"
    inode = path.stat().st_ino
    assert store_credential(world.user, order) == "unchanged"
    assert path.stat().st_ino == inode
    assert not (path.parent / (path.name + ".old")).exists()


def test_a_symlink_in_place_of_the_credential_dir_is_refused_and_nothing_written_through_it(
    world: World, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    elsewhere.chmod(0o755)
    world.user.credential_dir.parent.mkdir(parents=True)
    world.user.credential_dir.symlink_to(elsewhere)
    world.ship({"proxy1": ("production", SECRET)})
    world.process()

    with pytest.raises(PermanentError, match="symlink"):
        world.store_all()
    assert list(elsewhere.iterdir()) == []
    assert mode_of(elsewhere) == 0o755


def test_the_compressed_companion_carries_the_idtoken_when_there_is_one() -> None:
    assert compressed(b"data", b"tok.en.sig\n").startswith(b"tok.en.sig####glidein_credentials=")
    assert compressed(b"data") == compressed(b"data"), "the same content gives the same bytes"


def test_an_order_for_another_user_is_refused(world: World) -> None:
    world.ship({"proxy1": ("production", SECRET)})
    world.process()
    [order] = world.orders()
    other = CredentialOrder(
        "fe_cms", order.client, order.frontend, "analysis", "proxy1", order.sealed_content
    )
    with pytest.raises(PermanentError, match="fe_cms"):
        store_credential(world.user, other)
    assert not world.user.credential_dir.exists()


def test_a_tampered_sealed_content_is_refused_and_writes_nothing(world: World) -> None:
    sealed = seal(world.user_key.public_pem, b"content")
    body = bytearray(base64.b64decode(sealed.split(":", 1)[1]))
    body[-1] ^= 1
    forged = "gwms-env1:" + base64.b64encode(bytes(body)).decode()
    order = CredentialOrder(USER, "cms_frontend.main", "cms_frontend", "production", "p1", forged)
    with pytest.raises(CryptoError):
        store_credential(world.user, order)
    assert not world.user.credential_dir.exists()


def test_an_order_naming_an_unsafe_client_is_refused(world: World) -> None:
    sealed = seal(world.user_key.public_pem, b"content")
    order = CredentialOrder(USER, "../../etc", "cms_frontend", "production", "p1", sealed)
    with pytest.raises(PermanentError, match="unsafe client"):
        store_credential(world.user, order)


def test_a_malformed_credential_order_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="security_class, credential_id, sealed_content"):
        CredentialOrder.from_json({"username": "u", "client": "c", "frontend": "f"})
    with pytest.raises(PermanentError, match="credential_id"):
        CredentialOrder.from_json(
            {
                "username": "u",
                "client": "c",
                "frontend": "f",
                "security_class": "s",
                "credential_id": "",
                "sealed_content": "x",
            }
        )


def test_a_proxy_shipped_in_a_global_ad_lets_its_request_be_submitted(world: World) -> None:
    world.ship({"proxy1": ("production", SECRET)})
    world.process()
    world.store_all()
    request = world.frontend.request(
        PROXY_ENTRY, idle=2, enc={"SubmitProxy": "proxy1"}, cred_id="proxy1"
    )
    world.hub.handle(CMS).advertise(AdType.GLIDECLIENT, [request])
    assert find_work(world.deps, PROXY_ENTRY, "run-1").submitted == 2
    [order] = world.dispatcher.submits[USER]
    assert execute_submit(world.user, SubmitOrder.from_json(order)).newly_submitted == 2
    [submission] = world.backend.submissions
    proxy = Path(submission.environment["X509_USER_PROXY"])
    assert proxy.read_bytes() == SECRET.encode()


# --- what a content tells about itself --------------------------------------------------------


def _jwt(claims: dict[str, object]) -> bytes:
    def part(data: dict[str, object]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")

    return part({"alg": "ES256", "typ": "JWT"}) + b"." + part(claims) + b".c2ln"


def _proxy(not_after: datetime.datetime) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pilot")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(not_after - datetime.timedelta(days=1))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def test_a_pem_proxy_is_described_with_its_not_after() -> None:
    not_after = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert describe_credential("proxy1", _proxy(not_after)) == (
        CredentialKind.PROXY,
        not_after.timestamp(),
    )


@pytest.mark.parametrize(
    ("cred_id", "claims", "expected"),
    [
        ("tok", {"exp": 1_900_000_000, "scope": "compute.create"}, CredentialKind.SCITOKEN),
        ("tok", {"exp": 1_900_000_000, "scope": "condor:/READ"}, CredentialKind.IDTOKEN),
        ("ce1.idtoken", {"exp": 1_900_000_000}, CredentialKind.IDTOKEN),
    ],
)
def test_a_jwt_is_described_with_its_exp(
    cred_id: str, claims: dict[str, object], expected: CredentialKind
) -> None:
    assert describe_credential(cred_id, _jwt(claims)) == (expected, 1_900_000_000.0)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"plain password", CredentialKind.FILE),
        (b"not.a.jwt", CredentialKind.FILE),
        (_jwt({"exp": "soon"}), CredentialKind.SCITOKEN),
        (b"-----BEGIN CERTIFICATE-----\nnot base64\n", CredentialKind.PROXY),
    ],
)
def test_anything_else_is_described_without_an_expiry(
    content: bytes, expected: CredentialKind
) -> None:
    assert describe_credential("c", content) == (expected, None)
