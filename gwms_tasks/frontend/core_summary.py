"""A short human summary of a validated frontend config (``gwms frontend config check``).

Secrets stay out: URL passwords are masked and credential contents are never read here.
"""

from __future__ import annotations

from gwms_tasks.core.config_summary import masked_url
from gwms_tasks.frontend.core_config import CelerySource, FrontendConfig, GroupConfig


def summarize(config: FrontendConfig) -> list[str]:
    """The lines of the summary: who, where, which factories, and every group."""
    fe = config.frontend
    lines = [
        f"frontend {fe.name} (identity {fe.identity}), a cycle every {fe.loop_delay:g} s",
        f"  dashboard {masked_url(config.dashboard.url)} (prefix {config.dashboard.key_prefix}, "
        f"ads live {config.dashboard.ad_lifetime} s)",
        f"  celery {masked_url(config.celery.broker_url)}, queue {config.queue}",
        f"  staging {config.web.url} from {config.web.stage_dir}",
    ]
    lines += [f"  factory {f.global_name}, trusted as {f.identity}" for f in config.factories]
    for name, group in config.groups.items():
        lines += _group_lines(config.client_name(name), group)
    return lines


def _group_lines(client_name: str, group: GroupConfig) -> list[str]:
    source = group.job_source
    if isinstance(source, CelerySource):
        jobs = f"celery queue {source.queue} at {masked_url(source.broker_url)}"
    else:
        jobs = f"schedd {source.schedd_name or '(local)'}, jobs where {source.constraint}"
    limits = group.limits
    state = "" if group.enabled else " (disabled)"
    credentials = ", ".join(f"{c.id} ({c.type}, {c.security_class})" for c in group.credentials)
    return [
        f"group {client_name}{state}: {jobs}",
        f"  entries where {group.entry_constraint}; jobs match where {group.match}",
        f"  credentials: {credentials}",
        f"  limits: {limits.max_idle_per_entry} idle per entry, {limits.max_new_idle_per_cycle} "
        f"new per entry and cycle, {limits.max_glideins_per_entry} glideins per entry, "
        f"{limits.max_glideins_total} in all; remove {group.remove_excess.mode} after "
        f"{group.remove_excess.after_cycles} cycle(s) without jobs",
    ]
