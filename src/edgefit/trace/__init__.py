"""Tracing: one forward pass on the meta device, every aten op recorded with its module."""

from edgefit.trace.tracer import (
    ModuleInfo,
    OpRecord,
    TensorSpec,
    Trace,
    ValueInfo,
    make_inputs,
    trace,
)

__all__ = ["ModuleInfo", "OpRecord", "TensorSpec", "Trace", "ValueInfo", "make_inputs", "trace"]
