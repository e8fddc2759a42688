"""Device files: every built-in loads with a source for each number; bad files fail clearly."""

from __future__ import annotations

import pytest
import yaml

from edgefit.errors import DeviceError
from edgefit.hardware import get_device, list_devices, load_device_file
from edgefit.hardware.device import energy_preset

BUILTIN = [n for n in list_devices() if n != "host"]


def test_required_devices_present():
    for name in (
        "a100",
        "jetson_nano",
        "jetson_orin_nano",
        "edgetpu",
        "apple_m1_ane",
        "hexagon_npu",
        "raspberry_pi_4",
        "raspberry_pi_5",
        "stm32f746",
        "eyeriss",
        "host",
    ):
        assert name in list_devices()


@pytest.mark.parametrize("name", BUILTIN)
def test_every_number_has_a_source(name):
    dev = get_device(name)
    keys = [f"peak_ops_per_s.{p}" for p in dev.peak_ops_per_s]
    keys += [
        "bandwidth_bytes_per_s",
        "sram_bytes",
        "activation_ram_bytes",
        "weight_storage_bytes",
        "power_watts",
    ]
    keys += [f"energy.mac_pj.{p}" for p in dev.energy.mac_pj] + [
        f"energy.access_pj.{k}" for k in dev.energy.access_pj
    ]
    for key in keys:
        assert dev.source(key), f"{name}: {key} has no source"
    assert dev.power_watts and dev.ridge_point(dev.precisions[0]) > 0


def test_stm32_numbers():
    d = get_device("stm32f746")
    assert d.sram_bytes == 320 * 1024 and d.weight_storage_bytes == 1024 * 1024
    assert d.peak_ops_per_s["fp32"] == 432e6
    assert (
        get_device("STM32F746") is d and get_device("jetson-orin-nano").name == "jetson_orin_nano"
    )


def test_unknown_device_suggests():
    with pytest.raises(DeviceError, match="Did you mean: stm32f746"):
        get_device("stm32f74")


def _write(tmp_path, data):
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _good():
    return yaml.safe_load((__import__("pathlib").Path(get_device("stm32f746").path)).read_text())


def test_user_file_loads(tmp_path):
    data = _good()
    data["name"] = "mine"
    dev = get_device(str(_write(tmp_path, data)))
    assert dev.name == "mine" and dev.path.endswith("dev.yaml")


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d.pop("bandwidth_bytes_per_s"), "missing field bandwidth_bytes_per_s"),
        (lambda d: d["sram_bytes"].pop("source"), "sram_bytes has no source"),
        (
            lambda d: d["sram_bytes"].update(value=-5),
            "sram_bytes must be a positive number, got -5",
        ),
        (lambda d: d["sram_bytes"].update(value="lots"), "sram_bytes must be a number, got 'lots'"),
        (lambda d: d.update(sram_byte=d.pop("sram_bytes")), "missing field sram_bytes"),
        (lambda d: d.update(bandwith=1), "unknown field 'bandwith'"),
        (
            lambda d: d["peak_ops_per_s"].update(fp64={"value": 1, "source": "x"}),
            "unknown precision 'fp64'",
        ),
        (
            lambda d: d["energy"].update(weight_level="hbm"),
            "weight_level 'hbm' is not a memory level",
        ),
        (lambda d: d["energy"].update(table="7nm"), "unknown energy table '7nm'"),
        (lambda d: d.update(power_watts=3), "power_watts must be a mapping"),
    ],
)
def test_bad_files(tmp_path, mutate, message):
    data = _good()
    mutate(data)
    with pytest.raises(DeviceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_device_file(_write(tmp_path, data))


def test_not_yaml_and_missing(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(DeviceError, match="not valid YAML"):
        get_device(str(bad))
    with pytest.raises(DeviceError, match="does not exist"):
        get_device(str(tmp_path / "nope.yaml"))
    bad.write_text("- a list")
    with pytest.raises(DeviceError, match="must hold a mapping"):
        get_device(str(bad))


def test_45nm_table_is_the_lectures():
    # reference/001 and 003 (Horowitz, ISSCC 2014): a MAC is one multiply plus one add.
    mac, add, access, sources = energy_preset("45nm")
    assert (
        mac["fp32"] == 4.6 and mac["fp16"] == 1.5 and mac["int8"] == 0.23
    )  # 3.7+0.9, 1.1+0.4, 0.2+0.03
    assert add["fp32"] == 0.9 and add["fp16"] == 0.4 and add["int8"] == 0.03
    assert access == {"register": 1.0, "sram": 5.0, "dram": 640.0}
    assert all(sources.values())


def test_host_cache_written_atomically_and_optional(tmp_path, monkeypatch):
    import json

    from edgefit.measure import calibrate

    data = {
        "name": "host",
        "display_name": "fake host",
        "kind": "cpu",
        "peak_ops_per_s": {"fp32": {"value": 1e9, "source": "test"}},
        "bandwidth_bytes_per_s": {"value": 1e9, "source": "test"},
        "sram_bytes": {"value": 1024, "source": "test"},
        "activation_ram_bytes": {"value": 2**20, "source": "test"},
        "weight_storage_bytes": {"value": 2**20, "source": "test"},
        "energy": {"table": "45nm", "weight_level": "dram", "activation_level": "dram"},
    }
    monkeypatch.setattr(calibrate, "calibrate_host", lambda: data)
    monkeypatch.setenv("EDGEFIT_CACHE_DIR", str(tmp_path / "cache"))
    assert calibrate.host_device().peak("fp32") == 1e9
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["host.json"]  # no temporary left
    assert json.loads((tmp_path / "cache" / "host.json").read_text())["device"] == data
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("EDGEFIT_CACHE_DIR", str(blocker / "cache"))
    assert calibrate.host_device().display_name == "fake host"  # unwritable cache: still measured
