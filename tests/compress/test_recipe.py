"""The train -> compress -> report flow as a library call, once and over seeds."""

import pytest

from edgefit.compress.pipeline import DeepCompressionConfig
from edgefit.compress.recipe import run_recipe, run_recipe_seeds
from edgefit.data import load_digits
from edgefit.errors import ConfigError

TINY = DeepCompressionConfig(prune=0.9, bits=4, prune_steps=1, prune_epochs=0, prune_final_epochs=1,
                             finetune_epochs=0, cleanup=False)


@pytest.fixture(scope="module")
def data():
    return load_digits()


def test_run_recipe_writes_the_file_and_reports(data, tmp_path):
    out = tmp_path / "m.efz"
    rep = run_recipe("zoo:lenet_300_100_digits", data, TINY, dense_epochs=1, output=out)
    assert rep.model == "lenet_300_100_digits"
    assert rep.file_bytes["P+Q+H"] == out.stat().st_size
    assert rep.exact
    # 90% of each weight matrix pruned (no dead-neuron cleanup): 1,920 + 3,000 + 100 kept
    assert round(rep.kept * 50_200) == 5_020
    assert set(rep.accuracy) == {"dense", "P", "P+Q", "P+Q+H"}
    assert rep.accuracy["P+Q+H"] == rep.accuracy["P+Q"]  # Huffman coding is lossless
    assert rep.seed == 0 and "one run, seed 0" in rep.to_text()  # a single run says so


def test_same_seed_same_report(data):
    a = run_recipe("zoo:lenet_300_100_digits", data, TINY, dense_epochs=1)
    b = run_recipe("zoo:lenet_300_100_digits", data, TINY, dense_epochs=1)
    assert a.accuracy == b.accuracy and a.file_bytes == b.file_bytes


@pytest.mark.slow
def test_seeds_give_a_spread(data):
    runs = run_recipe_seeds("lenet_300_100_digits", data, TINY, seeds=(0, 1, 2), dense_epochs=1)
    assert runs.seeds == (0, 1, 2) and len(runs.reports) == 3
    dense = runs.accuracy("dense")
    assert dense.values == tuple(r.accuracy["dense"] for r in runs.reports)
    assert len(set(dense.values)) > 1  # different seeds, different initial weights
    drop = runs.drop_pp()
    assert drop.values == pytest.approx(
        [100 * (r.accuracy["P+Q+H"] - r.accuracy["dense"]) for r in runs.reports])
    assert runs.ratio().min <= runs.ratio().mean <= runs.ratio().max
    assert runs.exact


def test_fewer_than_three_seeds_is_an_error(data):
    with pytest.raises(ConfigError, match="at least 3 distinct seeds"):
        run_recipe_seeds("lenet_300_100_digits", data, TINY, seeds=(0, 1))
    with pytest.raises(ConfigError, match="at least 3 distinct seeds"):
        run_recipe_seeds("lenet_300_100_digits", data, TINY, seeds=(0, 0, 1))
