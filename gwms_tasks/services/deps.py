"""The ports and settings a factory service works with, bundled once per process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.core.downtimes import Downtimes
from gwms_tasks.core.keyring import Keyring
from gwms_tasks.core.staging import StagingIndex
from gwms_tasks.ports import Dashboard, GridBackend, StateStore, TaskDispatcher, UserKeys
from gwms_tasks.services.key_cache import KeyCodeCache

Clock = Callable[[], float]


@dataclass(frozen=True)
class FactoryDeps:
    """Everything the factory-side services need.

    Attributes:
        config: the validated factory configuration.
        state: the persistent state store.
        dashboard: the factory's handle on the dashboard (the collector).
        backend_for: the grid backend of an entry.
        dispatcher: sends orders to the per-user queues.
        user_keys: public keys of the user workers (to seal secrets for them).
        keyring: the factory's keys at a given time.
        downtimes: the downtimes in force (read each cycle: operators edit them live).
        staging: the index of the built staging area, or None when none was built.
        clock: epoch seconds.
        key_codes: request keys already unwrapped (see :mod:`.key_cache`); hold one per
            process so that find-work unwraps each frontend's key once, not once per entry.
    """

    config: FactoryConfig
    state: StateStore
    dashboard: Dashboard
    backend_for: Callable[[str], GridBackend]
    dispatcher: TaskDispatcher
    user_keys: UserKeys
    keyring: Callable[[], Keyring]
    downtimes: Callable[[], Downtimes]
    staging: Callable[[], StagingIndex | None]
    clock: Clock
    key_codes: KeyCodeCache = field(default_factory=KeyCodeCache)
