"""What a report is: a ``conf/report/<name>.yaml`` node, checked before any kernel starts."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from factory.config import CONFIG_DIR
from factory.errors import FactoryError
from factory.provenance import CODE_DIR

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
    hide_input: bool = False
    schedule: str | None = None
    timeout: int | None = 600
    kernel: str | None = None


def available() -> list[str]:
    """Names of the reports in ``conf/report/``."""
    return sorted(p.stem for p in (CONFIG_DIR / "report").glob("*.yaml"))


def compose_report(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The ``report`` root config for ``name``, as ``scripts/report.py report=<name>`` gets it.

    Clears Hydra's global state (``factory.compose``): do not call inside a running
    Hydra app; ``spec_from_file`` needs no Hydra.
    """
    from factory.config import compose

    if name not in available():
        raise ReportError(f"report={name}: no such report (available: {', '.join(available()) or 'none'})")
    return compose("report", [f"report={name}", *overrides])


def spec_from_file(name: str, context: DictConfig | None = None,
                   parameters: dict[str, Any] | None = None) -> ReportSpec:
    """Load ``conf/report/<name>.yaml`` without Hydra (safe inside a Hydra app).

    Args:
        name: a report in ``conf/report/``.
        context: a config whose keys the report's interpolations may name
            (``${paths.output_dir}``); a training run passes its own.
        parameters: values that replace the file's parameters (``run_dir``).
    """
    from factory.config.schemas import ReportConf

    path = CONFIG_DIR / "report" / f"{name}.yaml"
    if not path.exists():
        raise ReportError(f"report={name}: no such report (available: {', '.join(available()) or 'none'})")
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
    if errors:
        raise ReportError("\n".join(errors))
    return ReportSpec(name=plain["name"], notebook=notebook, parameters=params,
                      formats=list(plain.get("formats") or FORMATS), hide_input=bool(plain.get("hide_input")),
                      schedule=plain.get("schedule"), timeout=plain.get("timeout"), kernel=plain.get("kernel"))


def cron_error(expression: str) -> str | None:
    """Why ``expression`` is not a standard 5-field cron expression, or None."""
    from croniter import croniter

    if len(str(expression).split()) != 5:
        return f"{expression!r}: expected 5 fields (minute hour day-of-month month day-of-week)"
    if not croniter.is_valid(expression):
        return f"{expression!r}: not a valid cron expression"
    return None
