"""edgefit: make deep neural networks fit edge devices.

>>> import edgefit
>>> from edgefit.zoo import create
>>> p = edgefit.profile(create("alexnet"), input_shape=(1, 3, 224, 224))
>>> p.totals.params_without_bias
60954656

Attributes and subpackages are imported lazily so that `import edgefit` stays fast:

>>> edgefit.zoo.create("lenet5").__class__.__name__
'LeNet5'
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "profile": ("edgefit.metrics", "profile"),
    "Profile": ("edgefit.metrics", "Profile"),
    "trace": ("edgefit.trace", "trace"),
    "estimate": ("edgefit.hardware", "estimate"),
    "get_device": ("edgefit.hardware", "get_device"),
    "plan": ("edgefit.hardware.mcu", "plan"),
    "plan_memory": ("edgefit.memory", "plan_memory"),
    "load_compressed": ("edgefit.compress", "load_compressed"),
    "netadapt": ("edgefit.search", "netadapt"),
    "EdgefitError": ("edgefit.errors", "EdgefitError"),
}

__all__ = ["__version__", *_LAZY]


from edgefit._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes("edgefit", _LAZY, globals(), submodules=True)
