"""edgefit.compress.prune."""
