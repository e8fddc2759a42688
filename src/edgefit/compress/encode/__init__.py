"""edgefit.compress.encode."""
