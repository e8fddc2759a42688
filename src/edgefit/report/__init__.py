"""edgefit.report."""
