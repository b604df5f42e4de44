"""The JSON API under ``/api``: everything the pages show, with response models for OpenAPI.

Each endpoint reads one view of :mod:`gwms_tasks.services.monitoring_view` (the pages fetch
these and render them in the browser). Reads follow ``web.public_read``; the one write, retrying
a failed submit, needs the operator token (see :mod:`web.auth`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.services.monitoring_frontend import UnknownFrontend, frontend_view
from gwms_tasks.services.monitoring_models import (
    EntryDetail,
    FailedSubmitsView,
    FrontendView,
    GlideinList,
    Overview,
    SeriesView,
)
from gwms_tasks.services.monitoring_view import (
    UnknownEntry,
    entry_detail,
    entry_series,
    failed_submits,
    glidein_list,
    overview,
)
from gwms_tasks.services.retry import RetryStatus
from web.auth import require_read, require_write
from web.deps import Sources


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """Why a request was refused or failed."""

    detail: str


@dataclass(frozen=True, slots=True)
class RetryResult:
    """What the retry service did with a failed submit."""

    failed_id: str
    outcome: dict[str, Any]


def _described(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        401: "The operator token is missing or wrong.",
        403: "Not allowed by the config (no operator token set).",
        404: "No such entry, frontend or failed submit.",
        409: "The retry service refused (see detail).",
        503: "A store or service is unreachable; try again.",
    }
    return {code: {"model": ErrorBody, "description": text[code]} for code in codes}


READ_ERRORS: Final = _described(401, 403, 503)
FOUND_ERRORS: Final = _described(401, 403, 404, 503)
WRITE_ERRORS: Final = _described(401, 403, 404, 409, 503)

SeriesWindow = Literal["hour", "day", "month"]


router = APIRouter(prefix="/api", tags=["monitoring"])


@router.get(
    "/overview",
    response_model=Overview,
    responses=READ_ERRORS,
    dependencies=[Depends(require_read)],
)
def get_overview(sources: Sources) -> Overview:
    """Every entry with its glidein counts, requests, limits, downtime and freshness."""
    return overview(sources)


@router.get(
    "/entries/{entry}",
    response_model=EntryDetail,
    responses=FOUND_ERRORS,
    dependencies=[Depends(require_read)],
)
def get_entry(entry: str, sources: Sources) -> EntryDetail:
    """One entry: per client counts and last decisions, completed glideins, failed submits."""
    try:
        return entry_detail(sources, entry)
    except UnknownEntry:
        raise _no_entry(entry) from None


@router.get(
    "/entries/{entry}/series",
    response_model=SeriesView,
    responses=FOUND_ERRORS,
    dependencies=[Depends(require_read)],
)
def get_series(
    entry: str,
    sources: Sources,
    window: Annotated[SeriesWindow, Query(alias="range")] = "hour",
) -> SeriesView:
    """The entry's monitoring samples over the last hour, day or month, column by column."""
    try:
        return entry_series(sources, entry, window)
    except UnknownEntry:
        raise _no_entry(entry) from None


@router.get(
    "/entries/{entry}/glideins",
    response_model=GlideinList,
    responses=FOUND_ERRORS,
    dependencies=[Depends(require_read)],
)
def get_glideins(entry: str, sources: Sources) -> GlideinList:
    """The entry's live glideins from its grid backend (fails soft).

    ``gwms web`` queries a backend at most once per entry every ``min(loop_delay, 30 s)``.
    """
    if entry not in sources.config.entries:
        raise _no_entry(entry)
    return glidein_list(sources, entry)


@router.get(
    "/frontends",
    response_model=list[str],
    responses=READ_ERRORS,
    dependencies=[Depends(require_read)],
)
def get_frontends(sources: Sources) -> list[str]:
    """The names of the configured frontends (their SecurityName)."""
    return sorted(sources.config.frontends)


@router.get(
    "/frontends/{name}",
    response_model=FrontendView,
    responses=FOUND_ERRORS,
    dependencies=[Depends(require_read)],
)
def get_frontend(name: str, sources: Sources) -> FrontendView:
    """One frontend: its requests on every entry, its credentials, its monitoring ads."""
    try:
        return frontend_view(sources, name)
    except UnknownFrontend:
        raise HTTPException(404, f"no frontend {name!r} in the factory config") from None


@router.get(
    "/failed-submits",
    response_model=FailedSubmitsView,
    responses=READ_ERRORS,
    dependencies=[Depends(require_read)],
)
def get_failed_submits(sources: Sources) -> FailedSubmitsView:
    """Submissions that failed for good, oldest first."""
    return failed_submits(sources)


@router.post(
    "/failed-submits/{failed_id}/retry",
    response_model=RetryResult,
    responses=WRITE_ERRORS,
    dependencies=[Depends(require_write)],
)
def post_retry(failed_id: str, sources: Sources) -> RetryResult:
    """Send a failed submission again (the same rules as ``gwms submits retry``)."""
    if sources.retry is None:
        raise HTTPException(503, "retrying is not available on this web server")
    try:
        outcome = sources.retry(failed_id)
    except TransientError as exc:
        raise HTTPException(503, f"retry failed, try again: {exc}") from exc
    except PermanentError as exc:
        raise HTTPException(409, f"retry refused: {exc}") from exc
    if outcome.get("status") == RetryStatus.NOT_FOUND:
        raise HTTPException(404, f"no failed submit {failed_id!r}")
    return RetryResult(failed_id, dict(outcome))


def _no_entry(entry: str) -> HTTPException:
    return HTTPException(404, f"no entry {entry!r} in the factory config")
