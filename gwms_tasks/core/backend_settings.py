"""From an entry's configuration to the settings of its grid backend (pure mappings).

The config speaks the operator's language (``backend: {kind: simulated, queue_time: 60}``); the
backends take their own typed settings. These functions are the only translation between them.
"""

from __future__ import annotations

from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.core.config_parts import SimulatedBackend
from gwms_tasks.core.simulation import Exponential, Fixed, SiteParameters
from gwms_tasks.core.submit_description import EntrySubmitSettings, SubmitAttr

SIMULATED_FAILURE_TIME = 60.0
"""Seconds a failing simulated glidein runs before it ends (validation failures are quick)."""


def submit_settings(config: FactoryConfig, entry: str, executable: str) -> EntrySubmitSettings:
    """The Condor-G submit settings of ``entry``.

    Args:
        config: the factory config.
        entry: a configured entry name.
        executable: path of ``glidein_startup.sh`` on the factory host.

    Raises:
        ConfigError: the entry's values cannot make a submit description.
    """
    cfg = config.entries[entry]
    fac = config.factory
    return EntrySubmitSettings(
        grid_type=cfg.grid_type.kind,
        gatekeeper=cfg.gatekeeper or "",
        executable=executable,
        log_base_dir=str(fac.client_log_base_dir),
        web_url=fac.web_url,
        startup_dir=cfg.startup_dir,
        slots_layout=cfg.slots_layout,
        batch_lrms=cfg.grid_type.lrms,
        rsl=cfg.rsl,
        submit_attrs=tuple(
            SubmitAttr(name, _submit_value(value)) for name, value in cfg.submit_attrs.items()
        ),
        schedd_name=cfg.schedd,
        max_walltime=cfg.lifetime.max_walltime,
        proxy_url=cfg.proxy_url,
        cluster_size=cfg.submit.cluster_size,
    )


def _submit_value(value: str | int | bool | float) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def site_parameters(backend: SimulatedBackend) -> SiteParameters:
    """The simulated site of a ``kind: simulated`` backend.

    Queue and run times are exponential with the configured means (memoryless arrivals, as
    a busy batch system looks from outside); a zero mean is a fixed zero.
    """
    return SiteParameters(
        slots=backend.capacity,
        queue_time=_mean(backend.queue_time),
        run_time=_mean(backend.run_time),
        hold_rate=backend.hold_rate,
        failure_rate=backend.failure_rate,
        failure_time=Fixed(SIMULATED_FAILURE_TIME),
    )


def _mean(seconds: float) -> Fixed | Exponential:
    return Exponential(seconds) if seconds > 0 else Fixed(0.0)
