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
    evaluate_mapping,
    get_dataflow,
    map_layer,
)
from edgefit.accel.layers import ConvLayer
from edgefit.errors import ConfigError, RegistryError

# 1 image, 1 channel 4x4, one 3x3 filter: E = F = 2, 36 MACs, 4 outputs, 16 ifmap values, 9 weights.
# The array: 3x3 PEs, 32-word RF, 512-word buffer. Counts follow Chen et al., ISCA 2016 (see dataflow.py).
TINY = ConvLayer("tiny", n=1, c=1, h=4, w=4, m=1, r=3, s=3)
ARCH = SpatialArch(3, 3, rf_bytes=64, buffer_bytes=1024)
MAPPINGS = {
    "ws": {"r": 1, "t": 1, "f": 2},
    "osa": {"n": 1, "e": 2, "f": 2, "m": 1},
    "osb": {"n": 1, "p": 1, "f": 2, "m": 1},
    "osc": {"n": 1, "p": 1, "m": 1},
    "nlr": {"n": 1, "q": 1, "e": 2, "f": 2, "m": 1, "p": 1},
    "rs": {"q": 1, "f": 2, "r": 1, "t": 1, "n": 1, "m": 1, "p": 1},
}


def _acc(dataflow, arch=ARCH):
    return evaluate_mapping(TINY, arch, dataflow, MAPPINGS[dataflow]).accesses


def test_tiny_layer_shape():
    assert (TINY.e, TINY.f, TINY.macs, TINY.ofmap_elements) == (2, 2, 36, 4)


def test_every_dataflow_writes_each_output_once_and_reads_each_weight_once_here():
    for df in MAPPINGS:
        a = _acc(df, ARCH.with_rf(0) if df == "nlr" else ARCH)
        assert a["alu"] == {"mac": 36}
        assert (a["dram"]["weight"], a["dram"]["psum"]) == (9, 4), df


def test_ws_hand_counts():
    # the 9 weights sit in the 9 PEs (RF read per MAC); every MAC's ifmap is broadcast over the
    # array straight from DRAM (whole rows fetched: 16 reads); a psum hops along its filter row
    # (2 hops x 3 rows per output) but meets the other 2 filter rows through the buffer:
    # b = R = 3 rounds, 2a(b - 1) = 4 buffer accesses per output
    a = _acc("ws")
    assert a["rf"] == {"ifmap": 0, "weight": 36, "psum": 0}
    assert a["array"] == {"ifmap": 36, "weight": 0, "psum": 4 * 6}
    assert a["buffer"] == {"ifmap": 0, "weight": 0, "psum": 4 * 4}
    assert a["dram"]["ifmap"] == 16


def test_ws_must_spill_partial_sums_across_filter_rows():
    # even with the whole filter on the array, WS sends each psum through the buffer between
    # filter rows: every WS mapping of TINY has 2 x 4 x (3 - 1) buffer psum accesses
    assert map_layer(TINY, ARCH, "ws").accesses["buffer"]["psum"] == 16
    # two channels: with both on the array (r = 2, 18 PEs) the rounds stay R = 3 ...
    two = ConvLayer("c2", n=1, c=2, h=4, w=4, m=1, r=3, s=3)
    big = SpatialArch(3, 6, rf_bytes=64, buffer_bytes=1024)
    assert evaluate_mapping(two, big, "ws", {"r": 2, "t": 1, "f": 2}).accesses["buffer"]["psum"] == 2 * 4 * 2
    # ... with one channel at a time they double: b = R x ceil(C / r) = 6
    assert evaluate_mapping(two, big, "ws", {"r": 1, "t": 1, "f": 2}).accesses["buffer"]["psum"] == 2 * 4 * 5
    # a 1 x 3 filter has one row: its psums never leave the array
    row = ConvLayer("row", n=1, c=1, h=1, w=4, m=1, r=1, s=3)
    assert map_layer(row, ARCH, "ws").accesses["buffer"]["psum"] == 0


def test_a_remainder_costs_a_whole_pass():
    # three channels, two on the array at a time: ceil(3 / 2) = 2 channel passes
    three = ConvLayer("c3", n=1, c=3, h=4, w=4, m=1, r=3, s=3)
    ws = evaluate_mapping(three, SpatialArch(3, 6, 64, 1024), "ws", {"r": 2, "t": 1, "f": 2}).accesses
    # WS: b = R x 2 = 6 buffer rounds per output, the other 27 - 6 accumulations in the array
    assert (ws["buffer"]["psum"], ws["array"]["psum"]) == (2 * 4 * 5, 4 * 21)
    rs = evaluate_mapping(three, ARCH, "rs", {**MAPPINGS["rs"], "q": 2}).accesses
    # RS: 2 channels per PE, so ceil(3 / 2) x R = 6 array deliveries per output and 2 buffer rounds
    assert (rs["rf"]["psum"], rs["array"]["psum"], rs["buffer"]["psum"]) == (2 * 4 * 21, 4 * 4, 2 * 4 * 1)


def test_osa_hand_counts():
    # 4 PEs hold the 2x2 outputs (RF: 2 x 8 psum accesses each); the 4x4 ifmap tile is read once
    # from the buffer and forwarded between PEs (36 array deliveries); each weight is read once
    # from the buffer and broadcast to the 4 PEs
    a = _acc("osa")
    assert a["rf"] == {"ifmap": 0, "weight": 0, "psum": 4 * 2 * 8}
    assert a["array"] == {"ifmap": 36, "weight": 36, "psum": 0}
    assert a["buffer"] == {"ifmap": 16, "weight": 9, "psum": 0}
    assert a["dram"]["ifmap"] == 16


def test_osb_hand_counts():
    # 2 PEs make one output row; the buffer holds one band of R = 3 ifmap rows, so the two output
    # rows fetch rows 0-2 and 1-3 (24 values, from DRAM and from the buffer) and read the weights
    # once per output row (18)
    a = _acc("osb")
    assert a["buffer"] == {"ifmap": 24, "weight": 18, "psum": 0}
    assert a["array"] == {"ifmap": 36, "weight": 36, "psum": 0}
    assert a["dram"]["ifmap"] == 24


def test_osc_hand_counts():
    # one output at a time: its whole 3x3 window is fetched (4 x 9 = 36) and the 9 weights are
    # read from the buffer for each of the 4 outputs
    a = _acc("osc")
    assert a["buffer"] == {"ifmap": 36, "weight": 36, "psum": 0}
    assert a["dram"]["ifmap"] == 36 and a["rf"]["psum"] == 64


def test_nlr_hand_counts():
    # no RF: every weight read comes from the buffer (36), every window from the buffer (36);
    # an output's 9 MACs go through the buffer: 2a(b - 1) = 2 x 8 accesses per output
    a = _acc("nlr", ARCH.with_rf(0))
    assert a["rf"] == {"ifmap": 0, "weight": 0, "psum": 0}
    assert a["array"] == {"ifmap": 36, "weight": 0, "psum": 0}
    assert a["buffer"] == {"ifmap": 36, "weight": 36, "psum": 4 * 2 * 8}


def test_rs_hand_counts():
    # PE set 3 rows x 2 columns: a filter row (3 weights) reused over 2 outputs in the RF and
    # sent horizontally to the 2 PEs of its row (9 x 2 = 18); ifmap rows delivered diagonally
    # (16 x 3 x 2/4 = 24); psums accumulate 3 MACs in the RF (2abc(d - 1) = 12 per output), then
    # over the 3 PEs vertically (ab(c - 1) = 2 per output); weights go from DRAM to the array
    a = _acc("rs")
    assert a["rf"] == {"ifmap": 36, "weight": 36, "psum": 48}
    assert a["array"] == {"ifmap": 24, "weight": 18, "psum": 8}
    assert a["buffer"] == {"ifmap": 16, "weight": 0, "psum": 0}
    assert a["dram"] == {"ifmap": 16, "weight": 9, "psum": 4}


def test_energy_is_accesses_times_costs():
    r = evaluate_mapping(TINY, ARCH, "rs", MAPPINGS["rs"])
    # ALU 36 + RF 120 x 1 + array 50 x 2 + buffer 16 x 6 + DRAM 29 x 200
    assert r.by_level() == {"alu": 36, "rf": 120, "array": 100, "buffer": 96, "dram": 5800}
    assert r.total == 36 + 120 + 100 + 96 + 5800
    ws = evaluate_mapping(TINY, ARCH, "ws", MAPPINGS["ws"])
    assert ws.by_level() == {"alu": 36, "rf": 36, "array": 60 * 2, "buffer": 16 * 6, "dram": 29 * 200}


def test_search_finds_at_most_the_hand_mapping_energy():
    for df, params in MAPPINGS.items():
        arch = ARCH.with_rf(0) if df == "nlr" else ARCH
        assert map_layer(TINY, arch, df).total <= evaluate_mapping(TINY, arch, df, params).total
    assert map_layer(TINY, ARCH, "rs").total == 36 + 120 + 100 + 96 + 5800


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
    # WS keeps the 4 outputs in the buffer while the filter rows meet: 3 words are too few
    with pytest.raises(NoMappingError, match="no WS mapping"):
        map_layer(TINY, SpatialArch(3, 3, 64, 6), "ws")


def test_unknown_dataflow():
    with pytest.raises(RegistryError, match="unknown dataflow 'xs'.*Did you mean"):
        get_dataflow("xs")


def test_bad_mapping_params():
    with pytest.raises(NoMappingError):
        evaluate_mapping(TINY, ARCH, "rs", {"p": 7})
    with pytest.raises(NoMappingError):
        evaluate_mapping(TINY, ARCH, "rs", {**MAPPINGS["rs"], "f": 3})   # R x f = 9 PEs, but F = 2


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
    # 65 nm area: 512 B RF 20.87 um^2/B, buffers 12.70 um^2/B, 2 B RF 103.47 um^2/B
    p = paper_array()
    area = 256 * 512 * 20.87 + 131072 * 12.70
    assert p.storage_area_um2 == pytest.approx(area)
    assert p.with_rf(0).buffer_bytes == int(area / 12.70) == 346_463
    assert p.with_rf(2).buffer_bytes == int((area - 256 * 2 * 103.47) / 12.70) == 342_292
    assert p.with_rf(512) == p
    with pytest.raises(ConfigError, match="storage area"):
        p.with_rf(4096)


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
