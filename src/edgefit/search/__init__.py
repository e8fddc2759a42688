"""edgefit.search."""

from edgefit.search.netadapt import NetAdaptConfig, netadapt  # noqa: F401
