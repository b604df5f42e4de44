"""Serving the staging area read-only: cache headers, no traversal, no listings."""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from gwms_tasks.core.staging import EntrySpec, StagedFile, StagingIndex, StagingSpec
from gwms_tasks.services.staging_build import build_staging
from tests.integration.glidein_helpers import serve_staging
from web.staging import IMMUTABLE, NO_CACHE, staging_app

SECRET = b"not for the web\n"


@dataclass(frozen=True)
class Served:
    host: str
    port: int
    stage: Path
    index: StagingIndex

    def get(self, raw_path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        """Send ``raw_path`` byte for byte (no client-side normalisation of ``..``)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.putrequest(method, raw_path, skip_accept_encoding=True)
            connection.endheaders()
            response = connection.getresponse()
            headers = {k.lower(): v for k, v in response.getheaders()}
            return response.status, headers, response.read()
        finally:
            connection.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    (tmp_path / "secret.txt").write_bytes(SECRET)
    spec = StagingSpec(
        builtin_files=(StagedFile("payload_startup.sh", b"#!/bin/bash\n"),),
        entries=(EntrySpec("ce1"),),
    )
    stage = tmp_path / "stage"
    index = build_staging(spec, stage)
    (stage / "escape").symlink_to(tmp_path / "secret.txt")
    (stage / "entry_ce1" / "up").symlink_to(tmp_path)
    with serve_staging(stage) as server:
        host, port = server.url.removeprefix("http://").split(":")
        yield Served(host, int(port), stage, index)


def test_versioned_files_are_served_with_a_year_of_immutable_caching(served: Served) -> None:
    status, headers, body = served.get(f"/{served.index.main.descript}")
    assert status == 200
    assert headers["cache-control"] == IMMUTABLE
    assert body == (served.stage / served.index.main.descript).read_bytes()


def test_entry_files_are_served_from_their_subdirectory(served: Served) -> None:
    status, headers, _ = served.get(f"/entry_ce1/{served.index.entry('ce1').descript}")
    assert (status, headers["cache-control"]) == (200, IMMUTABLE)


def test_the_unversioned_index_must_be_revalidated_every_time(served: Served) -> None:
    status, headers, body = served.get("/signatures.sha1")
    assert (status, headers["cache-control"]) == (200, NO_CACHE)
    assert StagingIndex.parse(body.decode()) == served.index


def test_head_gives_the_headers_without_a_body(served: Served) -> None:
    status, headers, body = served.get("/signatures.sha1", method="HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["content-length"]) == (served.stage / "signatures.sha1").stat().st_size


@pytest.mark.parametrize("path", ["/", "/entry_ce1/", "/entry_ce1", "/missing.cfg"])
def test_directories_and_missing_files_are_not_found(served: Served, path: str) -> None:
    status, _, body = served.get(path)
    assert status == 404
    assert b"description" not in body


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/entry_ce1/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/entry_ce1/%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/..%5csecret.txt",
        "/./signatures.sha1",
        "/entry_ce1//description.cfg",
        "/escape",
        "/entry_ce1/up/secret.txt",
    ],
)
def test_paths_leaving_the_stage_dir_are_forbidden(served: Served, path: str) -> None:
    status, _, body = served.get(path)
    assert status == 403
    assert SECRET not in body


@pytest.mark.parametrize("path", ["/.staging-state.json", "/.staging.lock"])
def test_hidden_builder_files_are_not_served(served: Served, path: str) -> None:
    assert (served.stage / path.lstrip("/")).exists()
    assert served.get(path)[0] == 404


def test_only_get_and_head_are_allowed(served: Served) -> None:
    assert served.get("/signatures.sha1", method="POST")[0] == 405
    assert served.get("/signatures.sha1", method="DELETE")[0] == 405


def test_the_app_works_mounted_under_a_prefix(tmp_path: Path) -> None:
    (tmp_path / "signatures.sha1").write_text("x")
    (tmp_path / "a.0123abcd.cfg").write_text("y")
    parent = Starlette(routes=[Mount("/stage", app=staging_app(tmp_path))])

    async def fetch_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=parent)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            paths = ["/stage/a.0123abcd.cfg", "/stage/signatures.sha1", "/stage/nothing"]
            return [await client.get(path) for path in paths]

    versioned, index, missing = asyncio.run(fetch_all())
    assert versioned.headers["cache-control"] == IMMUTABLE
    assert (index.text, index.headers["cache-control"]) == ("x", NO_CACHE)
    assert missing.status_code == 404
