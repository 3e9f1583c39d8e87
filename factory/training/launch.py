"""Run training as a process when the kernel cannot host it (notebooks with DDP or DeepSpeed).

Lightning refuses multi-process strategies in interactive kernels, and its launchers
re-run the main script. So ``factory.train`` hands such configs to ``scripts/train.py``:
the exact config (notebook edits included) is written to a file the script composes
from, output is streamed as it comes, and the run directory gives back the same
``RunResult`` an in-process run returns.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from omegaconf import DictConfig, OmegaConf

from factory.rundir import manifest
from factory.errors import FactoryError

TRAIN_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train.py"
SINGLE_PROCESS = "factory.distributed.single_device"


def train(cfg: DictConfig):
    """Train, validate and test from a composed config; returns a ``RunResult`` (``factory.train``).

    Single-device runs train in this process; DDP and DeepSpeed runs, which Lightning
    refuses inside notebooks, run ``scripts/train.py`` as a subprocess with the same
    config and stream its output. Either way the console shows one line per epoch and
    the metrics table (the script's own, streamed); the rest goes to ``<run_dir>/train.log``
    (``factory.training.output``).
    """
    from factory.training.recipe import run

    if needs_subprocess(cfg):
        return train_in_subprocess(cfg)
    result = run(cfg)
    show_result(cfg, result)
    return result


def show_result(cfg: DictConfig, result) -> None:
    """The table ``scripts/train.py`` prints after a run (from rank zero): status, metrics, run directory."""
    from factory.console import print_metrics
    from factory.rundir.baselines import metric_sections
    from factory.rundir.cv import cv_section

    if result.is_rank_zero:  # a column per section: val, test, then each baseline by its readable name
        cv = cv_section(result.metrics)  # a cross-validated run: mean ± sd over its folds
        note = (f"mean ± sd over {cv['folds']} folds; the run keeps fold {cv['kept_fold']}'s model (best "
                f"{cfg.monitor.metric})\n") if cv else ""
        print_metrics(f"{cfg.task_name}: {result.status}", metric_sections(result.metrics, readable=True),
                      footer=f"{note}run: {result.run_dir}",
                      spread=metric_sections(cv["std"], readable=True) if cv else None)


def needs_subprocess(cfg: DictConfig) -> bool:
    """Every strategy but ``single`` launches processes or needs a non-interactive main."""
    return cfg.strategy.get("_target_") != SINGLE_PROCESS


def train_in_subprocess(cfg: DictConfig, out: TextIO | None = None):
    """Run ``cfg`` through ``scripts/train.py`` and return its ``RunResult``.

    Raises:
        FactoryError: the run failed; the message is the error its ``run.json`` recorded.
    """
    from factory.training.recipe import RunResult, pin_run_dir

    out = out or sys.stdout
    cfg = pin_run_dir(cfg)
    run_dir = Path(cfg.paths.run_dir)
    with tempfile.TemporaryDirectory(prefix="factory-launch-") as config_dir:
        (Path(config_dir) / "job.yaml").write_text(OmegaConf.to_yaml(cfg))
        command = [sys.executable, str(TRAIN_SCRIPT), "--config-path", config_dir, "--config-name", "job",
                   f"hydra.run.dir={run_dir}"]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              bufsize=1) as process:
            for line in process.stdout:
                out.write(line)
                out.flush()
        code = process.wait()
    if code != 0:
        error = manifest.load_record(run_dir).error if (run_dir / manifest.MANIFEST).exists() else None
        raise FactoryError(f"training process exited with {code}: {error or 'see the output above'}")
    return RunResult.from_run_dir(run_dir)
