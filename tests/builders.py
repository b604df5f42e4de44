"""Test builders: a factory config, keys, and correctly encrypted frontend requests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gwms_tasks.core.ads import (
    FrontendWeb,
    GlideClientAd,
    GlideClientGlobalAd,
    RemoveExcess,
    RequestKey,
)
from gwms_tasks.core.classad_text import AdValue
from gwms_tasks.core.config import FactoryConfig, load_config
from gwms_tasks.core.crypto import FactoryKey, FactoryPublicKey, SymKey

EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "factory.yaml"


def example_config() -> FactoryConfig:
    return load_config(EXAMPLE_CONFIG.read_text(), str(EXAMPLE_CONFIG))


def fixed_sym_key() -> SymKey:
    return SymKey.generate(random_bytes=lambda n: bytes(range(n)))


@dataclass
class FrontendSide:
    """What a frontend holds to write requests to one factory."""

    factory_key: FactoryKey
    identity: str = "vofrontend_cms@frontend.cms.example.org"
    security_name: str = "cms_frontend"
    security_class: str = "production"
    client_name: str = "cms_frontend.main"
    sym: SymKey = field(default_factory=fixed_sym_key)
    oaep_hash: str = "sha1"

    def key(self, identity: str | None = None) -> RequestKey:
        public = FactoryPublicKey.from_pem(self.factory_key.public_pem)
        return RequestKey(
            pub_key_id=self.factory_key.pub_key_id,
            enc_key_code=public.encrypt_key_code(self.sym, oaep_hash=self.oaep_hash),
            enc_identity=self.sym.encrypt_hex(identity or self.identity),
        )

    def request(
        self,
        entry: str,
        *,
        idle: int = 5,
        max_glideins: int = 20,
        enc: dict[str, str] | None = None,
        params: dict[str, AdValue] | None = None,
        cred_id: str = "cred1",
        factory: str = "demo_factory",
        glidein: str = "gfactory_instance",
        remove_excess: str = "NO",
    ) -> dict[str, AdValue]:
        values = {
            "SecurityName": self.security_name,
            "SecurityClass": self.security_class,
            **(enc if enc is not None else {"frontend_scitoken": "eyJ.token.sig"}),
        }
        ad = GlideClientAd(
            cred_id=cred_id,
            req_name=f"{entry}@{glidein}@{factory}",
            client_name=self.client_name,
            frontend_name=self.security_name,
            group_name="main",
            web=FrontendWeb(
                url="http://fe.example.org/vofrontend/stage",
                sign_type="sha1",
                descript_file="description.abc.cfg",
                descript_sign="0123456789abcdef0123456789abcdef01234567",
                group_url="http://fe.example.org/vofrontend/stage/group_main",
                group_descript_file="description.def.cfg",
                group_descript_sign="89abcdef0123456789abcdef0123456789abcdef",
                monitoring_url="http://fe.example.org/vofrontend/monitor",
            ),
            idle_glideins=idle,
            max_glideins=max_glideins,
            remove_excess=RemoveExcess(remove_excess),
            key=self.key(),
            params=params or {},
            enc_params={k: self.sym.encrypt_hex(v) for k, v in values.items()},
        )
        return ad.to_attrs(sequence=0)

    def global_ad(
        self,
        credentials: Mapping[str, tuple[str, str]],
        *,
        identity: str | None = None,
        security_name: str | None = None,
        factory: str = "demo_factory",
        glidein: str = "gfactory_instance",
    ) -> dict[str, AdValue]:
        """A ``glideclientglobal`` ad shipping ``{credential id: (security class, content)}``."""
        values = {
            "SecurityName": security_name or self.security_name,
            "NumberOfCredentials": str(len(credentials)),
        }
        for cred_id, (security_class, content) in credentials.items():
            values[cred_id] = content
            values[f"SecurityClass{cred_id}"] = security_class
        ad = GlideClientGlobalAd(
            glidein_name=glidein,
            factory_name=factory,
            client_name=self.client_name,
            frontend_name=self.security_name,
            group_name="main",
            key=self.key(identity),
            enc_params={k: self.sym.encrypt_hex(v) for k, v in values.items()},
        )
        return ad.to_attrs(sequence=0)
