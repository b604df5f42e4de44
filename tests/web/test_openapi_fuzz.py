"""Schemathesis over ``/openapi.json``: no generated request gets a server error.

The app runs on real Redis state written by the real services, with an operator token that
every generated request carries, so the write endpoint is exercised past its token check too.
Every response is also checked against the documented schema (status codes, content types,
bodies).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, BaseSchema, Case
from schemathesis.core.result import Err
from schemathesis.openapi import from_asgi

from gwms_tasks.core.config import WebConfig
from gwms_tasks.core.glidein_log import GlideinResult
from tests.web.world import VALIDATION, FactoryWorld
from web.app import create_app

TOKEN = "fuzzing-operator-token"

MAX_EXAMPLES = 25


@pytest.fixture
def api_schema(redis_world: FactoryWorld, tmp_path: Path) -> BaseSchema:
    world = redis_world
    world.request(5)
    for _ in range(2):
        world.cycle()
    world.ended("1.0", GlideinResult.VALIDATION_FAILED, VALIDATION)
    world.credential(expires_in=600)
    world.refused_submit(idle=7)
    config = world.config.model_copy(
        update={"web": WebConfig.model_validate({"operator_token": TOKEN})}
    )
    app = create_app(world.sources(config=config), tmp_path)
    return from_asgi("/openapi.json", app)


def operations(schema: BaseSchema) -> list[APIOperation[Any, Any, Any, Any]]:
    """Every operation of the schema; a part schemathesis cannot read fails the test."""
    found = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise AssertionError(f"schemathesis cannot read the schema: {result.err()}")
        found.append(result.ok())
    return found


def test_every_operation_is_documented(api_schema: BaseSchema) -> None:
    labels = {operation.label for operation in operations(api_schema)}
    assert {
        "GET /api/overview",
        "GET /api/entries/{entry}",
        "GET /api/entries/{entry}/series",
        "GET /api/entries/{entry}/glideins",
        "GET /api/frontends",
        "GET /api/frontends/{name}",
        "GET /api/failed-submits",
        "POST /api/failed-submits/{failed_id}/retry",
        "GET /metrics",
    } <= labels


def test_no_request_gets_a_server_error(api_schema: BaseSchema) -> None:
    # schemathesis' own pytest plugin does not work with this pytest (it reads a private
    # attribute of pytest's nodes), so each operation's strategy runs under hypothesis here.
    checked: list[str] = []
    cases: list[str] = []
    for operation in operations(api_schema):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def call(case: Case[Any]) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})
            cases.append(case.formatted_path)

        call()
        checked.append(operation.label)
    assert len(checked) >= 9
    assert len(cases) > 3 * len(checked)  # the strategies really generated requests
