"""Real low-precision kernels: the bit-packed XNOR + popcount binary matmul and
convolution (:mod:`.xnor`), and int8 inference through ONNX Runtime
(:mod:`.onnx`)."""

from __future__ import annotations

_LAZY = {
    "PackedSigns": ("edgefit.accel.xnor", "PackedSigns"),
    "pack_signs": ("edgefit.accel.xnor", "pack_signs"),
    "xnor_matmul": ("edgefit.accel.xnor", "xnor_matmul"),
    "xnor_linear": ("edgefit.accel.xnor", "xnor_linear"),
    "xnor_conv2d": ("edgefit.accel.xnor", "xnor_conv2d"),
    "export_onnx": ("edgefit.accel.onnx", "export_onnx"),
    "export_int8": ("edgefit.accel.onnx", "export_int8"),
    "bench_onnxruntime": ("edgefit.accel.onnx", "bench_onnxruntime"),
    "OrtModel": ("edgefit.accel.onnx", "OrtModel"),
}

__all__ = sorted(_LAZY)

from edgefit._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes("edgefit.accel", _LAZY, globals())
