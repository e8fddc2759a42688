"""The per-stage Deep Compression report, laid out like the paper's Tables 2-4.

Every byte count is a real on-disk size: the baseline is the fp32 safetensors
file of the dense model, and each stage is written as a real ``.efz`` file
(P = pruned, fp32 values + relative indices; P+Q = pruned + k-means, fixed-width
codes; P+Q+H = Huffman-coded). Per-layer bytes are the layer weight's payload
segments (codebook and Huffman tables included); the rest of the file (biases
and other tensors stored plainly, the safetensors header with its metadata) is
listed in its own rows, so the total is the file size.

The accuracy after Huffman coding is measured on the model loaded back from the
file.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from edgefit.compress.encode.sparse import csr_encode

STAGES = ("P", "P+Q", "P+Q+H")
_ENCODING = {"P": "sparse", "P+Q": "fixed", "P+Q+H": "huff"}

# Han, Mao, Dally, "Deep Compression", ICLR 2016, Tables 1-3 (MNIST, 28x28).
PAPER = {
    "lenet_300_100": {
        "label": "LeNet-300-100 (MNIST)",
        "error_ref": "1.64%", "error_compressed": "1.58%", "size": "1070 KB -> 27 KB",
        "ratio": 40, "ratio_pq": 32, "weights_kept": "8% (12x)", "weight_bits": "6 (H: 5.1)",
        "index_bits": "5 (H: 3.7)",
        "layers": [("ip1", "235K", "8%", 6, 4.4, 5, 3.7, "3.1%", "2.32%"),
                   ("ip2", "30K", "9%", 6, 4.4, 5, 4.3, "3.8%", "3.04%"),
                   ("ip3", "1K", "26%", 6, 4.3, 5, 3.2, "15.7%", "12.70%")],
    },
    "lenet5": {
        "label": "LeNet-5 (MNIST)",
        "error_ref": "0.80%", "error_compressed": "0.74%", "size": "1720 KB -> 44 KB",
        "ratio": 39, "ratio_pq": 33, "weights_kept": "8% (12x)", "weight_bits": "5.3 (H: 4.1)",
        "index_bits": "5 (H: 4.4)",
        "layers": [("conv1", "0.5K", "66%", 8, 7.2, 5, 1.5, "78.5%", "67.45%"),
                   ("conv2", "25K", "12%", 8, 7.2, 5, 3.9, "6.0%", "5.28%"),
                   ("ip1", "400K", "8%", 5, 4.5, 5, 4.5, "2.7%", "2.45%"),
                   ("ip2", "5K", "19%", 5, 5.2, 5, 3.7, "6.9%", "6.13%")],
    },
}


@dataclass
class LayerRow:
    """One compressed layer weight."""

    name: str
    shape: list[int]
    weights: int
    kept: float
    bits: int
    index_bits: int
    huffman_weight_bits: float
    huffman_index_bits: float
    fp32_bytes: int
    csr_bytes: int
    bytes: dict[str, int] = field(default_factory=dict)

    def ratio(self, stage: str) -> float:
        return self.fp32_bytes / self.bytes[stage] if self.bytes.get(stage) else float("inf")


@dataclass
class CompressionReport:
    """Per-layer and total sizes and ratios per stage, and accuracy per stage.

    Attributes:
        model: model name.
        dataset: dataset name.
        dense_file_bytes: the fp32 safetensors file.
        file_bytes: ``{stage: .efz file bytes}``.
        other_bytes: ``{stage: bytes of tensors stored plainly (biases...)}``.
        header_bytes: ``{stage: safetensors header incl. metadata}``.
        layers: compressed layer rows.
        accuracy: ``{"dense", "P", "P+Q", "P+Q+H": test accuracy}``.
        seconds: wall time per stage.
        uncompressed: weights the pipeline could not encode, with the reason.
        exact: the loaded model's weights equal the quantized weights bit for bit.
        paper_key: ``"lenet_300_100"`` / ``"lenet5"`` to print the paper's figures beside.
        seed: the recipe's seed (one run; `edgefit.compress.run_recipe_seeds` averages several).
    """

    model: str
    dataset: str
    dense_file_bytes: int
    file_bytes: dict[str, int]
    other_bytes: dict[str, int]
    header_bytes: dict[str, int]
    layers: list[LayerRow]
    accuracy: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)
    uncompressed: dict[str, str] = field(default_factory=dict)
    exact: bool = True
    paper_key: str | None = None
    seed: int | None = None

    def ratio(self, stage: str) -> float:
        """Dense fp32 safetensors file size / the stage's file size."""
        return self.dense_file_bytes / self.file_bytes[stage]

    @property
    def kept(self) -> float:
        total = sum(r.weights for r in self.layers)
        return sum(r.kept * r.weights for r in self.layers) / total if total else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ratio"] = {s: self.ratio(s) for s in STAGES}
        d["kept"] = self.kept
        for row, rd in zip(self.layers, d["layers"], strict=True):
            rd["ratio"] = {s: row.ratio(s) for s in STAGES}
        if self.paper_key:
            d["paper"] = PAPER[self.paper_key]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    # -- tables -----------------------------------------------------------------
    def _rows(self) -> tuple[list[str], list[list[str]]]:
        head = ["layer", "#weights", "kept", "w bits P+Q", "w bits +H", "idx bits P+Q", "idx bits +H",
                "fp32 B", "CSR B", "P B", "P+Q B", "P+Q+H B", "P x", "P+Q x", "P+Q+H x"]
        rows = []
        for r in self.layers:
            rows.append([r.name, f"{r.weights:,}", f"{100 * r.kept:.1f}%", str(r.bits), f"{r.huffman_weight_bits:.2f}",
                         str(r.index_bits), f"{r.huffman_index_bits:.2f}", f"{r.fp32_bytes:,}", f"{r.csr_bytes:,}",
                         *(f"{r.bytes[s]:,}" for s in STAGES), *(f"{r.ratio(s):.1f}x" for s in STAGES)])
        ow = {s: self.other_bytes[s] for s in STAGES}
        rows.append(["biases & plain tensors", "", "", "", "", "", "", "", "", *(f"{ow[s]:,}" for s in STAGES), "", "", ""])
        rows.append(["header + metadata", "", "", "", "", "", "", "", "", *(f"{self.header_bytes[s]:,}" for s in STAGES),
                     "", "", ""])
        total_w = sum(r.weights for r in self.layers)
        nz = sum(r.kept * r.weights for r in self.layers)
        wb = sum(r.huffman_weight_bits * r.kept * r.weights for r in self.layers) / nz if nz else 0
        ib = sum(r.huffman_index_bits * r.kept * r.weights for r in self.layers) / nz if nz else 0
        rows.append(["total (file)", f"{total_w:,}", f"{100 * self.kept:.1f}%", "", f"{wb:.2f}", "", f"{ib:.2f}",
                     f"{self.dense_file_bytes:,}", f"{sum(r.csr_bytes for r in self.layers):,}",
                     *(f"{self.file_bytes[s]:,}" for s in STAGES), *(f"{self.ratio(s):.1f}x" for s in STAGES)])
        return head, rows

    def _accuracy_line(self) -> str:
        a = self.accuracy
        parts = [f"dense {100 * a['dense']:.2f}%"] + [f"{s} {100 * a[s]:.2f}%" for s in STAGES if s in a]
        delta = 100 * (a.get("P+Q+H", a["dense"]) - a["dense"])
        # One run is a few images of a small test set: say so, and where the mean comes from.
        run = f"; one run, seed {self.seed}: run_recipe_seeds gives the mean over seeds" if self.seed is not None else ""
        return "test accuracy: " + ", ".join(parts) + f" (compressed - dense: {delta:+.2f} pp{run})"

    def _paper_lines(self) -> list[str]:
        if not self.paper_key:
            return []
        p = PAPER[self.paper_key]
        return [f"paper (Han et al. 2016, {p['label']}): {p['size']}, {p['ratio']}x (P+Q {p['ratio_pq']}x), "
                f"weights kept {p['weights_kept']}, weight bits {p['weight_bits']}, index bits {p['index_bits']}, "
                f"top-1 error {p['error_ref']} -> {p['error_compressed']}"]

    def to_text(self) -> str:
        head, rows = self._rows()
        widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head))]
        fmt = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))  # noqa: E731
        lines = [f"Deep Compression of {self.model} on {self.dataset} (bytes on disk; x = fp32 / compressed)",
                 fmt(head), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows), "",
                 self._accuracy_line(),
                 f"fp32 safetensors {self.dense_file_bytes:,} B -> .efz {self.file_bytes['P+Q+H']:,} B: "
                 f"{self.ratio('P+Q+H'):.1f}x smaller; loaded weights bit-exact: {'yes' if self.exact else 'NO'}"]
        if self.seconds:
            lines.append("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items()))
        for k, v in self.uncompressed.items():
            lines.append(f"stored uncompressed: {k}: {v}")
        lines += self._paper_lines()
        return "\n".join(lines)

    def to_markdown(self) -> str:
        head, rows = self._rows()
        lines = [f"### Deep Compression of `{self.model}` on {self.dataset}", "",
                 "| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += ["", self._accuracy_line() + "  ",
                  f"fp32 safetensors {self.dense_file_bytes:,} B -> `.efz` {self.file_bytes['P+Q+H']:,} B: "
                  f"**{self.ratio('P+Q+H'):.1f}x** smaller; loaded weights bit-exact: {'yes' if self.exact else 'NO'}  "]
        if self.seconds:
            lines.append("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items()) + "  ")
        for k, v in self.uncompressed.items():
            lines.append(f"stored uncompressed: `{k}`: {v}  ")
        lines += [x + "  " for x in self._paper_lines()]
        return "\n".join(lines)

    def render(self, fmt: str = "text") -> str:
        return {"text": self.to_text, "json": self.to_json, "markdown": self.to_markdown, "md": self.to_markdown}[fmt]()


def _paper_key(name: str) -> str | None:
    if name.startswith("lenet_300_100"):
        return "lenet_300_100"
    if name.startswith("lenet5"):
        return "lenet5"
    return None


def build_report(
    result,
    data,
    *,
    model_name: str,
    output: str | Path | None = None,
    index_bits=None,
    workdir: str | Path | None = None,
    zoo: bool = True,
) -> CompressionReport:
    """Write every stage's file, load the final one back, and tabulate.

    Args:
        result: a :class:`~edgefit.compress.pipeline.DeepCompressionResult`.
        data: the dataset (for the accuracy of the loaded model).
        model_name: the model's name in the report; also recorded in the files as
            the zoo name to rebuild it from, when ``zoo``.
        output: where the final ``.efz`` goes (default: a temporary file).
        index_bits: relative index width(s), as for ``save_compressed``.
        workdir: where the stage files are written (default: a temporary directory).
        zoo: ``False`` for a model not in the zoo: the files record no model name.
    """
    from edgefit.compress.file import load_compressed, save_compressed
    from edgefit.compress.pipeline import copy_model
    from edgefit.data.train import evaluate
    from edgefit.data.weights import save_weights

    model = result.model
    recorded = model_name if zoo else None
    with tempfile.TemporaryDirectory(prefix="edgefit-dc-") as tmp:
        wd = Path(workdir) if workdir else Path(tmp)
        dense = copy_model(model)
        dense.load_state_dict(result.dense_state)
        dense_bytes = save_weights(dense, wd / "dense.safetensors").stat().st_size
        pruned = copy_model(model)
        pruned.load_state_dict(result.pruned_state)
        saves = {}
        t = time.perf_counter()
        saves["P"] = save_compressed(pruned, wd / "pruned.efz", model_name=recorded, encoding="sparse",
                                     index_bits=index_bits)
        saves["P+Q"] = save_compressed(model, wd / "quantized.efz", model_name=recorded, encoding="fixed",
                                       index_bits=index_bits)
        final = Path(output) if output else wd / "final.efz"
        extra = {"acc": round(result.accuracy["quantized"], 6)}
        saves["P+Q+H"] = save_compressed(model, final, model_name=recorded, encoding="huff",
                                         index_bits=index_bits, extra=extra)
        t_encode = time.perf_counter() - t
        t = time.perf_counter()
        loaded = load_compressed(final, model=copy_model(model))
        t_load = time.perf_counter() - t
        exact = all(
            torch.equal(a.view(torch.int32), b.view(torch.int32)) if a.dtype == torch.float32 else torch.equal(a, b)
            for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True)
        )
        acc = dict(dense=result.accuracy["dense"], P=result.accuracy["pruned"], **{"P+Q": result.accuracy["quantized"]})
        acc["P+Q+H"] = evaluate(loaded, data)
    layer_names = [k for k, (enc, _, _) in saves["P+Q+H"].entries.items() if enc != "raw"]
    rows = []
    for key in layer_names:
        w = model.state_dict()[key]
        enc, nbytes, f = saves["P+Q+H"].entries[key]
        mod = dict(model.named_modules())[key.rsplit(".", 1)[0]]
        st = getattr(mod, "edgefit_kmeans", None)
        fixed = saves["P+Q"].entries[key]
        numel = w.numel()
        nnz = int((w != 0).sum())
        if enc == "huff":
            b, ib, _, _, wbits, ibits, _ = f
            hwb, hib = wbits / max(nnz, 1), ibits / max(nnz, 1)
        else:
            # fixed (Huffman did not pay off) or sparse: fixed widths, fillers included in the index cost
            b, ib = (f[0], f[1]) if enc == "fixed" else (32, f[0])
            n_index = f[3] if enc == "fixed" else f[2]
            hwb, hib = float(b), ib * n_index / max(nnz, 1)
        ib_fixed = fixed[2][1] if fixed[0] == "fixed" else ib
        row = LayerRow(key.removesuffix(".weight"), list(w.shape), numel, nnz / numel, st.bits if st else fixed[2][0]
                       if fixed[0] == "fixed" else b, ib_fixed, hwb, hib, numel * 4,
                       csr_encode(w.detach().numpy()).nbytes(),
                       {s: saves[s].entries[key][1] for s in STAGES})
        rows.append(row)
    other = {s: sum(n for k, (_, n, _) in saves[s].entries.items() if k not in layer_names) for s in STAGES}
    header = {s: saves[s].header_bytes for s in STAGES}
    seconds = dict(result.seconds)
    seconds["encode"] = t_encode
    seconds["load"] = t_load
    return CompressionReport(
        model=model_name, dataset=getattr(data, "name", "?"), dense_file_bytes=dense_bytes,
        file_bytes={s: saves[s].file_bytes for s in STAGES}, other_bytes=other, header_bytes=header,
        layers=rows, accuracy=acc, seconds=seconds, uncompressed=saves["P+Q+H"].uncompressed, exact=exact,
        paper_key=_paper_key(model_name), seed=result.config.seed if result.config is not None else None,
    )
