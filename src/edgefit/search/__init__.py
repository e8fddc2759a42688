"""edgefit.search: NetAdapt (`netadapt`) and architecture search (`search`).

``netadapt`` is imported eagerly: the name is also its subpackage's, and the
function must win over the module once the subpackage is imported.
"""

from __future__ import annotations

from edgefit.search.netadapt import NetAdaptConfig, netadapt  # noqa: F401

_LAZY = {
    "search": ("edgefit.search.nas.runner", "search"),
}

from edgefit._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes("edgefit.search", _LAZY, globals())
