"""edgefit.compress."""
