"""The user worker's side of credentials: store what the factory forwarded (reference §2.5).

Runs in the worker of the local user the credential belongs to. The order carries the content
sealed for this worker's own key; it is opened here and nowhere else, and written to
``<credential_dir>/credential_<ClientName>_<id>``, 0600 in the user's 0700 directory:

* replaced only when the content changed, the previous content kept as ``<file>.old`` (a glidein
  submitted a moment ago may still be transferring the old one);
* with its ``<file>_compressed`` companion, ``glidein_credentials=<base64(gzip(content))>``,
  prefixed with ``<token>####`` when a ``<file>_idtoken`` exists: the user-data of cloud
  glideins. The gzip header carries no time, so an unchanged credential gives the same bytes.
"""

from __future__ import annotations

import base64
import gzip
import logging
import re

from gwms_tasks.core.envelope import open_sealed
from gwms_tasks.errors import PermanentError
from gwms_tasks.private_files import (
    ensure_private_dir,
    read_if_file,
    write_private,
    write_private_if_changed,
)
from gwms_tasks.services.orders import CredentialOrder
from gwms_tasks.services.submit import UserDeps, credential_file_name

log = logging.getLogger(__name__)

STORED = "stored"
UNCHANGED = "unchanged"
OLD_SUFFIX = ".old"
COMPRESSED_SUFFIX = "_compressed"
IDTOKEN_SUFFIX = "_idtoken"
_SAFE_CLIENT = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def store_credential(deps: UserDeps, order: CredentialOrder) -> str:
    """Open a forwarded credential and write it to the user's credential directory.

    Returns:
        ``"stored"`` when the file was written, ``"unchanged"`` when it already held the content.

    Raises:
        PermanentError: the order is for another user, names an unsafe client or id, or the
            content cannot be opened with this worker's key (CryptoError).
    """
    if order.username != deps.username:
        raise PermanentError(
            f"credential order for user {order.username} sent to the worker of {deps.username}"
        )
    if not _SAFE_CLIENT.match(order.client):
        raise PermanentError(f"unsafe client name {order.client!r} in a credential order")
    name = credential_file_name(order.client, order.credential_id)
    if deps.user_key is None:
        raise PermanentError("this worker has no key to open the sealed credential")
    content = open_sealed(deps.user_key, order.sealed_content)
    ensure_private_dir(deps.credential_dir)
    path = deps.credential_dir / name
    previous = read_if_file(path)
    if previous is not None and previous != content:
        write_private(path.with_name(name + OLD_SUFFIX), previous)
    changed = write_private_if_changed(path, content)
    token = read_if_file(path.with_name(name + IDTOKEN_SUFFIX))
    write_private_if_changed(path.with_name(name + COMPRESSED_SUFFIX), compressed(content, token))
    status = STORED if changed else UNCHANGED
    log.info("credential %s of %s for %s: %s", order.credential_id, order.client, name, status)
    return status


def compressed(content: bytes, idtoken: bytes | None = None) -> bytes:
    """The ``_compressed`` companion: ``[<idtoken>####]glidein_credentials=<base64(gzip)>``."""
    packed = base64.b64encode(gzip.compress(content, mtime=0))
    prefix = idtoken.strip() + b"####" if idtoken else b""
    return prefix + b"glidein_credentials=" + packed
