"""Bit-packed quantized layers in the .efz file: sizes, exact round trips, bad files."""

import json
import zlib

import numpy as np
import pytest
import torch

from edgefit.compress import inspect_compressed, load_compressed, save_compressed
from edgefit.compress.encode.container import decode_entry, encode_codes
from edgefit.compress.quantize import (
    BinaryConnectConfig,
    BWNConfig,
    FixedPointConfig,
    LinearQuantConfig,
    LogConfig,
    TTQConfig,
    TWNConfig,
    XNORConfig,
    quantize_,
)
from edgefit.errors import ChecksumError, CompressedFileError
from edgefit.zoo import create

NAME = "lenet_300_100_digits"  # 50,610 parameters, 50,200 weights
X = torch.from_numpy(np.random.default_rng(0).uniform(0, 16, (16, 1, 8, 8)).astype(np.float32))

CASES = [
    (BinaryConnectConfig(), 1, "lut"),
    (BWNConfig(), 1, "lut"),
    (XNORConfig(), 1, "lut"),
    (TWNConfig(), 2, "lut"),
    (TTQConfig(), 2, "lut"),
    (LogConfig(bits=4, act_bits=4), 4, "lut"),
    (FixedPointConfig(bits=8, act_bits=8), 8, "qlin"),
    (LinearQuantConfig(bits=4, per_channel=True), 4, "qlin"),
    (LinearQuantConfig(bits=8, act_bits=8), 8, "qlin"),
]


def _quantized(config):
    torch.manual_seed(0)
    m = create(NAME)
    quantize_(m, config, calibration=X)
    return m


@pytest.mark.parametrize("config,bits,encoding", CASES, ids=lambda c: type(c).__name__ if not isinstance(c, (int, str)) else str(c))
def test_round_trip_is_bit_exact_and_size_is_bits_over_32(tmp_path, config, bits, encoding):
    m = _quantized(config)
    res = save_compressed(m, tmp_path / "q.efz", model_name=NAME)
    enc, nbytes, fields = res.entries["classifier.0.weight"]
    assert enc == encoding and fields[0] == bits
    codes_bytes = 300 * 64 * bits // 8  # classifier.0 is 300 x 64
    assert codes_bytes <= nbytes <= codes_bytes + 300 * 16 + 4 * 2**bits  # + per-filter scales or one table
    loaded = load_compressed(tmp_path / "q.efz")
    for (k, a), b in zip(m.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a.view(torch.int32), b.view(torch.int32)), k
    with torch.no_grad():
        assert torch.equal(m(X), loaded(X))  # activation quantizers restored too
    assert inspect_compressed(tmp_path / "q.efz")["format_version"] == 2


def test_binary_file_is_about_32x_smaller(tmp_path):
    m = _quantized(BinaryConnectConfig())
    res = save_compressed(m, tmp_path / "b.efz", model_name=NAME)
    # 50,200 weight bits = 6,275 bytes + 410 fp32 biases + 8-byte level tables + header
    assert 6275 + 1640 < res.file_bytes < 6275 + 1640 + 1200
    assert 50610 * 4 / res.file_bytes > 20


def test_encode_codes_hand_example():
    e = encode_codes("w", np.array([[2, 1, 0]]), 2, levels=np.array([[-0.5, 0.0, 0.75]], np.float32))
    assert e.segments[0].tolist() == [0b10010000] and decode_entry(e.entry(), e.segments).tolist() == [[0.75, 0.0, -0.5]]
    e = encode_codes("b", np.array([3, 0]), 32, scale=np.array([0.5, 0.25]), zero_point=np.array([1, 1]))
    assert decode_entry(e.entry(), e.segments).tolist() == [1.0, -0.25]


def _parts(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return f.get_tensor("payload"), json.loads(f.metadata()["efz"])


def _write(path, payload, meta):
    from safetensors.numpy import save_file

    meta["crc"] = zlib.crc32(payload.tobytes())
    save_file({"payload": payload}, str(path), metadata={"efz": json.dumps(meta)})


@pytest.fixture()
def packed(tmp_path):
    p = tmp_path / "t.efz"
    save_compressed(_quantized(TTQConfig()), p, model_name=NAME)
    return p


def test_flipped_code_bit_is_a_checksum_error(packed):
    data = bytearray(packed.read_bytes())
    data[-50] ^= 0x01
    packed.write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        load_compressed(packed)


def test_code_outside_the_table_or_consistent_but_wrong_codes(packed):
    payload, meta = _parts(packed)
    entry = next(e for e in meta["t"] if e[0] == "classifier.0.weight")
    entry[6] = 2  # the level table claims 2 levels: its size no longer matches
    _write(packed, payload, meta)
    with pytest.raises(CompressedFileError):
        load_compressed(packed)
    payload, meta = _parts(packed)
    start = sum(sum(e[3]) for e in meta["t"][: [e[0] for e in meta["t"]].index("classifier.0.weight")])
    payload = payload.copy()
    payload[start] ^= 0xFF  # payload CRC recomputed: only the decoded-weight CRC can catch it
    entry = next(e for e in meta["t"] if e[0] == "classifier.0.weight")
    entry[6] = 3  # restored
    _write(packed, payload, meta)
    with pytest.raises((ChecksumError, CompressedFileError), match="classifier.0.weight"):
        load_compressed(packed)


def test_bad_activation_spec_and_unknown_layer(packed, tmp_path):
    m = _quantized(LogConfig(bits=4, act_bits=4))
    p = tmp_path / "a.efz"
    save_compressed(m, p, model_name=NAME)
    payload, meta = _parts(p)
    meta["q"]["classifier.0"]["a"] = {"kind": "nope"}
    _write(p, payload, meta)
    with pytest.raises(CompressedFileError, match="bad activation quantizer for 'classifier.0'"):
        load_compressed(p)
    payload, meta = _parts(p)
    meta["q"]["no.such"] = meta["q"].pop("classifier.0")
    _write(p, payload, meta)
    with pytest.raises(CompressedFileError, match="'no.such'"):
        load_compressed(p)


def test_version_1_files_still_written_and_read(tmp_path):
    from edgefit.compress.quantize import KMeansConfig

    torch.manual_seed(0)
    m = create(NAME)
    quantize_(m, KMeansConfig(bits=4))
    save_compressed(m, tmp_path / "k.efz", model_name=NAME)
    assert inspect_compressed(tmp_path / "k.efz")["format_version"] == 1
    load_compressed(tmp_path / "k.efz")
