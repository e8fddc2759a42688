"""Quantization-aware training for every family with a weight quantizer.

The latent float weights stay the parameters; during training each layer's
``weight`` is replaced (``torch.nn.utils.parametrize``) by its quantized value,
computed in the forward pass and differentiated with the family's
straight-through estimator; activation quantizers run as they will at
inference. After training the quantized weights are written in place and the
states attached, exactly as :func:`quantize_` does (TTQ keeps its learned
scales). K-means has its own centroid fine-tuning
(:func:`~edgefit.compress.quantize.finetune_centroids_`).
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize

from edgefit.compress.quantize._family import QuantStates, finalize_layer
from edgefit.compress.quantize.registry import family_of, plan
from edgefit.errors import ConfigError


def quantize_aware_train_(model: nn.Module, data, config, train_config=None, *, calibration=None,
                          on_epoch=None) -> QuantStates:
    """Train ``model`` with quantization in the loop, then quantize it in place.

    Args:
        model: the network, ideally trained in float first.
        data: an :class:`edgefit.data.ArrayDataset`.
        config: a family config (not k-means).
        train_config: :class:`edgefit.data.TrainConfig` (default: 5 epochs, lr 1e-3).
        calibration: inputs for calibrated activation ranges (default: 512 training images).
        on_epoch: passed to :func:`edgefit.data.train`.

    Returns:
        the per-layer states, as :func:`quantize_` returns them.
    """
    from edgefit.data.train import TrainConfig, train

    if family_of(config).weight is None:
        raise ConfigError(f"{type(config).__name__} has no quantization-aware training; use its own fine-tuning")
    entries, skipped = plan(model, config, data if calibration is None else calibration)
    for _n, (m, wq, act) in entries.items():
        parametrize.register_parametrization(m, "weight", wq, unsafe=True)
        if act is not None:
            act.install(m)

    def clip() -> None:
        for m, wq, _ in entries.values():
            wq.clip_(m.parametrizations.weight.original)

    try:
        train(model, data, train_config or TrainConfig(epochs=5, lr=1e-3), on_epoch=on_epoch, after_step=clip)
    finally:
        for m, _, _ in entries.values():
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
    states = {n: finalize_layer(n, m, wq, act) for n, (m, wq, act) in entries.items()}
    model.eval()
    return QuantStates(states, skipped=skipped)
