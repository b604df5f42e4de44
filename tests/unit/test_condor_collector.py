"""The HTCondor collector dashboard against a recording double of ``htcondor2.Collector``.

No collector runs on these machines. The double keeps the collector behaviour the adapter
relies on: one table per update command, ads keyed by Name within a table, invalidation by a
``MyType = "Query"`` ad matched against ``MyType == TargetType`` and ``Requirements``, queries
over every table with a constraint evaluated by classad2, and ``AuthenticatedIdentity`` stamped
from the connection's authenticated identity (removed when it has none).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import classad2
import htcondor2
import pytest

from gwms_tasks.adapters.condor_collector import CondorCollectorDashboard
from gwms_tasks.core.classad_text import AdExpr, AdValue
from gwms_tasks.errors import PermanentError, TransientError

TABLE_OF = {
    "UPDATE_AD_GENERIC": "generic",
    "INVALIDATE_ADS_GENERIC": "generic",
    "UPDATE_LICENSE_AD": "license",
    "INVALIDATE_LICENSE_ADS": "license",
    "UPDATE_MASTER_AD": "master",
    "INVALIDATE_MASTER_ADS": "master",
}
FACTORY_AD: dict[str, AdValue] = {
    "Name": "ce1@gfactory_instance@fact",
    "EntryName": "ce1",
    "GLIDEIN_CPUS": 8,
}


@dataclass
class Call:
    method: str
    ads: list[dict[str, Any]]
    command: str | None = None
    use_tcp: bool | None = None
    ad_type: Any = None
    constraint: str | None = None
    projection: list[str] | None = None


@dataclass
class RecordingCollector:
    """A stand-in for ``htcondor2.Collector`` that records calls and keeps tables of ads."""

    identity: str | None = "gfactory@fact.example.org"
    failing: bool = False
    calls: list[Call] = field(default_factory=list)
    tables: dict[str, dict[str, classad2.ClassAd]] = field(default_factory=dict)

    def advertise(
        self,
        ad_list: list[classad2.ClassAd],
        command: str = "UPDATE_AD_GENERIC",
        use_tcp: bool = True,
    ) -> None:
        assert all(isinstance(ad, classad2.ClassAd) for ad in ad_list)
        self.calls.append(Call("advertise", [dict(ad.items()) for ad in ad_list], command, use_tcp))
        self._maybe_fail()
        table = self.tables.setdefault(TABLE_OF[command], {})
        for ad in ad_list:
            if command.startswith("INVALIDATE"):
                self._invalidate(table, ad)
            else:
                table[ad["Name"]] = self._stamped(ad)

    def query(
        self,
        ad_type: htcondor2.AdType = htcondor2.AdType.Any,
        constraint: str | None = None,
        projection: list[str] | None = None,
    ) -> list[classad2.ClassAd]:
        self.calls.append(Call("query", [], ad_type=ad_type, constraint=constraint))
        self._maybe_fail()
        ads = [ad for table in self.tables.values() for ad in table.values()]
        if constraint is None:
            return ads
        return [ad for ad in ads if classad2.ExprTree(constraint).eval(ad) is True]

    def _stamped(self, ad: classad2.ClassAd) -> classad2.ClassAd:
        stored = classad2.ClassAd(dict(ad.items()))
        stored["AuthenticatedIdentity"] = self.identity
        if self.identity is None:
            del stored["AuthenticatedIdentity"]
        return stored

    @staticmethod
    def _invalidate(table: dict[str, classad2.ClassAd], query: classad2.ClassAd) -> None:
        assert query["MyType"] == "Query"
        requirements = query.lookup("Requirements")
        for name, ad in list(table.items()):
            if ad.get("MyType") == query["TargetType"] and requirements.eval(ad) is True:
                del table[name]

    def _maybe_fail(self) -> None:
        if self.failing:
            raise htcondor2.HTCondorException("Failed to send update to collector")


def _dashboard(collector: RecordingCollector) -> CondorCollectorDashboard:
    return CondorCollectorDashboard(collector)


# ---------------------------------------------------------------------------- advertise


@pytest.mark.parametrize(
    ("ad_type", "command"),
    [
        ("glidefactory", "UPDATE_AD_GENERIC"),
        ("glidefactoryglobal", "UPDATE_AD_GENERIC"),
        ("glidefactoryclient", "UPDATE_LICENSE_AD"),
        ("glideclient", "UPDATE_MASTER_AD"),
        ("glideclientglobal", "UPDATE_MASTER_AD"),
        ("glideresource", "UPDATE_AD_GENERIC"),
    ],
)
def test_each_ad_type_is_advertised_with_its_update_command_over_tcp(
    ad_type: str, command: str
) -> None:
    collector = RecordingCollector()

    _dashboard(collector).advertise(ad_type, [{"Name": "a"}, {"Name": "b"}])

    [call] = collector.calls
    assert (call.method, call.command, call.use_tcp) == ("advertise", command, True)
    assert [ad["Name"] for ad in call.ads] == ["a", "b"]


def test_advertised_ads_carry_their_type_and_never_a_claimed_identity() -> None:
    collector = RecordingCollector()
    ad: dict[str, AdValue] = {
        **FACTORY_AD,
        "MyType": "Machine",
        "AuthenticatedIdentity": "someone@else",
    }

    _dashboard(collector).advertise("glidefactory", [ad])

    [sent] = collector.calls[0].ads
    assert sent == {**FACTORY_AD, "MyType": "glidefactory", "GlideinMyType": "glidefactory"}


def test_expressions_are_sent_as_expressions_and_literals_keep_their_types() -> None:
    collector = RecordingCollector()
    ad: dict[str, AdValue] = {
        "Name": "n",
        "I": 3,
        "B": False,
        "F": 0.5,
        "S": "x",
        "E": AdExpr("I > 2"),
    }

    _dashboard(collector).advertise("glideclient", [ad])

    sent = collector.calls[0].ads[0]
    assert [sent[k] for k in ("I", "B", "F", "S")] == [3, False, 0.5, "x"]
    assert isinstance(sent["E"], classad2.ExprTree) and str(sent["E"]) == "I > 2"


def test_no_ads_sends_nothing() -> None:
    collector = RecordingCollector()

    _dashboard(collector).advertise("glideclient", [])

    assert collector.calls == []


@pytest.mark.parametrize(
    ("ad_type", "ads", "message"),
    [
        ("glidewhatever", [{"Name": "a"}], "unknown ad type"),
        ("glideclient", [{"ReqIdleGlideins": 1}], "no Name"),
        ("glideclient", [{"Name": "a", "X": None}], "NoneType"),
    ],
)
def test_bad_advertise_is_refused_before_anything_is_sent(
    ad_type: str, ads: list[dict[str, Any]], message: str
) -> None:
    collector = RecordingCollector()

    with pytest.raises(PermanentError, match=message):
        _dashboard(collector).advertise(ad_type, ads)
    assert collector.calls == []


# ---------------------------------------------------------------------------- query


def test_query_asks_every_table_for_the_glidein_type_and_the_callers_constraint() -> None:
    collector = RecordingCollector()

    _dashboard(collector).query("glideclient", "ReqIdleGlideins > 0")

    [call] = collector.calls
    assert call.ad_type is htcondor2.AdType.Any
    assert call.constraint == '(GlideinMyType =?= "glideclient") && (ReqIdleGlideins > 0)'


def test_query_reads_back_what_was_advertised_with_the_collectors_identity() -> None:
    collector = RecordingCollector(identity="gfactory@fact.example.org")
    dashboard = _dashboard(collector)
    dashboard.advertise("glidefactory", [FACTORY_AD])
    dashboard.advertise("glidefactoryglobal", [{"Name": "gfactory_instance@fact"}])

    [ad] = dashboard.query("glidefactory")

    assert ad.identity == "gfactory@fact.example.org"
    assert ad.attrs == {
        **FACTORY_AD,
        "MyType": "glidefactory",
        "GlideinMyType": "glidefactory",
        "AuthenticatedIdentity": "gfactory@fact.example.org",
    }


def test_ad_the_collector_did_not_authenticate_has_no_identity() -> None:
    collector = RecordingCollector(identity=None)
    dashboard = _dashboard(collector)
    dashboard.advertise("glideclient", [{"Name": "r1", "AuthenticatedIdentity": "fe@x"}])

    [ad] = dashboard.query("glideclient")

    assert ad.identity is None
    assert "AuthenticatedIdentity" not in ad.attrs


def test_query_filters_with_the_constraint_and_returns_expressions_as_expressions() -> None:
    collector = RecordingCollector()
    dashboard = _dashboard(collector)
    dashboard.advertise(
        "glideclient",
        [{"Name": "r1", "ReqIdleGlideins": 5, "Req": AdExpr("ReqIdleGlideins > 2")},
         {"Name": "r2", "ReqIdleGlideins": 1, "Req": AdExpr("ReqIdleGlideins > 2")}],
    )  # fmt: skip

    ads = dashboard.query("glideclient", "Req")

    assert [ad.attrs["Name"] for ad in ads] == ["r1"]
    assert ads[0].attrs["Req"] == AdExpr("ReqIdleGlideins > 2")
    assert isinstance(ads[0].attrs["Req"], AdExpr)


def test_bad_constraint_is_refused_before_asking_the_collector() -> None:
    collector = RecordingCollector()

    with pytest.raises(PermanentError, match="not a valid ClassAd expression"):
        _dashboard(collector).query("glideclient", "ReqIdleGlideins >")
    assert collector.calls == []


# ---------------------------------------------------------------------------- invalidate


@pytest.mark.parametrize(
    ("ad_type", "command"),
    [
        ("glidefactory", "INVALIDATE_ADS_GENERIC"),
        ("glidefactoryglobal", "INVALIDATE_ADS_GENERIC"),
        ("glidefactoryclient", "INVALIDATE_LICENSE_ADS"),
        ("glideclient", "INVALIDATE_MASTER_ADS"),
        ("glideclientglobal", "INVALIDATE_MASTER_ADS"),
        ("glideresource", "INVALIDATE_ADS_GENERIC"),
    ],
)
def test_invalidate_sends_a_query_ad_with_the_types_invalidate_command(
    ad_type: str, command: str
) -> None:
    collector = RecordingCollector()

    _dashboard(collector).invalidate(ad_type, 'Name == "a"')

    [query, invalidation] = collector.calls
    assert query.method == "query"
    assert invalidation.command == command
    [sent] = invalidation.ads
    assert (sent["MyType"], sent["TargetType"]) == ("Query", ad_type)
    expected = classad2.ExprTree(f'(GlideinMyType =?= "{ad_type}") && (Name == "a")')
    assert str(sent["Requirements"]) == str(expected)


def test_invalidate_withdraws_the_matching_ads_and_counts_them() -> None:
    collector = RecordingCollector()
    dashboard = _dashboard(collector)
    dashboard.advertise("glidefactoryclient", [{"Name": "a", "N": 1}, {"Name": "b", "N": 2}])
    dashboard.advertise("glidefactory", [{"Name": "c", "N": 1}])

    assert dashboard.invalidate("glidefactoryclient", "N == 1") == 1

    assert [ad.attrs["Name"] for ad in dashboard.query("glidefactoryclient")] == ["b"]
    assert [ad.attrs["Name"] for ad in dashboard.query("glidefactory")] == ["c"]


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize("operation", ["advertise", "query", "invalidate"])
def test_collector_failure_is_a_transient_error(operation: str) -> None:
    dashboard = _dashboard(RecordingCollector(failing=True))

    with pytest.raises(TransientError, match="collector failed"):
        if operation == "advertise":
            dashboard.advertise("glidefactory", [FACTORY_AD])
        elif operation == "query":
            dashboard.query("glidefactory")
        else:
            dashboard.invalidate("glidefactory", "true")


def test_recording_double_matches_the_bindings_method_signatures() -> None:
    for method in ("advertise", "query"):
        real = inspect.signature(getattr(htcondor2.Collector, method)).parameters
        double = inspect.signature(getattr(RecordingCollector, method)).parameters
        assert list(double) == [p for p in real if p != "statistics"]
