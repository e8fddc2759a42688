"""Fit an image dataset to a model's input: upscale and repeat channels.

The digits are 8x8 grey images; ImageNet-style zoo models (MobileNet, ResNet...)
take 3 channels and downsample 32x, so they train on digits upscaled
(bilinear) to e.g. 32x32 with the grey channel repeated three times.

>>> from edgefit.data import load_digits
>>> fit_images(load_digits(), size=32, channels=3).sample_shape
(3, 32, 32)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from edgefit.data.datasets import ArrayDataset
from edgefit.errors import ConfigError


def _resize(x: np.ndarray, size: int | None, channels: int | None) -> np.ndarray:
    t = torch.from_numpy(x)
    if size is not None and tuple(t.shape[-2:]) != (size, size):
        t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    if channels is not None and t.shape[1] != channels:
        if t.shape[1] != 1:
            raise ConfigError(f"can only repeat a 1-channel image to {channels} channels, got {t.shape[1]}")
        t = t.repeat(1, channels, 1, 1)
    return t.contiguous().numpy()


def fit_images(data: ArrayDataset, size: int | None = None, channels: int | None = None) -> ArrayDataset:
    """``data`` with images resized to ``size x size`` and/or repeated to ``channels``.

    Raises:
        ConfigError: the data are not NCHW images, or a bad size or channel count.
    """
    if size is None and channels is None:
        return data
    if data.x_train.ndim != 4:
        raise ConfigError(f"resizing needs NCHW images, got samples of shape {data.sample_shape}")
    for v, what in ((size, "image size"), (channels, "channels")):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"{what} must be a positive integer, got {v!r}")
    return dataclasses.replace(data, x_train=_resize(data.x_train, size, channels),
                               x_test=_resize(data.x_test, size, channels))
