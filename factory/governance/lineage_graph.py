"""Lineage read back: the events ``factory.governance.lineage`` wrote, as a graph to walk both ways.

A dataset was made by the job runs that name it among their outputs, and was used by those
that name it among their inputs; ``upstream`` follows the first back to the source files,
``downstream`` the second forward to model versions, exports, score tables and reports.
A run's events are merged (OpenLineage's events are cumulative: the last one's state stands).

Example:
    >>> graph = build(read_events())
    >>> tree = trace(graph, resolve(graph, "fraud@v3"))
    >>> print_tree(tree)
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from factory.governance.lineage import FILES, NAMESPACE, events_dir

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


@dataclass
class JobRun:
    """One run of a job, its events merged."""

    run_id: str
    job: str
    state: str = "START"
    started: str | None = None
    ended: str | None = None
    error: str | None = None
    parent: str | None = None  # the parent run's job name (a training run's curation)
    inputs: dict[Key, dict] = field(default_factory=dict)  # dataset as this run saw it
    outputs: dict[Key, dict] = field(default_factory=dict)


@dataclass
class Graph:
    runs: dict[str, JobRun] = field(default_factory=dict)
    datasets: dict[Key, dict] = field(default_factory=dict)  # the latest description of each
    made_by: dict[Key, list[str]] = field(default_factory=dict)  # dataset -> run ids that output it
    used_by: dict[Key, list[str]] = field(default_factory=dict)  # dataset -> run ids that read it
    events: int = 0


def read_events(where: str | Path | None = None) -> list[dict]:
    """Every run event in ``where`` (a folder of event files, or one file of JSON lines), in time order.

    Default: ``lineage.events_dir()``. A file that is not JSON (one being written right now) is
    skipped with a warning; a folder that does not exist holds no events.
    """
    path = Path(where) if where is not None else events_dir()
    paths = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl")) if path.is_dir() else (
        [path] if path.is_file() else [])
    events, bad = [], 0
    for p in paths:
        try:
            text = p.read_text(encoding="utf-8")
        except OSError:
            bad += 1
            continue
        try:
            found = [json.loads(text)]
        except ValueError:  # JSON lines (the transport's append mode)
            found = []
            for line in filter(None, map(str.strip, text.splitlines())):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    bad += 1
        events += [e for e in found if isinstance(e, dict) and isinstance(e.get("run"), dict)
                   and isinstance(e.get("job"), dict)]
    if bad:
        log.warning("lineage: %d unreadable event(s) under %s skipped", bad, path)
    return sorted(events, key=lambda e: str(e.get("eventTime", "")))


def build(events: list[dict]) -> Graph:
    """The graph of ``events`` (from ``read_events``)."""
    graph = Graph(events=len(events))
    for event in events:
        run_id = str(event["run"].get("runId"))
        job = graph.runs.get(run_id) or JobRun(run_id, str(event["job"].get("name")))
        graph.runs[run_id] = job
        state, time = str(event.get("eventType") or "OTHER"), event.get("eventTime")
        if state == "START":
            job.started = job.started or time
        else:
            job.state, job.ended = state, time
        facets = event["run"].get("facets") or {}
        job.error = (facets.get("errorMessage") or {}).get("message") or job.error
        job.parent = ((facets.get("parent") or {}).get("job") or {}).get("name") or job.parent
        for side, index in (("inputs", graph.used_by), ("outputs", graph.made_by)):
            for d in event.get(side) or []:
                key = (str(d.get("namespace")), str(d.get("name")))
                seen = _describe(d)
                getattr(job, side)[key] = {**getattr(job, side).get(key, {}), **seen}
                graph.datasets[key] = {**graph.datasets.get(key, {}), **seen}
                if run_id not in index.setdefault(key, []):
                    index[key].append(run_id)
    return graph


def resolve(graph: Graph, name: str) -> Key | None:
    """The dataset ``name`` means: ``NAME@vN``, ``run:ID`` or a run id, ``snapshot:ID`` or a snapshot
    id (or its unique prefix), ``source:NAME``, a file path. None: no event names it."""
    factory_names = {n for (ns, n) in graph.datasets if ns == NAMESPACE}
    for candidate in (name, f"run:{name}", f"snapshot:{name}"):
        if candidate in factory_names:
            return NAMESPACE, candidate
    path = str(Path(name).absolute())
    if (FILES, path) in graph.datasets:
        return FILES, path
    prefixed = [n for n in factory_names if n.startswith((f"snapshot:{name}", f"run:{name}"))]
    return (NAMESPACE, prefixed[0]) if len(prefixed) == 1 and name else None


def trace(graph: Graph, key: Key) -> dict:
    """``key``'s lineage: ``{"dataset", "upstream": [job...], "downstream": [job...]}`` where a job is
    ``{"job", "run_id", "state", "started", "ended", "error", "datasets": [{... , "upstream" or "downstream"}]}``."""
    return {"dataset": _node(key, graph.datasets.get(key, {})),
            "upstream": _walk(graph, key, "upstream", set()),
            "downstream": _walk(graph, key, "downstream", set())}


def _walk(graph: Graph, key: Key, way: str, shown: set[str]) -> list[dict]:
    """The job runs that made (upstream) or read (downstream) ``key``, each with its other side, recursively.

    A job run met again (a registration reads a run and its checkpoint, both made by one training
    run; or a cycle) is listed with ``"shown": true`` and no datasets: its branch is above.
    """
    runs = graph.made_by.get(key, []) if way == "upstream" else graph.used_by.get(key, [])
    jobs = []
    for run_id in runs:
        run = graph.runs[run_id]
        job = {"job": run.job, "run_id": run.run_id, "state": run.state, "started": run.started,
               "ended": run.ended, "error": run.error, "datasets": []}
        jobs.append(job)
        if run_id in shown:
            job["shown"] = True
            continue
        shown.add(run_id)
        side = run.inputs if way == "upstream" else run.outputs
        for other, seen_as in side.items():
            if other != key:
                job["datasets"].append({**_node(other, seen_as), way: _walk(graph, other, way, shown)})
    return jobs


def _describe(d: dict) -> dict:
    facets, out = d.get("facets") or {}, d.get("outputFacets") or {}
    described = {
        "version": (facets.get("version") or {}).get("datasetVersion"),
        "fields": {f.get("name"): f.get("type") for f in (facets.get("schema") or {}).get("fields") or []} or None,
        "uri": (facets.get("dataSource") or {}).get("uri"),
        "rows": (out.get("outputStatistics") or {}).get("rowCount"),
        "size": (out.get("outputStatistics") or {}).get("size"),
    }
    return {k: v for k, v in described.items() if v is not None}


def _node(key: Key, described: dict) -> dict:
    return {"namespace": key[0], "name": key[1], **described}


def print_tree(tree: dict, console=None) -> None:
    """``tree`` (from ``trace``) as a rich tree: where it came from, then what was made from it."""
    from rich.console import Console
    from rich.tree import Tree

    if console is None:  # piped or captured: no fold in the middle of a path or id (grep, tests read it)
        console = Console()
        if not console.is_terminal:
            console = Console(width=max(console.width, 1000))
    root = Tree(_label(tree["dataset"]))
    for way, title in (("upstream", "came from"), ("downstream", "made from it")):
        branch = root.add(f"[bold]{title}[/]" + ("" if tree[way] else " [dim](nothing recorded)[/]"))
        _add(branch, tree[way], way)
    console.print(root)


def _add(branch, jobs: list[dict], way: str) -> None:
    from rich.markup import escape

    for job in jobs:
        colour = {"COMPLETE": "green", "FAIL": "red", "ABORT": "yellow"}.get(job["state"], "blue")
        when = (job.get("ended") or job.get("started") or "")[:19].replace("T", " ")
        error = f" [red]{escape(job['error'])}[/]" if job.get("error") else ""
        above = " [dim](shown above)[/]" if job.get("shown") else ""
        node = branch.add(f"[cyan]{escape(job['job'])}[/] [{colour}]{job['state']}[/] [dim]{when}[/]{error}{above}")
        for d in job["datasets"]:
            _add(node.add(_label(d)), d.get(way) or [], way)


def _label(d: dict) -> str:
    from rich.markup import escape

    text = f"[bold]{escape(d['name'])}[/]"
    if d.get("version") and d["version"] != d["name"].removeprefix("snapshot:"):
        text += f" [dim]{escape(_short(d['version']))}[/]"
    if d.get("rows") is not None:
        text += f" [dim]{d['rows']:,} rows[/]"
    return text


def _short(version: str) -> str:
    """``sha256:<64 hex>`` -> ``sha256:<16 hex>``: enough to tell versions apart on screen (``--json`` has all)."""
    kind, _, digest = version.rpartition(":")
    return f"{kind + ':' if kind else ''}{digest[:16]}" if len(digest) > 16 else version
