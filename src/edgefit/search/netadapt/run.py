"""The whole job behind ``edgefit adapt``, callable from Python: resolve, train or load, adapt, write the family.

Typical use: ``adapt_model("zoo:mobilenet_digits", budgets=["latency=50%"], output_dir="family/", resolution=32)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from edgefit._io import atomic_write
from edgefit.errors import ConfigError
from edgefit.search.netadapt.adapter import ConvnetAdapter
from edgefit.search.netadapt.algorithm import AdaptResult, NetAdaptConfig, netadapt
from edgefit.search.netadapt.channels import shrink
from edgefit.search.netadapt.family import write_family
from edgefit.search.netadapt.journal import FINAL, Journal
from edgefit.search.netadapt.resources import ResourceMeter

LOADER = '''"""Networks of this NetAdapt family, for any edgefit command:

    edgefit profile {dir}/model.py:final
    edgefit compress {dir}/model.py:final --weights {dir}/final.safetensors -o final.efz
"""

from pathlib import Path

from edgefit.search.netadapt.run import load_family_member

HERE = Path(__file__).parent


def final():
    """The final (long fine-tuned) network, with its weights."""
    return load_family_member(HERE, -1)


def iteration(i: int = 0):
    """The network after iteration ``i`` (0: the unadapted one)."""
    return load_family_member(HERE, i)
'''


def adapt_model(
    model: str,
    *,
    budgets: Sequence[str],
    output_dir: str | Path,
    weights: str | Path | None = None,
    dataset: str = "digits",
    resolution: int | None = None,
    train_epochs: int = 20,
    config: NetAdaptConfig | None = None,
    lut: str | Path | None = None,
    on_iteration: Callable | None = None,
    **config_fields,
) -> AdaptResult:
    """Adapt a zoo or user model (``zoo:NAME``, ``file.py:fn``, ``pkg.mod:fn``) on a dataset.

    Args:
        model: the model spec, as every edgefit command takes it.
        budgets: ``["latency=50%", "energy=2mJ@jetson_orin_nano", ...]``.
        output_dir: where the family and the run state go (the same call resumes).
        weights: trained safetensors weights (default: train ``train_epochs`` first, seed 0).
        dataset: ``"digits"`` or a ``.npz``; ``resolution`` resizes its images (e.g. 32).
        config: the `NetAdaptConfig` (default: built from ``budgets`` and ``config_fields``).
        lut: the host latency lookup table file (default: the one in the cache dir).
    """
    from edgefit.data import TrainConfig, load_dataset, load_weights_, train
    from edgefit.data.train import check_model_fits
    from edgefit.measure import LatencyTable
    from edgefit.search.netadapt.tasks import resized
    from edgefit.zoo import resolve_model

    config = config or NetAdaptConfig(budgets=tuple(budgets), **config_fields)
    data = load_dataset(dataset)
    if resolution:
        data = resized(data, resolution)
    torch.manual_seed(0)
    net = resolve_model(model).model
    check_model_fits(net, data)
    if weights is not None:
        load_weights_(net, weights)
    elif not (Path(output_dir) / "iter_000.safetensors").exists():
        # iteration 0's weights, not the journal, mark a run to resume: a run killed between
        # creating the journal and saving them (pricing the start can take minutes) starts again
        train(net, data, TrainConfig(epochs=train_epochs, seed=0))
    else:  # resuming: the unadapted network's weights are iteration 0
        load_weights_(net, Path(output_dir) / "iter_000.safetensors")
    shape = (1, *data.sample_shape)
    with _one_thread():
        table = LatencyTable(lut) if lut is not None else None
        meter = ResourceMeter(config.budgets, shape, device=config.device, bits=config.bits, table=table,
                              interpolate=config.interpolate)
        adapter = ConvnetAdapter(net, torch.zeros(shape), meter, data, channel_step=config.channel_step)
        journal = Journal(output_dir)
        journal.put_meta("model", {"spec": model, "input_shape": list(shape)})
        result = netadapt(net, adapter, config, output_dir, on_iteration=on_iteration)
    write_family(output_dir)
    atomic_write(Path(output_dir) / "model.py", LOADER.replace("{dir}", str(output_dir)))
    return result


class _one_thread:
    """Price latency with one torch thread: the lookup table then times CPU time of the thread."""

    def __enter__(self):
        self.old = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)


def load_family_member(output_dir: str | Path, iteration: int = FINAL) -> torch.nn.Module:
    """Network ``iteration`` of a family written by `adapt_model` (-1: the final one), weights loaded.

    Raises:
        ConfigError: no family in ``output_dir`` or no such network.
    """
    from edgefit.data import load_weights_
    from edgefit.zoo import resolve_model

    path = Path(output_dir)
    if not (path / "netadapt.sqlite").is_file():
        raise ConfigError(f"{path} holds no NetAdapt family (no netadapt.sqlite)")
    journal = Journal(path)
    meta = journal.meta("model")
    members = {m.iteration: m for m in journal.members()}
    if meta is None or iteration not in members:
        raise ConfigError(f"{path} has no network {iteration} (has {sorted(members)})")
    torch.manual_seed(0)
    base = resolve_model(meta["spec"]).model
    net = shrink(base, torch.zeros(meta["input_shape"]), members[iteration].widths)
    return load_weights_(net, path / members[iteration].weights)


def demo_model() -> torch.nn.Module:
    """A plain digits convnet (8x8 input: 3x3 convs of 32, 64, 64 channels, pool, fc): adapts in seconds."""
    from torch import nn

    from edgefit.zoo.blocks import ConvBNAct

    return nn.Sequential(ConvBNAct(1, 32), ConvBNAct(32, 64), ConvBNAct(64, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
