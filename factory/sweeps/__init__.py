"""Sweeps: ``sweep.json`` for every multirun (``journal``, ``callback``) and the job side of
factory's Optuna sweeper (``trial``); the sweeper itself is a Hydra plugin in
``hydra_plugins/factory_optuna_sweeper``."""
