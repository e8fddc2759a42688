"""edgefit.report."""

from edgefit._lazy import lazy_attributes

# The HTML report loads on first use (it imports torch-heavy modules).
__getattr__, __dir__ = lazy_attributes("edgefit.report", {"html_report": ("edgefit.report.html", "html_report")}, globals())
