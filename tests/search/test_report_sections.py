"""NetAdapt families and search fronts reach the HTML report as plain-data sections."""

import json

from edgefit.report.html.sections import ScatterSection, load_sections, render_section
from edgefit.search.nas.result import SearchResult, TrialRecord
from edgefit.search.netadapt.family import family_sections
from edgefit.search.netadapt.journal import FINAL, Member


def _member(iteration, latency_s, macs, score):
    return Member(iteration, None, {}, {"latency@host": latency_s, "macs": macs}, score, None, "w", 1, 0.0)


def test_family_sections_one_scatter_per_resource(tmp_path):
    members = [_member(0, 2e-3, 16e6, 0.99), _member(1, 1.5e-3, 10e6, 0.97), _member(FINAL, 1.5e-3, 10e6, 0.98)]
    data = family_sections(members)
    path = tmp_path / "family.sections.json"
    path.write_text(json.dumps(data))
    sections = load_sections(path)
    assert [s.title for s in sections] == [
        "NetAdapt family: val accuracy against latency@host",
        "NetAdapt family: val accuracy against macs",
    ]
    assert sections[0].x_label == "latency@host [ms]"
    assert sections[0].points == (("iteration 0", 2.0, 0.99), ("iteration 1", 1.5, 0.97), ("final", 1.5, 0.98))
    assert sections[1].points[1] == ("iteration 1", 10.0, 0.97)
    assert "<svg" in render_section(sections[0])


def _result(objectives, directions):
    recs = [
        TrialRecord(0, {}, {"accuracy": 0.9, "macs": 5e6}, {}, True, {}, 1.0),
        TrialRecord(1, {}, {}, {}, False, {"size": 1.0}, 0.1),
        TrialRecord(2, {}, {"accuracy": 0.8, "macs": 2e6}, {}, True, {}, 1.0),
    ]
    return SearchResult("s", None, None, "random", objectives, directions, [], recs)


def test_search_front_section_has_every_feasible_sample():
    (section,) = _result(["accuracy", "macs"], ["maximize", "minimize"]).report_sections()
    scatter = ScatterSection(**{k: v for k, v in section.items() if k != "type"})
    assert scatter.title == "Search front: accuracy against macs"
    assert [tuple(p) for p in scatter.points] == [("trial 0", 5e6, 0.9), ("trial 2", 2e6, 0.8)]


def test_single_objective_search_has_no_front_section():
    assert _result(["accuracy"], ["maximize"]).report_sections() == []


def test_a_wrong_architecture_file_is_one_line(tmp_path):
    import pytest

    from edgefit.errors import ConfigError
    from edgefit.search.nas import load_architecture

    path = tmp_path / "arch_1.json"
    path.write_text('{"arch": {}}')
    with pytest.raises(ConfigError, match="not an edgefit architecture file"):
        load_architecture(path)
