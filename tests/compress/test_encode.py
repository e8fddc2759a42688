import time

import numpy as np
import pytest

from edgefit.compress.encode import (
    code_lengths,
    csr_decode,
    csr_encode,
    huffman_decode,
    huffman_encode,
    pack_fixed,
    relative_decode,
    relative_encode,
    unpack_fixed,
)
from edgefit.errors import CompressedFileError


@pytest.mark.parametrize("n, alphabet, p", [(1, 1, 0.5), (7, 2, 0.5), (1000, 32, 0.3), (5000, 257, 0.05), (20000, 65536, 0.01)])
def test_huffman_round_trip_exact(n, alphabet, p):
    rng = np.random.default_rng(n)
    s = np.minimum(rng.geometric(p, n) - 1, alphabet - 1)
    lengths = code_lengths(s, alphabet)
    buf, nbits = huffman_encode(s, lengths)
    assert len(buf) == (nbits + 7) // 8
    assert np.array_equal(huffman_decode(buf, lengths, n, nbits), s)


def test_huffman_is_optimal_prefix_code():
    # Classic example: counts 45,13,12,16,9,5 -> lengths 1,3,3,3,4,4 (CLRS 16.3).
    s = np.repeat(np.arange(6), [45, 13, 12, 16, 9, 5])
    lengths = code_lengths(s, 6)
    assert lengths.tolist() == [1, 3, 3, 3, 4, 4]
    assert np.sum(2.0 ** -lengths.astype(float)) == 1.0  # complete code (Kraft equality)
    _, nbits = huffman_encode(s, lengths)
    assert nbits == 224


def test_huffman_decode_is_fast_for_lenet_sized_layers():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 32, 266_200) ** 2 // 32  # skewed 5-bit symbols
    lengths = code_lengths(s, 32)
    buf, nbits = huffman_encode(s, lengths)
    t = time.perf_counter()
    out = huffman_decode(buf, lengths, len(s), nbits)
    assert time.perf_counter() - t < 2.0
    assert np.array_equal(out, s)


def test_huffman_rejects_corrupt_tables_and_streams():
    with pytest.raises(CompressedFileError, match="Kraft"):
        huffman_decode(np.zeros(4, np.uint8), np.array([1, 1, 1], np.uint8), 3)
    s = np.array([0, 1, 2, 2, 2])
    lengths = code_lengths(s, 3)
    buf, nbits = huffman_encode(s, lengths)
    with pytest.raises(CompressedFileError):
        huffman_decode(buf, lengths, 50, nbits)


def test_relative_index_paper_example_with_filler():
    # Deep Compression Fig. 2 style: 3-bit relative index; a gap of 11 needs one filler.
    x = np.zeros(16, np.float32)
    x[[1, 4, 15]] = [3.4, 0.9, 1.7]
    r = relative_encode(x, 3)
    assert r.index.tolist() == [1, 2, 7, 3] and r.fillers == 1
    assert r.values.tolist() == pytest.approx([3.4, 0.9, 1.7])
    assert np.array_equal(relative_decode(r.index, r.values, 16, 3), x)


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("density", [0.0, 0.01, 0.1, 0.9, 1.0])
def test_relative_index_round_trip(bits, density):
    rng = np.random.default_rng(bits)
    x = (rng.normal(size=3000) * (rng.random(3000) < density)).astype(np.float32)
    r = relative_encode(x, bits)
    assert r.index.max(initial=0) < 2**bits
    out = relative_decode(r.index, r.values, x.size, bits)
    assert np.array_equal(out.view(np.int32), np.where(x == 0, 0, x).astype(np.float32).view(np.int32))


def test_relative_index_long_gap_only_fillers():
    x = np.zeros(100, np.float32)
    x[99] = 1.0
    r = relative_encode(x, 2)  # M = 3: 33 fillers then code 0
    assert r.fillers == 33 and r.index[-1] == 0
    assert np.array_equal(relative_decode(r.index, r.values, 100, 2), x)


def test_csr_round_trip():
    rng = np.random.default_rng(0)
    a = (rng.normal(size=(20, 30)) * (rng.random((20, 30)) < 0.1)).astype(np.float32)
    c = csr_encode(a)
    assert c.indptr[-1] == np.count_nonzero(a)
    assert np.array_equal(csr_decode(c), a)
    assert c.nbytes() == 8 * np.count_nonzero(a) + 4 * 21


@pytest.mark.parametrize("width", [1, 3, 5, 8, 13, 16])
def test_fixed_packing_round_trip(width):
    v = np.random.default_rng(width).integers(0, 2**width, 777)
    buf = pack_fixed(v, width)
    assert len(buf) == (777 * width + 7) // 8
    assert np.array_equal(unpack_fixed(buf, width, 777), v)
