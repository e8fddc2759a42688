"""Tables, JSON, CSV, Markdown and plots of a `Profile` and an `Estimate`.

>>> from edgefit.report import FORMATS
>>> FORMATS
('table', 'json', 'csv', 'markdown')
"""

from edgefit.report.table import (
    FORMATS,
    bench_lines,
    estimate_summary,
    estimate_table,
    profile_csv,
    profile_dict,
    profile_markdown,
    profile_table,
    render_profile,
)

__all__ = [
    "FORMATS",
    "bench_lines",
    "estimate_summary",
    "estimate_table",
    "profile_csv",
    "profile_dict",
    "profile_markdown",
    "profile_table",
    "render_profile",
    "html_report",
]

from edgefit._lazy import lazy_attributes  # noqa: E402

# The HTML report loads on first use (it imports torch-heavy modules).
__getattr__, __dir__ = lazy_attributes(
    "edgefit.report", {"html_report": ("edgefit.report.html", "html_report")}, globals()
)
