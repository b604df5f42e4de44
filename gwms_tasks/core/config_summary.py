"""A short human summary of a validated factory config (what ``gwms config check`` prints).

Secrets stay out: the operator token is never shown and URL passwords are masked.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from gwms_tasks.core.config import CondorDashboard, FactoryConfig
from gwms_tasks.core.config_entry import EntryConfig
from gwms_tasks.core.config_parts import LocalSiteBackend, SimulatedBackend


def summarize(config: FactoryConfig) -> list[str]:
    """The lines of the summary: factory, services, entries, frontends."""
    return [*_factory_lines(config), *_entry_lines(config), *_frontend_lines(config)]


def _factory_lines(config: FactoryConfig) -> list[str]:
    factory = config.factory
    dashboard = config.dashboard
    where = (
        f"collector {dashboard.collector}"
        if isinstance(dashboard, CondorDashboard)
        else masked_url(dashboard.url)
    )
    writes = "enabled" if config.web.operator_token is not None else "disabled (no operator_token)"
    return [
        f"factory {factory.name} (glidein {factory.glidein_name}), staging at {factory.web_url}",
        f"  loop every {factory.loop_delay:g} s, advertise every {factory.advertise_delay} loops, "
        f"ads live {dashboard.ad_lifetime} s",
        f"  state {masked_url(config.redis.state_url)}, "
        f"broker {masked_url(config.redis.broker_url)}",
        f"  dashboard {dashboard.kind} at {where}",
        f"  web {config.web.listen_host}:{config.web.listen_port}, write actions {writes}; "
        f"flower on port {config.flower.port}",
    ]


def _entry_lines(config: FactoryConfig) -> list[str]:
    enabled = len(config.enabled_entries())
    lines = [f"entries: {len(config.entries)} ({enabled} enabled)"]
    for name, entry in config.entries.items():
        lines.append(f"  {name}: {_entry_text(entry)}")
        limits = config.entry_limits(name).per_entry
        lines.append(
            f"    limits per entry: idle {limits.max_idle}, held {limits.max_held}, "
            f"glideins {limits.max_glideins}"
        )
        if entry.whitelist_mode:
            allowed = ", ".join(f"{a.frontend}:{a.security_class}" for a in entry.allow_frontends)
            lines.append(f"    only for: {allowed}")
    return lines


def _entry_text(entry: EntryConfig) -> str:
    backend = entry.backend
    if isinstance(backend, LocalSiteBackend):
        where = f"{backend.slots} local slots as site {backend.site}"
    elif isinstance(backend, SimulatedBackend):
        where = (
            f"capacity {backend.capacity}, queue {backend.queue_time:g} s, "
            f"run {backend.run_time:g} s"
        )
    else:
        where = f"grid {entry.grid_type} to {entry.gatekeeper}"
    state = "" if entry.enabled else " [disabled]"
    return f"{backend.kind} ({where}), auth {entry.auth_method}{state}"


def _frontend_lines(config: FactoryConfig) -> list[str]:
    lines = [f"frontends: {len(config.frontends)}"]
    for name, frontend in config.frontends.items():
        classes = ", ".join(f"{sc} -> {user}" for sc, user in frontend.security_classes.items())
        lines.append(f"  {name} ({frontend.identity}): {classes}")
    return lines


def masked_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
