"""What ``scripts/registry.py`` prints: tables a person reads at a glance (rich), or JSON."""
from __future__ import annotations

from pathlib import Path

from factory.files import json_text
from factory.rundir.cv import SECTION as CV_SECTION
from factory.registry.store import ModelVersion


def version_row(v: ModelVersion) -> dict:
    """One version as plain JSON-able values (``list --json``)."""
    return {"name": v.name, "version": v.version, "stage": v.stage, "metric": v.metric,
            "created_at": v.created_at, "created_by": v.created_by, "run_id": v.run_id, "path": str(v.path)}


def print_versions(versions: list[ModelVersion], root: Path, as_json: bool = False) -> None:
    """One row per name and version: stage, key metric (val, test), created at/by, run."""
    if as_json:
        print(json_text([version_row(v) for v in versions], indent=2))  # strict JSON, as the files
        return
    from rich.table import Table

    console = _console()
    if not versions:
        console.print(f"no models registered in {root}", highlight=False)
        return
    table = Table(title=f"registry: {root}", title_justify="left")
    for column in ("name", "version", "stage", "metric", "val", "test", "created (UTC)", "by", "run"):
        table.add_column(column, justify="right" if column in ("version", "val", "test") else "left", no_wrap=True)
    for v in versions:
        table.add_row(v.name, str(v.version), v.stage, v.metric.get("name") or "", _number(v.metric.get("val")),
                      _number(v.metric.get("test")), v.created_at[:16].replace("T", " "), v.created_by, v.run_id)
    console.print(table)


def print_version(meta: dict, as_json: bool = False) -> None:
    """``show``: identity, lineage, data, checkpoint, metrics, then the run's config as YAML."""
    if as_json:
        print(json_text(meta, indent=2))
        return
    from omegaconf import OmegaConf
    from rich.table import Table

    from factory.console import print_metrics

    data = meta.get("data") or {}
    checkpoint = meta.get("checkpoint") or {}
    monitor = meta.get("monitor") or {}
    cv = meta.get(CV_SECTION) or {}
    fields = {
        "model": f"{meta['name']} v{meta['version']}",
        "stage": meta.get("stage"),
        "created": f"{meta.get('created_at')} by {meta.get('created_by')}",
        "run id": meta.get("run_id"),
        "run dir": meta.get("run_dir"),
        "experiment": meta.get("task_name"),
        "data": f"{data.get('source')}, rows {data.get('rows')}",
        "data fingerprint": data.get("fingerprint"),
        "seed": meta.get("seed"),
        "git": (meta.get("git") or {}).get("commit"),
        "monitor": f"{monitor.get('metric')} ({monitor.get('mode')}), best {monitor.get('best')}" if monitor else None,
        "cross-validated": (f"{cv.get('folds')} folds; this model is fold {cv.get('kept_fold')}'s, the metrics below "
                            "its own (mean and sd over the folds: --json, cv)") if cv else None,
        "checkpoint": f"{checkpoint.get('file')} ({checkpoint.get('bytes')} bytes, sha256 "
                      f"{str(checkpoint.get('sha256'))[:12]}; from a {checkpoint.get('source_format')} checkpoint)",
        "exports": exports_line(meta.get("exports") or {}, f"{meta['name']}@{meta['version']}"),
    }
    if meta.get("kind") == "language_model":
        fields.update(language_fields(meta))
    console = _console()
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in fields.items():
        table.add_row(key, "" if value is None else str(value))
    console.print(table)
    sections: dict[str, dict[str, float]] = {}
    for key, value in (meta.get("metrics") or {}).items():
        group, _, name = key.rpartition("/")  # baseline/<name>/<metric>: a column per baseline
        sections.setdefault(group, {})[name] = value
    if sections:
        print_metrics("metrics", sections)
    console.print("config:", style="bold")
    console.print(OmegaConf.to_yaml(OmegaConf.create(meta.get("config") or {})), highlight=False, markup=False)


def language_fields(meta: dict) -> dict:
    """``show``'s lines for a language model: what it is, its tokenizer, and why it has no export."""
    lm = meta.get("language_model") or {}
    tokenizer = meta.get("tokenizer") or {}
    perplexity = lm.get("val_perplexity")
    return {
        "kind": "language model",
        "language model": f"{lm.get('parameters') or 0:,} parameters, vocabulary {lm.get('vocab_size')}, block "
                          f"{lm.get('block_size')} tokens, val perplexity "
                          f"{'?' if perplexity is None else f'{perplexity:.2f}'}",
        "tokenizer": f"{tokenizer.get('file')} ({tokenizer.get('bytes')} bytes, sha256 "
                     f"{str(tokenizer.get('sha256'))[:12]})",
        "exports": "none: a language model is served through PyTorch (ONNX export and the reference profile "
                   "are for tabular models)",
    }


def print_loaded(loaded, file=None) -> None:
    """``load``: what was loaded and what it expects."""
    if loaded.kind == "language_model":
        parameters = sum(p.numel() for p in loaded.model.parameters())
        print(f"loaded {loaded.name} v{loaded.version} ({loaded.stage}): {type(loaded.model).__name__}, "
              f"{parameters:,} parameters, eval mode; vocabulary {loaded.vocab_size}, block {loaded.block_size} "
              f"tokens; run {loaded.entry.run_id}", file=file)
        return
    v = loaded.version
    classes = f", classes {loaded.class_labels}" if loaded.class_labels else ""
    if loaded.onnx is not None:
        path = Path(loaded.onnx_path)
        what = f"ONNX Runtime graph {path.name} ({path.stat().st_size / 1e6:.2f} MB) for {loaded.task}"
    else:
        parameters = sum(p.numel() for p in loaded.model.parameters())
        what = f"{type(loaded.model).__name__} for {loaded.task}, {parameters:,} parameters, eval mode"
    print(f"loaded {v.name} v{v.version} ({v.stage}): {what}; {len(loaded.features)} feature columns{classes}; "
          f"run {v.run_id}", file=file)


def exports_line(exports: dict, ref: str = "NAME@VERSION") -> str:
    """The exported files of a version in a few words: name, size, sha256 prefix; or why export failed."""
    parts = [f"{name} ({entry.get('bytes', 0) / 1e6:.2f} MB, sha256 {str(entry.get('sha256'))[:12]})"
             for name, entry in (exports.get("files") or {}).items()]
    if exports.get("error"):
        parts.append(f"export failed: {exports['error'].get('message')}")
    return "; ".join(parts) or f"none (python scripts/export.py {ref} --format onnx)"


def _console():
    import sys

    from rich.console import Console

    # Piped or captured output is not cut to rich's default 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=200)


def _number(value) -> str:
    return "" if value is None else f"{value:.4f}"
