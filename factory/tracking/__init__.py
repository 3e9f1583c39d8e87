"""Experiment trackers: publishing a finished run to its loggers (wandb, MLflow, TensorBoard)
and uploading offline wandb runs (``sync``)."""
