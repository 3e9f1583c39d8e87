"""Labeling jobs (``scripts/label.py``): a registered model picks rows for Label Studio; its labels come
back as a new snapshot of the dataset. The table work is ``factory.data.labeling``'s; here the model.

    python scripts/label.py export model=fraud_detection@production data=fraud n=200 out=labeling/b1
    python scripts/label.py import labeling/b1/project-1-at-2026-12-07.json

``export`` writes a new folder:

    tasks.json      Label Studio tasks (import them into a project): data.row_id, data.row, predictions
    config.xml      the project's labeling config: the row as a table, one choice per class
    rows.parquet    the picked rows as read (row_id + the model's features): the values import appends
    labeling.json   what import needs: model, classes, target, the base snapshot, strategy, row ids

A restricted dataset (the model's or the data config's classification, or the policy's) is
exported only with the data key (``FACTORY_DATA_KEY``): rows.parquet is then encrypted, while
tasks.json holds the rows' feature values (PII columns hashed or dropped) in the clear, as Label
Studio needs them: keep the folder where the dataset may be.

``import`` reads the folder back, so the appended rows hold the exact values scored, not the JSON
round trip's (an integer read back as float, a time as text), and an edited task cannot change them.

Example:
    >>> from factory import compose
    >>> export(compose("label", ["action=export", "data=fraud", "out=labeling/b1"]))  # model= set too
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from factory.data import labeling
from factory.errors import ConfigError, DataError
from factory.files import current_umask, utc_stamp, write_json, write_text

TASKS, CONFIG, ROWS, MANIFEST = "tasks.json", "config.xml", "rows.parquet", "labeling.json"


def export(cfg) -> dict:
    """Score the pool (``input`` files or the ``data`` config's table) with ``cfg.model``, pick
    ``cfg.n`` rows by ``cfg.strategy`` and write them as Label Studio tasks into ``cfg.out``.

    Returns:
        ``labeling.json``'s content.

    Raises:
        ConfigError: no model, no out, neither or both of input and data.
        DataError: a regression model, a pool lacking a feature, an out folder that holds files.
    """
    from factory import registry

    if not cfg.model:
        raise ConfigError("model: label.py export needs model=NAME@stage (the registered model that scores the pool)")
    if not cfg.out:
        raise ConfigError("out: label.py export needs out=<a new folder> for the tasks")
    data = cfg.get("data")
    if (cfg.input is None) == (data is None):
        raise ConfigError("input: give input=<file, glob or directory> or data=<config>, one of the two")
    out = Path(cfg.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"out={out}: exists and is not an empty folder (a labeling batch is never overwritten)")
    model = registry.load(cfg.model, cfg.registry)
    data_record = model.metadata.get("data") or {}
    curation = ((model.metadata.get("config") or {}).get("data") or {}).get("curation") or {}
    dataset = curation.get("dataset") or data_record.get("source")
    classification, key = _classification(cfg, model, dataset, curation)
    if model.task not in ("binary", "multiclass"):
        raise DataError(f"{model.ref} is a {model.task} model: labeling picks a class, so it needs a binary "
                        "or multiclass one")
    pool, source = _pool(cfg, model)
    features = model.features
    absent = [c for c in features if c not in pool.column_names]
    if absent:
        raise DataError(f"{source['name']}: lacks the feature column(s) the model reads: {', '.join(map(repr, absent))}")
    pool = pool.select(features)
    scored = model.predict(pool)
    classes = [str(label) for label in model.class_labels]
    if model.task == "binary":
        probabilities = scored["score"].to_numpy(np.float64)
        confidence = np.maximum(probabilities, 1.0 - probabilities)
    else:
        probabilities = scored[[f"prob_{label}" for label in model.class_labels]].to_numpy(np.float64)
        confidence = probabilities.max(axis=1)
    uncertainty = labeling.entropy(probabilities)
    numeric = [c for c in features if model.preprocessor.schema.features[c] == "numeric"]
    picked = labeling.select(uncertainty, cfg.n, cfg.strategy, seed=cfg.seed, pool=cfg.pool,
                             features=labeling.standardized(pool, numeric) if cfg.strategy == "diverse" else None)
    rows = pool.take(pa.array(picked, pa.int64()))
    ids = labeling.row_ids(rows)
    predicted = [classes[i] for i in scored["prediction"].to_numpy()[picked]]
    tasks = labeling.tasks(rows, ids, classes, predicted=predicted, scores=confidence[picked].tolist(),
                           model_version=model.ref)
    schema = model.preprocessor.schema
    manifest = {
        "model": {"ref": model.ref, "name": model.version.name, "version": model.version.version},
        "task": model.task, "target": schema.target, "positive_label": schema.positive_label,
        "classes": classes, "class_values": list(model.class_labels), "features": dict(schema.features),
        "base": data_record.get("snapshot"), "dataset": dataset,
        "classification": classification, "rows_encrypted": key is not None,
        "strategy": cfg.strategy, "n": cfg.n, "seed": cfg.seed, "pool_rows": pool.num_rows,
        "rows": rows.num_rows, "row_ids": ids, "source": source, "created": utc_stamp(),
        "mean_uncertainty": {"picked": float(uncertainty[picked].mean()) if len(picked) else None,
                             "pool": float(uncertainty.mean()) if len(uncertainty) else None},
    }
    _write_folder(out, tasks, labeling.labeling_config(classes, f"{schema.target}: which class is this row?"),
                  rows.append_column(labeling.ROW_ID, pa.array(ids, pa.string())), manifest, key)
    return manifest


def _classification(cfg, model, dataset: str | None, curation: dict) -> tuple[str, bytes | None]:
    """The export's classification (the stricter of the model's data config, ``data=``'s and the
    policy's) and the data key for a restricted one: without it, one line and nothing is read."""
    from factory.governance import access

    level = curation.get("classification") or "public"
    data = cfg.get("data")
    if data is not None and (data.get("curation") or {}).get("classification"):
        level = access.stricter(level, data.curation.classification)
    level = access.effective(str(dataset or model.version.name), level)
    if level != "restricted":
        return level, None
    from factory.governance.encryption import KEY_ENV, load_key

    try:
        return level, load_key()
    except DataError as e:
        raise DataError(f"dataset {dataset!r} is restricted: label.py export writes its rows encrypted, so it needs "
                        f"the data key ({KEY_ENV}): {e}") from None


def _pool(cfg, model) -> tuple[pa.Table, dict]:
    """The unlabeled rows (PII columns of the model's data config hashed or dropped, as in
    training and scoring) and how the manifest names them."""
    from omegaconf import OmegaConf

    from factory.data.curation import pii

    tagged = pii.tagged(((model.metadata or {}).get("config") or {}).get("data"))
    if cfg.input is not None:
        from factory.serving.score_input import batches, find_files, open_files

        given = OmegaConf.to_container(cfg.input) if not isinstance(cfg.input, str) else cfg.input
        kinds = dict(model.preprocessor.schema.features)
        files = open_files(find_files(given), list(kinds), kinds)
        parts = [pa.Table.from_batches(list(batches(f, kinds, 65536))).select(list(kinds)) for f in files
                 if f.rows != 0]
        if not parts:
            raise DataError(f"input={given}: no rows to label")
        table = pa.concat_tables(parts, promote_options="permissive")  # a file's int column beside another's float
        source = {"name": f"input={given}", "files": [str(f.path) for f in files]}
    else:
        from factory import redact
        from factory.config.instantiate import build
        from factory.data.governed import load_governed

        built = build(cfg.data.source, "data.source")
        # Access checked and the read audited; the model's PII tags applied there, as for input= below.
        table = load_governed(cfg.data, purpose="label-export", pii_columns=tagged, source=built).table
        source = {"name": f"data={built.name}", "config": redact.container(OmegaConf.to_container(cfg.data.source))}
        return table, source
    if tagged:
        table = pii.apply(table, tagged, pii.load_key() if "hash" in tagged.values() else None, strict=False)
    return table, source


def _write_folder(out: Path, tasks: list, config: str, rows: pa.Table, manifest: dict,
                  key: bytes | None = None) -> None:
    """The four files, written into a temp folder beside ``out`` and renamed onto it: a batch is all there or absent."""
    import shutil
    import tempfile

    import pyarrow.parquet as pq

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp's 0700 would hide the batch from teammates
        write_json(tmp / TASKS, tasks)
        write_text(tmp / CONFIG, config)
        if key is not None:  # restricted: encrypted at rest (tasks.json cannot be: Label Studio reads it)
            from factory.governance.encryption import write_parquet

            write_parquet(rows, tmp / ROWS, key)
        else:
            pq.write_table(rows, tmp / ROWS)
        write_json(tmp / MANIFEST, manifest)
        if out.exists():
            out.rmdir()  # empty (checked): replaced by the complete folder
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def import_labels(cfg) -> dict:
    """Validate a Label Studio JSON export against its ``export`` folder and store the labeled rows,
    appended to the base snapshot (``cfg.base``, else the model's training snapshot), as a new snapshot.

    Returns:
        ``{"snapshot", "parent", "labeled", "skipped", "rows", "store"}``.

    Raises:
        ConfigError: no export file given.
        DataError: an unreadable export or folder, any invalid task (``labeling.parse_export``), no
            label at all, a labeled column the base snapshot cannot hold.
    """
    from factory.data import snapshots
    from factory.data.spec import TableSchema

    if not cfg.annotations:
        raise ConfigError("annotations: give the Label Studio JSON export: label.py import <export.json>")
    path = Path(cfg.annotations)
    folder = Path(cfg.tasks) if cfg.tasks else path.parent
    manifest = _read_json(folder / MANIFEST, f"tasks={folder}: no {MANIFEST} (give tasks=<the folder label.py "
                                             "export wrote>)")
    export_ = _read_json(path, f"{path}: no such file")
    rows = _read_rows(folder / ROWS, manifest)
    labels = labeling.parse_export(export_, manifest["classes"], rows.column(labeling.ROW_ID).to_pylist(),
                                   where=str(path), unlabeled=cfg.unlabeled)
    if labels.num_rows == 0:
        raise DataError(f"{path}: no labeled task (annotate some in Label Studio, then export again)")
    base = cfg.base or manifest.get("base")
    target = manifest["target"]
    meta: dict[str, Any] = {"source": "labeling", "labeling": {
        "export": path.name, "model": manifest["model"]["ref"], "strategy": manifest["strategy"],
        "labeled": labels.num_rows, "annotations": int(np.sum(labels.column("annotations").to_numpy())),
        "labels": {c: int(n) for c, n in zip(*np.unique(labels.column("label").to_numpy(zero_copy_only=False),
                                                          return_counts=True))}}}
    key = None
    if base:
        parent = snapshots.read_governed(base, cfg.store)
        target_type = parent.table.schema.field(target).type if target in parent.table.column_names else None
        new = labeling.labeled_rows(rows, labels, target, manifest["classes"], manifest["class_values"], target_type)
        table = pa.concat_tables([parent.table, _conform(new, parent.table.schema, parent.id)])
        schema = parent.schema
        meta.update(parent=parent.id, dataset=parent.record.get("dataset"),
                    classification=parent.record.get("classification"))
        if parent.record.get("encrypted"):
            from factory.governance.encryption import load_key

            key = load_key()
    else:
        table = labeling.labeled_rows(rows, labels, target, manifest["classes"], manifest["class_values"])
        schema = TableSchema(features=dict(manifest["features"]), target=target, task=manifest["task"],
                             positive_label=manifest.get("positive_label"))
        meta.update(dataset=manifest.get("dataset"), classification=manifest.get("classification"))
        if meta["classification"] == "restricted":
            from factory.governance.encryption import load_key

            key = load_key()
    sid = snapshots.write(table, schema, cfg.store, meta, key=key)
    return {"snapshot": sid, "parent": meta.get("parent"), "labeled": labels.num_rows,
            "skipped": len(export_) - labels.num_rows, "rows": table.num_rows,
            "store": str(cfg.store)}


def _conform(new: pa.Table, schema: pa.Schema, parent: str) -> pa.Table:
    """``new`` with ``schema``'s columns, types and order: absent columns null, extra ones refused."""
    extra = [c for c in new.column_names if c not in schema.names]
    if extra:
        raise DataError(f"snapshot {parent} has no column {extra[0]!r}: the labeled rows cannot be appended to it")
    columns = []
    for field in schema:
        if field.name not in new.column_names:
            columns.append(pa.nulls(new.num_rows, field.type))
            continue
        try:
            columns.append(new.column(field.name).cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise DataError(f"labeled column {field.name!r} cannot be stored as snapshot {parent}'s "
                            f"{field.type} ({str(e).splitlines()[0]})") from None
    return pa.Table.from_arrays(columns, schema=schema)


def _read_json(path: Path, missing: str) -> Any:
    if not path.is_file():
        raise DataError(missing)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not readable JSON ({str(e).splitlines()[0]})") from None


def export_summary(manifest: dict, out: str) -> str:
    """One line: how many rows, which model and strategy, where, and what to do next."""
    mean = manifest["mean_uncertainty"]
    return (f"{manifest['rows']} of {manifest['pool_rows']:,} rows picked by {manifest['strategy']} with "
            f"{manifest['model']['ref']} (mean entropy {mean['picked'] or 0:.3f} vs {mean['pool'] or 0:.3f} in the "
            f"pool) -> {out}/{TASKS}; label them in Label Studio with {out}/{CONFIG}, export JSON, then "
            f"label.py import <export.json> tasks={out}")


def import_summary(result: dict) -> str:
    """One line naming the new snapshot id (what ``data.snapshot=`` trains on)."""
    onto = f"appended to {result['parent']}" if result["parent"] else "as a new dataset"
    skipped = f", {result['skipped']} unlabeled task(s) skipped" if result["skipped"] else ""
    return (f"snapshot {result['snapshot']}: {result['labeled']} labeled row(s) {onto} ({result['rows']:,} rows"
            f"{skipped}); train on it with data.snapshot={result['snapshot']}")


def _read_rows(path: Path, manifest: dict) -> pa.Table:
    """rows.parquet, decrypted with ``FACTORY_DATA_KEY`` when export encrypted it (restricted data)."""
    from factory.governance.encryption import MAGIC, is_encrypted, load_key, read_parquet

    try:
        with open(path, "rb") as f:
            encrypted = is_encrypted(f.read(len(MAGIC)))
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror})") from None
    if encrypted or manifest.get("rows_encrypted"):
        return read_parquet(path, load_key())
    import pyarrow.parquet as pq

    return pq.read_table(path)
