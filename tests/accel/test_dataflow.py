"""Access counts of a tiny layer, derived by hand for each dataflow, and the bad-input errors."""

import pytest

from edgefit.accel.arch import (
    Costs,
    SpatialArch,
    eyeriss_chip,
    paper_array,
    parse_array,
    parse_bytes,
)
from edgefit.accel.dataflow import (
    NoMappingError,
    Tile,
    dram_accesses,
    evaluate_mapping,
    get_dataflow,
    map_layer,
)
from edgefit.accel.layers import ConvLayer
from edgefit.errors import ConfigError, RegistryError

# 1 image, 1 channel 4x4, one 3x3 filter: E = F = 2, 36 MACs, 4 outputs, 16 + 9 unique inputs.
TINY = ConvLayer("tiny", n=1, c=1, h=4, w=4, m=1, r=3, s=3)
ARCH = SpatialArch(3, 3, rf_bytes=64, buffer_bytes=1024)
FULL = Tile(1, 1, 1, 2)


def _acc(dataflow, params, arch=ARCH):
    return evaluate_mapping(TINY, arch, dataflow, FULL, params).accesses


def test_tiny_layer_shape():
    assert (TINY.e, TINY.f, TINY.macs, TINY.ofmap_elements) == (2, 2, 36, 4)


def test_dram_whole_layer_in_buffer():
    # every value crosses DRAM once: 16 ifmap reads, 9 weight reads, 4 output writes
    assert dram_accesses(TINY, FULL) == {"ifmap": 16, "weight": 9, "psum": 4}


def test_dram_row_tiles_refetch_the_halo_and_loop_order_decides_weight_refetch():
    # two row tiles of one output row each: rows 0-2 and 1-3 -> 2 halo rows re-read (R - U = 2)
    assert dram_accesses(TINY, Tile(1, 1, 1, 1, order="nmce")) == {"ifmap": 24, "weight": 9, "psum": 4}
    # with the row loop outermost the weights are fetched once per row tile
    assert dram_accesses(TINY, Tile(1, 1, 1, 1, order="encm"))["weight"] == 18


def test_nlr_hand_counts():
    # no RF: every operand comes over the array; an output's 9 MACs go through the buffer:
    # 2a(b - 1) = 2 x 8 accesses per output (a = 1, b = 9, c = d = 1)
    a = _acc("nlr", {"p_m": 1, "p_c": 1}, ARCH.with_rf(0))
    assert a["rf"] == {"ifmap": 0, "weight": 0, "psum": 0}
    assert a["array"] == {"ifmap": 36, "weight": 36, "psum": 0}
    assert a["buffer"] == {"ifmap": 36, "weight": 36, "psum": 4 * 2 * 8}


def test_ws_hand_counts():
    # 9 PEs hold the 9 weights; each weight serves the 4 outputs; a pixel delivered once
    # serves the whole plane (9 uses); psums hop through the 9 PEs: ab(c - 1) = 8 per output
    a = _acc("ws", {"p_k": 9, "p_m": 1, "p_c": 1})
    assert a["rf"] == {"ifmap": 0, "weight": 36, "psum": 0}
    assert a["array"] == {"ifmap": 36, "weight": 9, "psum": 4 * 8}
    assert a["buffer"] == {"ifmap": 4, "weight": 9, "psum": 0}


def test_os_hand_counts():
    # 4 PEs hold the 2x2 outputs; the 4x4 ifmap block serves 4 x 9 uses (reuse 36/16);
    # a weight is broadcast to the 4 PEs; psums stay in the RF for all 9 MACs: 2(d - 1) = 16
    a = _acc("os", {"p_m": 1, "p_e": 2, "p_f": 2})
    assert a["rf"] == {"ifmap": 0, "weight": 0, "psum": 4 * 16}
    assert a["array"] == {"ifmap": 36, "weight": 36, "psum": 0}
    assert a["buffer"] == {"ifmap": 16, "weight": 9, "psum": 0}


def test_rs_hand_counts():
    # PE set 3 rows x 2 columns: a filter row (3 weights) reused over 2 outputs in the RF,
    # an ifmap row of 4 serves 6 uses (1.5), ifmap rows shared diagonally (6 uses / 4 rows),
    # weights horizontally (2 PEs), psums accumulate 3 MACs in the RF (2abc(d - 1) = 12 per
    # output) then over 3 PEs vertically (ab(c - 1) = 2 per output)
    a = _acc("rs", {"p": 1, "q": 1, "e_set": 2, "t_m": 1, "t_c": 1})
    assert a["rf"] == {"ifmap": 36, "weight": 36, "psum": 48}
    assert a["array"] == {"ifmap": 24, "weight": 18, "psum": 8}
    assert a["buffer"] == {"ifmap": 16, "weight": 9, "psum": 0}


def test_energy_is_accesses_times_costs():
    r = evaluate_mapping(TINY, ARCH, "rs", FULL, {"p": 1, "q": 1, "e_set": 2, "t_m": 1, "t_c": 1})
    # ALU 36 + RF 120 x 1 + array 50 x 2 + buffer 25 x 6 + DRAM 29 x 200
    assert r.total == 36 + 120 + 50 * 2 + 25 * 6 + 29 * 200
    assert r.by_level() == {"alu": 36, "rf": 120, "array": 100, "buffer": 150, "dram": 5800}


def test_search_finds_at_most_the_hand_mapping_energy():
    for df, params, arch in [("rs", {"p": 1, "q": 1, "e_set": 2, "t_m": 1, "t_c": 1}, ARCH),
                             ("ws", {"p_k": 9, "p_m": 1, "p_c": 1}, ARCH),
                             ("os", {"p_m": 1, "p_e": 2, "p_f": 2}, ARCH),
                             ("nlr", {"p_m": 1, "p_c": 1}, ARCH.with_rf(0))]:
        best = map_layer(TINY, arch, df)
        assert best.total <= evaluate_mapping(TINY, arch, df, FULL, params).total
    assert map_layer(TINY, ARCH, "rs").total == 36 + 120 + 100 + 150 + 5800


def test_partial_sums_through_dram():
    # two channels, one per buffer tile, channel loop outermost: each output goes to DRAM twice
    # (a = 2: 2a - 1 = 3 accesses) and the buffer no longer sees the accumulation across channels
    layer = ConvLayer("c2", n=1, c=2, h=4, w=4, m=1, r=3, s=3)
    r = evaluate_mapping(layer, ARCH, "os", Tile(1, 1, 1, 2, order="cnme"), {"p_m": 1, "p_e": 2, "p_f": 2})
    assert r.accesses["dram"]["psum"] == 4 * 3
    assert r.accesses["rf"]["psum"] == 4 * 2 * 2 * 8    # 2abc(d - 1) with a = 2, b = c = 1, d = 9
    assert r.accesses["buffer"]["psum"] == 0


def test_grouped_layer_counts_every_group():
    one = map_layer(ConvLayer("g", n=1, c=2, h=4, w=4, m=2, r=3, s=3), ARCH, "rs")
    two = map_layer(ConvLayer("g", n=1, c=2, h=4, w=4, m=4, r=3, s=3, groups=2), ARCH, "rs")
    assert two.accesses["alu"]["mac"] == 2 * one.accesses["alu"]["mac"]
    assert two.total == pytest.approx(2 * one.total)


def test_batch_raises_weight_reuse_in_rs():
    per_mac = [map_layer(TINY.with_batch(n), ARCH, "rs").accesses["dram"]["weight"] / (36 * n) for n in (1, 4)]
    assert per_mac == [9 / 36, 9 / 144]


def test_array_too_small_for_rs():
    with pytest.raises(NoMappingError, match="no RS mapping fits 2x2 PEs"):
        map_layer(TINY, SpatialArch(2, 2, 64, 1024), "rs")


def test_buffer_too_small():
    with pytest.raises(NoMappingError, match="no WS mapping"):
        map_layer(TINY, SpatialArch(3, 3, 64, 8), "ws")


def test_unknown_dataflow():
    with pytest.raises(RegistryError, match="unknown dataflow 'xs'.*Did you mean"):
        get_dataflow("xs")


def test_bad_mapping_params():
    with pytest.raises(NoMappingError):
        evaluate_mapping(TINY, ARCH, "rs", FULL, {"p": 7})


def test_arrays_from_data():
    e = eyeriss_chip()
    assert (e.pes, e.buffer_bytes, e.word_bits, e.clock_hz) == (168, 108 * 1024, 16, 200e6)
    from edgefit.hardware import get_device

    assert e.dram_bytes_per_s == get_device("eyeriss").bandwidth_bytes_per_s  # one source of truth
    p = paper_array()
    assert (p.pes, p.rf_bytes, p.buffer_bytes) == (256, 512, 128 * 1024)
    assert (p.costs.alu, p.costs.rf, p.costs.array, p.costs.buffer, p.costs.dram) == (1, 1, 2, 6, 200)
    assert all("ISCA 2016" in src for _, src in p.costs.sources)


def test_equal_area_split():
    p = paper_array().with_rf(4)
    assert (p.rf_bytes, p.buffer_bytes) == (4, 256 * 512 + 128 * 1024 - 256 * 4)


def test_parsers_and_validation():
    assert parse_bytes("108kB") == 108000 and parse_bytes("1MiB") == 2**20
    assert parse_array("12x14") == (12, 14) and parse_array("168") == (1, 168)
    for bad in ("12 apples", "-3B"):
        with pytest.raises(ConfigError):
            parse_bytes(bad)
    with pytest.raises(ConfigError):
        parse_array("0x4")
    with pytest.raises(ConfigError):
        SpatialArch(0, 4, 512, 1024)
    with pytest.raises(ConfigError):
        Costs(dram=-1)
    with pytest.raises(ConfigError, match="does not fit"):
        ConvLayer("x", n=1, c=1, h=2, w=2, m=1, r=3, s=3)
