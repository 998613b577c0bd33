"""The session's result collector behind its small API, and ``sslrobust`` marker options
parsed once at collection and stashed on each item."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_sslrobust.markers import OPTIONS_KEY, MarkerOptions, options_of
from pytest_sslrobust.results import PROPERTY, ContractResult, ResultCollector


def _result(test: str, value: float) -> ContractResult:
    return ContractResult(
        test=test,
        name="assert_accuracy_above",
        label="accuracy",
        metric="accuracy",
        value=value,
        low=0.5,
        high=None,
        passed=value >= 0.5,
    )


def _properties(*results: ContractResult) -> list[tuple[str, str]]:
    return [(PROPERTY, json.dumps(r.to_dict(), sort_keys=True)) for r in results]


def test_collector_readers_are_copies_and_writers_are_the_api() -> None:
    collector = ResultCollector(started=12.0)
    collector.add_report(_properties(_result("t::b", 0.9), _result("t::a", 0.4)))
    collector.add_report([("other", "ignored")])
    collector.add_artifact({"kind": "table", "payload": {}})
    collector.add_backbone("m", {"name": "m", "device": "cpu"})
    collector.add_note("report written")
    collector.set_comparison(["compared"], {"baseline": "b.json", "rows": []})

    assert [r.test for r in collector.results] == ["t::b", "t::a"]
    assert isinstance(collector.results, tuple) and isinstance(collector.artifacts, tuple)
    collector.backbones["m"]["device"] = "changed"  # a copy: the collector keeps its own
    assert collector.backbones["m"]["device"] == "cpu"
    assert collector.notes == ("report written",)
    assert collector.comparison_lines == ("compared",)
    assert collector.comparison == {"baseline": "b.json", "rows": []}
    assert collector.started == 12.0
    # The JSON document is ordered by test id, the terminal table by arrival.
    assert [r["test"] for r in collector.document()["results"]] == ["t::a", "t::b"]
    assert collector.summary_lines()[1].startswith("passed")
    # Lines alone (a failed save) leave the compared table as it was.
    collector.set_comparison(["could not save"])
    assert collector.comparison_lines == ("could not save",)
    assert collector.comparison is not None


def test_worker_payload_round_trips_into_the_controller() -> None:
    worker = ResultCollector()
    worker.add_artifact({"kind": "matrix", "test": "t::x", "payload": {"values": [[1.0]]}})
    worker.add_backbone("w", {"name": "w"})
    controller = ResultCollector()
    controller.add_artifact({"kind": "table", "test": "t::y", "payload": {}})
    controller.merge_worker(worker.worker_payload())
    controller.merge_worker("")  # a worker that sent nothing
    assert [a["kind"] for a in controller.artifacts] == ["table", "matrix"]
    assert controller.backbones == {"w": {"name": "w"}}


def test_marker_options_parse_and_defaults() -> None:
    options = MarkerOptions.parse(
        pytest.mark.sslrobust(models=["bundled-simclr"], corruptions="noise").mark
    )
    assert options.models == ("bundled-simclr",)
    assert options.models_or(["x"]) == ("bundled-simclr",)
    assert options.corruptions == "noise" and options.data is None
    assert MarkerOptions.parse(None) == MarkerOptions()
    assert MarkerOptions().models_or(["a", "b"]) == ("a", "b")
    with pytest.raises(pytest.UsageError, match="takes keywords only"):
        MarkerOptions.parse(pytest.mark.sslrobust("fog").mark)
    with pytest.raises(pytest.UsageError, match="unknown keyword 'severity'"):
        MarkerOptions.parse(pytest.mark.sslrobust(severity=3).mark)
    with pytest.raises(pytest.UsageError, match="@pytest.mark.sslrobust: "):
        MarkerOptions.parse(pytest.mark.sslrobust(models="no-such-alias").mark)


def test_options_are_stashed_at_collection_and_not_parsed_again(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    pytester.makeconftest(
        """
        import pytest
        from pytest_sslrobust import markers

        PARSED = []
        original = markers.MarkerOptions.parse.__func__

        def counting(cls, marker):
            PARSED.append(marker)
            return original(cls, marker)

        markers.MarkerOptions.parse = classmethod(counting)

        @pytest.hookimpl(trylast=True)
        def pytest_collection_modifyitems(items):
            for item in items:
                assert markers.OPTIONS_KEY in item.stash, item.nodeid
            PARSED.clear()

        def pytest_sessionfinish(session):
            print(f"PARSED AFTER COLLECTION: {len(PARSED)}")
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.sslrobust(corruptions="noise", severities=[1], data="bundled:textured-digits")
        def test_marked(request, sslrobust_settings):
            from pytest_sslrobust.markers import options_of
            options = options_of(request.node)
            assert options.corruptions == "noise" and options.data == "bundled:textured-digits"

        def test_plain(request):
            from pytest_sslrobust.markers import options_of
            assert options_of(request.node).models is None
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*PARSED AFTER COLLECTION: 0*"])


def test_options_of_parses_a_node_collection_did_not_see() -> None:
    class Node:
        def __init__(self) -> None:
            self.stash = pytest.Stash()

        def get_closest_marker(self, name: str) -> pytest.Mark:
            return pytest.mark.sslrobust(variants="center").mark

    node = Node()
    assert options_of(node).variants == "center"
    assert node.stash[OPTIONS_KEY].variants == "center"
