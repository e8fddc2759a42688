import numpy as np
import pytest
import torch
from torch import nn

from edgefit.data import (
    TrainConfig,
    evaluate,
    load_dataset,
    load_digits,
    load_npz,
    load_weights_,
    save_weights,
    train,
)
from edgefit.errors import ConfigError, DataError


def test_digits_fixed_stratified_split():
    d = load_digits()
    assert d.x_train.shape == (1437, 1, 8, 8) and d.x_test.shape == (360, 1, 8, 8)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    counts = np.bincount(d.y_test)
    assert counts.sum() == 360 and np.abs(counts - 36).max() <= 1  # stratified: 35-37 per class
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    again = load_digits()
    assert np.array_equal(d.x_test, again.x_test) and np.array_equal(d.y_train, again.y_train)


def _npz(tmp_path, **arrays):
    p = tmp_path / "d.npz"
    np.savez(p, **arrays)
    return p


def test_npz_dataset_ok(tmp_path):
    rng = np.random.default_rng(0)
    p = _npz(tmp_path, x_train=rng.random((20, 4)), y_train=rng.integers(0, 3, 20),
             x_test=rng.random((5, 4)), y_test=np.array([0, 1, 2, 1, 0]))
    d = load_dataset(str(p))
    assert d.sample_shape == (4,) and d.num_classes == 3 and d.x_train.dtype == np.float32


@pytest.mark.parametrize(
    "arrays, msg",
    [
        (dict(x_train=np.zeros((3, 2)), y_train=np.zeros(3, int), x_test=np.zeros((2, 2))), "missing"),
        (dict(x_train=np.zeros((3, 2)), y_train=np.zeros(4, int), x_test=np.zeros((2, 2)), y_test=np.zeros(2, int)), "samples"),
        (dict(x_train=np.zeros((3, 2)), y_train=np.zeros(3, int), x_test=np.zeros((2, 5)), y_test=np.zeros(2, int)), "shape"),
        (dict(x_train=np.zeros((3, 2)), y_train=np.array([0.5, 1, 2]), x_test=np.zeros((2, 2)), y_test=np.zeros(2, int)), "integer"),
        (dict(x_train=np.zeros((3, 2)), y_train=np.array([-1, 1, 2]), x_test=np.zeros((2, 2)), y_test=np.zeros(2, int)), "negative"),
        (dict(x_train=np.array([{}, {}, {}], dtype=object), y_train=np.zeros(3, int), x_test=np.zeros((2, 2)), y_test=np.zeros(2, int)), "pickle"),
    ],
)
def test_npz_dataset_errors(tmp_path, arrays, msg):
    with pytest.raises(DataError, match=msg):
        load_npz(_npz(tmp_path, **arrays))


def test_unknown_dataset_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="digits"):
        load_dataset("digitz")
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "nope.npz")
    garbled = tmp_path / "garbled.npz"
    garbled.write_bytes(b"not a zip archive\n")
    with pytest.raises(DataError, match="not an .npz file"):
        load_npz(garbled)


def _small():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def test_training_is_deterministic_and_learns():
    d = load_digits()
    a, b = _small(), _small()
    train(a, d, TrainConfig(epochs=3, lr=1e-2))
    train(b, d, TrainConfig(epochs=3, lr=1e-2))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert evaluate(a, d) > 0.85


def test_masks_hold_pruned_weights_at_zero():
    d = load_digits()
    m = _small()
    mask = torch.rand(32, 64, generator=torch.Generator().manual_seed(1)) > 0.7
    train(m, d, TrainConfig(epochs=1), masks={"1.weight": mask})
    assert torch.all(m[1].weight[~mask] == 0) and torch.all(m[1].weight[mask] != 0)


def test_train_config_validation():
    for bad in (dict(epochs=-1), dict(lr=0), dict(batch_size=0), dict(optimizer="lbfgs"), dict(threads=0)):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)


def test_weights_round_trip_and_mismatch(tmp_path):
    m = _small()
    p = save_weights(m, tmp_path / "w.safetensors", metadata={"model": "x"})
    other = _small()
    with torch.no_grad():
        other[1].weight.zero_()
    load_weights_(other, p)
    assert torch.equal(other[1].weight, m[1].weight)
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    with pytest.raises(DataError, match="does not match"):
        load_weights_(wrong, p)
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(DataError):
        load_weights_(m, tmp_path / "bad.safetensors")


def test_model_that_does_not_fit_the_data():
    d = load_digits()
    with pytest.raises(DataError, match="does not accept"):
        train(nn.Linear(10, 10), d, TrainConfig(epochs=1))
