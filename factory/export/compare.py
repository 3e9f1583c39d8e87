"""An exported graph beside the PyTorch path it came from: parity, headline metric, file size, latency.

``scripts/export.py --format onnx`` prints this for every export, and refuses an fp32 graph
whose probabilities differ from PyTorch's by more than ``FP32_TOLERANCE`` on the run's test
split; ``bench/export_table.py`` gathers the rows of docs/serving.md from it.

Both paths start from the same raw rows and end at probabilities, so the latencies compare
what a caller waits for: PyTorch = the fitted ``Preprocessor`` (NumPy) + the eager forward
under ``torch.inference_mode``; ONNX Runtime = ``OnnxPredictor.predict_columns`` (the
preprocessing is in the graph). Each is timed in this process, one after another, with its
library's default threads (torch: ``torch.get_num_threads()``; ONNX Runtime: its default
intra-op pool, one thread per physical core).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from factory.errors import FactoryError

#: Largest |probability difference| accepted between the fp32 graph and PyTorch.
FP32_TOLERANCE = 1e-5
#: The headline metric when the run monitored its loss (no loss from probabilities alone).
DEFAULT_METRIC = {"binary": "accuracy", "multiclass": "accuracy", "regression": "mse"}
BACKENDS = ("torch", "fp32", "int8")
BATCHES = (1, 256)


@dataclass
class Comparison:
    """What ``compare`` measured for one model (times in ms, sizes in bytes).

    Attributes:
        rows: rows in the test split.
        sizes: ``checkpoint``, ``fp32``, ``int8`` -> bytes.
        max_diff: ``fp32``, ``int8`` -> max |probability difference| against PyTorch.
        agreement: ``fp32``, ``int8`` -> share of rows with the same prediction as PyTorch.
        metric: the headline metric's name (``test/<name>``); ``metrics``: its value per backend.
        latency: ``(backend, batch)`` -> ``(p50, p99)`` in ms.
        threads: what each library used.
    """

    task: str
    rows: int
    parameters: int
    sizes: dict[str, int] = field(default_factory=dict)
    max_diff: dict[str, float] = field(default_factory=dict)
    agreement: dict[str, float] = field(default_factory=dict)
    metric: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    latency: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)
    threads: str = ""

    def lines(self) -> list[str]:
        """The comparison as a person reads it on the console."""
        mb = {k: f"{v / 1e6:.2f} MB" for k, v in self.sizes.items()}
        out = [f"test split: {self.rows} rows; {self.task}; {self.parameters:,} parameters",
               "file size: " + ", ".join(f"{k} {v}" for k, v in mb.items())]
        for kind in ("fp32", "int8"):
            if kind in self.max_diff:
                out.append(f"{kind}: max |probability difference| vs PyTorch {self.max_diff[kind]:.2e}, "
                           f"same prediction on {self.agreement[kind]:.2%} of rows, test/{self.metric} "
                           f"{self.metrics[kind]:.4f} ({self.metrics[kind] - self.metrics['torch']:+.4f} vs PyTorch "
                           f"{self.metrics['torch']:.4f})")
        out.append(f"latency ms, p50 / p99 ({self.threads}):")
        for batch in BATCHES:
            cells = [f"{name} {self.latency[(b, batch)][0]:.3f} / {self.latency[(b, batch)][1]:.3f}"
                     for b, name in zip(BACKENDS, ("PyTorch eager", "ORT fp32", "ORT int8")) if (b, batch) in self.latency]
            out.append(f"  batch {batch}: " + "; ".join(cells))
        return out

    def markdown_row(self, model: str) -> str:
        """One row of docs/serving.md's table (``MARKDOWN_HEADER``)."""
        def size(kind):
            return f"{self.sizes[kind] / 1e6:.2f}" if kind in self.sizes else "—"

        def diff(kind):
            return f"{self.max_diff[kind]:.1e}" if kind in self.max_diff else "—"

        def delta(kind):
            return f"{self.metrics[kind] - self.metrics['torch']:+.4f}" if kind in self.metrics else "—"

        def lat(b, batch):
            p = self.latency.get((b, batch))
            return f"{p[0]:.3f} / {p[1]:.3f}" if p else "—"

        cells = [model, f"{self.parameters:,}", size("fp32"), size("int8"), diff("fp32"), diff("int8"),
                 f"{self.metric} {self.metrics['torch']:.4f}", delta("fp32"), delta("int8"),
                 *(lat(b, batch) for batch in BATCHES for b in BACKENDS)]
        return "| " + " | ".join(cells) + " |"


MARKDOWN_HEADER = (
    "| model | parameters | fp32 MB | int8 MB | max abs Δp fp32 | max abs Δp int8 | test metric (PyTorch) "
    "| Δ fp32 | Δ int8 | PyTorch b1 | ORT fp32 b1 | ORT int8 b1 | PyTorch b256 | ORT fp32 b256 "
    "| ORT int8 b256 |\n" + "|---|" + "--:|" * 14)


def compare(checkpoint: str | Path, data_cfg, onnx: dict[str, Path], monitor: str | None = None,
            reps: int = 300, reps_large: int = 50) -> Comparison:
    """Measure exported graphs against the checkpoint they came from, on the run's test split.

    Args:
        checkpoint: the factory checkpoint file that was exported.
        data_cfg: the run's ``data`` config (to rebuild its test split).
        onnx: ``fp32`` (required) and ``int8`` -> exported file.
        monitor: the run's monitored metric (``val/pr_auc``); its ``test/`` twin is the
            headline, or ``DEFAULT_METRIC`` for a loss.
        reps: timed calls at batch 1; ``reps_large`` at batch 256 (after a few warm-up calls).

    Raises:
        FactoryError: the fp32 graph's probabilities differ from PyTorch's by more than
            ``FP32_TOLERANCE``, naming the row.
    """
    import torch

    from factory.export import OnnxPredictor
    from factory.models import SupervisedModel
    from factory.training.restore import load_factory_checkpoint, restore_datamodule

    state = load_factory_checkpoint(checkpoint)
    datamodule = restore_datamodule(data_cfg, state)
    preprocessor = datamodule.preprocessor
    model = SupervisedModel.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    table = datamodule.split_table("test")
    _, _, y = preprocessor.transform(table)
    predictors = {kind: OnnxPredictor(path) for kind, path in onnx.items()}
    sizes = {"checkpoint": Path(checkpoint).stat().st_size, **{k: Path(p).stat().st_size for k, p in onnx.items()}}
    result = Comparison(model.task, table.num_rows, sum(p.numel() for p in model.parameters()), sizes)
    del state  # the checkpoint's tensors: the model holds its own copy

    def torch_probs(batch):
        x_num, x_cat = preprocessor.transform_features(batch)
        with torch.inference_mode():
            return _scores(model.task, model(torch.from_numpy(x_num), torch.from_numpy(x_cat))).numpy()

    expected = torch_probs(table)
    probs = {"torch": expected}
    for kind, predictor in predictors.items():
        probs[kind] = np.asarray(predictor.predict_columns(preprocessor.raw_features(table)))
        diff = np.abs(probs[kind].astype(np.float64) - expected.astype(np.float64)).reshape(len(expected), -1)
        result.max_diff[kind] = float(diff.max()) if diff.size else 0.0
        result.agreement[kind] = float(np.mean(_predictions(model.task, probs[kind]) ==
                                               _predictions(model.task, expected))) if len(expected) else 1.0
        if kind == "fp32" and result.max_diff[kind] > FP32_TOLERANCE:
            row = int(diff.max(axis=1).argmax())
            raise FactoryError(f"{onnx[kind]}: the ONNX graph's probabilities differ from PyTorch's by "
                               f"{result.max_diff[kind]:.2e} (row {row} of the test split), over the "
                               f"{FP32_TOLERANCE:g} allowed; not exported")
    result.metric = headline_metric(model.task, monitor)
    result.metrics = {k: metric_value(model.task, result.metric, p, y, len(preprocessor.class_labels))
                      for k, p in probs.items()}

    result.threads = f"torch {torch.get_num_threads()} threads (its default), ONNX Runtime default intra-op threads"
    for batch, n in zip(BATCHES, (reps, reps_large)):
        rows = _rows(table, batch)
        feeds = [preprocessor.raw_features(r) for r in rows]  # what a server hands predict_columns
        result.latency[("torch", batch)] = _time(lambda i: torch_probs(rows[i % len(rows)]), n)
        for kind, predictor in predictors.items():
            result.latency[(kind, batch)] = _time(lambda i, p=predictor: p.predict_columns(feeds[i % len(feeds)]), n)
    return result


def export_checked(checkpoint: str | Path, output: str | Path, *, quantize: bool = False, data_cfg=None,
                   monitor: str | None = None, metadata: dict | None = None,
                   **timing) -> tuple[dict[str, Path], Comparison | None]:
    """Export ``checkpoint`` to ``output`` (and ``<stem>.int8.onnx``), compared with PyTorch before it lands.

    The graphs are written to a temporary folder beside ``output`` and renamed into place only
    after ``compare`` passed (with ``data_cfg``, the run's data config; without one there is
    no test split and nothing is compared): a failed export or comparison writes nothing.

    Returns:
        ``fp32`` (and ``int8``) -> the written file, and the comparison (``None`` without ``data_cfg``).

    Raises:
        FactoryError: an unexportable checkpoint, a graph that does not match PyTorch, an
            unwritable ``output``.
    """
    import shutil
    import tempfile

    from factory.export import export_onnx

    output = Path(output)
    if output.suffix != ".onnx":
        raise FactoryError(f"--output: {output}: expected a .onnx file")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{output.stem}.", dir=output.parent))
    except OSError as e:
        raise FactoryError(f"--output: cannot write {output} ({e.strerror})") from None
    try:
        written = export_onnx(Path(checkpoint), staged / output.name, metadata=metadata, quantize=quantize).paths
        files = {("int8" if Path(p).name.endswith(".int8.onnx") else "fp32"): Path(p) for p in written}
        comparison = (compare(_exported_file(Path(checkpoint)), data_cfg, files, monitor, **timing)
                      if data_cfg is not None else None)
        for path in files.values():
            path.replace(output.parent / path.name)
        return {kind: output.parent / path.name for kind, path in files.items()}, comparison
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _exported_file(checkpoint: Path) -> Path:
    """The file ``export_onnx`` read for ``checkpoint``: a ZeRO directory's consolidation (beside it when
    newer than the shards, else the cached one; export refused the directory when neither exists)."""
    from factory.rundir.checkpoints import consolidated_path, export_path, is_newer_than_shards, is_sharded

    if not is_sharded(checkpoint):
        return checkpoint
    return export_path(checkpoint) if is_newer_than_shards(export_path(checkpoint), checkpoint) \
        else consolidated_path(checkpoint)


def headline_metric(task: str, monitor: str | None) -> str:
    """The run's monitored metric without its stage (``val/pr_auc`` -> ``pr_auc``), else the task's default."""
    name = (monitor or "").rpartition("/")[2]
    return name if name and name != "loss" else DEFAULT_METRIC[task]


def metric_value(task: str, name: str, probs: np.ndarray, y: np.ndarray, n_classes: int) -> float:
    """``name`` as training computes it (``factory.models.metrics.task_metrics``)."""
    import torch

    from factory.models.metrics import task_metrics

    metrics = task_metrics(task, n_classes)
    if name not in metrics:
        raise FactoryError(f"metric {name!r}: not one of the {task} metrics ({', '.join(metrics.keys())})")
    target = torch.from_numpy(np.asarray(y))
    return float(metrics[name](torch.from_numpy(np.asarray(probs, dtype=np.float32)),
                               target.long() if task != "regression" else target.float()))


def _scores(task, logits):
    from factory.models.metrics import scores

    return scores(task, logits).float()


def _predictions(task: str, probs: np.ndarray) -> np.ndarray:
    if task == "multiclass":
        return probs.argmax(axis=1)
    return (probs >= 0.5) if task == "binary" else probs


def _rows(table, batch: int, count: int = 64) -> list:
    """``count`` different batches of ``batch`` rows from the test split (wrapping round a small split)."""
    n = table.num_rows
    return [table.take(np.arange(start, start + batch) % n) for start in range(0, count * batch, batch)][:count]


def _time(call, reps: int, warmup: int = 5) -> tuple[float, float]:
    """Median and 99th percentile of ``reps`` calls ``call(i)``, in ms."""
    for i in range(warmup):
        call(i)
    times = np.empty(reps)
    for i in range(reps):
        start = time.perf_counter()
        call(i)
        times[i] = time.perf_counter() - start
    return float(np.median(times) * 1e3), float(np.percentile(times, 99) * 1e3)
