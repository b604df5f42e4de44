"""Retire and die times of a glidein (the reference §7.2)."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.core.config_parts import Lifetime
from gwms_tasks.core.lifetime import (
    COLLECTOR_UPDATE_GRACE,
    CREDENTIAL_MARGIN,
    MIN_RETIRE_TIME,
    DieBound,
    LifetimeKnobs,
    glidein_lifetime,
    token_expiry,
)
from gwms_tasks.core.staging import DEFAULT_CONDOR_VARS
from gwms_tasks.errors import ConfigError

START = 1_700_000_000.0


@pytest.mark.parametrize(
    ("knobs", "retire", "die", "job_max", "bound"),
    [
        (LifetimeKnobs(), 21600, 21600 + 129600, 129600, DieBound.RETIRE_PLUS_JOB_MAX),
        (
            LifetimeKnobs(retire_time=3600, job_max_time=7200),
            3600,
            10800,
            7200,
            DieBound.RETIRE_PLUS_JOB_MAX,
        ),
        # 200000 - 120 - 370 = 199510; the full job allowance fits.
        (
            LifetimeKnobs(max_walltime=200_000),
            199_510 - 129_600,
            199_510,
            129_600,
            DieBound.WALLTIME,
        ),
        # A day cannot hold 36 h of job allowance: it shrinks so that retire is the minimum.
        (LifetimeKnobs(max_walltime=86_400), MIN_RETIRE_TIME, 85_910, 85_310, DieBound.WALLTIME),
        (
            LifetimeKnobs(max_walltime=86_400, graceful_shutdown=600, job_max_time=3600),
            86_400 - 600 - 370 - 3600,
            86_400 - 600 - 370,
            3600,
            DieBound.WALLTIME,
        ),
    ],
)
def test_lifetime_without_spread_follows_the_knobs(
    knobs: LifetimeKnobs, retire: int, die: int, job_max: int, bound: DieBound
) -> None:
    lifetime = glidein_lifetime(knobs, START, 0.0)
    assert (lifetime.retire_after, lifetime.die_after) == (retire, die)
    assert (lifetime.job_max_time, lifetime.die_bound, lifetime.spread) == (job_max, bound, 0)
    assert (lifetime.retire_at, lifetime.die_at) == (int(START) + retire, int(START) + die)


def test_walltime_makes_the_retire_time_knob_irrelevant() -> None:
    a = glidein_lifetime(LifetimeKnobs(max_walltime=200_000, retire_time=900), START, 0.0)
    b = glidein_lifetime(LifetimeKnobs(max_walltime=200_000, retire_time=50_000), START, 0.0)
    assert a == b


def test_default_spread_takes_a_share_of_ten_percent_of_the_retire_time() -> None:
    lifetime = glidein_lifetime(LifetimeKnobs(), START, 0.5)
    assert lifetime.spread == 1080
    assert lifetime.retire_after == 21600 - 1080
    assert lifetime.die_after == 151200 - 1080


def test_explicit_zero_spread_keeps_every_glidein_on_the_same_times() -> None:
    lifetime = glidein_lifetime(LifetimeKnobs(retire_spread=0), START, 0.99)
    assert (lifetime.spread, lifetime.retire_after) == (0, 21600)


def test_spread_never_pushes_retire_below_the_minimum() -> None:
    lifetime = glidein_lifetime(LifetimeKnobs(retire_time=700, retire_spread=600), START, 0.9)
    assert lifetime.retire_after == MIN_RETIRE_TIME
    assert lifetime.spread == 100


def test_enforced_credential_lifetime_moves_both_times_earlier() -> None:
    knobs = LifetimeKnobs(
        retire_time=3600,
        job_max_time=7200,
        credential_lifetime=10_000,
        ignore_credential_lifetime=False,
    )
    lifetime = glidein_lifetime(knobs, START, 0.0)
    usable = 10_000 - CREDENTIAL_MARGIN
    assert lifetime.die_after == usable
    assert lifetime.retire_after == 3600 - (10_800 - usable)
    assert lifetime.die_bound is DieBound.CREDENTIAL


def test_ignored_credential_lifetime_leaves_the_times_alone() -> None:
    knobs = LifetimeKnobs(credential_lifetime=30_000)
    assert glidein_lifetime(knobs, START, 0.0).die_bound is DieBound.RETIRE_PLUS_JOB_MAX


def test_credential_with_less_than_fifteen_minutes_always_counts_and_is_too_short() -> None:
    with pytest.raises(ConfigError) as caught:
        glidein_lifetime(LifetimeKnobs(credential_lifetime=800), START, 0.0)
    assert "credential lifetime: 800 s left" in caught.value.problems[0]


def test_walltime_too_short_for_the_minimum_retire_time_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        glidein_lifetime(LifetimeKnobs(max_walltime=1000), START, 0.0)
    assert caught.value.problems[0].startswith("GLIDEIN_Max_Walltime: 1000 s")


def test_retire_time_below_the_minimum_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="GLIDEIN_Retire_Time: expected at least 600"):
        glidein_lifetime(LifetimeKnobs(retire_time=300), START, 0.0)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 2.0])
def test_fraction_outside_the_unit_interval_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        glidein_lifetime(LifetimeKnobs(), START, fraction)


_knobs = st.builds(
    LifetimeKnobs,
    max_walltime=st.none() | st.integers(0, 400_000),
    retire_time=st.integers(0, 200_000),
    retire_spread=st.none() | st.integers(0, 50_000),
    job_max_time=st.integers(0, 300_000),
    graceful_shutdown=st.integers(0, 3600),
    credential_lifetime=st.none() | st.integers(-1000, 500_000),
    ignore_credential_lifetime=st.booleans(),
)
_fractions = st.floats(0.0, 1.0, exclude_max=True)


@given(_knobs, _fractions)
def test_every_lifetime_retires_after_the_minimum_and_dies_no_sooner(
    knobs: LifetimeKnobs, fraction: float
) -> None:
    try:
        lifetime = glidein_lifetime(knobs, START, fraction)
    except ConfigError:
        return
    assert MIN_RETIRE_TIME <= lifetime.retire_after <= lifetime.die_after


@given(_knobs, _fractions)
def test_no_glidein_dies_after_its_walltime_less_the_shutdown_grace(
    knobs: LifetimeKnobs, fraction: float
) -> None:
    try:
        lifetime = glidein_lifetime(knobs, START, fraction)
    except ConfigError:
        return
    if knobs.max_walltime is not None:
        grace = knobs.graceful_shutdown + COLLECTOR_UPDATE_GRACE
        assert lifetime.die_after <= knobs.max_walltime - grace


@given(_knobs, _fractions)
def test_spread_stays_within_its_share_of_the_configured_spread(
    knobs: LifetimeKnobs, fraction: float
) -> None:
    try:
        spread = glidein_lifetime(knobs, START, fraction)
        nominal = glidein_lifetime(knobs, START, 0.0)
    except ConfigError:
        return
    total = knobs.retire_spread
    if total is None:
        total = nominal.retire_after // 10
    assert 0 <= spread.spread <= total * fraction
    assert nominal.retire_after - spread.retire_after == spread.spread
    assert nominal.die_after - spread.die_after == spread.spread


@given(_knobs, _fractions, _fractions)
def test_a_larger_random_fraction_never_retires_later(
    knobs: LifetimeKnobs, a: float, b: float
) -> None:
    try:
        first, second = (
            glidein_lifetime(knobs, START, min(a, b)),
            glidein_lifetime(knobs, START, max(a, b)),
        )
    except ConfigError:
        return
    assert second.retire_after <= first.retire_after


def _jwt(claims: object) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'ES256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl\n"


def test_token_expiry_is_the_exp_claim() -> None:
    assert token_expiry(_jwt({"sub": "vo@pool", "exp": 1_800_000_000})) == 1_800_000_000.0


def test_token_without_exp_has_no_expiry() -> None:
    assert token_expiry(_jwt({"sub": "vo@pool"})) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not a token", "expected a JWT"),
        ("a.!!!.c", "payload is not base64url JSON"),
        (_jwt(["a list"]), "payload is not a JSON object"),
        (_jwt({"exp": "tomorrow"}), "exp: expected epoch seconds"),
        (_jwt({"exp": True}), "exp: expected epoch seconds"),
    ],
)
def test_malformed_token_is_a_clear_error(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        token_expiry(text)
    assert caught.value.source == "IDTOKEN"
    assert problem in caught.value.problems[0]


def test_config_staging_and_lifetime_defaults_are_the_same_values() -> None:
    configured = Lifetime().glidein_attributes()
    staged = {var.name: var.default for var in DEFAULT_CONDOR_VARS if var.name in configured}
    assert staged == {name: str(value) for name, value in configured.items()}
    knobs = LifetimeKnobs()
    assert (configured["GLIDEIN_Retire_Time"], configured["GLIDEIN_Job_Max_Time"]) == (
        knobs.retire_time,
        knobs.job_max_time,
    )
    assert (
        configured["GLIDEIN_Graceful_Shutdown"],
        configured["GLIDEIN_Max_Idle"],
        configured["GLIDEIN_Max_Tail"],
    ) == (knobs.graceful_shutdown, knobs.max_idle, knobs.max_tail)
