"""The model a server scores with, and the hot reload that swaps in a newly promoted version.

``ModelHolder.current`` is a ``Served``: the loaded model with everything a response
names (name, version, stage, backend). A reload builds a whole new ``Served`` off the
request path and replaces ``current`` in one reference assignment, so a request sees the
old model or the new one, never half of each; a request that already took ``current``
finishes on the model it took and names that version.

Reload polls the registry's ``index.json`` (its mtime and size: one ``stat`` per interval)
only when the served reference is a stage (``NAME@production``); a pinned version or
``NAME`` alone never changes under the server. A new version is vetted before the swap
(``check``: the request log refuses a feature named like one of its columns); a version
that fails to load or is refused is tried again when the index changes, else after a
back-off that doubles from ``interval_s`` up to ``RETRY_CAP_S`` (not re-read and
re-hashed every interval).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from factory.errors import FactoryError

log = logging.getLogger(__name__)

RETRY_CAP_S = 60.0  # the longest wait before a failed version is tried again (the index unchanged)
LANGUAGE_MODELING = "language_modeling"  # a Served's task when it is a language model (text in, text out)


@dataclass(frozen=True)
class Served:
    """One loaded version, as the server uses it.

    Attributes:
        model: the ``RegisteredModel`` (``factory.registry.load``).
        name, version, stage: the registry's entry; ``backend``: ``onnx`` or ``torch``.
        features: raw columns in model order; ``kinds``: name -> numeric | categorical.
        task: binary | multiclass | regression; ``class_labels``: label per class index. A language
            model's task is ``language_modeling``: no features, ``model`` a ``RegisteredLanguageModel``.
        hashed: features the model was trained on as keyed hashes (``pii: hash`` in its data
            config): a request's values are hashed with ``pii_key`` before anything else sees
            them (``protect``), so the model scores them as in training and no raw value reaches
            the request log.
    """

    model: Any
    name: str
    version: int
    stage: str
    backend: str
    features: tuple[str, ...]
    kinds: dict[str, str]
    task: str
    class_labels: list = field(default_factory=list)
    hashed: tuple[str, ...] = ()
    pii_key: bytes | None = field(default=None, repr=False)  # never in a repr, a log line or an error

    @property
    def is_language_model(self) -> bool:
        return self.task == LANGUAGE_MODELING

    def protect(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``columns`` with each ``hashed`` feature's values replaced by their keyed hashes (nulls kept)."""
        if not self.hashed:
            return columns
        from factory.data.curation.pii import hash_values

        return {name: np.array(hash_values(values.tolist(), self.pii_key), dtype=object) if name in self.hashed
                else values for name, values in columns.items()}

    def score(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """The model's output for decoded columns (``factory.serving.protocol``): ``(N,)``
        P(class 1), ``(N, C)`` probabilities, or ``(N,)`` regression values."""
        onnx = self.model.onnx
        if onnx is not None:  # no pandas on the request path: the graph takes the columns as they are
            return onnx.predict_columns({name: _onnx_column(columns[name], self.kinds[name])
                                         for name in self.features})
        return self._score_torch(columns)

    def signature(self, max_rows: int):
        """What a request to this model must hold (``protocol.Signature``), built once per loaded model."""
        sig = self.__dict__.get("_signature")
        if sig is None or sig.max_rows != max_rows:
            from factory.serving.protocol import Signature

            sig = Signature(self.features, self.kinds, max_rows)
            object.__setattr__(self, "_signature", sig)  # a cache on a frozen dataclass: not a field
        return sig

    def _score_torch(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        import pandas as pd

        frame = self.model.predict(pd.DataFrame({name: columns[name] for name in self.features}))
        if self.task == "multiclass":
            return frame[[f"prob_{label}" for label in self.class_labels]].to_numpy()
        return frame["score"].to_numpy()


def _onnx_column(values: np.ndarray, kind: str) -> np.ndarray:
    if kind == "numeric":
        return values
    return np.array(["" if v is None else v for v in values], dtype=object)  # the graph's missing level


def load_served(ref: str, registry: str | Path | None, backend: str) -> Served:
    """Load ``ref`` from the registry for serving through ``backend``.

    Raises:
        FactoryError: an unknown name, version or stage, a missing or altered file, a
            version without the export the backend needs.
    """
    from factory import registry as registry_api

    if registry_api.Registry(registry).get(ref).metadata().get("kind") == "language_model":
        return _load_language_model(ref, registry, backend)
    model = registry_api.load(ref, registry, backend=backend)
    version = model.version
    # The ONNX file carries the columns' kinds: reading the preprocessor would load the torch checkpoint.
    kinds = dict(model.onnx.kinds) if model.onnx is not None else dict(model.preprocessor.schema.features)
    hashed, key = pii_of(model.metadata, model.features)
    return Served(model, version.name, version.version, version.stage, backend, tuple(model.features),
                  kinds, model.task, list(model.class_labels), hashed, key)


def _load_language_model(ref: str, registry: str | Path | None, backend: str) -> Served:
    """A language model, served through PyTorch whatever ``backend`` says (it has no ONNX graph):
    no feature columns; ``/generate`` and ``/generate_stream`` use it, ``/infer`` and ``/predict`` refuse it."""
    from factory import registry as registry_api

    model = registry_api.load(ref, registry, backend="torch")
    if backend != "torch":
        log.info("%s v%d is a language model: served through PyTorch (backend=%s applies to tabular models)",
                 model.name, model.version, backend)
    return Served(model, model.name, model.version, model.stage, "torch", (), {}, LANGUAGE_MODELING)


def pii_of(metadata: dict, features) -> tuple[tuple[str, ...], bytes | None]:
    """The features a registered version was trained on hashed (its config's ``data.curation.columns.*.pii``)
    and the key to hash requests with (``FACTORY_PII_KEY``), None when it hashes nothing.

    Raises:
        DataError: the version hashes a feature and no key is set (one line naming the variable).
    """
    from factory.data.curation import pii

    tags = pii.tagged((metadata.get("config") or {}).get("data"))
    hashed = tuple(name for name in features if tags.get(name) == "hash")
    return hashed, (pii.load_key() if hashed else None)


class ModelHolder:
    """Holds the served model; with ``follow=True`` and a stage reference, swaps in new versions.

    Args:
        ref: what is served (``NAME@production``, ``NAME@3``, ``NAME``).
        registry: the registry directory (None: the default).
        backend: ``onnx`` or ``torch``.
        interval_s: seconds between checks of the registry's index.
        follow: reload when another version holds the stage.
        served: an already loaded model (the start-up check's), else loaded here.
        on_swap: called with ``(old, new)`` after each swap (metrics).
        check: called with each newly loaded version before it is swapped in; a
            FactoryError it raises refuses the version (one log line; the old one serves on).
    """

    def __init__(self, ref: str, registry: str | Path | None, backend: str, interval_s: float = 2.0,
                 follow: bool = True, served: Served | None = None,
                 on_swap: Callable[[Served, Served], None] | None = None,
                 check: Callable[[Served], None] | None = None):
        from factory.registry import Registry, parse_ref

        self.ref, self.registry, self.backend = ref, registry, backend
        self.current: Served = served or load_served(ref, registry, backend)
        self.interval_s = interval_s
        self.on_swap, self.vet = on_swap, check
        self._index = Registry(registry).root / "index.json"
        self._follow = follow and isinstance(parse_ref(ref)[1], str)  # a stage, not a pinned version
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen = self._stamp()
        self._failed: int | None = None  # a version whose load failed: logged once, retried on the next change
        self._failures = 0               # ... how many times in a row (the back-off doubles each time)
        self._retry_at: float | None = None  # ... when it is tried again if the index does not change
        self.attempts = 0                # versions loaded for a swap, failed or not (tests read this)

    @property
    def follows(self) -> bool:
        return self._follow

    def start(self) -> None:
        """Start following the stage in a daemon thread (nothing for a pinned reference)."""
        if self._follow and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="factory-model-reload", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop following; a load in progress finishes in its thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def check(self) -> bool:
        """Look at the registry now; load and swap if another version holds the stage.

        Returns:
            True when a new version was swapped in. A failed load keeps the current model
            and logs one line.
        """
        from factory.registry import Registry

        stamp = self._stamp()
        if stamp == self._seen and (self._retry_at is None or time.monotonic() < self._retry_at):
            return False
        self._seen, self._retry_at = stamp, None
        try:
            target = Registry(self.registry).get(self.ref)
        except FactoryError as e:  # the stage emptied, the index unreadable mid-change: keep serving
            log.warning("reload: %s: %s; still serving v%d", self.ref, e, self.current.version)
            return False
        if target.version == self.current.version:
            self._failed, self._failures = None, 0
            return False
        self.attempts += 1
        failed = "failed to load"
        try:
            new = load_served(f"{target.name}@{target.version}", self.registry, self.backend)
            new = dataclasses.replace(new, stage=target.stage)
            if self.vet is not None:
                failed = "refused"
                self.vet(new)
        except Exception as e:  # noqa: BLE001 - whatever broke the load, the old model keeps serving
            if self._failed != target.version:
                log.error("reload: %s v%d %s (%s); still serving v%d", target.name, target.version, failed,
                          str(e).splitlines()[0] if str(e) else type(e).__name__, self.current.version)
                self._failures = 0
            self._failed = target.version
            self._failures += 1
            # Not every interval: an export may land without touching the index, so retry after a back-off.
            self._retry_at = time.monotonic() + min(self.interval_s * 2 ** self._failures, RETRY_CAP_S)
            return False
        old, self.current = self.current, new  # the swap: one reference assignment
        self._failed, self._failures = None, 0
        log.info("reload: %s now serves v%d (was v%d)", self.ref, new.version, old.version)
        if self.on_swap is not None:
            self.on_swap(old, new)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the poller must outlive any one bad check
                log.exception("reload: check failed; still serving v%d", self.current.version)

    def _stamp(self) -> tuple | None:
        try:
            st = self._index.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino
