"""A dense digits LeNet-300-100 file and its Deep Compression file, made once (a few seconds)."""

import pytest
import torch


@pytest.fixture(scope="session")
def digits_pair(tmp_path_factory):
    from edgefit.compress.pipeline import DeepCompressionConfig, deep_compress
    from edgefit.compress.report import build_report
    from edgefit.data import TrainConfig, load_digits, save_weights, train
    from edgefit.zoo import create

    d = tmp_path_factory.mktemp("pair")
    data = load_digits()
    torch.manual_seed(0)
    net = create("lenet_300_100_digits")
    train(net, data, TrainConfig(epochs=2))
    dense = d / "dense.safetensors"
    save_weights(net, dense, metadata={"model": "lenet_300_100_digits"})
    cfg = DeepCompressionConfig(prune=0.9, bits=4, prune_steps=1, prune_epochs=0, prune_final_epochs=0,
                                finetune_epochs=0)
    rep = build_report(deep_compress(net, data, cfg), data, model_name="lenet_300_100_digits",
                       output=d / "small.efz")
    return dense, d / "small.efz", rep
