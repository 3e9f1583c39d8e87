"""Hydra's submitit launchers (``launcher=slurm``, ``launcher=local``) as factory uses them:
a launch that cannot start says so in one line and leaves ``sweep.json`` marked failed."""
