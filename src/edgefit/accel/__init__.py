"""The accelerator view: dataflow energy on a spatial array, sparsity and activation
compression on real activations, fast convolution algorithms, and the layer format of
the lecturers' energy-estimation tool (reference/003, "Efficient Processing of DNNs").

>>> from edgefit.accel import ConvLayer, map_layer, paper_array
>>> r = map_layer(ConvLayer("c", n=1, c=1, h=4, w=4, m=1, r=3, s=3), paper_array(), "rs")
>>> r.accesses["alu"]["mac"]
36.0

It also holds the real low-precision kernels: the bit-packed XNOR + popcount binary
matmul and convolution (:mod:`.xnor`), and int8 inference through ONNX Runtime
(:mod:`.onnx`) and through PyTorch's own quantized kernels (:mod:`.torch_int8`).
"""

from __future__ import annotations

_LAZY = {
    "SpatialArch": ("edgefit.accel.arch", "SpatialArch"),
    "Costs": ("edgefit.accel.arch", "Costs"),
    "paper_array": ("edgefit.accel.arch", "paper_array"),
    "eyeriss_chip": ("edgefit.accel.arch", "eyeriss_chip"),
    "ConvLayer": ("edgefit.accel.layers", "ConvLayer"),
    "layers_from_profile": ("edgefit.accel.layers", "layers_from_profile"),
    "map_layer": ("edgefit.accel.dataflow", "map_layer"),
    "DataflowConfig": ("edgefit.accel.compare", "DataflowConfig"),
    "compare_dataflows": ("edgefit.accel.compare", "compare_dataflows"),
    "compare_layers": ("edgefit.accel.compare", "compare_layers"),
    "layer_energy": ("edgefit.accel.compare", "layer_energy"),
    "eyeriss_comparison": ("edgefit.accel.compare", "eyeriss_comparison"),
    "SparsityConfig": ("edgefit.accel.sparsity", "SparsityConfig"),
    "measure_sparsity": ("edgefit.accel.sparsity", "measure_sparsity"),
    "ConvAlgoConfig": ("edgefit.accel.fastconv", "ConvAlgoConfig"),
    "compare_conv_algorithms": ("edgefit.accel.fastconv", "compare_conv_algorithms"),
    "read_energy_tool": ("edgefit.accel.energy_tool", "read_energy_tool"),
    "write_energy_tool": ("edgefit.accel.energy_tool", "write_energy_tool"),
    "PackedSigns": ("edgefit.accel.xnor", "PackedSigns"),
    "pack_signs": ("edgefit.accel.xnor", "pack_signs"),
    "xnor_matmul": ("edgefit.accel.xnor", "xnor_matmul"),
    "xnor_linear": ("edgefit.accel.xnor", "xnor_linear"),
    "xnor_conv2d": ("edgefit.accel.xnor", "xnor_conv2d"),
    "export_onnx": ("edgefit.accel.onnx", "export_onnx"),
    "export_int8": ("edgefit.accel.onnx", "export_int8"),
    "export_checked": ("edgefit.accel.onnx", "export_checked"),
    "bench_onnxruntime": ("edgefit.accel.onnx", "bench_onnxruntime"),
    "OrtModel": ("edgefit.accel.onnx", "OrtModel"),
    "TorchInt8Config": ("edgefit.accel.torch_int8", "TorchInt8Config"),
    "convert_torch_int8": ("edgefit.accel.torch_int8", "convert_torch_int8"),
    "bench_torch_int8": ("edgefit.accel.torch_int8", "bench_torch_int8"),
    "torchscript": ("edgefit.accel.torch_int8", "torchscript"),
}

__all__ = sorted(_LAZY)


from edgefit._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes("edgefit.accel", _LAZY, globals())
