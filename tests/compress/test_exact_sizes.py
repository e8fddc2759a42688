"""Every byte and bit count edgefit reports, derived by hand for one tiny layer.

The layer (16 weights, 2x8) keeps 4: 0.5 at flat positions 1, 9, 15 and -1.0 at 8.

Relative index, 2 bits (M = 3, code 3 = filler zero): gaps from position -1 are
2, 7, 1, 6 -> codes  1 | 3 3 0 | 0 | 3 2  (7 entries, 3 fillers).
Codebook [-1.0, 0.5]: weight codes 1 0 1 1 at 1 bit -> 1011 0000 = 0xB0.
Index packed at 2 bits: 01 11 11 00 00 11 10 (+00) = 0x7C 0x38.
Huffman of the weight codes (counts 1, 3): lengths [1, 1], 4 bits, 0xB0.
Huffman of the index codes (counts 2, 1, 1, 3): lengths [2, 3, 3, 1]; canonical
codes 3 -> 0, 0 -> 10, 1 -> 110, 2 -> 111; stream 110 0 0 10 10 0 111 = 13 bits
-> 1100 0101 0011 1(000) = 0xC5 0x38.
"""

import os

import numpy as np
import torch
from torch import nn

from edgefit.compress.encode import code_lengths, encode_tensor, relative_encode
from edgefit.compress.file import inspect_compressed, save_compressed
from edgefit.compress.pipeline import DeepCompressionResult
from edgefit.compress.report import build_report
from edgefit.data import ArrayDataset

FLAT = np.zeros(16, np.float32)
FLAT[[1, 9, 15]] = 0.5
FLAT[8] = -1.0
W = FLAT.reshape(2, 8)


def test_relative_index_and_fillers_by_hand():
    r = relative_encode(FLAT, 2)
    assert r.index.tolist() == [1, 3, 3, 0, 0, 3, 2]
    assert r.fillers == 3
    assert r.values.tolist() == [0.5, -1.0, 0.5, 0.5]


def test_huffman_code_lengths_by_hand():
    assert code_lengths(np.array([1, 0, 1, 1]), 2).tolist() == [1, 1]
    assert code_lengths(np.array([1, 3, 3, 0, 0, 3, 2]), 4).tolist() == [2, 3, 3, 1]


def test_segments_and_byte_counts_by_hand():
    sparse = encode_tensor("w", W, "sparse", index_bits=2)
    assert [s.size for s in sparse.segments] == [4 * 4, 2] and sparse.nbytes == 18
    assert sparse.segments[1].tolist() == [0x7C, 0x38]
    assert sparse.fields[:3] == [2, 4, 7]  # ib, nnz, index entries

    fixed = encode_tensor("w", W, "fixed", index_bits=2)
    assert [s.size for s in fixed.segments] == [2 * 4, 1, 2] and fixed.nbytes == 11
    assert fixed.segments[0].view("<f4").tolist() == [-1.0, 0.5]
    assert fixed.segments[1].tolist() == [0xB0] and fixed.segments[2].tolist() == [0x7C, 0x38]
    assert fixed.fields[:4] == [1, 2, 4, 7]  # b, ib, nnz, index entries

    huff = encode_tensor("w", W, "huff", index_bits=2)
    cb, wl, il, wbuf, ibuf = huff.segments
    assert wl.tolist() == [1, 1] and il.tolist() == [2, 3, 3, 1]
    assert wbuf.tolist() == [0xB0] and ibuf.tolist() == [0xC5, 0x38]
    assert huff.fields[:6] == [1, 2, 4, 7, 4, 13]  # b, ib, nnz, n_index, weight bits, index bits
    assert huff.nbytes == 8 + 2 + 4 + 1 + 2 == 17


def _model():
    m = nn.Sequential(nn.Linear(8, 2, bias=False))
    with torch.no_grad():
        m[0].weight.copy_(torch.from_numpy(W))
    return m


def test_file_size_is_safetensors_header_plus_payload(tmp_path):
    res = save_compressed(_model(), tmp_path / "m.efz", model_name=None, encoding="huff", index_bits=2)
    size = os.path.getsize(tmp_path / "m.efz")
    with open(tmp_path / "m.efz", "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
    # Huffman (17 B) loses to fixed widths (11 B) on a layer this small: the smaller is kept.
    assert res.entries["0.weight"][:2] == ("fixed", 11)
    assert res.file_bytes == size == 8 + header_len + 11
    assert res.header_bytes == 8 + header_len
    info = inspect_compressed(tmp_path / "m.efz")
    assert info["file_bytes"] == size and info["payload_bytes"] == 11
    assert info["tensors"][0]["kept"] == 4 / 16


def test_report_numbers_by_hand_and_ratios_from_disk(tmp_path):
    x = np.eye(8, dtype=np.float32)
    y = np.array([0, 1] * 4, dtype=np.int64)
    data = ArrayDataset("eye", x, y, x, y, 2)
    m = _model()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    result = DeepCompressionResult(m, state, state, {"dense": 0.5, "pruned": 0.5, "quantized": 0.5})
    wd = tmp_path / "stages"
    rep = build_report(result, data, model_name="tiny", output=tmp_path / "final.efz", index_bits=2, workdir=wd)
    (row,) = rep.layers
    assert (row.weights, row.kept, row.bits, row.index_bits) == (16, 0.25, 1, 2)
    assert row.fp32_bytes == 64
    assert row.csr_bytes == 4 * 4 + (4 + 3) * 4  # fp32 values, int32 column indices and row pointers
    assert row.bytes == {"P": 18, "P+Q": 11, "P+Q+H": 11}
    # Huffman did not pay off, so the "after Huffman" bits are the fixed widths (fillers included).
    assert row.huffman_weight_bits == 1.0 and row.huffman_index_bits == 2 * 7 / 4
    assert row.ratio("P") == 64 / 18
    dense = os.path.getsize(wd / "dense.safetensors")
    files = {"P": wd / "pruned.efz", "P+Q": wd / "quantized.efz", "P+Q+H": tmp_path / "final.efz"}
    assert rep.dense_file_bytes == dense
    for stage, path in files.items():
        size = os.path.getsize(path)
        assert rep.file_bytes[stage] == size
        assert rep.ratio(stage) == dense / size
        assert size == row.bytes[stage] + rep.other_bytes[stage] + rep.header_bytes[stage]
    # Accuracy of the model loaded back from the file: input e_i gives logits W[:, i]; argmax
    # (first on ties) predicts class 0 for i = 0..6 and 1 for i = 7; labels 0 1 0 1 ... -> 5 of 8.
    assert rep.accuracy["P+Q+H"] == 5 / 8 and rep.exact
