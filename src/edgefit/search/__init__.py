"""edgefit.search."""

from __future__ import annotations

_LAZY = {
    "search": ("edgefit.search.nas.runner", "search"),
}

from edgefit._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes("edgefit.search", _LAZY, globals())
