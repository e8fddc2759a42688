"""edgefit.report.html: one self-contained HTML page of models on devices, before and after.

>>> from edgefit.report.html import TableSection, render_section
>>> "&lt;b&gt;" in render_section(TableSection("<b>", ("a",), ((1,),)))
True
"""

from __future__ import annotations

from edgefit.report.html.collect import (
    DEFAULT_DEVICES,
    ModelResult,
    ReportModel,
    load_report_model,
)
from edgefit.report.html.page import HtmlReport, html_report, render_page
from edgefit.report.html.sections import (
    CurvesSection,
    ScatterSection,
    StageRecord,
    TableSection,
    compression_section,
    load_sections,
    register_section,
    render_section,
    section_from_dict,
    sensitivity_section,
    stages_from_report,
)

__all__ = [
    "DEFAULT_DEVICES",
    "CurvesSection",
    "HtmlReport",
    "ModelResult",
    "ReportModel",
    "ScatterSection",
    "StageRecord",
    "TableSection",
    "compression_section",
    "load_sections",
    "html_report",
    "load_report_model",
    "register_section",
    "render_page",
    "render_section",
    "section_from_dict",
    "sensitivity_section",
    "stages_from_report",
]
