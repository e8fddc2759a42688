"""edgefit.compress.quantize."""
