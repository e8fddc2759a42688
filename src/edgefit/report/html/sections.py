"""Sections of the HTML report: data in, markup out, dispatched on the data's type.

A capability adds itself to the page by handing `html_report` a section made of
data (never HTML): a `TableSection`, a `CurvesSection` (accuracy against
sparsity, latency against width...) or a `ScatterSection` (a search's Pareto
front, a NetAdapt family). Each type is a frozen dataclass validated in
``__post_init__``; `render_section` looks its renderer up by type, and
`register_section` adds a renderer for a new type. Every string a section
carries is escaped when rendered.

>>> s = TableSection("Stages", ("stage", "bytes"), (("P", 4236), ("P+Q+H", 1589)))
>>> "<td" in render_section(s)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field

from edgefit.errors import ConfigError, RegistryError
from edgefit.report.html.svg import esc, lines_svg, scatter_svg


def _check_title(title: str) -> None:
    if not isinstance(title, str) or not title.strip():
        raise ConfigError("a report section needs a non-empty title")


def _check_point(x, y, where: str) -> None:
    for v in (x, y):
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{where}: every point needs two finite numbers, got ({x!r}, {y!r})")


@dataclass(frozen=True)
class TableSection:
    """A table: ``columns`` names and ``rows`` of cells (numbers stay sortable).

    Attributes:
        title: the section heading.
        columns: column names.
        rows: one tuple of cells per row (str, int or float), as long as ``columns``.
        note: a line under the table (sources, what was not measured).
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple, ...]
    note: str = ""

    def __post_init__(self) -> None:
        _check_title(self.title)
        if not self.columns:
            raise ConfigError(f"table {self.title!r}: no columns")
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ConfigError(f"table {self.title!r}: a row has {len(row)} cells for {len(self.columns)} columns")


@dataclass(frozen=True)
class CurvesSection:
    """Lines: ``series`` maps a name to its ``(x, y)`` points, e.g. accuracy vs sparsity per layer.

    ``percent_x`` / ``percent_y`` show fractions as percentages.
    """

    title: str
    x_label: str
    y_label: str
    series: Mapping[str, Sequence[tuple[float, float]]]
    note: str = ""
    log_x: bool = False
    percent_x: bool = False
    percent_y: bool = False

    def __post_init__(self) -> None:
        _check_title(self.title)
        if not self.series or not any(self.series.values()):
            raise ConfigError(f"curves {self.title!r}: no points")
        for name, pts in self.series.items():
            for x, y in pts:
                _check_point(x, y, f"curves {self.title!r}, series {name!r}")


@dataclass(frozen=True)
class ScatterSection:
    """Labelled points ``(label, x, y)``; ``front`` joins the Pareto front (lower x, higher y is better)."""

    title: str
    x_label: str
    y_label: str
    points: Sequence[tuple[str, float, float]]
    note: str = ""
    log_x: bool = False
    front: bool = True

    def __post_init__(self) -> None:
        _check_title(self.title)
        if not self.points:
            raise ConfigError(f"scatter {self.title!r}: no points")
        for label, x, y in self.points:
            _check_point(x, y, f"scatter {self.title!r}, point {label!r}")


_RENDERERS: dict[type, Callable[[object], str]] = {}


def register_section(kind: type) -> Callable:
    """Decorator: ``fn(section) -> markup`` renders sections of type ``kind``."""

    def add(fn: Callable[[object], str]) -> Callable[[object], str]:
        if kind in _RENDERERS:
            raise RegistryError(f"a renderer for {kind.__name__} is already registered")
        _RENDERERS[kind] = fn
        return fn

    return add


def render_section(section) -> str:
    """The markup of one section (a ``<section>`` element)."""
    fn = _RENDERERS.get(type(section))
    if fn is None:
        known = ", ".join(sorted(t.__name__ for t in _RENDERERS))
        raise ConfigError(f"no report renderer for {type(section).__name__}; known: {known}")
    return fn(section)


def _wrap(section, inner: str) -> str:
    note = f'<p class="note">{esc(section.note)}</p>' if section.note else ""
    return f'<section class="extra"><h2>{esc(section.title)}</h2>{inner}{note}</section>'


def cell(value) -> str:
    """One ``<td>``: numbers carry their exact value in ``data-v`` for sorting and checking."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"<td>{esc(value)}</td>"
    text = f"{value:,}" if isinstance(value, int) else f"{value:.4g}"
    return f'<td class="n" data-v="{value!r}">{text}</td>'


def table_html(columns: Sequence[str], rows: Sequence[Sequence], table_id: str, *, raw_rows=None) -> str:
    """A sortable table; ``raw_rows`` are pre-rendered ``<tr>`` strings used instead of ``rows``."""
    head = "".join(f'<th data-col="{i}">{esc(c)}</th>' for i, c in enumerate(columns))
    body = raw_rows if raw_rows is not None else ["<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in rows]
    return (f'<table class="sortable" id="{esc(table_id)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


_COUNTER = {"n": 0}


def _next_id(prefix: str) -> str:
    _COUNTER["n"] += 1
    return f"{prefix}-{_COUNTER['n']}"


@register_section(TableSection)
def _render_table(s: TableSection) -> str:
    return _wrap(s, table_html(s.columns, s.rows, _next_id("extra-table")))


@register_section(CurvesSection)
def _render_curves(s: CurvesSection) -> str:
    svg = lines_svg(s.series, s.x_label, s.y_label, s.title, log_x=s.log_x, percent_x=s.percent_x,
                    percent_y=s.percent_y)
    return _wrap(s, f'<div class="chartbox">{svg}</div>')


@register_section(ScatterSection)
def _render_scatter(s: ScatterSection) -> str:
    svg = scatter_svg(s.points, s.x_label, s.y_label, s.title, log_x=s.log_x, front=s.front)
    return _wrap(s, f'<div class="chartbox">{svg}</div>')


# ---------------------------------------------------------------- built-in section builders


def sensitivity_section(result, label: str = "") -> CurvesSection:
    """Accuracy with one layer pruned at each sparsity, one curve per layer (a `SensitivityResult`)."""
    series = {name: list(zip(result.sparsities, accs, strict=True)) for name, accs in result.accuracy.items()}
    return CurvesSection(
        title=f"Pruning sensitivity{f' of {label}' if label else ''}",
        x_label="sparsity of the one pruned layer", y_label="test accuracy", series=series,
        note=f"measured: each layer pruned alone by magnitude, no retraining; dense accuracy "
             f"{100 * result.baseline:.2f}%", percent_x=True, percent_y=True)


@dataclass(frozen=True)
class StageRecord:
    """The Deep Compression stages of one model: bytes on disk and accuracy per stage.

    Attributes:
        dense_bytes: the fp32 safetensors file.
        stage_bytes: ``{"P": .., "P+Q": .., "P+Q+H": ..}`` file bytes.
        accuracy: ``{"dense", "P", "P+Q", "P+Q+H": test accuracy}`` (missing = not measured).
        source: where the numbers come from, shown under the table.
    """

    dense_bytes: int
    stage_bytes: Mapping[str, int]
    accuracy: Mapping[str, float] = field(default_factory=dict)
    source: str = ""


def compression_section(record: StageRecord, label: str = "") -> TableSection:
    """The P / P+Q / P+Q+H table: bytes on disk, ratio to the fp32 file, accuracy."""
    rows = [("dense fp32", record.dense_bytes, 1.0, _acc(record.accuracy.get("dense")))]
    for stage in ("P", "P+Q", "P+Q+H"):
        if stage in record.stage_bytes:
            n = record.stage_bytes[stage]
            rows.append((stage, n, record.dense_bytes / n, _acc(record.accuracy.get(stage))))
    return TableSection(
        title=f"Deep Compression stages{f' of {label}' if label else ''}",
        columns=("stage", "bytes on disk", "ratio (fp32 / stage)", "test accuracy"),
        rows=tuple(rows),
        note=record.source,
    )


def _acc(a: float | None):
    return "not measured" if a is None else round(100 * a, 2)


def stages_from_report(rep) -> StageRecord:
    """A `StageRecord` from a `CompressionReport` (`edgefit.compress.report.build_report`)."""
    return StageRecord(rep.dense_file_bytes, dict(rep.file_bytes), dict(rep.accuracy),
                       "measured: every stage written as a real file; accuracy (%) on the test split")


# ---------------------------------------------------------------- sections from JSON files

_SECTION_TYPES = {"table": TableSection, "curves": CurvesSection, "scatter": ScatterSection}


def section_from_dict(d: Mapping):
    """A section from plain data: ``{"type": "table" | "curves" | "scatter", **its fields}``.

    >>> section_from_dict({"type": "scatter", "title": "Pareto", "x_label": "MACs", "y_label": "acc",
    ...                    "points": [["a", 1e6, 0.95]]}).points
    (('a', 1000000.0, 0.95),)
    """
    from dataclasses import fields

    if not isinstance(d, Mapping) or d.get("type") not in _SECTION_TYPES:
        raise ConfigError(f"a section needs \"type\": one of {', '.join(_SECTION_TYPES)}")
    cls = _SECTION_TYPES[d["type"]]
    args = {k: v for k, v in d.items() if k != "type"}
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(args) - known)
    missing = sorted(f.name for f in fields(cls) if f.name not in args and f.default is MISSING)
    if unknown or missing:
        raise ConfigError(f"{d['type']} section: unknown fields {unknown}, missing fields {missing}; "
                          f"fields: {', '.join(sorted(known))}")
    for key in ("columns", "rows", "points"):
        if key in args:
            args[key] = tuple(tuple(x) if isinstance(x, list) else x for x in args[key])
    if "series" in args and isinstance(args["series"], Mapping):
        args["series"] = {str(k): [tuple(p) for p in v] for k, v in args["series"].items()}
    return cls(**args)


def load_sections(path) -> list:
    """Sections from a JSON file holding one section object or a list of them (see `section_from_dict`)."""
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read sections from {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON file ({exc})") from None
    items = data if isinstance(data, list) else [data]
    try:
        return [section_from_dict(item) for item in items]
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path}: {exc}") from None
