"""AlexNet per layer exactly as in reference/001 (bias ignored, batch 1).

Slide typos (see shared/reference/INDEX.md): 000 prints conv1 params as 24,848
(96x3x11x11 = 34,848) and conv2 MACs as 228,948,800 (223,948,800); 001's conv5
MACs is garbled (000 has 74,760,192).
"""

import pytest

import edgefit
from edgefit.report import profile_table
from edgefit.zoo import create

# (layer, output C x H x W, params without bias, MACs, activations)
SLIDES = [
    ("features.0", (96, 55, 55), 96 * 3 * 11 * 11, 105_415_200, 290_400),
    ("features.2", (96, 27, 27), 0, 0, 69_984),
    ("features.3", (256, 27, 27), 256 * 96 * 5 * 5 // 2, 223_948_800, 186_624),
    ("features.5", (256, 13, 13), 0, 0, 43_264),
    ("features.6", (384, 13, 13), 884_736, 149_520_384, 64_896),
    ("features.8", (384, 13, 13), 663_552, 112_140_288, 64_896),
    ("features.10", (256, 13, 13), 442_368, 74_760_192, 43_264),
    ("features.12", (256, 6, 6), 0, 0, 9_216),
    ("classifier.1", (4096,), 37_748_736, 37_748_736, 4_096),
    ("classifier.4", (4096,), 16_777_216, 16_777_216, 4_096),
    ("classifier.6", (1000,), 4_096_000, 4_096_000, 1_000),
]


@pytest.fixture(scope="module")
def alexnet_profile():
    return edgefit.profile(create("alexnet", device="meta"), input_shape=(1, 3, 224, 224))


@pytest.mark.parametrize("name,shape,params,macs,acts", SLIDES)
def test_alexnet_layer_matches_slides(alexnet_profile, name, shape, params, macs, acts):
    row = alexnet_profile.layer(name)
    assert row.output_shape[1:] == shape
    assert row.params_without_bias == params
    assert row.macs == macs
    assert row.flops == 2 * macs
    assert row.activations == acts


def test_alexnet_totals_match_slides(alexnet_profile):
    t = alexnet_profile.totals
    assert t.params_without_bias == 60_954_656
    assert t.macs == 724_406_816
    assert t.flops == 1_448_813_632  # "1.4G FLOPs"
    assert t.activations == 932_264
    assert t.peak_activations == 440_928 == 150_528 + 290_400
    assert t.peak_activations_layer == "features.0"
    # fp32 model size: 60,954,656 x 4 bytes without bias (slides print "224MB"/"228 MB": a typo)
    no_bias = edgefit.profile(create("alexnet", bias=False, device="meta"), input_shape=(1, 3, 224, 224))
    assert no_bias.totals.model_size_bytes == 60_954_656 * 4 == 243_818_624
    int8 = edgefit.profile(create("alexnet", bias=False, device="meta"), input_shape=(1, 3, 224, 224), bits=8)
    assert int8.totals.model_size_bytes == 60_954_656
    assert alexnet_profile.uncounted == {} and alexnet_profile.coverage == 1.0


def test_alexnet_hidden_rows_still_counted(alexnet_profile):
    relu = alexnet_profile.layer("features.1")
    assert relu.macs == 0 and relu.activations == 0 and relu.other_ops == 96 * 55 * 55
    names = lambda text: {line.split()[0] for line in text.splitlines() if line.strip()}  # noqa: E731
    assert "features.1" not in names(profile_table(alexnet_profile))
    assert "features.1" in names(profile_table(alexnet_profile, all_layers=True))
