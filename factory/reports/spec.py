"""What a report is: a ``conf/report/<name>.yaml`` node, checked before any kernel starts."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from factory.errors import FactoryError
from factory.rundir import catalog
from factory.rundir.layout import MANIFEST, is_run_dir
from factory.rundir.provenance import CODE_DIR

FORMATS = ("ipynb", "html")


class ReportError(FactoryError):
    """A report that cannot run as declared (name, notebook, parameters, schedule)."""


@dataclass
class ReportSpec:
    """A report with its parameters resolved to plain values."""

    name: str
    notebook: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    formats: list[str] = field(default_factory=lambda: list(FORMATS))
    hide_input: bool = True  # HTML shows outputs only
    schedule: str | None = None
    timeout: int | None = 600
    kernel: str | None = None


#: A ``*run_dir`` parameter ``latest:<task>`` names the newest completed run of that task,
#: found when the report runs (``check_inputs``): a scheduled report on whatever ran last.
LATEST = "latest:"


def report_dirs(config_dir: str | Path | None = None) -> list[Path]:
    """``conf/report/``, then ``report/`` of the user's config directory (``$FACTORY_CONFIG_DIR``)."""
    from factory import config  # CONFIG_DIR read when called: tests point it elsewhere
    from factory.config.compose import user_config_dir

    user_dir = user_config_dir(config_dir)
    return [config.CONFIG_DIR / "report"] + ([user_dir / "report"] if user_dir is not None else [])


def available(report_dir: Path | None = None) -> list[str]:
    """Names of the reports in ``conf/report/`` and the user's config directory (or ``report_dir``)."""
    dirs = [report_dir] if report_dir is not None else report_dirs()
    return sorted({p.stem for d in dirs for p in d.glob("*.yaml")})


def report_file(name: str, report_dir: Path | None = None) -> Path:
    """``<name>.yaml`` in ``report_dir``, else the first of ``report_dirs()`` holding it (as Hydra looks)."""
    dirs = [report_dir] if report_dir is not None else report_dirs()
    return next((d / f"{name}.yaml" for d in dirs if (d / f"{name}.yaml").exists()), dirs[0] / f"{name}.yaml")


def compose_report(name: str, overrides: Sequence[str] | str = (),
                   config_dir: str | Path | None = None) -> DictConfig:
    """The ``report`` root config for ``name``, as ``scripts/report.py report=<name>`` gets it.

    Clears Hydra's global state (``factory.compose``): do not call inside a running
    Hydra app; ``spec_from_file`` needs no Hydra.

    Args:
        name: a report in ``conf/report/`` or in the user's config directory.
        overrides: as ``factory.compose`` takes them: a list, or one string (a JSON/YAML list
            or a command line).
        config_dir: the user's config directory (default ``$FACTORY_CONFIG_DIR``).
    """
    from factory.config.compose import compose, override_list, user_config_dir

    overrides = override_list(overrides)
    user_dir = user_config_dir(config_dir)
    names = available() if user_dir is None else sorted(set(available()) | set(available(user_dir / "report")))
    if name not in names:
        raise ReportError(f"report={name}: no such report (available: {', '.join(names) or 'none'})")
    return compose("report", [f"report={name}", *overrides], config_dir=user_dir)


def spec_from_file(name: str, context: DictConfig | None = None,
                   parameters: dict[str, Any] | None = None, report_dir: Path | None = None) -> ReportSpec:
    """Load ``conf/report/<name>.yaml`` without Hydra (safe inside a Hydra app).

    Args:
        name: a report in ``conf/report/``.
        context: a config whose keys the report's interpolations may name
            (``${paths.output_dir}``); a training run passes its own.
        parameters: values that replace the file's parameters (``run_dir``).
        report_dir: where the report files are (default ``conf/report/``, then the user's
            config directory's ``report/``).
    """
    from factory.config.schemas import ReportConf

    path = report_file(name, report_dir)
    if not path.exists():
        raise ReportError(f"report={name}: no such report (available: {', '.join(available(report_dir)) or 'none'})")
    node = OmegaConf.merge(OmegaConf.structured(ReportConf), OmegaConf.load(path))
    if parameters:
        node.parameters = OmegaConf.merge(node.parameters, parameters)
    root = OmegaConf.create({"report": node})
    if context is not None:
        for key in context.keys():
            if key != "report":
                root[key] = context[key]
    return to_spec(root.report)


def to_spec(node: DictConfig) -> ReportSpec:
    """Check a ``report`` node and resolve it; raise ``ReportError`` naming the key at fault."""
    from omegaconf.errors import OmegaConfBaseException

    errors = []
    try:
        plain = OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as e:
        raise ReportError(f"report: {str(e).splitlines()[0]}") from e
    for key in ("name", "notebook"):
        if plain.get(key) in (None, "???"):
            errors.append(f"report.{key}: missing required value (set report.{key}=...)")
    params = plain.get("parameters") or {}
    for key, value in params.items():
        if value == "???" or (key in (plain.get("required") or []) and value is None):
            errors.append(f"report.parameters.{key}: missing required value (set report.parameters.{key}=...)")
    for key in plain.get("required") or []:
        if key not in params:
            errors.append(f"report.parameters.{key}: missing required value (set report.parameters.{key}=...)")
    for fmt in plain.get("formats") or []:
        if fmt not in FORMATS:
            errors.append(f"report.formats: {fmt!r} is not one of: {', '.join(FORMATS)}")
    if plain.get("schedule"):
        error = cron_error(plain["schedule"])
        if error:
            errors.append(f"report.schedule: {error}")
    notebook = Path(plain.get("notebook") or "")
    if plain.get("notebook") not in (None, "???"):
        notebook = notebook if notebook.is_absolute() else CODE_DIR / notebook
        if not notebook.is_file():
            errors.append(f"report.notebook: {plain['notebook']}: no such notebook")
        elif notebook_error(notebook):
            errors.append(f"report.notebook: {notebook_error(notebook)}")
    if errors:
        raise ReportError("\n".join(errors))
    return ReportSpec(name=plain["name"], notebook=notebook, parameters=params,
                      formats=list(plain.get("formats") or FORMATS), hide_input=bool(plain.get("hide_input", True)),
                      schedule=plain.get("schedule"), timeout=plain.get("timeout"), kernel=plain.get("kernel"))


def cron_error(expression: str) -> str | None:
    """Why ``expression`` is not a standard 5-field cron expression, or None."""
    from croniter import croniter

    if len(str(expression).split()) != 5:
        return f"{expression!r}: expected 5 fields (minute hour day-of-month month day-of-week)"
    if not croniter.is_valid(expression):
        return f"{expression!r}: not a valid cron expression"
    return None


def notebook_error(notebook: Path) -> str | None:
    """Why ``notebook`` cannot be a report, or None: it needs a code cell tagged ``parameters``.

    papermill injects the report's values after that cell; without it they land first and
    the notebook's own defaults (``run_dir = None``) silently replace them.
    """
    import json

    try:
        cells = json.loads(notebook.read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"{notebook}: not a readable notebook ({type(e).__name__}: {e})"
    if not any(c.get("cell_type") == "code" and "parameters" in (c.get("metadata", {}).get("tags") or [])
               for c in cells if isinstance(c, dict)):
        return (f"{notebook}: no cell tagged `parameters` (tag the cell holding the parameters' "
                "defaults; papermill injects the report's values after it)")
    return None


def check_inputs(spec: ReportSpec, cwd: str | Path | None = None) -> list[str]:
    """Check what the kernel would read, before it starts; say what is odd about the runs reported on.

    Checks the notebook's ``parameters`` tag and that each path parameter names something:
    ``*run_dir`` (a run directory or run id), ``*run_dirs`` / ``run_ids`` (lists of them),
    ``*sweep_dir`` (a directory). Relative paths are read from ``cwd`` (the kernel's).
    A run given as ``latest:<task>`` is replaced in ``spec.parameters`` by the directory of
    that task's newest completed run, so the notebook and the index get the run itself.

    Returns:
        One line per run reported on that did not complete (its status and error).

    Raises:
        ReportError: naming the notebook or the ``report.parameters.<key>`` at fault.
    """
    base = Path(cwd or os.getcwd())
    errors = [f"report.notebook: {error}" for error in [notebook_error(Path(spec.notebook))] if error]
    notes = []
    for key, value in spec.parameters.items():
        try:
            spec.parameters[key] = value = _resolve_latest(value, base)
        except ReportError as e:
            errors.append(f"report.parameters.{key}: {e}")
            continue
        if key.endswith("sweep_dir") and isinstance(value, str) and not (base / value).is_dir():
            errors.append(f"report.parameters.{key}: {value}: no such directory")
        runs = [value] if key.endswith("run_dir") else value if key.endswith(("run_dirs", "run_ids")) else []
        for run in runs if isinstance(runs, list) else []:
            if not isinstance(run, str):
                continue
            found = _find_runs(run, base)
            if len(found) == 1:
                notes += _status_note(found[0])
            elif found:
                errors.append(f"report.parameters.{key}: run id {run!r} matches {len(found)} runs under "
                              f"{_outputs(base)}: give its directory")
            else:
                errors.append(f"report.parameters.{key}: {run}: no such run directory, nor a run id under "
                              f"{_outputs(base)}")
    if errors:
        raise ReportError("\n".join(errors))
    return notes


#: ``report=run_report`` on a language model's run executes this notebook instead of the run report's:
#: loss curves, perplexity against the n-gram baselines and samples, where a tabular run has predictions.
RUN_REPORT_NOTEBOOK = CODE_DIR / "notebooks" / "run_report.ipynb"
LANGUAGE_MODEL_NOTEBOOK = CODE_DIR / "notebooks" / "lm_report.ipynb"
#: ``model._target_`` in a language model's ``config.yaml`` (read without torch).
LANGUAGE_MODEL_TARGET = "factory.models.LanguageModel"


def for_run_kind(spec: ReportSpec, cwd: str | Path | None = None) -> ReportSpec:
    """``spec``, or for the run report on a language model's run the same report with
    ``LANGUAGE_MODEL_NOTEBOOK`` (its name, parameters and output place unchanged).

    Call after ``check_inputs``, which resolves ``run_dir`` (``latest:<task>``).
    """
    import dataclasses

    run = spec.parameters.get("run_dir")
    if Path(spec.notebook).resolve() != RUN_REPORT_NOTEBOOK.resolve() or not isinstance(run, str):
        return spec
    found = _find_runs(run, Path(cwd or os.getcwd()))
    if len(found) != 1 or not is_language_model_run(found[0]):
        return spec
    return dataclasses.replace(spec, notebook=LANGUAGE_MODEL_NOTEBOOK)


def is_language_model_run(run_dir: str | Path) -> bool:
    """Whether the run's ``config.yaml`` trained a language model (``model._target_``)."""
    try:
        model = catalog.read_config(run_dir).get("model")
    except Exception:  # noqa: BLE001: an unreadable config.yaml is the notebook's to report, not the choice's
        return False
    return isinstance(model, DictConfig) and model.get("_target_") == LANGUAGE_MODEL_TARGET


def _resolve_latest(value: Any, base: Path) -> Any:
    """``value`` with each ``latest:<task>`` (alone or in a list) replaced by that run's directory."""
    if isinstance(value, list):
        return [_resolve_latest(v, base) for v in value]
    if not (isinstance(value, str) and value.startswith(LATEST)):
        return value
    task = value[len(LATEST):].strip()
    outputs = _outputs(base)
    newest = latest_completed_run(task, outputs)
    if newest is None:
        raise ReportError(f"{value}: no completed run of task {task!r} under {outputs}")
    return str(newest)


def latest_completed_run(task: str, outputs: Path) -> Path | None:
    """The directory of the newest completed run whose ``task_name`` is ``task`` under ``outputs``."""
    import json

    found = []
    for run_dir in catalog.run_dirs_below(outputs):
        try:
            record = json.loads((run_dir / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        if record.get("task_name") == task and record.get("status") == "completed":
            found.append((str(record.get("started_at") or ""), run_dir.name, run_dir))
    return max(found)[2].absolute() if found else None


def _outputs(base: Path) -> Path:
    return base / os.environ.get("FACTORY_ROOT", ".") / "outputs"


def _find_runs(run: str, base: Path) -> list[Path]:
    """The directories a run path or id names, as ``factory.load_run`` looks in the kernel (without pandas)."""
    path = base / run
    if is_run_dir(path):
        return [path]
    outputs = _outputs(base)
    if "/" in run or not outputs.is_dir():
        return []
    return catalog.runs_named(run, outputs)


def _status_note(run_dir: Path) -> list[str]:
    import json

    try:
        record = json.loads((run_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return [f"run {run_dir.name}: {MANIFEST} is unreadable"]
    status = record.get("status")
    if status in (None, "completed"):
        return []
    error = f": {record['error']}" if record.get("error") else ""
    return [f"run {record.get('run_id', run_dir.name)} is {status}{error}"]
