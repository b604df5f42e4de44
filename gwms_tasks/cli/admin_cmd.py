"""Setting the factory up: ``gwms dashboard``, ``gwms staging build``, ``gwms site run``,
``gwms worker-key reset``."""

from __future__ import annotations

from pathlib import Path

import click

from gwms_tasks.adapters.redis_admin import (
    add_frontend_user,
    check_persistence,
    remove_frontend_user,
)
from gwms_tasks.adapters.user_keys import RedisUserKeys
from gwms_tasks.cli._ops import echo_lines, open_runtime, operating, table
from gwms_tasks.cli._root import EXIT_INVALID, config_option, gwms
from gwms_tasks.config_file import read_config
from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.core.config_parts import LocalSiteBackend
from gwms_tasks.errors import PermanentError
from gwms_tasks.keys import Keys
from gwms_tasks.runtime import GLIDEIN_STARTUP, site_workdir
from gwms_tasks.services.site_worker import run_site_worker
from gwms_tasks.services.staging_build import build_staging, staging_spec_from_config

# ------------------------------------------------------------------------------ dashboard


@gwms.group()
def dashboard() -> None:
    """Frontends' access to the Redis dashboard (one ACL user each)."""


@dashboard.command("add-frontend")
@click.argument("name")
@config_option()
@click.option("--host", help="Host name frontends reach Redis by, if not the factory's.")
def add_frontend(name: str, config_path: Path, host: str | None) -> None:
    """Create (or reset) the dashboard user of frontend NAME; print its connection URL.

    NAME is a configured frontend (or its identity); the user is named by the identity,
    which is how the factory recognises the frontend's requests. The password is random and
    shown only in the URL printed here: give it to the frontend's operator.
    """
    with operating("create the frontend's dashboard user"):
        runtime = open_runtime(config_path)
        config = runtime.refresh()
        identity = frontend_identity(config, name)
        url = add_frontend_user(
            runtime.dashboard_client(),
            runtime.keys,
            identity,
            factory_writers=(config.factory.name,),
            host=host,
        )
    click.echo(f"dashboard user {identity} ready; its URL (shown only now):", err=True)
    click.echo(url)


@dashboard.command("remove-frontend")
@click.argument("name")
@config_option()
def remove_frontend(name: str, config_path: Path) -> None:
    """Delete the dashboard user of frontend NAME and its ads (its requests stop at once)."""
    with operating("remove the frontend's dashboard user"):
        runtime = open_runtime(config_path)
        identity = frontend_identity(runtime.refresh(), name, configured_only=False)
        existed = remove_frontend_user(runtime.dashboard_client(), runtime.keys, identity)
        if not existed:
            raise PermanentError(f"there is no dashboard user {identity} (nothing removed)")
    click.echo(f"dashboard user {identity} removed, with its ads")


@dashboard.command("check")
@config_option()
def check(config_path: Path) -> None:
    """Warn when the state Redis could lose data (AOF off, eviction on); exit 1 if so."""
    with operating("check the state Redis"):
        runtime = open_runtime(config_path)
        runtime.state_client.ping()
        warnings = check_persistence(runtime.state_client)
    for warning in warnings:
        click.echo(f"state Redis: {warning}")
    if warnings:
        raise SystemExit(EXIT_INVALID)
    click.echo("state Redis: OK (appendonly, appendfsync, noeviction)")


def frontend_identity(config: FactoryConfig, name: str, *, configured_only: bool = True) -> str:
    """The identity of frontend ``name`` (a configured frontend name or identity).

    Args:
        config: the factory config.
        name: what the operator typed.
        configured_only: refuse a name the config does not know (a user the factory would
            never accept requests from is a mistake); removal accepts any name.

    Raises:
        PermanentError: an unknown frontend, when ``configured_only``.
    """
    frontend = config.frontends.get(name)
    if frontend is not None:
        return frontend.identity
    if not configured_only or name in {fe.identity for fe in config.frontends.values()}:
        return name
    known = ", ".join(f"{n} ({fe.identity})" for n, fe in config.frontends.items())
    raise PermanentError(f"unknown frontend {name!r}; configured: {known}")


# ------------------------------------------------------------------------------ worker keys


@gwms.group("worker-key")
def worker_key() -> None:
    """The public keys user workers publish (the factory seals credentials for them)."""


@worker_key.command("reset")
@click.argument("username")
@config_option()
def worker_key_reset(username: str, config_path: Path) -> None:
    """Forget the key published for USERNAME, so that its worker can publish its own again.

    A published key is never replaced: a worker whose key file was regenerated refuses to
    start until this is run. Check first that it was regenerated on purpose: otherwise the
    published key may be another user's worker trying to receive USERNAME's credentials. Then
    restart USERNAME's worker: what the factory sends from then on is sealed for its new key.
    """
    with operating("reset the published worker key"):
        runtime = open_runtime(config_path)
        removed = RedisUserKeys(runtime.state_client, runtime.keys).remove(username)
        if not removed:
            raise PermanentError(f"no key is published for user {username} (nothing removed)")
    click.echo(f"the key published for user {username} is forgotten: restart its worker")


# ------------------------------------------------------------------------------ staging


@gwms.group()
def staging() -> None:
    """The factory staging area glideins download their files from."""


@staging.command("build")
@config_option()
@click.option(
    "--base-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="What relative operator file paths are relative to (default: the config's dir).",
)
def staging_build(config_path: Path, base_dir: Path | None) -> None:
    """Write the staging area into factory.stage_dir and print its index.

    Safe while glideins download: files are published atomically, the index last, and files
    of earlier builds are kept for glideins still queued with them.
    """
    with operating("build the staging area"):
        config = read_config(config_path)
        base = base_dir if base_dir is not None else config_path.resolve().parent
        spec = staging_spec_from_config(config, base_dir=base)
        stage_dir = Path(config.factory.stage_dir)
        index = build_staging(spec, stage_dir)
    click.echo(f"staging area built in {stage_dir} ({index.file_name})")
    rows = [["main", index.main.descript, index.main.sign]]
    rows += [[f"entry {n}", d.descript, d.sign] for n, d in sorted(index.entries.items())]
    echo_lines(table(("FOR", "DESCRIPTION", "SIGNATURE"), rows))


# ------------------------------------------------------------------------------ site


@gwms.group()
def site() -> None:
    """Local sites: glideins run as processes on this machine."""


@site.command("run")
@click.argument("name")
@config_option()
def site_run(name: str, config_path: Path) -> None:
    """Run the site worker of NAME (a local_site entry, or its site) until SIGTERM/SIGINT.

    It runs the site's glideins (glidein_startup.sh) with the slots and hold fraction of the
    config, in factory.work_dir/sites/<site>. One worker per site: a second one refuses.
    """
    with operating("run the site worker"):
        config = read_config(config_path)
        site_name, backend = local_site(config, name)
        click.echo(
            f"site {site_name}: {backend.slots} slots, hold fraction {backend.hold_fraction:g}",
            err=True,
        )
        # The worker makes <workdir>/<site>/<cluster>.<proc>: the parent of the site's work
        # directory puts each glidein in work_dir/sites/<site>/, where the runtime says it is.
        run_site_worker(
            config.redis.state_url,
            site_name,
            backend.slots,
            backend.hold_fraction,
            site_workdir(config, site_name).parent,
            GLIDEIN_STARTUP,
            prefix=Keys().prefix,
        )


def local_site(config: FactoryConfig, name: str) -> tuple[str, LocalSiteBackend]:
    """The site and settings of ``name``: a local_site entry, or a site such entries name.

    Raises:
        PermanentError: no such entry or site, an entry of another backend, or entries of
            the same site configured with different slots or hold fraction.
    """
    entry = config.entries.get(name)
    if entry is not None:
        if not isinstance(entry.backend, LocalSiteBackend):
            raise PermanentError(
                f"entry {name} uses the {entry.backend.kind.value} backend, not local_site"
            )
        return entry.backend.site, entry.backend
    backends = [
        e.backend
        for e in config.entries.values()
        if isinstance(e.backend, LocalSiteBackend) and e.backend.site == name
    ]
    if not backends:
        local = [
            f"{n} (site {e.backend.site})"
            for n, e in config.entries.items()
            if isinstance(e.backend, LocalSiteBackend)
        ]
        raise PermanentError(
            f"{name} is neither a local_site entry nor a local site "
            f"(local_site entries: {', '.join(local) or 'none'})"
        )
    settings = {(b.slots, b.hold_fraction) for b in backends}
    if len(settings) > 1:
        raise PermanentError(
            f"the entries of site {name} disagree on slots / hold_fraction: {sorted(settings)}"
        )
    return name, backends[0]
