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
]
