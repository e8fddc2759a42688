"""edgefit.memory: activation memory planning for microcontrollers.

Imports trace and metrics only. Arena planning from traced lifetimes
(`plan_arena`), in-place ops (`InPlaceConfig`), patch-based execution of the
first stage (`PatchConfig`, `PatchPlan.apply`), and the per-layer picture of
activation and weight memory, all through one verb, `plan_memory`.

>>> from edgefit.memory import plan_memory, InPlaceConfig, PatchConfig
>>> from edgefit.zoo import create
>>> p = plan_memory(create("mobilenet_v2", width_mult=0.35), input_shape=(1, 3, 144, 144), bits=8)
>>> p.peak_live_bytes, p.patch.patches, p.arena_bytes < 320 * 1024
(497760, 5, True)
"""

from edgefit.memory.arena import Arena, Buffer, PlanError, plan_arena, validate_arena
from edgefit.memory.graph import Tensor, tensors_from_trace
from edgefit.memory.inplace import InPlace
from edgefit.memory.patch import PatchedStage, PatchError, Split, Tile
from edgefit.memory.plan import (
    InPlaceConfig,
    LayerMemory,
    MemoryPlan,
    PatchConfig,
    PatchPlan,
    PlanStep,
    plan_memory,
    register_technique,
)

__all__ = [
    "Arena", "Buffer", "InPlace", "InPlaceConfig", "LayerMemory", "MemoryPlan", "PatchConfig", "PatchError",
    "PatchPlan", "PatchedStage", "PlanError", "PlanStep", "Split", "Tensor", "Tile", "plan_arena",
    "plan_memory", "register_technique", "tensors_from_trace", "validate_arena",
]
