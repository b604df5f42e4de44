"""The per-request dependencies every part of the web app shares: the monitoring sources."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from gwms_tasks.services.monitoring_view import MonitoringSources

SourcesProvider = Callable[[], MonitoringSources]


def sources_of(request: Request) -> MonitoringSources:
    """The sources of this request (the app holds a provider, so config reloads are seen)."""
    provide = request.app.state.sources
    sources = provide()
    if not isinstance(sources, MonitoringSources):
        raise TypeError("the app's sources provider returned something else")
    return sources


Sources = Annotated[MonitoringSources, Depends(sources_of)]
