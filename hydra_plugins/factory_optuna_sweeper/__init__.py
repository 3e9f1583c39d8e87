"""factory's Optuna sweeper for Hydra: ``hydra/sweeper=optuna`` on a current Optuna, with
pruning, resumable studies and ``sweep.json`` (see README, "Experiments")."""
