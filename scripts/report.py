"""Execute a report notebook with papermill; write report.ipynb, report.html and the index.

    python scripts/report.py report=run_report report.parameters.run_dir=outputs/fraud_detection/<run>
    python scripts/report.py report=run_report report.parameters.run_dir=<run> report.hide_input=false  # code too
    python scripts/report.py --help        # report options
Exit codes: 0 done, 1 the report failed (a cell raised, timed out or killed the kernel), 2 bad input.
"""
import sys

import hydra
from omegaconf import DictConfig

from factory.cli import job, run_cli


@hydra.main(config_path="../conf", config_name="report", version_base="1.3")
@job
def main(cfg: DictConfig) -> None:
    from factory.reports import ReportFailed, reports_dir, run_report, to_spec
    from factory.reports.schedule import trigger
    from factory.reports.spec import check_inputs

    spec = to_spec(cfg.report)  # before validate: names the missing parameter, checks the cron line
    from factory.config import validate

    validate(cfg, root="report")
    check_inputs(spec)  # before the kernel: a missing run or an untagged notebook is one line, exit 2
    try:
        result = run_report(spec, reports_dir(cfg), trigger=trigger(),  # `schedule` under scripts/schedule.py
                            energy=cfg.get("energy"))
    except ReportFailed as e:
        print(f"error: report {e.result.name} failed: {e.result.error}", file=sys.stderr)
        print(f"partial notebook: {e.result.ipynb}", file=sys.stderr)
        sys.exit(1)
    for path in (result.ipynb, result.html):  # run_report has logged "report <name> completed in ..."
        if path:
            print(f"  {path}")


if __name__ == "__main__":
    run_cli(main)
