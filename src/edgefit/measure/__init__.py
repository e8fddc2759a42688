"""edgefit.measure."""
