"""Error types. Every error edgefit raises on purpose derives from `EdgefitError`.

The CLI turns any `EdgefitError` into one line on stderr and exit code 2.
"""

from __future__ import annotations


class EdgefitError(Exception):
    """Base class of every error edgefit raises on purpose."""


class ConfigError(EdgefitError, ValueError):
    """An option or configuration value is out of range or inconsistent."""


class RegistryError(EdgefitError, KeyError):
    """A name is missing from a registry, or registered twice."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelSpecError(EdgefitError):
    """A MODEL argument could not be resolved to an ``nn.Module``."""


class InputShapeError(EdgefitError, ValueError):
    """An input shape is malformed or does not fit the model."""


class TraceError(EdgefitError):
    """The model raised while it was being traced."""


class DeviceError(EdgefitError):
    """A device name or device file is unknown or invalid."""


class DataError(EdgefitError):
    """A dataset or weights file is missing, malformed or does not match the model."""


class CompressedFileError(EdgefitError):
    """A compressed model file is truncated, corrupted or of an unknown version."""


class ChecksumError(CompressedFileError):
    """A stored checksum does not match the decoded data."""


class FormatVersionError(CompressedFileError):
    """The file was written by an incompatible format version."""


def close_names(name: str, candidates, n: int = 3) -> str:
    """A ' Did you mean: a, b?' suffix for a registry miss, or '' when nothing is close."""
    import difflib

    close = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""
