"""The frontend against real Redis: it writes as its own ACL user, the factory reads as itself.

The factory side is the factory's own code: ``RedisDashboard`` queries as the factory writer
and ``core.requests.validate_request`` with the factory's keyring. The jobs are real Celery
messages in a Redis broker. ``gwms frontend cycle --once`` and ``gwms frontend explain`` run
as an operator would run them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import yaml
from celery import Celery
from click.testing import CliRunner

from gwms_tasks.adapters.redis_admin import add_frontend_user
from gwms_tasks.adapters.redis_dashboard import RedisDashboard
from gwms_tasks.cli import gwms
from gwms_tasks.core.ads import AdType
from gwms_tasks.core.crypto import FactoryKey
from gwms_tasks.core.requests import Request
from gwms_tasks.errors import PermanentError
from gwms_tasks.keys import Keys
from tests.frontend.builders import (
    CLIENT,
    IDENTITY,
    IDTOKEN,
    PROXY,
    SCITOKEN,
    FactorySite,
    frontend_data,
    req_name,
    with_changes,
)
from tests.frontend.test_job_sources import QUEUE, broker_url

pytestmark = pytest.mark.redis

KEYS = Keys()  # the config's default dashboard prefix
ENTRIES = ("ce_osg_htcondor", "local_cluster", "simulated_site")


@pytest.fixture(scope="module")
def factory_key() -> FactoryKey:
    return FactoryKey.generate()


@dataclass
class Setup:
    admin: redis.Redis
    factory: FactorySite
    factory_dashboard: RedisDashboard
    config_path: Path
    broker: str

    def cli(self, *args: str) -> str:
        result = CliRunner().invoke(gwms, ["frontend", *args, str(self.config_path)])
        assert result.exit_code == 0, result.output
        return result.stdout

    def send_jobs(self, count: int, **headers: object) -> None:
        app = Celery("vo", broker=self.broker)
        app.conf.update(task_serializer="json", accept_content=["json"])
        for _ in range(count):
            app.send_task("vo.work", queue=QUEUE, headers=headers)
        app.close()


@pytest.fixture
def setup(
    redis_client: redis.Redis, redis_url: str, factory_key: FactoryKey, tmp_path: Path
) -> Iterator[Setup]:
    url = add_frontend_user(redis_client, KEYS, IDENTITY, factory_writers=("factory", "rogue"))
    broker = broker_url(redis_url)
    data = with_changes(frontend_data(tmp_path), "dashboard.url", url)
    data = with_changes(data, "groups.main.job_source.broker_url", broker)
    data = with_changes(data, "groups.main.job_source.header_attributes", ["RequestCpus"])
    config_path = tmp_path / "frontend.yaml"
    config_path.write_text(yaml.safe_dump(data))
    factory = FactorySite(factory_key)
    dashboard = RedisDashboard(redis_client, KEYS, "factory")
    dashboard.advertise(AdType.GLIDEFACTORY_GLOBAL, [factory.global_ad()])
    entries = [factory.entry(name) for name in ENTRIES]
    dashboard.advertise(AdType.GLIDEFACTORY, [e.to_attrs(sequence=1) for e in entries])
    dashboard.advertise(AdType.GLIDEFACTORY_CLIENT, [factory.client(entries[0], 1, 2)])
    yield Setup(redis_client, factory, dashboard, config_path, broker)


def test_factory_accepts_the_frontends_requests_and_decrypts_its_credentials(setup: Setup) -> None:
    setup.send_jobs(7, RequestCpus=1)

    report = json.loads(setup.cli("cycle", "--once", "--json"))

    assert (report["status"], report["idle_jobs"], report["requests"]) == ("ok", 7, 3)
    ads = setup.factory_dashboard.query(AdType.GLIDECLIENT)
    assert {ad.identity for ad in ads} == {IDENTITY}
    accepted = {str(ad.attrs["ReqName"]): setup.factory.validate(ad) for ad in ads}
    assert all(isinstance(r, Request) for r in accepted.values())
    numbers = {
        name: (r.demand.req_idle, r.demand.req_max)
        for name, r in accepted.items()
        if isinstance(r, Request)
    }
    # 7 jobs over 3 entries: 3 + 2 + 2. The first entry has 1 idle and 2 running glideins
    # and no job runs: 2 of its jobs will go to the running ones, 1 is wanted, and it is idle
    # already, so nothing new and the maximum stays at its 3 glideins.
    assert numbers == {
        req_name("ce_osg_htcondor"): (1, 3),
        req_name("local_cluster"): (2, 2),
        req_name("simulated_site"): (2, 2),
    }
    token = accepted[req_name("simulated_site")]
    assert isinstance(token, Request)
    assert token.secrets["frontend_scitoken"] == SCITOKEN
    assert token.params["GLIDEIN_CELERY_QUEUE"] == "vo_jobs"
    [global_ad] = setup.factory_dashboard.query(AdType.GLIDECLIENT_GLOBAL)
    clear = setup.factory.decrypt(global_ad.attrs)
    assert (clear["cms_proxy"], clear["cms_pool"].strip()) == (PROXY, IDTOKEN)
    assert global_ad.identity == IDENTITY


def test_no_secret_is_stored_in_clear(setup: Setup) -> None:
    setup.cli("cycle", "--once")

    stored = b""
    for key in setup.admin.scan_iter(match=f"{KEYS.prefix}:*"):
        if setup.admin.type(key) == b"hash":
            stored += b"".join(setup.admin.hgetall(key).values())
    assert stored.count(b"ReqEncKeyCode") >= 4
    for secret in (SCITOKEN, IDTOKEN, "MIIproxy"):
        assert secret.encode() not in stored


def test_ad_of_a_reader_visible_but_untrusted_writer_is_ignored_with_a_reason(
    setup: Setup,
) -> None:
    rogue = RedisDashboard(setup.admin, KEYS, "rogue")
    rogue.advertise(AdType.GLIDEFACTORY_GLOBAL, [setup.factory.global_ad()])
    rogue.advertise(AdType.GLIDEFACTORY, [setup.factory.entry("rogue_entry").to_attrs(sequence=1)])
    setup.send_jobs(3)

    setup.cli("cycle", "--once")

    names = {str(ad.attrs["ReqName"]) for ad in setup.factory_dashboard.query(AdType.GLIDECLIENT)}
    assert req_name("rogue_entry") not in names and len(names) == 3
    text = setup.cli("explain", "--entry", "nothing-matches")
    assert (
        "glidefactory ad 'rogue_entry@gfactory_instance@demo_factory' ignored "
        "(untrusted_identity): written by 'rogue', but gfactory_instance@demo_factory is "
        "trusted only as 'factory'"
    ) in text
    assert "glidefactoryglobal ad 'gfactory_instance@demo_factory' ignored" in text


def test_explain_shows_the_last_cycle_of_each_group(setup: Setup) -> None:
    assert setup.cli("explain") == "group main: no cycle has run yet\n"
    setup.send_jobs(2, RequestCpus=1)
    setup.cli("cycle", "--once")

    text = setup.cli("explain", "--entry", "local_cluster")

    assert f"group main (client {CLIENT})" in text
    assert "jobs: 2 idle (0 matched no entry), 0 running" in text
    assert "entry local_cluster@gfactory_instance@demo_factory: ReqIdleGlideins=1 (demand)" in text
    assert "simulated_site" not in text
    data = json.loads(setup.cli("explain", "--json"))
    assert data["main"]["client_name"] == CLIENT


def test_frontend_acl_user_cannot_write_as_the_factory(setup: Setup) -> None:
    frontend = redis.Redis.from_url(
        yaml.safe_load(setup.config_path.read_text())["dashboard"]["url"]
    )

    with pytest.raises(PermanentError, match="lacks this permission"):
        RedisDashboard(frontend, KEYS, "factory").advertise(
            AdType.GLIDEFACTORY, [setup.factory.entry("x").to_attrs(sequence=1)]
        )
    frontend.close()


def test_unknown_group_is_a_clean_cli_error(setup: Setup) -> None:
    result = CliRunner().invoke(
        gwms, ["frontend", "cycle", "--once", "--group", "nope", str(setup.config_path)]
    )

    assert result.exit_code == 1
    assert result.stderr == "gwms: unknown or disabled group(s) nope (groups: main)\n"
