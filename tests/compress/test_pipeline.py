"""A short real run: ratios per stage on disk and accuracy after each stage."""

import pytest
import torch

from edgefit.compress.pipeline import DeepCompressionConfig, deep_compress
from edgefit.compress.report import build_report
from edgefit.data import TrainConfig, load_digits, train
from edgefit.errors import ConfigError
from edgefit.zoo import create


@pytest.mark.slow
def test_short_deep_compression_run(tmp_path):
    data = load_digits()
    torch.manual_seed(0)
    m = create("lenet_300_100_digits")
    train(m, data, TrainConfig(epochs=15, lr=2e-3))
    cfg = DeepCompressionConfig(prune={"classifier.0": 0.9, "classifier.2": 0.95, "classifier.4": 0.7}, bits=4,
                                prune_steps=2, prune_epochs=4, prune_final_epochs=6, finetune_epochs=2)
    res = deep_compress(m, data, cfg)
    rep = build_report(res, data, model_name="lenet_300_100_digits", output=tmp_path / "m.efz")
    assert rep.exact
    assert rep.file_bytes["P+Q+H"] == (tmp_path / "m.efz").stat().st_size
    assert rep.ratio("P") > 5 and rep.ratio("P+Q") > 20 and rep.ratio("P+Q+H") > rep.ratio("P+Q")
    assert rep.ratio("P+Q+H") > 25
    assert rep.accuracy["dense"] > 0.95
    assert rep.accuracy["P+Q+H"] == rep.accuracy["P+Q"]  # Huffman coding is lossless
    assert rep.accuracy["P+Q+H"] >= rep.accuracy["dense"] - 0.02
    # totals are the real file: layers + plain tensors + header
    for s in ("P", "P+Q", "P+Q+H"):
        assert sum(r.bytes[s] for r in rep.layers) + rep.other_bytes[s] + rep.header_bytes[s] == rep.file_bytes[s]
    text, md, js = rep.to_text(), rep.to_markdown(), rep.to_json()
    assert "classifier.0" in text and "| classifier.0 |" in md and '"P+Q+H"' in js
    assert "40x" in text  # the paper's figure is printed beside


def test_recipe_validation(tmp_path):
    with pytest.raises(ConfigError):
        DeepCompressionConfig(prune=1.0)
    with pytest.raises(ConfigError):
        DeepCompressionConfig(bits={"x": 0})
    with pytest.raises(ConfigError, match="unknown recipe keys"):
        DeepCompressionConfig.from_dict({"prunez": 0.5})
    p = tmp_path / "r.yaml"
    p.write_text("prune:\n  classifier.0: 0.9\nbits: 3\n")
    cfg = DeepCompressionConfig.from_file(p)
    assert cfg.prune == {"classifier.0": 0.9} and cfg.bits == 3
