"""A run's manifest, ``run.json``: the contract with everything downstream.

Written when a run starts and again as it ends; ``factory.rundir.layout`` names it and the
other files of the run directory, ``factory.rundir.catalog`` lists and reads runs back.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from factory import files, redact
from factory.errors import FactoryError
from factory.rundir import provenance
from factory.rundir.layout import CONFIG, MANIFEST, METRICS  # noqa: F401  (re-exported: manifest.MANIFEST)


@dataclass
class RunRecord:
    """Everything needed to trust, reproduce and find a run; saved as ``run.json``."""

    run_id: str
    task_name: str
    run_dir: str
    status: str = "running"  # running | completed | failed | interrupted (SIGTERM; resume=auto continues it)
    # Milliseconds: runs started within one second (a notebook, a sweep) still list in order.
    started_at: str = field(default_factory=lambda: files.utc_stamp("milliseconds"))
    ended_at: str | None = None
    duration_s: float | None = None
    command: list[str] = field(default_factory=provenance.command_line)
    git: dict | None = None
    versions: dict = field(default_factory=provenance.versions)
    seed: int | None = None
    tags: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)      # source, fingerprint, rows per split
    strategy: dict = field(default_factory=dict)  # name, world_size
    monitor: dict = field(default_factory=dict)   # metric, mode, best value
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    checkpoint_format: str | None = None  # file | sharded (a DeepSpeed ZeRO directory)
    resumed_from: str | None = None
    attempt: int = 1              # launches of this run: resume=auto continues it in place
    resumes: list[dict] = field(default_factory=list)  # per continuation: at, checkpoint, previous status/error
    error: str | None = None
    # kwh, kg_co2e, method (measured | estimated), sources... of the run so far (factory.training.energy); rank zero's machine
    energy: dict | None = None
    profile: str | None = None  # the reference profile's file (layout.PROFILE), once factory.monitoring.profile wrote it

    @classmethod
    def begin(cls, run_dir: Path, task_name: str, seed: int, tags: list[str]) -> "RunRecord":
        return cls(run_id=run_dir.name, task_name=task_name, run_dir=str(run_dir), seed=seed,
                   tags=list(tags), git=provenance.git_state(provenance.CODE_DIR))

    def save(self) -> Path:
        # The command line and an error message may hold a URL's password.
        return files.write_json(Path(self.run_dir) / MANIFEST, redact.container(asdict(self)))

    def finish(self, status: str, error: BaseException | None = None) -> Path:
        self.status = status
        self.ended_at = files.utc_stamp("milliseconds")
        start = datetime.fromisoformat(self.started_at)
        self.duration_s = round((files.utc_now() - start).total_seconds(), 3)
        if error is not None:
            self.error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        return self.save()


def write_config(run_dir: Path, cfg) -> Path:
    """Write ``config.yaml``: ``cfg`` resolved, its credentials masked (``factory.redact.resolved``)."""
    return files.write_text(Path(run_dir) / CONFIG, redact.config_yaml(cfg))


def load_record(run_dir: str | Path) -> RunRecord:
    """Read ``run.json`` from a run directory."""
    data = json.loads((Path(run_dir) / MANIFEST).read_text())
    return RunRecord(**data)


def save_metrics(run_dir: Path, metrics: dict[str, Any]) -> Path:
    return files.write_json(run_dir / METRICS, metrics)


def check_finite_metrics(metrics: dict[str, dict[str, Any]], sections: tuple[str, ...] = ("val", "test")) -> None:
    """Raise ``FactoryError`` if a val or test metric is NaN or infinite.

    Such a run learned nothing usable (diverged, or inputs beyond float range); marking it
    completed would let the registry and sweeps pick it.
    """
    bad = [f"{name}={value}" for section in sections for name, value in metrics.get(section, {}).items()
           if isinstance(value, float) and not math.isfinite(value)]
    if bad:
        shown = ", ".join(bad[:4]) + (f", ... ({len(bad)} in all)" if len(bad) > 4 else "")
        raise FactoryError(f"training produced non-finite metrics ({shown}): it diverged; "
                           "check the data for extreme values, or lower model.optimizer.lr")
