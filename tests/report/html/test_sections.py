"""Sections are data, validated, dispatched on their type, and escaped."""

import pytest

from edgefit.errors import ConfigError, RegistryError
from edgefit.report.html import (
    CurvesSection,
    ScatterSection,
    StageRecord,
    TableSection,
    compression_section,
    register_section,
    render_section,
)


def test_table_cells_keep_exact_values():
    html = render_section(TableSection("t", ("a", "b"), (("x<y", 1234567), ("z", 0.125))))
    assert '<td class="n" data-v="1234567">1,234,567</td>' in html
    assert '<td class="n" data-v="0.125">0.125</td>' in html and "x&lt;y" in html


def test_curves_and_scatter_render_points():
    c = render_section(CurvesSection("c", "x", "y", {"a": [(0, 1), (0.5, 0.9)], "b": [(0, 1)]}))
    assert c.count('class="pt"') == 3 and c.count("<polyline") == 2
    s = render_section(ScatterSection("pareto", "ms", "acc", [("w1", 1.0, 0.9), ("w2", 2.0, 0.95), ("w3", 3.0, 0.9)]))
    assert s.count('class="pt"') == 3 and "front" in s


@pytest.mark.parametrize("make, message", [
    (lambda: TableSection("t", ("a", "b"), ((1,),)), "1 cells for 2 columns"),
    (lambda: TableSection(" ", ("a",), ()), "non-empty title"),
    (lambda: CurvesSection("c", "x", "y", {"a": [(0, float("nan"))]}), "two finite numbers"),
    (lambda: CurvesSection("c", "x", "y", {}), "no points"),
    (lambda: ScatterSection("s", "x", "y", []), "no points"),
])
def test_bad_sections_are_rejected(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_registry_dispatches_on_type():
    class Unknown:
        pass

    with pytest.raises(ConfigError, match="no report renderer for Unknown"):
        render_section(Unknown())
    with pytest.raises(RegistryError, match="already registered"):
        register_section(TableSection)(lambda s: "")


def test_compression_section_ratios():
    rec = StageRecord(1000, {"P": 100, "P+Q": 40, "P+Q+H": 25}, {"dense": 0.9, "P+Q+H": 0.91})
    s = compression_section(rec, "m")
    assert s.rows == (("dense fp32", 1000, 1.0, 90.0), ("P", 100, 10.0, "not measured"),
                      ("P+Q", 40, 25.0, "not measured"), ("P+Q+H", 25, 40.0, 91.0))


def test_sections_from_json(tmp_path):
    import json

    from edgefit.report.html import load_sections, section_from_dict

    p = tmp_path / "s.json"
    p.write_text(json.dumps([
        {"type": "table", "title": "family", "columns": ["w", "ms"], "rows": [[0.5, 1.5]]},
        {"type": "curves", "title": "c", "x_label": "x", "y_label": "y", "series": {"a": [[0, 1]]}},
    ]))
    table, curves = load_sections(p)
    assert table.rows == ((0.5, 1.5),) and curves.series == {"a": [(0, 1)]}
    p.write_text(json.dumps({"type": "table", "title": "t", "cols": []}))
    with pytest.raises(ConfigError, match=r"unknown fields \['cols'\], missing fields \['columns', 'rows'\]"):
        load_sections(p)
    p.write_text("{nope")
    with pytest.raises(ConfigError, match="not a JSON file"):
        load_sections(p)
    with pytest.raises(ConfigError, match='needs "type"'):
        section_from_dict({"title": "t"})
