"""Monitor a window of a registered model's traffic: drift, quality and fairness against its profile, alerts.

    python scripts/monitor.py model=fraud_detection@production window=last_24h
    python scripts/monitor.py model=fraud_detection@production window=2026-12-01..2026-12-07 labels=labels.csv
    python scripts/monitor.py model=fraud_detection@production input='scored/*.parquet' sensitive=customer_age_band
    python scripts/monitor.py model=fraud_detection@production on_alert=retrain pipeline=fraud_detection
Writes outputs/monitor/<model>/<run id>/monitor.json and monitor.prom (and, for the request log, the
server's <serving_dir>/<model>/monitoring/drift.prom).
Exit codes: 0 no alert, 3 an alert fired, 2 bad input (one line), 1 a crash.
"""
import sys

import hydra
from omegaconf import DictConfig

from factory.cli import job, run_cli, set_model, take_model_argument

MODEL = None  # the model=REF argument (a config group's name too: taken out before Hydra reads it)
STATUS = [0]  # the exit status, set inside the Hydra job and returned after it


@hydra.main(config_path="../conf", config_name="monitor", version_base="1.3")
@job
def main(cfg: DictConfig) -> None:
    from factory.monitoring.job import retrain, run
    from factory.monitoring.summary import print_summary

    set_model(cfg, MODEL)
    record = run(cfg)
    print_summary(record)
    retrained = retrain(record, cfg)
    if retrained is not None:
        from factory.monitoring.pipeline import summary

        print(summary(retrained))
    STATUS[0] = record["exit_code"]


if __name__ == "__main__":
    sys.argv[1:], MODEL = take_model_argument(sys.argv[1:])
    run_cli(main)
    sys.exit(STATUS[0])
