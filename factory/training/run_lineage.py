"""A training run's OpenLineage events (``factory.governance.lineage``), from ``RunContext``.

``train.<task>``: ``START`` as the run begins (sent off the training thread: the client's import
overlaps data loading), ``COMPLETE`` (a completed or pruned run), ``FAIL`` or ``ABORT`` (interrupted)
once ``run.json`` is final. Inputs: the run's snapshot (``snapshot:<id>``), or, for a run without
one, its source: the local files a ``files`` source read (content fingerprints) or ``source:<name>``
with the source table's fingerprint (the snapshot's ``source_fingerprint``: run.json's ``data.fingerprint``
is the curated table's once curation dropped rows). Outputs: ``run:<run_id>`` and its checkpoint file. A run that curated
its data (no ``data.snapshot`` replay) also emits ``curate.<dataset>``, a child job: the source in,
the snapshot out; so a snapshot leads back to the files it was made from.
"""
from __future__ import annotations

import functools
import logging

from omegaconf import DictConfig

from factory.governance import lineage
from factory.rundir.manifest import RunRecord

log = logging.getLogger(__name__)


def _never_fails(step):
    """Lineage describes the run and must never end it: a failure here is a warning."""
    @functools.wraps(step)
    def guarded(*args, **kwargs):
        try:
            return step(*args, **kwargs)
        except Exception as e:  # noqa: BLE001
            log.warning("lineage: %s skipped: %s: %s", step.__name__, type(e).__name__, e)
            return None
    return guarded


@_never_fails
def start(record: RunRecord) -> lineage.Job | None:
    """``START`` of this launch of the run (``resume=auto``'s next launch is a new OpenLineage run)."""
    job = lineage.Job(f"train.{record.task_name}", lineage.training_run_id(record.run_id, record.attempt),
                      outputs=[lineage.run(record.run_id)])
    job.start(wait=False)
    return job


@_never_fails
def data_ready(job: lineage.Job, cfg: DictConfig, record: RunRecord, schema=None) -> None:
    """The data is read (``run.json``'s ``data`` filled): the run's inputs, and the curation's events."""
    data = record.data or {}
    snapshot_id = data.get("snapshot")
    if not snapshot_id:
        job.inputs[:] = _source(cfg, data, schema)
        return
    rows = sum((data.get("rows") or {}).values()) or None
    snapshot = lineage.snapshot(snapshot_id, _fields(schema), rows)
    job.inputs[:] = [snapshot]
    if cfg.data.get("snapshot") is None:  # curated in this run (a replay read a stored snapshot)
        curate = lineage.Job(f"curate.{_dataset(cfg, data)}", parent=job, inputs=_source(cfg, data, None),
                             outputs=[snapshot])
        curate.start(wait=False)
        curate.complete(wait=False)


@_never_fails
def end(job: lineage.Job, cfg: DictConfig, record: RunRecord, error: BaseException | None = None) -> None:
    """``COMPLETE``, ``FAIL`` or ``ABORT`` as ``run.json`` says, with the checkpoint the run kept."""
    if not job.inputs:  # cross-validation (no set_up), or failed before its data was read: what it read
        data_ready(job, cfg, record)
    checkpoint = record.best_checkpoint or record.last_checkpoint
    job.outputs[:] = [lineage.run(record.run_id)] + ([lineage.file(checkpoint)] if checkpoint else [])
    if record.status in ("completed", "pruned"):
        job.complete()
    else:
        job.fail(record.error or error, abort=record.status == "interrupted")


def _source(cfg: DictConfig, data: dict, schema) -> list[lineage.Dataset]:
    """What the run's source read: its local files (fingerprinted), else ``source:<dataset>``."""
    node = cfg.data.get("source") or {}
    path = node.get("path") if hasattr(node, "get") else None
    found = lineage.source_files(path) if isinstance(path, str) else []
    if not found:
        uri = path if isinstance(path, str) else None
        fingerprint = _source_fingerprint(cfg, data)  # factory.data.fingerprint: the sha256 of the table's content
        version = f"sha256:{fingerprint}" if fingerprint and ":" not in fingerprint else fingerprint
        found = [lineage.source(_dataset(cfg, data), version, uri, _fields(schema))]
    return found


def _source_fingerprint(cfg: DictConfig, data: dict) -> str | None:
    """The source table's fingerprint: its snapshot's record, else run.json's (no snapshot: the same table)."""
    if data.get("snapshot"):
        from factory.data import snapshots
        from factory.errors import DataError

        curation = cfg.data.get("curation") or {}
        store = curation.get("store") if hasattr(curation, "get") else None
        try:
            found = snapshots.load_record(data["snapshot"], store or snapshots.default_store())
        except DataError as e:
            log.warning("lineage: the source's fingerprint is the curated table's: %s", e)
        else:
            if (found.get("source") or {}).get("fingerprint"):
                return found["source"]["fingerprint"]
    return data.get("fingerprint")


def _dataset(cfg: DictConfig, data: dict) -> str:
    """The governed dataset's name (``data.curation.dataset``), else the source's."""
    curation = cfg.data.get("curation") or {}
    named = curation.get("dataset") if hasattr(curation, "get") else None
    target = str((cfg.data.get("source") or {}).get("_target_", "source")).rsplit(".", 1)[-1]
    return str(named or data.get("source") or target)


def _fields(schema) -> dict[str, str] | None:
    """Feature -> ``numeric`` / ``categorical``, and the target, from a ``TableSchema``."""
    if schema is None:
        return None
    return {**dict(schema.features), schema.target: f"target ({schema.task})"}
