"""Serve a registered model over HTTP: Open Inference Protocol v2, /predict, /metrics, /docs.

    python scripts/serve.py model=fraud_detection@production
    python scripts/serve.py model=fraud_detection@production port=9000 workers=4 backend=torch
    FACTORY_SERVE_TOKENS=s3cret python scripts/serve.py model=fraud_detection@3 host=0.0.0.0

See conf/serve.yaml for every knob and docs/serving.md for the endpoints.
"""
import sys

import hydra
from omegaconf import DictConfig

from factory.cli import job, run_cli, set_model, take_model_argument

MODEL = None  # the model=REF argument (a config group's name too: taken out before Hydra reads it)


@hydra.main(config_path="../conf", config_name="serve", version_base="1.3")
@job
def main(cfg: DictConfig) -> None:
    from factory.serving.server import serve

    set_model(cfg, MODEL)
    serve(cfg)


if __name__ == "__main__":
    sys.argv[1:], MODEL = take_model_argument(sys.argv[1:])
    run_cli(main)
