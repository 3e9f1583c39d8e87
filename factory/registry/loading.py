"""A registered version loaded for inference: the model in eval mode and its fitted preprocessing,
or its exported ONNX graph in ONNX Runtime (``backend="onnx"``), which needs no torch."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from factory.errors import DataError, FactoryError
from factory.registry import language
from factory.registry.exports import BACKENDS, checked_checkpoint, exported_file
from factory.registry.store import ModelVersion, Registry


class RegisteredModel:
    """What ``factory.registry.load`` returns: everything needed to score raw tables.

    Attributes:
        version: the index entry (name, version, stage, run id, key metric, folder).
        metadata: ``meta.json``: run lineage, metrics, data fingerprint, config.
        backend: what ``predict`` scores through: ``torch``, ``onnx`` or ``onnx-int8``.
        onnx: the ``factory.export.OnnxPredictor`` (ONNX backends; else ``None``); ``onnx_path`` its file.
        model: the ``SupervisedModel``, in eval mode on the CPU. With an ONNX backend it is
            read from the checkpoint (sha256-checked) on first use: torch loads only then.
        preprocessor: the ``Preprocessor`` fitted on the run's train split (loaded as ``model``).

    Example:
        >>> fraud = factory.registry.load("fraud_detection@production")
        >>> scored = fraud.predict(pd.read_csv("new_transactions.csv"))  # + prediction, score
        >>> edge = factory.registry.load("fraud_detection@production", backend="onnx")  # same scores, no torch
    """

    def __init__(self, version: ModelVersion, metadata: dict, model: Any = None, preprocessor: Any = None,
                 datamodule_state: dict | None = None, *, backend: str = "torch", onnx: Any = None,
                 onnx_path: Path | None = None, verify: bool = True) -> None:
        self.version, self.metadata, self.backend, self.onnx, self.onnx_path = version, metadata, backend, onnx, onnx_path
        self._model, self._preprocessor, self._datamodule_state = model, preprocessor, datamodule_state
        self._verify = verify

    kind = "tabular"  # a language model loads as factory.registry.language.RegisteredLanguageModel

    def __repr__(self) -> str:
        return f"RegisteredModel({self.ref}, stage={self.version.stage}, backend={self.backend})"

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def ref(self) -> str:
        return self.version.ref

    @property
    def model(self):
        self._load_checkpoint()
        return self._model

    @property
    def preprocessor(self):
        self._load_checkpoint()
        return self._preprocessor

    @property
    def task(self) -> str:
        return self.onnx.task if self.onnx is not None else self.model.task

    @property
    def class_labels(self) -> list:
        """Display label of each predicted class index (empty for regression)."""
        return list(self.onnx.class_labels if self.onnx is not None else self.preprocessor.class_labels)

    @property
    def features(self) -> list[str]:
        """The raw columns a table to score must hold."""
        return list(self.onnx.features if self.onnx is not None else self.preprocessor.schema.features)

    @property
    def config(self):
        """The run's resolved config, as a DictConfig."""
        from omegaconf import OmegaConf

        return OmegaConf.create(self.metadata.get("config") or {})

    def predict(self, table, batch_size: int = 8192, *, pii: bool = True):
        """Score raw rows (pandas DataFrame or Arrow table) as at training time.

        Args:
            pii: first hash or drop the columns the run's data config tags ``pii`` (the key from
                ``FACTORY_PII_KEY``), as training did; False for rows that already are.

        Returns:
            The rows plus ``prediction`` and ``score`` (and ``prob_<label>`` per class for
            multiclass; ``target`` and ``label`` when the table has the target column);
            see ``factory.models.predict.predict_table``. The ONNX backends return the same
            columns (``OnnxPredictor.predict``), probabilities within 1e-5 for fp32.
        """
        if pii:
            table = self._without_pii(table)
        if self.onnx is not None:
            return self.onnx.predict(table)
        from factory.models.predict import predict_table

        return predict_table(self.model, self.preprocessor, table, batch_size)

    def _without_pii(self, table):
        import pyarrow as pa

        from factory.data.curation import pii

        tags = pii.tagged((self.metadata.get("config") or {}).get("data"))
        if not tags:
            return table
        key = pii.load_key() if "hash" in tags.values() else None
        if isinstance(table, (pa.Table, pa.RecordBatch)):
            return pii.apply(table, tags, key, strict=False)
        hidden = pii.apply(pa.Table.from_pandas(table, preserve_index=False), tags, key, strict=False)
        return hidden.to_pandas().set_axis(table.index)  # a DataFrame's index is kept, as predict_table keeps it

    def datamodule(self):
        """The run's DataModule rebuilt from its config with this preprocessing, set up for test.

        For scoring the run's own splits (``dm.split_table("test")``); reads the data source.
        """
        from factory.data.datamodule import TabularDataModule
        from factory.training.restore import restore_datamodule

        self._load_checkpoint()
        return restore_datamodule(self.config.data, {TabularDataModule.__qualname__: self._datamodule_state})

    def _load_checkpoint(self) -> None:
        if self._model is not None:
            return
        model, preprocessor, state = _read_checkpoint(checked_checkpoint(self.version, self._verify))
        self._model, self._preprocessor, self._datamodule_state = model, preprocessor, state


def load(registry: Registry, ref: str, verify: bool = True, backend: str = "torch"):
    """Load ``ref`` (``NAME``, ``NAME@3``, ``NAME@production``) for inference: a ``RegisteredModel``,
    or a ``RegisteredLanguageModel`` for a language model (``kind == "language_model"``).

    Args:
        registry: the registry to read.
        ref: the model reference.
        verify: check the sha256 of the file scored through against the one recorded.
        backend: ``torch`` (the checkpoint), ``onnx`` (``model.onnx`` in ONNX Runtime; torch is
            not imported) or ``onnx-int8`` (``model.int8.onnx``).

    Raises:
        FactoryError: an unknown reference or backend, a missing or altered checkpoint or
            exported file, a version not exported (for the ONNX backends), an ONNX backend
            for a language model.
    """
    if backend not in BACKENDS:
        raise FactoryError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    version = registry.get(ref)  # a bad reference answers before torch or ONNX Runtime loads
    metadata = version.metadata()
    if language.kind(metadata) == language.KIND:
        if backend != "torch":
            raise language.refuse_backend(version, backend)
        return language.load(version, metadata, checked_checkpoint(version, verify), verify)
    if backend != "torch":
        from factory.export import OnnxPredictor

        path, data = exported_file(registry, version, backend, verify)
        return RegisteredModel(version, metadata, backend=backend, verify=verify, onnx=OnnxPredictor(data),
                               onnx_path=path)
    model, preprocessor, state = _read_checkpoint(checked_checkpoint(version, verify))
    return RegisteredModel(version, metadata, model, preprocessor, state, verify=verify)


def _read_checkpoint(path: Path) -> tuple[Any, Any, dict]:
    """The eval-mode model, the fitted preprocessor and the DataModule's state from a factory checkpoint."""
    from factory.data.checkpoint_state import datamodule_state
    from factory.data.preprocessing import Preprocessor
    from factory.models import SupervisedModel
    from factory.training.restore import load_factory_checkpoint

    checkpoint = load_factory_checkpoint(path)
    state = datamodule_state(checkpoint)
    model = SupervisedModel.load_from_checkpoint(path, map_location="cpu").eval()
    return model, Preprocessor.from_state_dict(state["preprocessor"]), state


def read_table(path: str | Path):
    """A CSV or Parquet file of raw rows to score, as an Arrow table.

    Raises:
        DataError: a missing or unreadable file, or another suffix.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--score: no such file: {path}")
    read = {".csv": _read_csv, ".parquet": _read_parquet}.get(path.suffix.lower())
    if read is None:
        raise DataError(f"--score: {path}: expected a .csv or .parquet file")
    return read(path)


def check_output(output: str | Path | None) -> None:
    """Refuse an output suffix ``write_scored`` cannot write, before any work is done."""
    if output is not None and Path(output).suffix.lower() not in (".csv", ".parquet"):
        raise DataError(f"--output: {output}: expected a .csv or .parquet file")


def write_scored(scored, output: str | Path | None = None) -> str:
    """Write scored rows to ``output`` (.csv or .parquet) and say so; without one, the rows as CSV text."""
    if output is None:
        return scored.to_csv(index=False).rstrip("\n")
    check_output(output)
    if Path(output).suffix.lower() == ".parquet":
        scored.to_parquet(output, index=False)
    else:
        scored.to_csv(output, index=False)
    return f"scored {len(scored)} rows -> {output}"


def _read_csv(path: Path):
    import pyarrow as pa
    from pyarrow import csv

    try:
        return csv.read_csv(path)
    except pa.ArrowInvalid as e:
        raise DataError(f"--score: {path} is not a readable CSV ({str(e).splitlines()[0]})") from None


def _read_parquet(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except pa.ArrowInvalid as e:
        raise DataError(f"--score: {path} is not a readable Parquet file ({str(e).splitlines()[0]})") from None
