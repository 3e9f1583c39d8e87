"""Training: the run recipe (``recipe.run``; its record as it goes, ``context``; the after-run
hooks it calls by name, ``hooks``), component building for a run, callbacks, fault
tolerance, baselines, evaluation and the subprocess launch for multi-process runs.

May import config, data, models, distributed, rundir and the basics; never tracking, reports,
sweeps, registry or analysis (those run after a run, as its hooks)."""
