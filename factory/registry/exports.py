"""A version's exported files: ONNX graphs kept beside its checkpoint, sha256-checked on load.

In the version folder (``factory.registry.store``)::

    model.onnx        the fp32 graph: raw feature columns in, probabilities out (factory.export)
    model.int8.onnx   its dynamically quantized copy, when asked for
    exports.json      per file: sha256, bytes, when, by whom, factory version; or why export failed

``meta.json`` is never rewritten, and exports come after registration (``scripts/export.py
NAME@stage --format onnx``, or ``register --export``), so they have a manifest of their own,
replaced atomically under the registry lock with an ``export`` line in the audit log. The
graph is built outside the lock, in ``.staging/``, and renamed in: a failed export leaves
the folder as it was.
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from factory.errors import FactoryError
from factory.governance import lineage
from factory.registry.capture import sha256
from factory.registry.store import STAGING, ModelVersion, Registry, now, whoami

EXPORTS = "exports.json"
ONNX = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
#: ``load(backend=...)`` -> the exported file it scores through (torch: the checkpoint).
BACKEND_FILES = {"onnx": ONNX, "onnx-int8": ONNX_INT8}
BACKENDS = ("torch", *BACKEND_FILES)


def read(version: ModelVersion) -> dict:
    """``exports.json`` of a version: ``{"files": {name: {...}}, "error": ...}``; empty when never exported."""
    import json

    path = version.path / EXPORTS
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise FactoryError(f"{version.ref}: {path} is not valid JSON ({e})") from None


def export(registry: Registry, ref: str, quantize: bool = False, verify: bool = True,
           check: Callable[[ModelVersion, dict[str, Path]], None] | None = None) -> dict:
    """Export ``ref``'s checkpoint to ONNX into its version folder (and an int8 copy with ``quantize``).

    Args:
        registry: the registry.
        ref: ``NAME``, ``NAME@3`` or ``NAME@STAGE``.
        quantize: also write ``model.int8.onnx`` (dynamic int8 quantization).
        verify: check the checkpoint's sha256 first, as ``load`` does.
        check: called with the version and the staged files (``fp32``, ``int8`` -> path) before
            they move in; what it raises leaves the folder unchanged (``scripts/export.py``
            compares them with PyTorch here).

    Returns:
        The manifest as written (``exports.json``).

    Raises:
        FactoryError: an unknown ref, an altered checkpoint, or a model that cannot be
            exported (the reason in one line); the version folder is then unchanged.
    """
    from factory.export import export_onnx

    version = registry.get(ref)
    meta = version.metadata()
    if meta.get("kind") == "language_model":
        raise FactoryError(f"{version.ref} is a language model: ONNX export applies to tabular models (a graph of "
                           "feature columns); serve it as it is: python scripts/serve.py "
                           f"model={version.ref}")
    checkpoint = checked_checkpoint(version, verify)
    staging = registry.root / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f"{version.name}.v{version.version}.onnx.", dir=staging))
    model = lineage.model_version(version.name, version.version, (meta.get("checkpoint") or {}).get("sha256"))
    try:
        with lineage.job(f"export.{version.name}", inputs=[model]) as event:
            result = export_onnx(checkpoint, staged / ONNX, metadata=_file_metadata(version, meta),
                                 quantize=quantize)
            written = {Path(p).name: Path(p) for p in result.paths}
            if check is not None:
                check(version, {("int8" if name == ONNX_INT8 else "fp32"): path for name, path in written.items()})
            described = {name: _describe(path, int8=name == ONNX_INT8) for name, path in written.items()}

            def update(current: dict) -> dict:
                return {"format": 1, "files": {**(current.get("files") or {}), **described}, "error": None}

            details = {name: entry["sha256"] for name, entry in described.items()}
            manifest = registry.attach(version, written, EXPORTS, update, details)
            event.outputs += [lineage.Dataset(str((version.path / name).absolute()), lineage.FILES,
                                              version=f"sha256:{entry['sha256']}", size=entry["bytes"])
                              for name, entry in described.items()]
        return manifest
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def export_source(source: str, registry: Registry, output: str | None = None, quantize: bool = False,
                  **timing) -> tuple[str, dict[str, Path], Any]:
    """``scripts/export.py SOURCE --format onnx``: a run, a checkpoint file or a registry ref, compared with PyTorch.

    A run directory or checkpoint exports beside the checkpoint (``best.ckpt`` -> ``best.onnx``)
    or to ``output``; a ref (``NAME@production``, ``NAME@3``) into its version folder. Either
    way the files land only after the fp32 graph matched PyTorch on the run's test split
    (``factory.export.compare``).

    Returns:
        What was exported (a ref, the run's experiment, or the checkpoint's path), ``fp32`` / ``int8`` -> file, and
        the ``Comparison`` (``None`` for a checkpoint outside any run: no test split).

    Raises:
        FactoryError: neither an existing path nor a registered model; ``--output`` with a
            ref; a model that cannot be exported or does not match PyTorch.
    """
    from factory.export.compare import compare, export_checked

    if Path(source).exists():
        from factory.rundir import layout
        from factory.rundir.catalog import read_config
        from factory.rundir.checkpoints import resolve_checkpoint

        checkpoint = resolve_checkpoint(source)
        run_dir = next((d for d in (Path(source), checkpoint.parent.parent) if layout.is_run_dir(d)), None)
        cfg = read_config(run_dir) if run_dir is not None else None
        target = Path(output) if output else checkpoint.with_name(checkpoint.name.removesuffix(".ckpt") + ".onnx")
        meta = {"run_id": run_dir.name if run_dir is not None else "", "checkpoint": str(checkpoint)}
        inputs = ([lineage.run(run_dir.name)] if run_dir is not None else []) + [lineage.file(checkpoint)]
        with lineage.job(f"export.{cfg.task_name if cfg is not None else checkpoint.stem}", inputs=inputs) as event:
            files, comparison = export_checked(checkpoint, target, quantize=quantize, metadata=meta,
                                               data_cfg=cfg.data if cfg is not None else None,
                                               monitor=cfg.monitor.metric if cfg is not None else None, **timing)
            event.outputs += [lineage.file(path, content=True) for path in files.values()]
        return (cfg.task_name if cfg is not None else str(checkpoint)), files, comparison
    if "/" in source or source.endswith((".ckpt", ".onnx")):
        raise FactoryError(f"no such run directory or checkpoint: {source}")
    if output:
        raise FactoryError(f"--output: {source} is a registered model: its exports go into its version folder "
                           "(drop --output, or pass a run directory or checkpoint)")
    measured = []

    def check(version: ModelVersion, staged: dict[str, Path]) -> None:
        meta = version.metadata()
        from omegaconf import OmegaConf

        data = OmegaConf.create((meta.get("config") or {}).get("data") or {})
        measured.append(compare(version.checkpoint, data, staged, (meta.get("monitor") or {}).get("metric"), **timing))

    version = registry.get(source)  # an unknown name or stage answers before any work
    export(registry, version.ref, quantize, check=check)
    files = {"fp32": version.path / ONNX, **({"int8": version.path / ONNX_INT8} if quantize else {})}
    return version.ref, files, measured[0]


def record_failure(registry: Registry, version: ModelVersion, reason: str) -> dict:
    """Record why ``version`` could not be exported (``register --export`` registers it anyway)."""
    def update(current: dict) -> dict:
        return {"format": 1, "files": current.get("files") or {},
                "error": {"message": reason, "at": now(), "by": whoami()}}

    return registry.attach(version, {}, EXPORTS, update, {"error": reason})


def exported_file(registry: Registry, version: ModelVersion, backend: str, verify: bool = True) -> tuple[Path, bytes]:
    """The exported file ``backend`` scores through and its bytes, sha256-checked against ``exports.json``.

    The bytes are read once and checked: what is loaded is what was checked.

    Raises:
        FactoryError: an unknown backend; a version never exported (saying how to export it);
            a missing or altered file.
    """
    if backend not in BACKEND_FILES:
        raise FactoryError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    name = BACKEND_FILES[backend]
    entry = (read(version).get("files") or {}).get(name)
    if entry is None:
        how = f"python scripts/export.py {version.ref} --format onnx" + (" --quantize int8" if name == ONNX_INT8 else "")
        raise FactoryError(f"{version.ref} has no {name} (backend={backend}); export it first: {how}")
    path = version.path / name
    if not path.is_file():
        raise FactoryError(f"{version.ref}: exported file {path} is missing")
    data = path.read_bytes()
    if verify and hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        # A re-export renames the new file in before it rewrites exports.json, both under the lock:
        # wait out a writer that may be between the two, then check against what it recorded.
        with registry.locked():
            entry = (read(version).get("files") or {}).get(name) or {}
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
                raise FactoryError(f"{version.ref}: exported file {path} changed since it was exported "
                                   "(sha256 mismatch)")
    return path, data


def checked_checkpoint(version: ModelVersion, verify: bool = True) -> Path:
    """The version's ``model.ckpt``, its sha256 checked against ``meta.json``.

    Raises:
        FactoryError: the file is missing or altered.
    """
    path = version.checkpoint
    if not path.is_file():
        raise FactoryError(f"{version.ref}: checkpoint {path} is missing")
    expected = (version.metadata().get("checkpoint") or {}).get("sha256")
    if verify and expected and sha256(path) != expected:
        raise FactoryError(f"{version.ref}: checkpoint {path} changed since it was registered (sha256 mismatch)")
    return path


def _file_metadata(version: ModelVersion, meta: dict) -> dict:
    """The registry's identity of the graph, recorded in the file (export adds features, labels, versions)."""
    extra = {"data_fingerprint": (meta.get("data") or {}).get("fingerprint")}
    return {"name": version.name, "version": version.version, "run_id": meta.get("run_id"),
            "checkpoint_sha256": (meta.get("checkpoint") or {}).get("sha256"),
            **{k: v for k, v in extra.items() if v}}  # the checkpoint's own fingerprint stays when meta lacks one


def _describe(path: Path, int8: bool) -> dict:
    from factory.rundir.provenance import factory_version

    return {"sha256": sha256(path), "bytes": path.stat().st_size, "quantized": "int8" if int8 else None,
            "exported_at": now(), "exported_by": whoami(), "factory_version": factory_version()}


