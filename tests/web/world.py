"""A small running factory for the web tests: the real services over a simulated site.

One frontend (cms_frontend, client ``cms_frontend.main``) requests glideins at the simulated
entry of ``examples/factory.yaml``; :meth:`FactoryWorld.cycle` runs find-work, the user
worker's submits, the monitor and the advertise step, as the tasks would, on whatever state
store the test gives (RedisState for API and browser tests, MemoryState for unit tests).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gwms_tasks.adapters.memory_backend import MemoryGridBackend
from gwms_tasks.adapters.memory_dashboard import MemoryDashboardHub
from gwms_tasks.adapters.memory_dispatcher import MemoryDispatcher
from gwms_tasks.adapters.simulated import SimulatedBackend
from gwms_tasks.adapters.user_keys import MemoryUserKeys
from gwms_tasks.core.ads import AdType
from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.core.crypto import FactoryKey
from gwms_tasks.core.downtimes import Downtimes
from gwms_tasks.core.envelope import UserKey
from gwms_tasks.core.glidein_log import FailureCategory, GlideinResult
from gwms_tasks.core.keyring import Keyring
from gwms_tasks.core.model import Glidein
from gwms_tasks.core.simulation import Fixed, SiteParameters
from gwms_tasks.core.staging import SignedDescription, SignType, StagingIndex
from gwms_tasks.ports import (
    CompletedGlidein,
    CredentialIndex,
    FailedSubmit,
    GridBackend,
    KnownCredential,
    StateStore,
)
from gwms_tasks.services.advertise import advertise_entry
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.find_work import find_work
from gwms_tasks.services.monitor import monitor_entry
from gwms_tasks.services.monitoring_view import MonitoringSources
from gwms_tasks.services.orders import SubmitOrder
from gwms_tasks.services.retry import retry_failed
from gwms_tasks.services.submit import UserDeps, execute_submit, record_failed_submit
from tests.builders import EXAMPLE_CONFIG, FrontendSide, example_config

ENTRY = "simulated_site"
CLIENT = "cms_frontend.main"
FRONTEND = "cms_frontend"
FRONTEND_KEY = "cms_frontend:production"
IDENTITY = "vofrontend_cms@frontend.cms.example.org"
USER = "fe_cms_pilot"
FACTORY_WRITER = "demo_factory"
START = 1_700_000_000.0
SITE = SiteParameters(slots=3, queue_time=Fixed(30.0), run_time=Fixed(36000.0))


@dataclass
class Clock:
    """The test's time: moves only when the test says so."""

    now: float = START

    def __call__(self) -> float:
        return self.now


@dataclass
class FactoryWorld:
    """A factory with one frontend and one user worker, driven cycle by cycle.

    Attributes:
        state: the state store under test.
        credentials: the credential index the pages read.
        site: the simulated site of the entry, however it keeps its state.
    """

    state: StateStore
    credentials: CredentialIndex
    site: Callable[[Callable[[], float]], SimulatedBackend]
    factory_key: FactoryKey
    user_key: UserKey
    tmp: Path
    config: FactoryConfig = field(default_factory=example_config)
    clock: Clock = field(default_factory=Clock)
    downtimes: Downtimes = field(default_factory=Downtimes)

    def __post_init__(self) -> None:
        self.hub = MemoryDashboardHub(clock=self.clock)
        self.dispatcher = MemoryDispatcher()
        self.frontend = FrontendSide(self.factory_key)
        self.backend = self.site(self.clock)
        self.others: dict[str, GridBackend] = {
            name: MemoryGridBackend(FACTORY_WRITER, "gfactory_instance", name, self.clock)
            for name in self.config.entries
            if name != ENTRY
        }
        user_keys = MemoryUserKeys()
        user_keys.publish(USER, self.user_key.public_pem)
        index = StagingIndex(
            SignType.SHA1,
            SignedDescription("description.aaaa.cfg", "a" * 40),
            {
                name: SignedDescription("description.bbbb.cfg", "b" * 40)
                for name in self.config.entries
            },
        )
        self.deps = FactoryDeps(
            config=self.config,
            state=self.state,
            dashboard=self.hub.handle(FACTORY_WRITER),
            backend_for=self.backend_for,
            dispatcher=self.dispatcher,
            user_keys=user_keys,
            keyring=lambda: Keyring(self.factory_key),
            downtimes=lambda: self.downtimes,
            staging=lambda: index,
            clock=self.clock,
        )
        self.user = UserDeps(
            username=USER,
            state=self.state,
            backend_for=self.backend_for,
            user_key=self.user_key,
            credential_dir=self.tmp / "creds",
            clock=self.clock,
        )
        self.runs = 0

    def backend_for(self, entry: str) -> GridBackend:
        return self.backend if entry == ENTRY else self.others[entry]

    def request(self, idle: int, max_glideins: int = 50) -> None:
        """The frontend asks for ``idle`` idle glideins at the simulated entry."""
        ad = self.frontend.request(ENTRY, idle=idle, max_glideins=max_glideins)
        self.hub.handle(IDENTITY).advertise(AdType.GLIDECLIENT, [ad])

    def cycle(self, seconds: float = 60.0) -> None:
        """One loop of the factory: find-work, the user's submits, time passes, monitor, ads."""
        self.runs += 1
        find_work(self.deps, ENTRY, f"run-{self.runs}")
        for raw in self.dispatcher.submits.pop(USER, []):
            execute_submit(self.user, SubmitOrder.from_json(raw))
        self.clock.now += seconds
        monitor_entry(self.deps, ENTRY)
        advertise_entry(self.deps, ENTRY)

    def refused_submit(self, idle: int, max_glideins: int = 50) -> FailedSubmit:
        """A request whose submit order the CE refuses for good (a failed submit to retry)."""
        self.request(idle, max_glideins)
        self.runs += 1
        find_work(self.deps, ENTRY, f"run-{self.runs}")
        [raw] = self.dispatcher.submits.pop(USER)
        order = SubmitOrder.from_json(raw)
        key = order.tags.submit_key
        record_failed_submit(self.user, order, "the CE refused the job", failed_id=key)
        failed = self.state.failed.get(key)
        assert failed is not None
        return failed

    def glideins(self) -> list[Glidein]:
        return self.backend.query()

    def ended(self, job_id: str, result: GlideinResult, category: str = "") -> None:
        """Record a glidein that ended (what the monitor records from a local site's output)."""
        failed = result is GlideinResult.VALIDATION_FAILED
        self.state.completed.record(
            CompletedGlidein(
                job_id=job_id,
                entry=ENTRY,
                client=CLIENT,
                security_class="production",
                frontend=FRONTEND_KEY,
                finished_at=self.clock.now,
                result=result.value,
                exit_code=1 if failed else 0,
                wall_seconds=120.0,
                validation_seconds=30.0,
                user_jobs=0 if failed else 4,
                failed_script="check_disk.sh" if failed else "",
                failure_category=category,
                failure_detail="not enough scratch space" if failed else "",
            )
        )

    def credential(self, expires_in: float | None) -> KnownCredential:
        """The frontend's token, as the credentials service indexes it (metadata only)."""
        known = KnownCredential(
            client=CLIENT,
            frontend=FRONTEND,
            security_class="production",
            username=USER,
            credential_id="cred1",
            kind="scitoken",
            received_at=self.clock.now,
            expires_at=None if expires_in is None else self.clock.now + expires_in,
            fingerprint="0123456789abcdef",
        )
        self.credentials.put(known)
        return known

    def counted_sources(self, **changes: object) -> tuple[MonitoringSources, Counter[str]]:
        """Sources whose entry-record and completed-glidein reads are counted, by method."""
        calls: Counter[str] = Counter()
        entries = Counting(self.state.entries, calls)
        state = Counting(self.state, Counter(), entries=entries)
        completed = Counting(self.state.completed, calls)
        return self.sources(state=state, completed=completed, **changes), calls

    def sources(self, **changes: object) -> MonitoringSources:
        """What the web app reads: this world's ports."""
        values: dict[str, object] = {
            "config": self.config,
            "state": self.state,
            "completed": self.state.completed,
            "counters": self.state.counters,
            "credentials": self.credentials,
            "downtimes": lambda: self.downtimes,
            "clock": self.clock,
            "dashboard": self.deps.dashboard,
            "retry": lambda failed_id: retry_failed(self.deps, failed_id).to_json(),
            "glideins": lambda entry: self.backend_for(entry).query(),
            "dashboard_identity": FACTORY_WRITER,
        }
        values.update(changes)
        return MonitoringSources(**values)  # type: ignore[arg-type]


class Counting:
    """Passes everything through to ``inner``, counting the calls of its methods by name.

    ``children`` are attributes answered instead of ``inner``'s (counting wrappers of its ports).
    """

    def __init__(self, inner: object, calls: Counter[str], **children: object) -> None:
        self._inner, self._calls, self._children = inner, calls, children

    def __getattr__(self, name: str) -> Any:
        if name in self._children:
            return self._children[name]
        found = getattr(self._inner, name)
        if not callable(found):
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls[name] += 1
            return found(*args, **kwargs)

        return call


def config_file(path: Path, redis_url: str, **web: object) -> Path:
    """``examples/factory.yaml`` on ``redis_url`` with these ``web`` settings, written to ``path``
    (for tests of the real wiring: a Runtime reading it)."""
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["redis"] = {"state_url": redis_url, "broker_url": redis_url}
    data["dashboard"]["url"] = redis_url
    data["web"] = web
    data["factory"].update(stage_dir=str(path.parent / "stage"), downtimes_file=None)
    path.write_text(yaml.safe_dump(data))
    return path


def simulated_in_memory(seed: int = 7) -> Callable[[Callable[[], float]], SimulatedBackend]:
    """A private simulated site (for tests on the memory twins)."""

    def make(clock: Callable[[], float]) -> SimulatedBackend:
        return SimulatedBackend.in_memory(
            SITE, FACTORY_WRITER, "gfactory_instance", ENTRY, random.Random(seed), clock
        )

    return make


VALIDATION = FailureCategory.WN_RESOURCE.value
