"""Deep Compression: pruning, trained quantization and Huffman coding (Han et
al., ICLR 2016), the ``.efz`` file, and the per-stage report.

>>> from edgefit.compress import load_compressed, save_compressed
>>> from edgefit.compress.prune import prune_, MagnitudeConfig
>>> from edgefit.compress.quantize import quantize_, KMeansConfig
"""

from __future__ import annotations

_LAZY = {
    "load_compressed": ("edgefit.compress.file", "load_compressed"),
    "save_compressed": ("edgefit.compress.file", "save_compressed"),
    "inspect_compressed": ("edgefit.compress.file", "inspect_compressed"),
    "SaveResult": ("edgefit.compress.file", "SaveResult"),
    "DeepCompressionConfig": ("edgefit.compress.pipeline", "DeepCompressionConfig"),
    "deep_compress": ("edgefit.compress.pipeline", "deep_compress"),
    "CompressionReport": ("edgefit.compress.report", "CompressionReport"),
    "run_recipe": ("edgefit.compress.recipe", "run_recipe"),
    "run_recipe_seeds": ("edgefit.compress.recipe", "run_recipe_seeds"),
    "SeedRuns": ("edgefit.compress.recipe", "SeedRuns"),
    "prune_": ("edgefit.compress.prune", "prune_"),
    "save_model": ("edgefit.compress.prune.saved", "save_model"),
    "quantize_": ("edgefit.compress.quantize", "quantize_"),
    "MagnitudeConfig": ("edgefit.compress.prune", "MagnitudeConfig"),
    "KMeansConfig": ("edgefit.compress.quantize", "KMeansConfig"),
    "LinearQuantConfig": ("edgefit.compress.quantize", "LinearQuantConfig"),
}

__all__ = sorted(_LAZY)


from edgefit._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes("edgefit.compress", _LAZY, globals())
