"""The frontend's staging area: the signed client and group sources glideins download.

A factory passes a request's ``Web*`` values to its glideins (``-clientweb``, ``-clientsign``,
``-clientgroup`` ...), and every glidein verifies the frontend's description against the
signature hash it was given before it runs anything (reference §5.1, §5.3). So even a frontend
that ships no files of its own needs a real, signed area: here, a client source at the root of
the stage dir and one per group under ``group_<group>/``, with empty file lists. Names are
content-hashed, so a rebuild of the same content is byte-identical and the ``-clientsign``
values stay the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gwms_tasks.core.ads import FrontendWeb
from gwms_tasks.core.staging import SignType, build_signed_source

SIGN_TYPE = SignType.SHA1  # the hash 3.10 glideins understand


def group_dir(group: str) -> str:
    """The subdirectory (and URL path) of a group's source."""
    return f"group_{group}"


@dataclass(frozen=True, slots=True)
class FrontendStaging:
    """The files of the area (relative path -> content) and the ``Web*`` values naming them."""

    files: Mapping[str, bytes]
    web: FrontendWeb


def frontend_staging(url: str, group: str, monitoring_url: str | None = None) -> FrontendStaging:
    """The client source and the source of ``group``, as served at ``url``."""
    client_files, client = build_signed_source((), SIGN_TYPE)
    group_files, group_source = build_signed_source((), SIGN_TYPE)
    files = dict(client_files)
    files.update({f"{group_dir(group)}/{name}": data for name, data in group_files.items()})
    base = url.rstrip("/")
    web = FrontendWeb(
        url=base,
        sign_type=SIGN_TYPE.value,
        descript_file=client.descript,
        descript_sign=client.sign,
        group_url=f"{base}/{group_dir(group)}",
        group_descript_file=group_source.descript,
        group_descript_sign=group_source.sign,
        monitoring_url=monitoring_url or base,
    )
    return FrontendStaging(files, web)
