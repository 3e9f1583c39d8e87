"""OpenLineage run events for what factory runs: training, curation, registration, export, scoring, reports.

Each job emits ``START`` as it begins and ``COMPLETE`` (``FAIL``; ``ABORT`` for an interrupted
training run) as it ends, naming its input and output datasets (namespace + name):

==================  ==========================  =============================================
dataset             namespace / name            output of
a snapshot          ``factory`` / snapshot:ID   ``curate.<dataset>`` (a training run's curation)
a training run      ``factory`` / run:RUN_ID    ``train.<task>`` (with its checkpoint file)
a model version     ``factory`` / NAME@vN       ``register.<NAME>``
a data source       ``factory`` / source:NAME   (an input only: synthetic, warehouse)
a file              ``file`` / absolute path    source files, checkpoints, ONNX, score tables, reports
==================  ==========================  =============================================

A dataset's version facet holds its fingerprint (a file's content sha256, a snapshot's id, a
model version's checkpoint sha256). Events go through the ``openlineage-python`` client: unless
OpenLineage's own configuration is set (``OPENLINEAGE_CONFIG``, an ``openlineage.yml`` in the
working directory or ``~/.openlineage``, ``OPENLINEAGE_URL``, ``OPENLINEAGE__TRANSPORT__*``), its
file transport writes one JSON file per event under ``<FACTORY_ROOT or .>/lineage/``, which
``factory.governance.lineage_graph`` and ``scripts/lineage.py`` read back. ``OPENLINEAGE_DISABLED=true``
emits nothing. Emitting never fails a job: an event that cannot be sent is a logged warning.

Example:
    >>> from factory.governance import lineage
    >>> with lineage.job("score.fraud", inputs=[lineage.model_version("fraud", 3)]) as run:
    ...     ...  # the work
    ...     run.outputs.append(lineage.file("scored/today"))
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from factory import files, redact

log = logging.getLogger(__name__)

NAMESPACE = "factory"
FILES = "file"  # OpenLineage's namespace for a local filesystem path
FOLDER = "lineage"  # under $FACTORY_ROOT: the file transport's events
# Its files: event-<YYYYmmdd-HHMMSS.ffffff>-<pid>-<random>.json, one per event, in time order (files of
# before the pid and random part, event-<YYYYmmdd-HHMMSS.ffffff>.json, are read back the same).
PREFIX = "event"
#: Files up to this size in all are fingerprinted by content; beyond, by path, size and mtime
#: (cheap at any size, and it changes whenever a file is rewritten).
HASH_LIMIT = 64 * 2**20  # sha256 reads ~1 GB/s: under 0.1 s
WAIT_S = 10.0  # a job waits at most this long for an event to be sent (an HTTP backend that does not answer)


@dataclass(frozen=True)
class Dataset:
    """An input or output of a job, as OpenLineage names it, with what factory knows of it."""

    name: str
    namespace: str = NAMESPACE
    version: str | None = None  # its fingerprint: the datasetVersion facet
    fields: Mapping[str, str] | None = None  # column -> type: the schema facet
    uri: str | None = None  # where it is read from (a path, a URL with its password masked): the dataSource facet
    rows: int | None = None
    size: int | None = None  # bytes


def snapshot(snapshot_id: str, fields: Mapping[str, str] | None = None, rows: int | None = None) -> Dataset:
    """A curated snapshot (``factory.data.snapshots``); its id is its fingerprint."""
    return Dataset(f"snapshot:{snapshot_id}", version=snapshot_id, fields=fields, rows=rows)


def run(run_id: str) -> Dataset:
    """A training run (its directory: ``run.json``, metrics, checkpoints)."""
    return Dataset(f"run:{run_id}")


def model_version(name: str, version: int, sha256: str | None = None) -> Dataset:
    """A registered model version ``NAME@vN``, versioned by its checkpoint's sha256."""
    return Dataset(f"{name}@v{version}", version=f"sha256:{sha256}" if sha256 else None)


def source(name: str, fingerprint: str | None = None, uri: str | None = None,
           fields: Mapping[str, str] | None = None, rows: int | None = None) -> Dataset:
    """A data source that is not a set of local files (synthetic, bundled, a warehouse query)."""
    return Dataset(f"source:{name}", version=fingerprint, uri=redact.url(uri) if uri else None,
                   fields=fields, rows=rows)


def file(path: str | os.PathLike, content: bool = False, rows: int | None = None) -> Dataset:
    """A local file or directory; ``content``: fingerprinted (``fingerprint``), else unversioned."""
    path = Path(path).absolute()
    size = _size(path)
    return Dataset(str(path), FILES, version=fingerprint([path]) if content and path.exists() else None,
                   uri=f"file://{path}", rows=rows, size=size)


def source_files(spec: str | os.PathLike) -> list[Dataset]:
    """The local files a ``files`` source's ``path`` names (a file, glob or directory), fingerprinted.

    Content sha256 while the files come to ``HASH_LIMIT`` bytes in all, else path, size and mtime.
    A URL (``s3://...``) or a path that names nothing gives ``[]``: no fingerprint is known.
    """
    spec = str(spec)
    if "://" in spec:
        return []
    path = Path(spec)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
    else:
        found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
    content = sum(_size(p) or 0 for p in found) <= HASH_LIMIT
    return [Dataset(str(p.absolute()), FILES, version=fingerprint([p], content), uri=f"file://{p.absolute()}",
                    size=_size(p)) for p in found]


def fingerprint(paths: Iterable[Path], content: bool = True) -> str:
    """``sha256:<hex>`` of the files' bytes (one file: what ``sha256sum`` prints; a directory: every
    file under it, each after its relative path), or ``meta-sha256:<hex>`` of path, size and mtime
    with ``content=False``."""
    digest = hashlib.sha256()
    for root in paths:
        members = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for p in members:
            if root.is_dir():
                digest.update(f"{p.relative_to(root)}\0".encode())
            if content:
                with open(p, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
            else:
                stat = p.stat()
                digest.update(f"{p.absolute()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return f"{'sha256' if content else 'meta-sha256'}:{digest.hexdigest()}"


@dataclass
class Job:
    """One run of a job: ``start``, then ``complete``, ``fail`` or ``abort``; each event carries the
    inputs and outputs known so far (OpenLineage consumers merge a run's events).

    Args:
        name: the job, ``<kind>.<what>`` (``train.fraud_detection``, ``score.fraud``).
        run_id: the OpenLineage run id (a UUID); default a new one.
        parent: the job run this one is part of (a training run's curation): the parent facet.
    """

    name: str
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    parent: "Job | None" = None
    inputs: list[Dataset] = field(default_factory=list)
    outputs: list[Dataset] = field(default_factory=list)

    def start(self, wait: bool = True) -> None:
        """Emit ``START``; ``wait=False`` returns at once (the client's import, ~0.15 s, off the caller's thread)."""
        self._emit("START", None, wait)

    def complete(self, wait: bool = True) -> None:
        self._emit("COMPLETE", None, wait)

    def fail(self, error: BaseException | str | None, abort: bool = False, wait: bool = True) -> None:
        """Emit ``FAIL`` (``ABORT``: stopped on purpose, e.g. SIGTERM) with the error's first line."""
        self._emit("ABORT" if abort else "FAIL", _first_line(error), wait)

    def _emit(self, state: str, error: str | None, wait: bool) -> None:
        inputs, outputs = list(self.inputs), list(self.outputs)
        parent = (self.parent.name, self.parent.run_id) if self.parent else None
        now = _now()  # when it happened, not when the sender thread gets to it
        _send(lambda: _event(self.name, self.run_id, state, now, inputs, outputs, error, parent),
              f"{state} {self.name}", wait)


@contextlib.contextmanager
def job(name: str, inputs: Iterable[Dataset] = (), outputs: Iterable[Dataset] = ()) -> Iterator[Job]:
    """``START`` on entry, ``COMPLETE`` on exit, ``FAIL`` when the body raises (the error goes on).

    ``START`` is sent while the body runs (the client's import overlaps the work); the end waits for both.
    """
    current = Job(name, inputs=list(inputs), outputs=list(outputs))
    current.start(wait=False)
    try:
        yield current
    except BaseException as e:
        current.fail(e, abort=isinstance(e, KeyboardInterrupt))
        raise
    current.complete()


def training_run_id(run_id: str, attempt: int) -> str:
    """The OpenLineage run id of a training run's launch: the same from ``begin`` to ``finish``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"factory/run/{run_id}/{attempt}"))


def events_dir(root: str | os.PathLike | None = None) -> Path:
    """Where the default file transport writes: ``<root or $FACTORY_ROOT or .>/lineage``."""
    return Path(root if root is not None else os.environ.get("FACTORY_ROOT", ".")) / FOLDER


def configured() -> bool:
    """Whether OpenLineage's own configuration says where events go (then the client decides)."""
    env = os.environ
    if any(env.get(k) for k in ("OPENLINEAGE_CONFIG", "OPENLINEAGE_URL", "OPENLINEAGE_DISABLED")):
        return True
    if any(k.startswith("OPENLINEAGE__TRANSPORT") for k in env):
        return True
    with contextlib.suppress(RuntimeError, OSError):  # no home directory
        found = (Path.cwd() / "openlineage.yml", Path.home() / ".openlineage" / "openlineage.yml")
        return any(p.is_file() for p in found)
    return False


# One sender thread for the process: events leave in the order they were made, and the
# client's import (measured: 0.15 s after Lightning is loaded, 0.2-0.3 s alone; it loads every
# transport: http, kafka...) and a slow backend stay off the training thread where nobody waits.
_lock = threading.Lock()
_clients: dict[str, object] = {}
_sender = None


def _send(build, what: str, wait: bool) -> None:
    global _sender
    with _lock:
        if _sender is None:
            from concurrent.futures import ThreadPoolExecutor

            _sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lineage")
    # Read now, on the caller's thread: FACTORY_ROOT or OpenLineage's variables may change later (tests do).
    where = _configuration() if configured() else str(events_dir().absolute())

    def send() -> None:
        try:
            _client(where).emit(build())
        except Exception as e:  # noqa: BLE001: lineage must never fail the job it describes
            log.warning("lineage: %s not recorded: %s", what, _first_line(e))

    done = _sender.submit(send)
    if wait:
        try:
            done.result(timeout=WAIT_S)
        except Exception as e:  # noqa: BLE001: a timeout: the event may still go out later
            log.warning("lineage: %s not recorded in %.0f s: %s", what, WAIT_S, _first_line(e) or type(e).__name__)


def _configuration() -> str:
    """A key for the client that OpenLineage's own configuration makes (one per set of its variables)."""
    return "configured:" + repr(sorted((k, v) for k, v in os.environ.items() if k.startswith("OPENLINEAGE")))


def _client(where: str):
    """The OpenLineage client: its own configuration's (``where`` from ``_configuration``), else a file
    transport into the folder ``where``."""
    with _lock:
        if where not in _clients:
            if not os.environ.get("OPENLINEAGE_CLIENT_LOGGING"):  # its own switch; else only its warnings
                logging.getLogger("openlineage.client").setLevel(logging.WARNING)
            from openlineage.client import OpenLineageClient

            if where.startswith("configured:"):
                _clients[where] = OpenLineageClient()
            else:
                Path(where).mkdir(parents=True, exist_ok=True)
                _clients[where] = OpenLineageClient(transport=_event_files(str(Path(where) / PREFIX)))
        return _clients[where]


def _event_files(prefix: str):
    """OpenLineage's file transport, one file per event (``append=False``: concurrent jobs never
    interleave lines), each named uniquely and written atomically. Its own names are the local time
    to the microsecond, opened with ``"w"``: two processes in the same microsecond overwrite each
    other, and a reader can see half a file."""
    from datetime import datetime

    from openlineage.client.serde import Serde
    from openlineage.client.transport.file import FileConfig, FileTransport

    class EventFiles(FileTransport):
        def emit(self, event) -> None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S.%f")  # as FileTransport: the names sort in time order
            files.write_text(f"{self.config.log_file_path}-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json",
                             Serde.to_json(event) + "\n")  # temp file + rename: no reader sees half of it

    return EventFiles(FileConfig(log_file_path=prefix, append=False))


def _event(name: str, run_id: str, state: str, time: str, inputs: list[Dataset], outputs: list[Dataset],
           error: str | None, parent: tuple[str, str] | None):
    from openlineage.client import event_v2 as ol
    from openlineage.client.facet_v2 import error_message_run, job_type_job, parent_run

    run_facets = {}
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(message=error, programmingLanguage="python")
    if parent is not None:
        run_facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent[1]), job=parent_run.Job(namespace=NAMESPACE, name=parent[0]))
    kind = name.split(".", 1)[0].upper()
    job_facets = {"jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="FACTORY", jobType=kind)}
    return ol.RunEvent(
        eventType=ol.RunState[state], eventTime=time, run=ol.Run(runId=run_id, facets=run_facets),
        job=ol.Job(namespace=NAMESPACE, name=name, facets=job_facets),
        inputs=[ol.InputDataset(d.namespace, d.name, facets=_facets(d)) for d in _unique(inputs)],
        outputs=[ol.OutputDataset(d.namespace, d.name, facets=_facets(d), outputFacets=_output_facets(d))
                 for d in _unique(outputs)])


def _facets(d: Dataset) -> dict:
    from openlineage.client.facet_v2 import dataset_version_dataset, datasource_dataset, schema_dataset

    facets = {}
    if d.version:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=d.version)
    if d.fields:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[schema_dataset.SchemaDatasetFacetFields(name=k, type=v) for k, v in d.fields.items()])
    if d.uri:
        facets["dataSource"] = datasource_dataset.DatasourceDatasetFacet(name=d.uri, uri=d.uri)
    return facets


def _output_facets(d: Dataset) -> dict:
    from openlineage.client.facet_v2 import output_statistics_output_dataset as stats

    if d.rows is None and d.size is None:
        return {}
    return {"outputStatistics": stats.OutputStatisticsOutputDatasetFacet(rowCount=d.rows, size=d.size)}


def _unique(datasets: list[Dataset]) -> list[Dataset]:
    """One entry per (namespace, name): the last one given wins (it knows the most)."""
    return list({(d.namespace, d.name): d for d in datasets}.values())


def _now() -> str:
    return files.utc_now().isoformat(timespec="milliseconds")


def _size(path: Path) -> int | None:
    with contextlib.suppress(OSError):
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size
    return None


def _first_line(error: BaseException | str | None) -> str | None:
    if error is None:
        return None
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    if isinstance(error, BaseException):
        line = f"{type(error).__name__}: {line}" if line else type(error).__name__
    return redact.text(line)  # a message may quote a URL with its password
