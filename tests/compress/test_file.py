import json

import numpy as np
import pytest
import torch

from edgefit.compress import inspect_compressed, load_compressed, save_compressed
from edgefit.compress.prune import MagnitudeConfig, prune_
from edgefit.compress.quantize import KMeansConfig, LinearQuantConfig, quantize_
from edgefit.errors import (
    ChecksumError,
    CompressedFileError,
    ConfigError,
    DataError,
    EdgefitError,
    FormatVersionError,
)
from edgefit.zoo import create

NAME = "lenet_300_100_digits"


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) if t.dtype == torch.float32 else t


def _compressed(bits=4, sparsity=0.9, name=NAME):
    torch.manual_seed(0)
    m = create(name)
    prune_(m, MagnitudeConfig(sparsity=sparsity))
    quantize_(m, KMeansConfig(bits=bits))
    return m


@pytest.mark.parametrize("encoding", ["huff", "fixed", "sparse"])
@pytest.mark.parametrize("name", [NAME, "lenet5_digits"])
def test_round_trip_bit_exact(tmp_path, encoding, name):
    m = _compressed(name=name)
    res = save_compressed(m, tmp_path / "m.efz", model_name=name, encoding=encoding)
    assert res.file_bytes == (tmp_path / "m.efz").stat().st_size
    loaded = load_compressed(tmp_path / "m.efz")
    assert type(loaded) is type(m)
    for (k, a), (k2, b) in zip(m.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(_bits(a), _bits(b)), k
    assert res.uncompressed == {}


def test_round_trip_into_given_model_and_linear_quantized(tmp_path):
    torch.manual_seed(0)
    m = create(NAME)
    prune_(m, MagnitudeConfig(sparsity=0.5))
    quantize_(m, LinearQuantConfig(bits=8))
    save_compressed(m, tmp_path / "m.efz")  # no zoo name recorded
    with pytest.raises(ConfigError, match="model="):
        load_compressed(tmp_path / "m.efz")
    loaded = load_compressed(tmp_path / "m.efz", model=create(NAME))
    assert all(torch.equal(_bits(a), _bits(b)) for a, b in zip(m.state_dict().values(), loaded.state_dict().values(), strict=True))


def test_unquantized_dense_layers_are_reported_and_stored_plainly(tmp_path):
    torch.manual_seed(0)
    m = create(NAME)
    res = save_compressed(m, tmp_path / "m.efz", model_name=NAME)
    assert set(res.uncompressed) == {"classifier.0.weight", "classifier.2.weight", "classifier.4.weight"}
    assert all(enc == "raw" for enc, _, _ in res.entries.values())
    loaded = load_compressed(tmp_path / "m.efz")
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), loaded.state_dict().values(), strict=True))
    # pruned but not quantized: sparse fp32 values + relative indices
    prune_(m, MagnitudeConfig(sparsity=0.9))
    res = save_compressed(m, tmp_path / "p.efz", model_name=NAME)
    assert res.entries["classifier.0.weight"][0] == "sparse"
    assert "not quantized" in res.uncompressed["classifier.0.weight"]
    loaded = load_compressed(tmp_path / "p.efz")
    assert all(torch.equal(_bits(a), _bits(b)) for a, b in zip(m.state_dict().values(), loaded.state_dict().values(), strict=True))


def _write(path, payload, meta_text):
    from safetensors.numpy import save_file

    save_file({"payload": payload}, str(path), metadata={"efz": meta_text})


def _parts(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return f.get_tensor("payload"), json.loads(f.metadata()["efz"])


@pytest.fixture()
def efz(tmp_path):
    p = tmp_path / "m.efz"
    save_compressed(_compressed(), p, model_name=NAME)
    return p


def test_truncated_file(efz):
    data = efz.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 3):
        efz.write_bytes(data[:cut])
        with pytest.raises(CompressedFileError):
            load_compressed(efz)


def test_corrupted_payload_byte_is_a_checksum_error(efz):
    data = bytearray(efz.read_bytes())
    data[-20] ^= 0xFF
    efz.write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        load_compressed(efz)


def test_wrong_version(efz):
    payload, meta = _parts(efz)
    meta["v"] = 99
    _write(efz, payload, json.dumps(meta))
    with pytest.raises(FormatVersionError, match="99"):
        load_compressed(efz)


def test_decoded_weight_checksum_mismatch(efz):
    import zlib

    payload, meta = _parts(efz)
    meta["t"][0][-1] ^= 1  # the entry's CRC of the decoded weights
    meta["crc"] = zlib.crc32(payload.tobytes())
    _write(efz, payload, json.dumps(meta))
    with pytest.raises(ChecksumError, match="classifier.0.weight"):
        load_compressed(efz)


def test_inconsistent_stream_after_consistent_payload_crc(efz):
    import zlib

    payload, meta = _parts(efz)
    payload = payload.copy()
    # Scramble the first layer's Huffman index stream but fix up the payload CRC:
    # decoding must fail cleanly or the weight CRC must catch it.
    lengths = meta["t"][0][3]
    start = sum(lengths[:4])
    payload[start : start + lengths[4]] = np.random.default_rng(0).integers(0, 256, lengths[4], dtype=np.uint8)
    meta["crc"] = zlib.crc32(payload.tobytes())
    _write(efz, payload, json.dumps(meta))
    with pytest.raises(CompressedFileError):
        load_compressed(efz)


@pytest.mark.parametrize("mutate", ["not json", "no efz", "lengths", "garbage"])
def test_other_bad_files(tmp_path, efz, mutate):
    payload, meta = _parts(efz)
    if mutate == "not json":
        _write(efz, payload, "{not json")
    elif mutate == "no efz":
        from safetensors.numpy import save_file

        save_file({"w": np.zeros(3, np.float32)}, str(efz))
    elif mutate == "lengths":
        meta["t"][0][3][0] += 4
        _write(efz, payload, json.dumps(meta))
    else:
        efz.write_bytes(b"\x00" * 64)
    with pytest.raises(CompressedFileError):
        load_compressed(efz)


def test_missing_file_and_wrong_model(tmp_path, efz):
    with pytest.raises(CompressedFileError, match="does not exist"):
        load_compressed(tmp_path / "nope.efz")
    with pytest.raises(DataError, match="does not match"):
        load_compressed(efz, model=create("lenet5_digits"))


def test_inspect(efz):
    info = inspect_compressed(efz)
    assert info["model"] == NAME and info["format_version"] == 1
    assert info["file_bytes"] == efz.stat().st_size == info["payload_bytes"] + info["header_bytes"]
    w = next(t for t in info["tensors"] if t["name"] == "classifier.0.weight")
    assert w["encoding"] == "huff" and w["kept"] == pytest.approx(0.1, abs=1e-3) and w["codebook"] <= 16


def test_all_errors_are_edgefit_errors():
    for cls in (CompressedFileError, ChecksumError, FormatVersionError):
        assert issubclass(cls, EdgefitError)
