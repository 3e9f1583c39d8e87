"""A trained checkpoint -> one ONNX file on raw columns (and its int8 copy), written atomically.

The file is all an edge device needs besides ``onnxruntime``: the fitted preprocessing is in the
graph (``factory.export.graph``) and its metadata (``metadata_props``, each value strict JSON)
says what goes in and comes out.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from factory.errors import FactoryError
from factory.files import json_text

#: How an input row is written, stored in every file's metadata (``input_convention``).
INPUT_CONVENTION = ("one input per raw feature column, shape [N]: numeric columns as tensor(double) with NaN for "
                    "missing; categorical columns as tensor(string) with \"\" for missing (a level unseen in "
                    "training scores as the unseen level)")


@dataclass
class ExportResult:
    """What ``export_onnx`` wrote.

    Attributes:
        paths: the fp32 file, then the int8 copy when quantized.
        metadata: the metadata written into the files (JSON values).
    """

    paths: list[Path] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


def export_onnx(checkpoint: str | Path, path: str | Path, *, metadata: dict | None = None,
                quantize: bool = False) -> ExportResult:
    """Write ``checkpoint``'s model as one ONNX file that scores raw feature columns.

    Args:
        checkpoint: a checkpoint file written by factory's training, a consolidated ZeRO
            checkpoint, or a run directory (its best checkpoint, else its last).
        path: the ``.onnx`` file to write (its folder is created).
        metadata: values to record besides the derived ones, overriding them: ``name`` and
            ``version`` (the registry's), ``data_fingerprint`` when the checkpoint lacks it, ...
            Values must be JSON-serializable.
        quantize: also write ``<stem>.int8.onnx``, dynamically quantized to int8 (MatMul/Gemm weights).

    Returns:
        ``ExportResult`` with ``paths`` ([fp32] or [fp32, int8]) and the metadata written.

    Raises:
        FactoryError: (one line) the checkpoint is missing, unreadable, sharded and not yet
            consolidated, or its network cannot be exported or run by ONNX Runtime. Nothing is
            left at ``path`` (or the int8 path) then.

    Example:
        >>> export_onnx("outputs/fraud_detection/<run>", "fraud.onnx", quantize=True).paths
        [PosixPath('fraud.onnx'), PosixPath('fraud.int8.onnx')]
    """
    checkpoint = _single_file(checkpoint)
    model, preprocessor, derived = _load(checkpoint)
    return write_onnx(model, preprocessor, path, metadata=_merged(derived, metadata), quantize=quantize,
                      source=checkpoint)


def write_onnx(model, preprocessor, path: str | Path, *, metadata: dict | None = None, quantize: bool = False,
               source: str | Path | None = None) -> ExportResult:
    """``export_onnx`` for a model in memory: a ``SupervisedModel`` and its fitted ``Preprocessor``.

    Args:
        model: the network's ``SupervisedModel`` (put in eval mode here).
        preprocessor: the ``Preprocessor`` its inputs were encoded with.
        path, quantize: as ``export_onnx``.
        metadata: recorded beside the keys derived from the preprocessor, overriding them; a
            ``None`` value leaves the derived one.
        source: what the model came from, for error messages (default: ``path``).

    Raises:
        FactoryError: (one line) the network cannot be exported or run by ONNX Runtime;
            nothing is left at ``path`` (or the int8 path) then.
    """
    path = Path(path)
    source = source or path
    meta = _merged(_derived(preprocessor), metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    targets = [path] + ([quantized_path(path)] if quantize else [])
    temps = [p.with_name(f".{p.name}.{os.getpid()}.tmp") for p in targets]
    renamed: list[Path] = []
    try:
        graph = _export(model.eval(), preprocessor, source)
        _set_metadata(graph, meta)
        import onnx

        onnx.save(graph, temps[0])
        _check_runs(temps[0], preprocessor, source)
        if quantize:
            _quantize(temps[0], temps[1], meta)
            _check_runs(temps[1], preprocessor, source)
        for temp, target in zip(temps, targets):
            temp.replace(target)
            renamed.append(target)
    except BaseException:
        for p in [*temps, *renamed]:  # one file of a pair renamed before the other failed to is no result
            p.unlink(missing_ok=True)
        raise
    return ExportResult(targets, meta)


def quantized_path(path: str | Path) -> Path:
    """``model.onnx`` -> ``model.int8.onnx``: where ``quantize=True`` writes the int8 copy."""
    path = Path(path)
    return path.with_name(f"{path.stem}.int8{path.suffix or '.onnx'}")


def _single_file(checkpoint: str | Path) -> Path:
    """The checkpoint as one file; a ZeRO directory only once it was consolidated beside itself."""
    from factory.rundir.checkpoints import (consolidated_path, export_path, is_newer_than_shards, is_sharded,
                                            resolve_checkpoint)

    found = resolve_checkpoint(checkpoint)
    if not is_sharded(found):
        return found
    if is_newer_than_shards(export_path(found), found):  # scripts/export.py's consolidation, beside it
        return export_path(found)
    if consolidated_path(found).is_file():  # a read's (evaluate, the registry), in the cache; keyed by the shards
        return consolidated_path(found)
    raise FactoryError(f"{found} is a sharded DeepSpeed checkpoint; consolidate it first: "
                       f"python scripts/export.py {found}")


def _load(checkpoint: Path):
    """(model in eval mode, Preprocessor, derived metadata) from a factory checkpoint file."""
    from factory.data.checkpoint_state import datamodule_state
    from factory.data.preprocessing import Preprocessor
    from factory.models import SupervisedModel
    from factory.rundir.layout import in_checkpoint_dir
    from factory.training.evaluation import from_checkpoint
    from factory.training.restore import load_factory_checkpoint

    saved = load_factory_checkpoint(checkpoint)
    state = datamodule_state(saved)["preprocessor"]
    preprocessor = Preprocessor.from_state_dict(state)
    model = SupervisedModel.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    meta = {"data_fingerprint": from_checkpoint(saved, checkpoint).fingerprint or _run_fingerprint(checkpoint)}
    if in_checkpoint_dir(checkpoint):
        meta["run_id"] = checkpoint.parent.parent.name
    return model, preprocessor, meta


def _derived(preprocessor) -> dict:
    """The metadata every file carries, from the fitted preprocessing."""
    schema = preprocessor.schema
    return {"task": schema.task, "target": schema.target, "features": list(schema.features),
            "kinds": dict(schema.features), "class_labels": list(preprocessor.class_labels),
            "output": _output(schema.task), "factory_version": _factory_version(),
            "input_convention": INPUT_CONVENTION, "data_fingerprint": None,
            # What OnnxPredictor.predict needs for reading tables and the target column (plain JSON): no
            # levels, bins (their end edges are the train min and max) or means; the graph holds what it scores with.
            "preprocessor": preprocessor.reading_state()}


def _merged(base: dict, extra: dict | None) -> dict:
    """``base`` updated by ``extra``, except where ``extra`` says None (unknown) and ``base`` knows."""
    merged = dict(base)
    merged.update({k: v for k, v in (extra or {}).items() if v is not None or merged.get(k) is None})
    return merged


def _output(task: str) -> str:
    return {"binary": "probabilities (N,) float32: P(class 1)", "multiclass":
            "probabilities (N, C) float32, C = len(class_labels)"}.get(task, "probabilities (N,) float32: the value")


def _run_fingerprint(checkpoint: Path) -> str | None:
    """The data fingerprint of the run the checkpoint lies in (older checkpoints do not carry it)."""
    from factory.training.evaluation import trained_on

    return trained_on(checkpoint).fingerprint


def _factory_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("factory")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def _export(model, preprocessor, checkpoint: Path):
    """The graph, or one line naming what could not be exported."""
    from factory.export.graph import build_graph

    try:
        return build_graph(model, preprocessor)
    except Exception as e:  # noqa: BLE001: torch.onnx raises many types (UnsupportedOperatorError, ...)
        raise FactoryError(f"cannot export {checkpoint} to ONNX: {_reason(e)}") from e


def _check_runs(path: Path, preprocessor, checkpoint: Path) -> None:
    """onnx.checker on the file, then ONNX Runtime loads it and scores a few rows."""
    import onnx

    from factory.export.graph import OUTPUT, example_columns

    try:
        onnx.checker.check_model(str(path), full_check=True)
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        session.run([OUTPUT], example_columns(preprocessor))
    except Exception as e:  # noqa: BLE001: onnx and onnxruntime raise their own types
        raise FactoryError(f"cannot export {checkpoint} to ONNX: the exported graph does not run in ONNX "
                           f"Runtime ({_reason(e)})") from e


def _quantize(source: Path, target: Path, meta: dict) -> None:
    """Dynamic int8 quantization of MatMul/Gemm weights; the metadata copied over."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # MatMul/Gemm only: what dynamic quantization is for; ConvInteger is slower than float Conv on CPUs.
    with _quiet_root_logger():  # "consider pre-processing before quantization": advice for static quantization
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    quantized = onnx.load(target)
    _set_metadata(quantized, {**meta, "quantization": "dynamic int8 (MatMul/Gemm weights)"})
    onnx.save(quantized, target)


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _set_metadata(model, meta: dict) -> None:
    from onnx import helper

    del model.metadata_props[:]
    helper.set_model_props(model, {key: json_text(value) for key, value in meta.items()})
    model.producer_name, model.producer_version = "factory", str(meta.get("factory_version") or "")
    if isinstance(meta.get("version"), int):
        model.model_version = meta["version"]
    model.doc_string = f"{meta.get('name') or 'factory model'}: {meta['task']} on raw columns; {INPUT_CONVENTION}"


def _reason(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def read_metadata(path: str | Path) -> dict:
    """The metadata of an exported file, JSON values decoded (no ONNX Runtime needed)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in model.metadata_props}
