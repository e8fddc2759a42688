"""Adapters that run other MAC/FLOP counters on one model, normalised to MACs.

Each adapter is ``adapter(model, example_input, *, no_grad=True) -> Result`` where
``Result`` is ``(macs, params, error)``: ``macs`` and ``params`` are ints or ``None``,
``error`` is ``None`` or the first line of the exception / failure message. An adapter
never raises: a tool that fails is reported, not fatal. ``no_grad=True`` runs the tool
under ``torch.no_grad()`` (how users profile an inference model); ``False`` leaves grad
mode on, which changes the ``nn.MultiheadAttention`` path (the no-grad eval fast path
calls ``torch._native_multi_head_attention`` and skips ``out_proj``'s forward).

What each tool reports (checked on small modules, see ``README.md``):

* ``fvcore`` ``FlopCountAnalysis.total()``: one fused multiply-add is one "flop", i.e.
  MACs. It also adds normalisation / pooling / upsample terms.
* ``ptflops`` ``get_model_complexity_info``: MACs, both backends (``pytorch``:
  module hooks plus patched ``torch.nn.functional`` / tensor ops; ``aten``: a
  ``TorchDispatchMode`` over aten ops, ptflops >= 0.7.3).
* ``thop`` (``ultralytics-thop``) ``profile``: MACs from module hooks.
* ``torchinfo`` ``summary().total_mult_adds``: MACs from module hooks.
* ``deepspeed`` ``get_model_profile``: returns ``(flops, macs, params)``; we take macs.
* ``torch.utils.flop_counter.FlopCounterMode``: 2 FLOPs per MAC; we divide by 2. It
  does not count parameters (``params`` is ``None``).

Import errors of a tool are reported through :func:`available`, never raised.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import io
import logging
import os
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn


class Result(NamedTuple):
    macs: int | None
    params: int | None
    error: str | None = None


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    if isinstance(exc, BaseException):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    line = text.splitlines()[0] if text else "error"
    return line[:200]


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence prints, warnings and logging of a tool (all tools get the same treatment)."""
    buf = io.StringIO()
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                yield buf
    finally:
        logging.disable(previous)


def _grad_ctx(no_grad: bool) -> Any:
    return torch.no_grad() if no_grad else contextlib.nullcontext()


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- adapters


def run_fvcore(model: nn.Module, x: torch.Tensor, *, no_grad: bool = True) -> Result:
    try:
        from fvcore.nn import FlopCountAnalysis, parameter_count

        with _quiet(), _grad_ctx(no_grad):
            fca = FlopCountAnalysis(model, (x,))
            fca.unsupported_ops_warnings(False)
            fca.uncalled_modules_warnings(False)
            fca.tracer_warnings("none")
            macs = int(fca.total())
            params = int(parameter_count(model)[""])
        return Result(macs, params)
    except Exception as exc:  # noqa: BLE001 - report any failure
        return Result(None, None, _first_line(exc))


def _ptflops(backend: str) -> Callable[..., Result]:
    def run(model: nn.Module, x: torch.Tensor, *, no_grad: bool = True) -> Result:
        try:
            from ptflops import get_model_complexity_info

            with _quiet() as buf, _grad_ctx(no_grad):
                macs, params = get_model_complexity_info(
                    model,
                    tuple(x.shape[1:]),
                    input_constructor=lambda _res: x,
                    as_strings=False,
                    print_per_layer_stat=False,
                    verbose=False,
                    backend=backend,
                )
            if macs is None:
                # ptflops catches the exception itself and prints it.
                lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
                msg = next((ln for ln in lines if "Error" in ln or "error" in ln), None)
                return Result(None, None, (msg or "ptflops returned None")[:200])
            return Result(int(macs), int(params) if params is not None else None)
        except Exception as exc:  # noqa: BLE001
            return Result(None, None, _first_line(exc))

    run.__name__ = f"run_ptflops_{backend}"
    return run


run_ptflops_pytorch = _ptflops("pytorch")
run_ptflops_aten = _ptflops("aten")


def run_thop(model: nn.Module, x: torch.Tensor, *, no_grad: bool = True) -> Result:
    try:
        import thop

        with _quiet(), _grad_ctx(no_grad):
            macs, params = thop.profile(model, inputs=(x,), verbose=False)
        return Result(int(macs), int(params))
    except Exception as exc:  # noqa: BLE001
        return Result(None, None, _first_line(exc))


def run_torchinfo(model: nn.Module, x: torch.Tensor, *, no_grad: bool = True) -> Result:
    try:
        from torchinfo import summary

        with _quiet(), _grad_ctx(no_grad):
            stats = summary(model, input_data=[x], verbose=0, device=x.device)
        return Result(int(stats.total_mult_adds), int(stats.total_params))
    except Exception as exc:  # noqa: BLE001
        return Result(None, None, _first_line(exc))


def run_deepspeed(model: nn.Module, x: torch.Tensor, *, no_grad: bool = True) -> Result:
    try:
        from deepspeed.profiling.flops_profiler import get_model_profile

        with _quiet(), _grad_ctx(no_grad):
            _flops, macs, params = get_model_profile(
                model,
                args=[x],
                print_profile=False,
                detailed=False,
                warm_up=0,
                as_string=False,
            )
        return Result(int(macs), int(params))
    except Exception as exc:  # noqa: BLE001
        return Result(None, None, _first_line(exc))


def run_flop_counter(model: nn.Module, x: torch.Tensor, *, no_grad: bool = True) -> Result:
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with _quiet(), _grad_ctx(no_grad):
            counter = FlopCounterMode(display=False)
            with counter:
                model(x)
        return Result(int(counter.get_total_flops()) // 2, None)
    except Exception as exc:  # noqa: BLE001
        return Result(None, None, _first_line(exc))


def run_edgefit(model: nn.Module, x: torch.Tensor, *, no_grad: bool = True) -> Result:
    """edgefit traces on the meta device from a shape; ``no_grad`` is passed as a context."""
    try:
        import edgefit

        kwargs = edgefit_input_kwargs(x)
        with _quiet(), _grad_ctx(no_grad):
            prof = edgefit.profile(model, **kwargs)
        totals = prof.totals
        return Result(int(totals.macs), int(totals.params))
    except Exception as exc:  # noqa: BLE001
        return Result(None, None, _first_line(exc))


def edgefit_input_kwargs(x: torch.Tensor) -> dict[str, Any]:
    """``input_shape=`` plus the dtype keyword if ``edgefit.profile`` takes one."""
    import inspect

    import edgefit

    kwargs: dict[str, Any] = {"input_shape": tuple(x.shape)}
    if x.dtype != torch.float32:
        try:
            names = inspect.signature(edgefit.profile).parameters
        except (TypeError, ValueError):
            names = {}
        for key in ("input_dtype", "dtype"):
            if key in names:
                kwargs[key] = x.dtype
                break
    return kwargs


# --------------------------------------------------------------------------- registry

# tool -> (distribution name for the version, import name, adapter)
TOOLS: dict[str, tuple[str, str, Callable[..., Result]]] = {
    "edgefit": ("edgefit", "edgefit", run_edgefit),
    "fvcore": ("fvcore", "fvcore", run_fvcore),
    "ptflops[pytorch]": ("ptflops", "ptflops", run_ptflops_pytorch),
    "ptflops[aten]": ("ptflops", "ptflops", run_ptflops_aten),
    "thop": ("ultralytics-thop", "thop", run_thop),
    "torchinfo": ("torchinfo", "torchinfo", run_torchinfo),
    "deepspeed": ("deepspeed", "deepspeed.profiling.flops_profiler", run_deepspeed),
    "FlopCounterMode": ("torch", "torch.utils.flop_counter", run_flop_counter),
}

ADAPTERS: dict[str, Callable[..., Result]] = {k: v[2] for k, v in TOOLS.items()}


def version(tool: str) -> str:
    dist = TOOLS[tool][0]
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def available(tool: str) -> str | None:
    """``None`` when ``tool`` can be used, else why not (one line)."""
    _dist, module, _ = TOOLS[tool]
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    try:
        with _quiet():
            mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - ImportError, or a tool crashing on import
        return f"not installed ({_first_line(exc)})"
    if tool == "edgefit":
        try:
            mod.profile  # noqa: B018 (the lazy attribute imports the profiler)
        except Exception as exc:  # noqa: BLE001
            return f"not available ({_first_line(exc)})"
    if tool == "ptflops[aten]":
        import ptflops

        try:
            from ptflops import aten_engine  # noqa: F401
        except Exception:  # noqa: BLE001
            return f"aten backend needs ptflops >= 0.7.3 (have {getattr(ptflops, '__version__', '?')})"
    return None
