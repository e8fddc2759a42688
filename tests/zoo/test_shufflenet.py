"""ShuffleNet v1 / v2 and the single-tower AlexNet against published tables."""

from __future__ import annotations

import pytest

from edgefit.errors import ModelSpecError
from edgefit.metrics import profile
from edgefit.zoo import create


def _counts(name: str, **options) -> tuple[int, int]:
    totals = profile(create(name, device="meta", **options), input_shape=(1, 3, 224, 224)).totals
    return totals.params, totals.macs


# reference/004 Table 5 (ShuffleNet vs MobileNet): the paper's "MFLOPs" are multiply-adds.
SHUFFLENET_V1_TABLE = [
    # (s, g, paper MFLOPs, exact MACs)
    (0.5, 4, 38, 37_468_832),
    (1.0, 8, 140, 138_365_952),  # the authors' code reports 138M for this row
    (1.5, 3, 292, 292_443_552),
    (2.0, 3, 524, 524_045_184),
]


@pytest.mark.parametrize(("width", "groups", "paper_mflops", "macs"), SHUFFLENET_V1_TABLE)
def test_shufflenet_v1_table(width, groups, paper_mflops, macs):
    _, counted = _counts("shufflenet_v1", width_mult=width, groups=groups)
    assert counted == macs
    # 1x g=8 is 138.4M exactly (140 in the slide, 138 in the authors' model list)
    assert abs(counted / 1e6 - paper_mflops) < 2.0


def test_shufflenet_v1_half_width_channels():
    # 0.5x scales every filter, the stem included: 24 -> 12, 272 -> 136 at g=4
    model = create("shufflenet_v1", width_mult=0.5, groups=4, device="meta")
    assert model.conv1[0].out_channels == 12
    assert [getattr(model, f"stage{i}")[0].gconv2[0].out_channels for i in (2, 3, 4)] == [
        136 - 12, 272 - 136, 544 - 272,
    ]
    # bottleneck 136 / 4 = 34, rounded up to a multiple of g=4 for the grouped conv
    assert model.stage2[1].gconv1[0].out_channels == 36


# torchvision shufflenet_v2_x0_5 ... x2_0: parameters and GFLOPS (multiply-adds);
# the paper's Table 8 complexity column: 41, 146, 299, 591 MFLOPs.
SHUFFLENET_V2_TABLE = [
    (0.5, 1_366_792, 0.04, 41, 40_476_448),
    (1.0, 2_278_604, 0.14, 146, 144_907_992),
    (1.5, 3_503_624, 0.30, 299, 295_759_392),
    (2.0, 7_393_996, 0.58, 591, 583_253_464),
]


@pytest.mark.parametrize(("width", "params", "gmacs", "paper_mflops", "macs"), SHUFFLENET_V2_TABLE)
def test_shufflenet_v2_family(width, params, gmacs, paper_mflops, macs):
    counted_params, counted_macs = _counts("shufflenet_v2", width_mult=width)
    assert counted_params == params
    assert counted_macs == macs
    assert round(counted_macs / 1e9, 2) == gmacs
    # the paper's counter lands 0.7-1.4 % above conv + linear multiply-adds
    assert 0.985 < counted_macs / (paper_mflops * 1e6) < 1.0


def test_shufflenet_v2_state_dict_matches_torchvision_names():
    keys = list(create("shufflenet_v2", width_mult=0.5, device="meta").state_dict())
    assert keys[:2] == ["conv1.0.weight", "conv1.1.weight"]
    assert "stage2.0.branch1.2.weight" in keys and "stage4.3.branch2.5.weight" in keys
    assert keys[-7:-2] == ["conv5.1.weight", "conv5.1.bias", "conv5.1.running_mean",
                           "conv5.1.running_var", "conv5.1.num_batches_tracked"]


def test_shufflenet_v2_unknown_width_is_one_line():
    with pytest.raises(ModelSpecError, match="width_mult=0.75"):
        create("shufflenet_v2", width_mult=0.75, device="meta")


def test_alexnet_single_tower():
    # torchvision alexnet: 61,100,840 parameters; 64*3*11^2*55^2 + 192*64*5^2*27^2
    # + 384*192*9*13^2 + 256*384*9*13^2 + 256*256*9*13^2 + 9216*4096 + 4096^2 + 4096*1000
    params, macs = _counts("alexnet", grouped=False)
    assert params == 61_100_840
    assert macs == (70_276_800 + 223_948_800 + 112_140_288 + 149_520_384 + 99_680_256
                    + 37_748_736 + 16_777_216 + 4_096_000) == 714_188_480


def test_alexnet_default_is_still_the_grouped_model():
    assert _counts("alexnet", bias=False) == (60_954_656, 724_406_816)
