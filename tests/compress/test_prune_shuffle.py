"""Channel shuffles prune in coupled sets: hand-derived rows on tiny ShuffleNet units, and
ShuffleNet v1 at every group count pruned for real (smaller convs, exact output, exact MACs,
saved and loaded back)."""

import copy

import pytest
import torch
from tests.compress.test_prune_channel import zero_removed
from torch import nn

from edgefit.compress.prune import ChannelConfig, channel_groups, prune_, prune_groups_
from edgefit.compress.prune.saved import load_pruned, save_pruned
from edgefit.errors import ConfigError
from edgefit.metrics import profile
from edgefit.zoo import create
from edgefit.zoo.blocks import ShuffleUnit


def _unit(cin: int, cout: int, groups: int) -> nn.Module:
    torch.manual_seed(0)
    return ShuffleUnit(cin, cout, 1, groups).eval()


def test_rows_of_a_shuffle_are_coupled_sets():
    # g=2, mid=8: gconv1 blocks of n=4; the shuffle puts channel (b, j) at 2j+b, so row j is
    # gconv1 channels {j, 4+j} = positions {2j, 2j+1}, inside gconv2 block j // 2.
    u = _unit(32, 32, 2)
    g = channel_groups(u, torch.zeros(1, 32, 4, 4))
    grp = g["gconv1.0"]
    assert grp.width == 4 and grp.blocks.tolist() == [0, 0, 1, 1]
    assert grp.index[("gconv1.0", "out")].tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert grp.index[("dwconv.0", "out")].tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert grp.index[("gconv2.0", "in")].tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert not any(k.endswith("#kept") for k in g.unprunable)


def test_pruned_unit_keeps_the_hand_derived_channels():
    u = _unit(32, 32, 2)
    dense = copy.deepcopy(u)
    g = channel_groups(u, torch.zeros(1, 32, 4, 4))
    with pytest.raises(ConfigError, match="same number of kept channels"):
        prune_groups_(u, {"gconv1.0": [0, 1]}, groups=g)  # both rows in gconv2 block 0
    prune_groups_(u, {"gconv1.0": [1, 2]}, groups=g)
    # mid 8 -> 8 - 1 row per block x 2 channels x 2 blocks = 4, a valid ShuffleNet unit again
    assert (u.gconv1[0].out_channels, u.dwconv[0].groups, u.gconv2[0].in_channels) == (4, 4, 4)
    assert (u.gconv1[0].groups, u.gconv2[0].groups) == (2, 2)
    w1, w2 = dense.gconv1[0].weight, dense.gconv2[0].weight
    torch.testing.assert_close(u.gconv1[0].weight, w1[[1, 2, 5, 6]])
    torch.testing.assert_close(u.dwconv[0].weight, dense.dwconv[0].weight[[2, 3, 4, 5]])
    torch.testing.assert_close(u.gconv2[0].weight, torch.cat([w2[:16, [2, 3]], w2[16:, [0, 1]]]))
    x = torch.randn(2, 32, 4, 4)
    with torch.no_grad():
        for mod, idx in ((dense.gconv1, [0, 3, 4, 7]), (dense.dwconv, [0, 1, 6, 7])):
            mod[0].weight[idx] = 0
            mod[1].weight[idx] = 0
            mod[1].bias[idx] = 0
        torch.testing.assert_close(u(x), dense(x))


def test_rows_that_straddle_blocks_are_kept_whole():
    # g=2, mid=6 (n=3): row 1 = positions {2, 3} lies across gconv2's blocks {0,1,2} and {3,4,5}
    g = channel_groups(_unit(24, 24, 2), torch.zeros(1, 24, 4, 4))
    grp = g["gconv1.0"]
    assert grp.index[("gconv1.0", "out")].tolist() == [[0, 3], [2, 5]] and grp.blocks.tolist() == [0, 1]
    assert "straddle" in g.unprunable["gconv1.0#kept"]
    # g=3, mid=12 (n=4): rows 1 and 2 straddle, filling the blocks 1, 3, 2: no balance exists
    g3 = channel_groups(_unit(48, 48, 3), torch.zeros(1, 48, 4, 4))
    assert "gconv1.0" not in g3
    assert g3.unprunable["gconv1.0"] == "coupled channels straddle the blocks of grouped conv gconv2.0 unevenly"


def test_stage_of_shufflenet_g3_balances_the_blocks():
    # stage 3 at g=3: mid 120, n=40; rows 13 and 26 straddle and fill gconv2's blocks 1, 4, 1,
    # so one row each of blocks 0 and 2 joins them: 36 rows left, 12 per block.
    m = create("shufflenet_v1", num_classes=10)
    g = channel_groups(m, torch.zeros(1, 3, 64, 64))
    grp = g["stage3.1.gconv1.0"]
    assert grp.width == 36 and torch.bincount(grp.blocks).tolist() == [12, 12, 12]
    assert len(g) == 16 and set(g) == {f"stage{s}.{i}.gconv1.0" for s, n in ((2, 4), (3, 8), (4, 4)) for i in range(n)}


def _closed_form_macs(dense_profile, pruned: nn.Module) -> int:
    mods = dict(pruned.named_modules())
    total = 0
    for row in dense_profile.layers:
        m = mods.get(row.name)
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1]
            total += m.out_channels * (m.in_channels // m.groups) * k * row.output_shape[-1] * row.output_shape[-2]
        elif isinstance(m, nn.Linear):
            total += m.out_features * m.in_features
    return total


def _prune_and_check(groups_: int, ratio: float, tmp_path) -> None:
    torch.manual_seed(0)
    m = create("shufflenet_v1", groups=groups_, num_classes=10).eval()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_var.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.1, 0.1)
    x = torch.randn(2, 3, 64, 64)
    groups = channel_groups(m, x)
    dense, dense_p = copy.deepcopy(m), profile(m, input_shape=(1, 3, 64, 64))
    keep = prune_(m, ChannelConfig(ratio=ratio), groups=groups)
    zero_removed(dense, groups, keep)
    with torch.no_grad():
        torch.testing.assert_close(m(x), dense(x), atol=1e-4, rtol=1e-4)
    unit, before = m.stage3[1], dense.stage3[1]
    assert unit.gconv1[0].out_channels < before.gconv1[0].out_channels
    assert unit.gconv2[0].groups == groups_ and unit.dwconv[0].groups == unit.gconv1[0].out_channels
    p = profile(m, input_shape=(1, 3, 64, 64))
    assert sum(r.macs for r in p.layers if r.kind in ("Conv2d", "Linear")) == _closed_form_macs(dense_p, m)
    assert p.totals.macs < dense_p.totals.macs
    path = save_pruned(m, tmp_path / "s.safetensors", base="zoo:shufflenet_v1",
                       options={"groups": groups_, "num_classes": 10}, input_shape=(1, 3, 64, 64))
    loaded = load_pruned(path).model.eval()
    assert loaded.stage3[1].gconv2[0].groups == groups_
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), m(x))


@pytest.mark.slow
@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.7])
def test_shufflenet_g3_prunes_for_real(ratio, tmp_path):
    _prune_and_check(3, ratio, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("groups_", [1, 2, 4, 8])
def test_shufflenet_other_group_counts(groups_, tmp_path):
    _prune_and_check(groups_, 0.5, tmp_path)
