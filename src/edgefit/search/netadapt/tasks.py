"""Task helpers: the digits upscaled for image-sized convnets."""

from __future__ import annotations

import numpy as np
import torch

from edgefit.errors import ConfigError


def resized(data, size: int):
    """``data`` with every image bilinearly resized to ``size x size`` (e.g. the 8x8 digits to 32x32).

    >>> from edgefit.data import load_digits
    >>> resized(load_digits(), 32).sample_shape
    (1, 32, 32)
    """
    from edgefit.data import ArrayDataset

    if data.x_train.ndim != 4:
        raise ConfigError(f"can only resize image datasets (N, C, H, W), got samples of shape {data.sample_shape}")
    if not isinstance(size, int) or size < 1:
        raise ConfigError(f"resolution must be an integer >= 1, got {size!r}")

    def up(x: np.ndarray) -> np.ndarray:
        t = torch.nn.functional.interpolate(torch.from_numpy(x), size=(size, size), mode="bilinear", align_corners=False)
        return t.numpy().astype(np.float32)

    return ArrayDataset(f"{data.name}@{size}x{size}", up(data.x_train), data.y_train, up(data.x_test), data.y_test,
                        data.num_classes)
