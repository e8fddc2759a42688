"""edgefit.search."""
