"""Run one report: papermill executes the notebook, nbconvert exports HTML, the index records it.

Output of a run: ``<reports_dir>/<name>/<YYYY-MM-DD_HH-MM-SS>_<id>/report.ipynb`` (the
executed notebook, kept even when a cell fails) and ``report.html`` (self-contained:
images embedded, code hidden unless the report's ``hide_input`` is false).
"""
from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from factory import files, redact
from factory.errors import FactoryError
from factory.governance import lineage
from factory.rundir import catalog, provenance
from factory.rundir.layout import MANIFEST
from factory.rundir.layout import new_run_id
from factory.reports import index
from factory.reports.kernel import ensure_kernel
from factory.reports.spec import ReportSpec, check_inputs, for_run_kind
from factory.training import energy as energy_meter

log = logging.getLogger(__name__)

NOTEBOOK = "report.ipynb"
HTML = "report.html"

#: Set in the kernel's environment: the factory trainer shows no progress bar (an executed
#: notebook would keep one output per refresh), and code can tell it runs in a report.
KERNEL_ENV = {"FACTORY_PROGRESS_BAR": "0", "FACTORY_REPORT": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}

#: Arguments for the report kernel's process (``ipykernel`` options).
KERNEL_ARGS = [
    # No IPython history database: nobody reads it, and reports running at once would
    # share (and lock) one sqlite file in the home directory.
    "--HistoryManager.enabled=False",
    # After the last cell the kernel is shut down; once its atexit hooks have run (a wandb
    # run finishes, files close), skip interpreter finalization: with Lightning imported
    # it takes ~1.5 s, and the report already holds every output. Registered first, so it
    # runs after the hooks the notebook's code registers; no names left in its namespace.
    "--IPKernelApp.exec_lines=__import__('atexit').register(__import__('os')._exit, 0)",
    # The kernel app's own log is noise on the report's console: "running over TCP without
    # encryption" (ipykernel 7, for a kernel on localhost) at every start, and at times
    # "KeyboardInterrupt caught in kernel" (an ERROR) from the SIGINT jupyter_client sends
    # before every shutdown. A cell's error reaches the notebook, a dead kernel the report.
    "--IPKernelApp.log_level=CRITICAL",
]

#: Added to every exported page: a wide table scrolls inside the page instead of being clipped
#: at its edge (JupyterLab lays outputs out as table cells, which grow with their content), a
#: figure shrinks to the page width, and long lines (a command, YAML) wrap.
HTML_STYLE = """<style>
/* factory: outputs fit the page */
.jp-OutputArea-child { display: flex; max-width: 100%; }
.jp-OutputArea-output { display: block; flex: 1 1 auto; min-width: 0; max-width: 100%; overflow-x: auto; }
.jp-OutputArea-output img { max-width: 100%; height: auto; }
.jp-OutputArea-output pre { white-space: pre-wrap; overflow-wrap: anywhere; }
details > summary { cursor: pointer; font-weight: 600; }
.jp-OutputArea-output details pre { font-family: var(--jp-code-font-family, monospace);
  background: var(--jp-layout-color2, #f5f5f5); padding: 0.5em; white-space: pre-wrap; overflow-wrap: anywhere; }
.jp-OutputArea-output details td { text-align: left !important; }
</style>
"""


@dataclass
class ReportResult:
    """Where a report run went and how it ended."""

    name: str
    run_id: str
    status: str  # completed | failed
    output_dir: Path
    ipynb: Path | None
    html: Path | None
    duration_s: float
    error: str | None = None
    # Index of the failing cell as executed (papermill's injected-parameters cell counts; the
    # error banner papermill adds at the top of a failed notebook does not).
    failing_cell: int | None = None
    energy: dict | None = None  # kWh, kg CO2e, method... of the run (factory.training.energy), if measured


class ReportFailed(Exception):
    """A report ran and failed: a cell raised, the kernel died or a cell passed the timeout."""

    def __init__(self, result: ReportResult):
        self.result = result
        super().__init__(f"report {result.name} failed: {result.error} "
                         f"(partial notebook: {result.ipynb})")


def run_report(spec: ReportSpec, reports_dir: str | Path, *, trigger: str = "manual",
               check: bool = True, cwd: str | Path | None = None, energy: Mapping | None = None) -> ReportResult:
    """Execute ``spec``'s notebook with its parameters and record the run in the index.

    Args:
        spec: a checked report (``spec_from_file`` / ``to_spec``).
        reports_dir: root of all report output (``reports/``); the index lives there.
        trigger: what started it (``manual``, ``schedule``, ``training``), for the index.
        check: raise ``ReportFailed`` when the report fails (else return the result).
        cwd: the kernel's working directory (default: this process's), where relative
            paths in parameters are read from.
        energy: an ``energy:`` node (conf/energy/): the index entry's ``energy`` then holds the
            run's kWh and kg CO2e (kernel and export included); None: not measured.

    Returns:
        The result: status, output files, error and failing cell.

    Raises:
        ReportError: before anything starts, when the notebook has no ``parameters`` cell or
            a path parameter names nothing (``check_inputs``).
        ReportFailed: with ``check``, when a cell raised, the kernel died or timed out.
    """
    notes = check_inputs(spec, cwd)  # before any kernel or directory: a bad path is one line
    spec = for_run_kind(spec, cwd)  # the run report on a language model: its own notebook
    for note in notes:
        log.warning("report %s: %s", spec.name, note)
    reports_dir = Path(reports_dir).absolute()
    run_id = new_run_id()
    out = reports_dir / spec.name / run_id
    out.mkdir(parents=True)
    started = time.monotonic()
    meta = provenance_of(spec, run_id, trigger)
    entry = {"id": f"{spec.name}/{run_id}", **meta, "status": "running", "ended_at": None, "duration_s": None,
             "ipynb": None, "html": None, "error": None, "failing_cell": None}
    meter = energy_meter.meter_for(energy)
    index.record(reports_dir, entry)
    event = lineage.Job(f"report.{spec.name}", inputs=[lineage.run(r) for r in meta["source_run_ids"]])
    event.start(wait=False)

    error, failing_cell = None, None
    ipynb = out / NOTEBOOK
    try:
        _execute(spec, meta, ipynb, cwd)
    except Exception as e:  # noqa: BLE001  (any failure of the run is recorded, then raised)
        error, failing_cell = describe_failure(e, ipynb)
        if notes:  # the likely cause, up front
            error = f"{'; '.join(notes)}; then {error}"
    html = None
    if ipynb.exists() and "html" in spec.formats:
        try:
            html = export_html(ipynb, out / HTML, hide_input=spec.hide_input)
        except Exception as e:  # noqa: BLE001
            error = error or f"HTML export failed: {type(e).__name__}: {e}"
    energy = meter.stop() if meter is not None else None  # kernel, notebook and export: the report's run
    if "ipynb" not in spec.formats and error is None and html is not None:
        ipynb.unlink()  # kept when the run failed: the partial notebook is the evidence
    result = ReportResult(spec.name, run_id, "failed" if error else "completed", out,
                          ipynb if ipynb.exists() else None, html, round(time.monotonic() - started, 3),
                          error, failing_cell, energy)
    entry.update(status=result.status, ended_at=files.utc_stamp(), duration_s=result.duration_s, error=error,
                 energy=energy,
                 failing_cell=failing_cell, ipynb=_rel(result.ipynb, reports_dir), html=_rel(html, reports_dir))
    index.record(reports_dir, entry)
    event.outputs += [lineage.file(p) for p in (html, result.ipynb) if p is not None]
    if error:
        event.fail(error)
    else:
        event.complete()
    log.info("report %s %s in %.1f s: %s", spec.name, result.status, result.duration_s, out)
    if check and error:
        raise ReportFailed(result)
    return result


def _execute(spec: ReportSpec, meta: dict, output: Path, cwd: str | Path | None) -> None:
    _import_jsonschema_without_iri_checker()
    import nbformat
    import papermill

    kernel = spec.kernel or ensure_kernel()
    nb = nbformat.read(spec.notebook, as_version=4)
    # papermill refuses a notebook that names no kernel or language: name ours.
    nb.metadata.setdefault("kernelspec", {"name": kernel, "display_name": kernel, "language": "python"})
    nb.metadata.setdefault("language_info", {"name": "python"})
    nb.metadata["factory"] = meta
    with _kernel_env(), _papermill_names(spec.notebook):
        papermill.execute_notebook(
            nb, str(output), parameters=spec.parameters, kernel_name=kernel, language="python",
            execution_timeout=spec.timeout, cwd=str(cwd or os.getcwd()), progress_bar=False,
            log_output=False, report_mode=spec.hide_input, extra_arguments=KERNEL_ARGS)


@contextlib.contextmanager
def _papermill_names(notebook: Path) -> Iterator[None]:
    """papermill logs ``Input Notebook:  NotebookNode object`` for a notebook given in memory: name
    the notebook file instead (only for the calling thread: reports may run side by side)."""
    thread = threading.get_ident()
    name = _rel(notebook, provenance.CODE_DIR)

    def rename(record: logging.LogRecord) -> bool:
        if record.thread == thread and str(record.msg).startswith("Input Notebook:"):
            record.msg, record.args = f"Input Notebook:  {name}", ()
        return True

    logger = logging.getLogger("papermill")
    logger.addFilter(rename)
    try:
        yield
    finally:
        logger.removeFilter(rename)


_import_lock = threading.Lock()


def _import_jsonschema_without_iri_checker() -> None:
    """Import jsonschema (nbformat validates with it) without its optional IRI format checker.

    When ``rfc3987_syntax`` is installed (JupyterLab's jupyter-events brings it),
    ``import jsonschema`` builds three Earley parsers from it: 1.3 s of CPU in every
    process that runs a report, for a format that notebook validation never checks.
    Hidden, jsonschema takes its documented path for an absent optional dependency.
    """
    with _import_lock:
        if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
            return
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # its import raises ImportError
        try:
            importlib.import_module("jsonschema")
        except ImportError:  # a jsonschema that needs it after all: import it as it is
            for name in [m for m in sys.modules if m == "jsonschema" or m.startswith("jsonschema.")]:
                del sys.modules[name]
        finally:
            del sys.modules["rfc3987_syntax"]


_env_lock = threading.Lock()
_env_users = 0


@contextlib.contextmanager
def _kernel_env() -> Iterator[None]:
    """``KERNEL_ENV`` in os.environ while kernels start (they inherit it), then restored."""
    global _env_users
    with _env_lock:
        if _env_users == 0:
            _kernel_env.saved = {k: os.environ.get(k) for k in KERNEL_ENV}  # type: ignore[attr-defined]
            os.environ.update(KERNEL_ENV)
        _env_users += 1
    try:
        yield
    finally:
        with _env_lock:
            _env_users -= 1
            if _env_users == 0:
                for k, v in _kernel_env.saved.items():  # type: ignore[attr-defined]
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v


def describe_failure(error: BaseException, executed: Path) -> tuple[str, int | None]:
    """One line naming the failing cell and the error, and the cell's index."""
    from papermill.exceptions import PapermillExecutionError

    cell = _failed_cell(executed)
    if isinstance(error, PapermillExecutionError):
        cell = error.cell_index
        where = f"cell {cell} (execution count {error.exec_count})"
        first = first_statement(error.source)
        return f"{where} `{first}`: {error.ename}: {error.evalue}", cell
    text = _first_line(str(error)) or type(error).__name__
    kind = type(error).__name__
    if kind == "CellTimeoutError":
        text = "timed out: " + text
    elif kind == "DeadKernelError":
        text = "kernel died: " + text
    _mark_failed_cell(executed, cell, f"{kind}: {text}")
    where = f"cell {cell}: " if cell is not None else ""
    return f"{where}{kind}: {text}", cell


def _failed_cell(executed: Path) -> int | None:
    """The cell papermill marked as failed, else the last one started (timeout, dead kernel)."""
    if not executed.exists():
        return None
    try:
        cells = json.loads(executed.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return None
    started = None
    for i, cell in enumerate(cells):
        pm = cell.get("metadata", {}).get("papermill", {})
        if pm.get("exception"):
            return i
        if pm.get("start_time"):
            started = i
    return started


def _mark_failed_cell(executed: Path, cell: int | None, error: str) -> None:
    """Make a timeout or kernel death visible at its cell in the kept notebook."""
    import nbformat

    if cell is None or not executed.exists():
        return
    nb = nbformat.read(executed, as_version=4)
    target = nb.cells[cell]
    target.metadata.setdefault("papermill", {}).update(exception=True, status="failed")
    if target.cell_type == "code":
        target.outputs.append(nbformat.v4.new_output("stream", name="stderr", text=f"factory: {error}\n"))
    files.write_text(executed, nbformat.writes(nb))


def export_html(ipynb: Path, html: Path, hide_input: bool = True) -> Path:
    """A self-contained HTML page of an executed notebook (images embedded, ``HTML_STYLE`` added).

    Cells tagged ``remove-cell`` are dropped; ``remove-input`` hides one cell's code;
    ``hide_input`` hides all code, and drops the code cells that show nothing (the
    parameters cells, papermill's injected one included, and imports).
    """
    _import_jsonschema_without_iri_checker()
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_cell_tags = {"remove-cell"}
    c.TagRemovePreprocessor.remove_input_tags = {"remove-input"}
    exporter = HTMLExporter(config=c, embed_images=True, exclude_input=hide_input,
                            exclude_input_prompt=hide_input, exclude_output_prompt=hide_input)
    exporter.log.addFilter(_no_alt_text_warning)  # a shared logger: the same filter once
    nb = nbformat.read(ipynb, as_version=4)
    if hide_input:
        nb.cells = [cell for cell in nb.cells if cell.cell_type != "code" or cell.outputs]
    body, _ = exporter.from_notebook_node(nb)
    return files.write_text(html, body.replace("</head>", HTML_STYLE + "</head>", 1))


def _no_alt_text_warning(record: logging.LogRecord) -> bool:
    """Drop nbconvert's "Alternative text is missing on N image(s)": figures in a notebook carry
    none, so it would be printed for every report."""
    return "Alternative text is missing" not in str(record.msg)


def provenance_of(spec: ReportSpec, run_id: str, trigger: str) -> dict[str, Any]:
    """What produced a report run: recorded in the notebook's metadata and the index."""
    return {
        "name": spec.name, "run_id": run_id, "trigger": trigger, "started_at": files.utc_stamp(),
        "notebook": _rel(spec.notebook, provenance.CODE_DIR) or str(spec.notebook),
        "parameters": redact.container(spec.parameters), "source_run_ids": source_run_ids(spec.parameters),
        "factory_version": provenance.factory_version(), "git": provenance.git_state(provenance.CODE_DIR),
    }


def source_run_ids(parameters: dict[str, Any]) -> list[str]:
    """Run ids named by ``*run_dir`` / ``*run_dirs`` parameters (from each ``run.json``), those of a
    ``sweep_dir``'s trials, and the runs a compare report picks by ``run_ids`` / ``experiment``."""
    dirs: list[str] = []
    if ("run_ids" in parameters or "experiment" in parameters) and not parameters.get("sweep_dir"):
        with contextlib.suppress(FactoryError):  # nothing to pick: the notebook itself says why
            dirs += [str(d) for d in catalog.select_run_dirs(parameters.get("run_ids") or (),
                                                             parameters.get("experiment"))]
    for key, value in parameters.items():
        if key.endswith("run_dir") and isinstance(value, str):
            dirs.append(value)
        elif key.endswith("run_dirs") and isinstance(value, list):
            dirs += [v for v in value if isinstance(v, str)]
        elif key.endswith("sweep_dir") and isinstance(value, str):
            dirs += _sweep_run_dirs(Path(value))
    ids = []
    for d in dirs:
        manifest = Path(d) / MANIFEST
        try:
            ids.append(json.loads(manifest.read_text())["run_id"])
        except (OSError, ValueError, KeyError):
            ids.append(Path(d).name)
    return ids


def _sweep_run_dirs(sweep_dir: Path) -> list[str]:
    """The trials' run directories: from ``sweep.json``, else every ``run.json`` below."""
    try:
        trials = json.loads((sweep_dir / "sweep.json").read_text())["trials"]
        return [t["run_dir"] for t in trials if isinstance(t, dict) and isinstance(t.get("run_dir"), str)]
    except (OSError, ValueError, KeyError, TypeError):
        return sorted(str(d) for d in catalog.run_dirs_below(sweep_dir))


def _first_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0] if lines else ""


def first_statement(source: str | None) -> str:
    """A cell's first line of code, by which a reader finds it: blank lines, comments and IPython
    magics or shell escapes (``%matplotlib inline``, ``!pip ...``) skipped; the first line if
    nothing else is left."""
    lines = [line.strip() for line in (source or "").splitlines() if line.strip()]
    code = [line for line in lines if not line.startswith(("#", "%", "!"))]
    return (code or lines or [""])[0]


def _rel(path: Path | None, base: Path) -> str | None:
    if path is None:
        return None
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return str(path)
