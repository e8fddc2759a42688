import pytest

from edgefit.errors import ConfigError, DeviceError
from edgefit.search.nas import Constraint, Objective, load_space
from edgefit.search.nas.objectives import cheap_keys, compute_metrics


@pytest.mark.parametrize(
    "text, key, limit",
    [
        ("latency@host<=2ms", "latency@host", 0.002),
        ("latency@jetson_nano <= 150us", "latency@jetson_nano", 150e-6),
        ("size<=64KB", "size", 65536.0),
        ("peak_memory<=1.5MB", "peak_memory", 1.5 * 2**20),
        ("energy@stm32f746<=1mJ", "energy@stm32f746", 1e-3),
        ("macs<=20M", "macs", 20e6),
        ("params<=1000", "params", 1000.0),
    ],
)
def test_constraint_units(text, key, limit):
    c = Constraint.parse(text)
    assert c.key == key and c.limit == pytest.approx(limit)
    assert c.violation({key: limit}) == 0.0
    assert c.violation({key: 2 * limit}) == pytest.approx(1.0)  # 100% over


def test_fits_constraint_and_directions():
    c = Constraint.parse("fits@stm32f746")
    assert c.key == "fits@stm32f746" and c.violation({c.key: True}) == 0 and c.violation({c.key: False}) == 1
    assert [Objective.parse(t).direction for t in ("accuracy", "size", "latency@host")] == [
        "maximize", "minimize", "minimize"]
    with pytest.raises(DeviceError):
        Constraint.parse("fits@stm32f999")
    with pytest.raises(ConfigError, match="energy@host"):
        Objective.parse("energy@host")
    with pytest.raises(ConfigError, match="fits@DEVICE or METRIC<=VALUE"):
        Constraint.parse("size<=64 parsecs")
    with pytest.raises(ConfigError, match="latency is not measured in 'KB'; use ms, s, us"):
        Constraint.parse("latency@host<=64KB")


def test_metrics_of_the_cheapest_cell_network_are_exact():
    space = load_space("cell")
    model = space.build(space.smallest())  # identity cells: stem 3x3 conv 1->16 + BN, linear 16->10
    keys = cheap_keys([Objective.parse("accuracy"), Objective.parse("size")],
                      [Constraint.parse("fits@stm32f746"), Constraint.parse("params<=1e6")])
    assert keys == ["size", "fits@stm32f746", "params"]
    m = compute_metrics(model, space.input_shape(), keys)
    assert m["params"] == 9 * 16 + 2 * 16 + 16 * 10 + 10
    assert m["size"] == 4 * m["params"] and m["fits@stm32f746"] is True and m["uncounted"] == {}
