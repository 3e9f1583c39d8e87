"""Content-addressed snapshots of curated tables: every run replayable on its exact data.

    <store>/snapshots/<id>/data.parquet    the curated table (AES-GCM encrypted when restricted)
    <store>/snapshots/<id>/snapshot.json   id, schema, rows, columns, source, classification, ...

The id is the first 16 hex characters of the SHA-256 of the table's fingerprint
(``factory.data.fingerprint.table_fingerprint``) and its ``TableSchema``: the same curated
table read as the same task has the same id in any process, so runs that saw the same data
share one snapshot. Plain Parquet rather than Delta Lake: a snapshot never changes once
written (a new version is a new id with a ``parent``), so Delta's transaction log would add a
dependency and buy nothing (docs/data.md, "Snapshots and replay").
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from factory.data.fingerprint import table_fingerprint
from factory.data.spec import TableSchema
from factory.errors import DataError
from factory.files import current_umask, json_text, utc_stamp, write_json

SNAPSHOTS = "snapshots"
DATA = "data.parquet"
RECORD = "snapshot.json"
ID_LENGTH = 16
MIN_PREFIX = 4  # as git: shorter prefixes match by accident as the store grows
#: ``meta`` keys lifted into snapshot.json's own fields; every other key stays under ``meta``.
KNOWN_META = ("source", "source_fingerprint", "dataset", "classification", "parent", "pii")
_HEX = re.compile(r"[0-9a-f]+")


@dataclass
class Snapshot:
    """A stored snapshot read back.

    Attributes:
        table: the curated table, as written.
        schema: its ``TableSchema`` (features with kinds, target, task, ...).
        meta: what the writer passed as ``meta`` (``source``, ``classification``, ``parent``, ...).
        id: the full 16-character id.
        record: all of snapshot.json.
    """

    table: pa.Table
    schema: TableSchema
    meta: dict[str, Any]
    id: str = ""
    record: dict[str, Any] = field(default_factory=dict)


def default_store() -> Path:
    """``$FACTORY_ROOT/data``, else ``./data`` (as ``paths.data_dir`` in conf/paths)."""
    return Path(os.environ.get("FACTORY_ROOT", ".")) / "data"


def snapshot_id(table: pa.Table, schema: TableSchema, fingerprint: str | None = None) -> tuple[str, str]:
    """``(id, table fingerprint)`` of ``table`` read as ``schema``.

    The schema is part of the id: the same rows with another target or feature kinds are
    another snapshot, so a replay never trains on a schema it was not declared with.
    ``fingerprint``: ``table_fingerprint(table)`` when the caller has it already (not recomputed).
    """
    fingerprint = fingerprint or table_fingerprint(table)
    key = json_text({"table": fingerprint, "schema": schema_record(schema)})
    return hashlib.sha256(key.encode()).hexdigest()[:ID_LENGTH], fingerprint


def write(table: pa.Table, schema: TableSchema, store: str | Path, meta: dict, key: bytes | None = None,
          fingerprint: str | None = None) -> str:
    """Store ``table`` as a snapshot (once: an existing id is kept as it is) and return its id.

    Atomic: the files are written into a temp directory beside the snapshot's and renamed onto
    it; of writers racing on the same id (DDP ranks) one rename wins, the others drop theirs.

    Args:
        table: the curated table.
        schema: how it is read (features, target, task).
        store: the data directory; snapshots live under ``<store>/snapshots/``.
        meta: JSON-able facts about it. ``source`` (name), ``source_fingerprint``, ``dataset``,
            ``classification`` (public | internal | restricted), ``parent`` (the snapshot this
            one extends, e.g. with labeled rows; an id or prefix) and ``pii`` (column -> hash |
            drop; else ``curation.pii``, else the parent's) become snapshot.json fields; the
            rest is kept under ``meta``. Never values of PII columns. An existing id keeps its
            first writer's meta, but its classification is raised when this writer declares a
            stricter one (a replay is checked at the strictest level ever declared).
        key: a 32-byte data key (``factory.governance.encryption.load_key``): the data file is
            encrypted with it. Given for an id stored unencrypted, the file is encrypted in place.
        fingerprint: ``table_fingerprint(table)`` if the caller computed it (saves a pass over the table).

    Returns:
        The id (16 hex characters).

    Raises:
        DataError: a schema column missing from the table, an unknown ``parent`` or
            ``classification``, or a restricted table without a key.
    """
    missing = [c for c in [*schema.features, schema.target] if c not in table.column_names]
    if missing:
        raise DataError(f"snapshot: schema column {missing[0]!r} is not in the table (columns: "
                        f"{', '.join(table.column_names)})")
    meta = dict(meta or {})
    classification = meta.pop("classification", None) or "public"
    dataset = meta.get("dataset") or meta.get("source") or "snapshot"
    from factory.governance.access import check_classification

    check_classification(dataset, classification)
    if classification == "restricted" and key is None:  # encryption at rest is not optional
        raise DataError(f"dataset {dataset!r} is restricted: its snapshot is stored encrypted only; give the "
                        "data key (FACTORY_DATA_KEY, factory.governance.encryption.load_key)")
    if meta.get("parent"):
        meta["parent"] = resolve(meta["parent"], store)
        if "pii" not in meta and not (meta.get("curation") or {}).get("pii"):
            # Appended rows (labeling) have the parent's columns, so its PII tags.
            meta["pii"] = load_record(meta["parent"], store).get("pii") or {}
    sid, fingerprint = snapshot_id(table, schema, fingerprint)
    root = Path(store) / SNAPSHOTS
    final = root / sid
    if (final / RECORD).is_file():
        _check_same(final, fingerprint)
        _upgrade(final, key, classification)
        return sid
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{sid}."))  # dot: list_snapshots skips it
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp's 0700 would hide it from teammates
        _write_data(table, tmp / DATA, key)
        record = {
            "id": sid,
            "fingerprint": fingerprint,
            "created": utc_stamp(),
            "rows": table.num_rows,
            "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
            "schema": schema_record(schema),
            "source": {"name": meta.pop("source", None), "fingerprint": meta.pop("source_fingerprint", None)},
            "dataset": meta.pop("dataset", None),
            "classification": classification,
            "encrypted": key is not None,
            "parent": meta.pop("parent", None),
            "pii": meta.pop("pii", None) or (meta.get("curation") or {}).get("pii") or {},
            "bytes": (tmp / DATA).stat().st_size,
            "meta": meta,
        }
        write_json(tmp / RECORD, record)
        _fsync_dir(tmp)
        try:
            os.rename(tmp, final)  # atomic; fails if another writer's directory is already there
        except OSError:
            if not (final / RECORD).is_file():
                raise
            _check_same(final, fingerprint)  # lost the race to an identical snapshot: fine
        else:
            _fsync_dir(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return sid


def read(id: str, store: str | Path, key: bytes | None = None, verify: bool = True) -> Snapshot:
    """The snapshot ``id`` (or a unique prefix of it) from ``store``.

    Args:
        key: the data key, needed when the snapshot is encrypted.
        verify: recompute the table's fingerprint and refuse a data file that changed since it
            was written (about 20 ms per 50k rows x 12 columns).

    Raises:
        DataError: unknown or ambiguous id, an id given as a path, a missing or wrong key, or a
            data file that no longer matches its fingerprint; each one line.
    """
    record = load_record(id, store)
    sid = record["id"]
    path = Path(store) / SNAPSHOTS / sid / DATA
    table = _read_data(path, key, record)
    if verify and table_fingerprint(table) != record["fingerprint"]:
        raise DataError(f"snapshot {sid}: {path} does not match its fingerprint (changed since it was written)")
    meta = {"source": record["source"]["name"], "source_fingerprint": record["source"]["fingerprint"],
            **{k: record[k] for k in KNOWN_META[2:]}, **record["meta"]}
    return Snapshot(table=table, schema=schema_from_record(record["schema"]), meta=meta, id=sid, record=record)


def load_record(id: str, store: str | Path) -> dict[str, Any]:
    """snapshot.json of the snapshot ``id`` (or a unique prefix), without reading its data."""
    import json

    path = Path(store) / SNAPSHOTS / resolve(id, store) / RECORD
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"snapshot: cannot read {path}: {e}") from None


def resolve(id: str, store: str | Path) -> str:
    """The full id of the snapshot named by ``id`` or a unique prefix of it (at least 4 characters).

    Raises:
        DataError: ``id`` looks like a path, is too short, matches nothing or more than one id.
    """
    id = str(id).strip()
    if "/" in id or "\\" in id or ".." in id or id.startswith("."):
        raise DataError(f"snapshot id {id!r} is a path: give an id, a name ({_list_hint(store)})")
    root = Path(store) / SNAPSHOTS
    if len(id) < MIN_PREFIX:
        raise DataError(f"snapshot id {id!r} is too short: give at least {MIN_PREFIX} of its characters "
                        f"({_list_hint(store)})")
    matches = [sid for sid in _ids(root) if sid.startswith(id.lower())] if _HEX.fullmatch(id.lower()) else []
    if not matches:
        raise DataError(f"no snapshot {id!r} in {root} ({_list_hint(store)})")
    if len(matches) > 1:
        raise DataError(f"snapshot id {id!r} is ambiguous: {', '.join(matches[:5])}"
                        f"{' ...' if len(matches) > 5 else ''} (give more characters)")
    return matches[0]


def list_snapshots(store: str | Path) -> list[dict[str, Any]]:
    """One row per snapshot in ``store``, oldest first: id, created, rows, columns, source, dataset,
    classification, encrypted, parent, bytes."""
    rows = []
    for sid in _ids(Path(store) / SNAPSHOTS):
        record = load_record(sid, store)
        rows.append({"id": sid, "created": record["created"], "rows": record["rows"],
                     "columns": len(record["columns"]), "source": record["source"]["name"],
                     "dataset": record["dataset"], "classification": record["classification"],
                     "encrypted": record["encrypted"], "parent": record["parent"], "bytes": record.get("bytes")})
    return sorted(rows, key=lambda row: (row["created"], row["id"]))


def diff(a: str, b: str, store: str | Path, key: bytes | None = None) -> dict[str, Any]:
    """What changed from snapshot ``a`` to ``b``: rows, schema, per-column summaries.

    See ``factory.data.snapshot_diff.compare`` for the shape of the answer.
    """
    from factory.data.snapshot_diff import compare

    return compare(read(a, store, key), read(b, store, key))


def read_governed(id: str, store: str | Path, run_id: str | None = None, audit: bool = True) -> Snapshot:
    """``read`` for a person or a command: the access policy is checked and the read audited for a
    non-public snapshot, and the data key loaded (``FACTORY_DATA_KEY``) for an encrypted one.

    Args:
        audit: append the read to the audit log; False for all but one of the processes that
            read the same snapshot for one run (DDP ranks: the log names the run once).
    """
    from factory.governance import access

    record = load_record(id, store)
    dataset = record["dataset"] or record["source"]["name"] or record["id"]
    # The policy's classification of the dataset, when stricter than the record's, applies too.
    classification = access.effective(dataset, record["classification"])
    governed = classification != "public"
    if governed:
        access.authorize(dataset, classification)
    key = None
    if record["encrypted"] or _looks_encrypted(Path(store) / SNAPSHOTS / record["id"] / DATA):
        from factory.governance.encryption import load_key

        key = load_key()
    snapshot = read(record["id"], store, key)
    snapshot.meta["classification"] = classification  # as checked: the policy's when stricter
    if governed and audit:
        access.record_read(dataset, classification, record["id"], run_id)
    return snapshot


def schema_record(schema: TableSchema) -> dict[str, Any]:
    """A ``TableSchema`` as JSON-able values (feature order kept)."""
    return {"features": dict(schema.features), "target": schema.target, "task": schema.task,
            "positive_label": schema.positive_label,
            "image_shape": list(schema.image_shape) if schema.image_shape is not None else None}


def schema_from_record(record: dict[str, Any]) -> TableSchema:
    """The ``TableSchema`` that ``schema_record`` wrote."""
    shape = record.get("image_shape")
    return TableSchema(features=dict(record["features"]), target=record["target"], task=record["task"],
                       positive_label=record.get("positive_label"),
                       image_shape=tuple(shape) if shape is not None else None)


def _list_hint(store: str | Path) -> str:
    return f"`python scripts/data.py list --store {store}` shows the ids"


def _ids(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / RECORD).is_file())


def _check_same(final: Path, fingerprint: str) -> None:
    import json

    stored = json.loads((final / RECORD).read_text(encoding="utf-8")).get("fingerprint")
    if stored != fingerprint:  # 64-bit prefixes: a collision, or an edited snapshot.json
        raise DataError(f"snapshot {final.name}: {final / RECORD} holds another table (fingerprint "
                        f"{str(stored)[:16]}, this table's {fingerprint[:16]})")


def _write_data(table: pa.Table, path: Path, key: bytes | None) -> None:
    if key is not None:
        from factory.governance.encryption import write_parquet

        write_parquet(table, path, key)
        return
    import pyarrow.parquet as pq

    pq.write_table(table, path)
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _read_data(path: Path, key: bytes | None, record: dict) -> pa.Table:
    # An encrypted file is read as one whatever snapshot.json says (an encryption in place
    # replaces the data file before the record).
    if record["encrypted"] or _looks_encrypted(path):
        if key is None:
            raise DataError(f"snapshot {record['id']} is encrypted ({record['classification']}): "
                            f"give the data key (FACTORY_DATA_KEY) to read {path}")
        from factory.governance.encryption import read_parquet

        return read_parquet(path, key)
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"snapshot {record['id']}: cannot read {path}: {e}") from None


def _looks_encrypted(path: Path) -> bool:
    from factory.governance.encryption import MAGIC, is_encrypted

    try:
        with open(path, "rb") as f:
            return is_encrypted(f.read(len(MAGIC)))
    except OSError:
        return False


def _upgrade(final: Path, key: bytes | None, classification: str) -> None:
    """A later write of a stored snapshot: raise its classification to ``classification`` when that
    is stricter, and encrypt a data file stored in the clear when ``key`` is given (atomically)."""
    import json

    from factory.files import locked
    from factory.governance.access import CLASSIFICATIONS

    def rank(level: str) -> int:
        return CLASSIFICATIONS.index(level) if level in CLASSIFICATIONS else 0

    record = json.loads((final / RECORD).read_text(encoding="utf-8"))
    clear = not (record["encrypted"] and _looks_encrypted(final / DATA))
    if rank(classification) <= rank(record["classification"]) and not (key is not None and clear):
        return  # nothing to change: skip the lock
    with locked(final.parent / f".{final.name}.lock"):  # two ranks upgrading at once: one does it
        record = json.loads((final / RECORD).read_text(encoding="utf-8"))
        if key is not None and not (record["encrypted"] and _looks_encrypted(final / DATA)):
            import pyarrow.parquet as pq

            from factory.governance.encryption import write_parquet

            write_parquet(pq.read_table(final / DATA), final / DATA, key)
            record.update(encrypted=True, bytes=(final / DATA).stat().st_size)
        if rank(classification) > rank(record["classification"]):
            record["classification"] = classification
        write_json(final / RECORD, record)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

