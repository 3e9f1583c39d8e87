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

from factory.cli import job, run_cli, set_model, take_argument, take_model_argument

MODEL = None  # the model=REF argument (a config group's name too: taken out before Hydra reads it)
PIPELINE = None  # the pipeline=NAME argument of on_alert=retrain (conf/pipeline/ is a group too)
STATUS = [0]  # the exit status, set inside the Hydra job and returned after it


@hydra.main(config_path="../conf", config_name="monitor", version_base="1.3")
@job
def main(cfg: DictConfig) -> None:
    from factory.monitoring.job import retrain, run
    from factory.monitoring.summary import print_summary

    set_model(cfg, MODEL)
    if PIPELINE is not None:
        from omegaconf import open_dict

        with open_dict(cfg):
            cfg.pipeline = PIPELINE
    record = run(cfg)
    print_summary(record)
    retrain(record, cfg)  # on_alert=retrain: prints the pipeline's verdict (or why it failed)
    STATUS[0] = record["exit_code"]


if __name__ == "__main__":
    rest, MODEL = take_model_argument(sys.argv[1:])
    sys.argv[1:], PIPELINE = take_argument(rest, "pipeline")
    run_cli(main)
    sys.exit(STATUS[0])
