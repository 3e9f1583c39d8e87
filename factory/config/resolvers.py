"""OmegaConf resolvers the configs use; registered when ``factory.config`` is imported."""
from __future__ import annotations

from omegaconf import OmegaConf

from factory.errors import FactoryError
from factory.rundir.layout import fixed_run_id, new_run_id

def run_id(*, _root_) -> str:
    """``FACTORY_RUN_ID``, else with ``resume=auto`` the run to continue (``factory.rundir.resume``), else a new id.

    Cached in the config (OmegaConf's per-config cache, which copies travel with): every
    access to ``paths.run_dir`` in one config, and in its copies, agrees. A fixed id
    (``FACTORY_RUN_ID``, SLURM's under ``resume=auto``) is checked here, before Hydra
    creates the directory: never a path, never a finished run or another config's run.
    """
    cache = OmegaConf.get_cache(_root_)["factory.run_id"]
    if "id" not in cache:
        from factory.rundir import resume
        from factory.rundir import guard

        fixed = fixed_run_id()
        if _root_.get("resume") == resume.AUTO:
            cache["id"] = resume.auto_run_id(_root_)  # checks a fixed id itself
        elif fixed:
            guard.check_fixed_dir(_root_, fixed)
            cache["id"] = fixed
        else:
            cache["id"] = new_run_id()
    return cache["id"]


def forget_run_id(cfg) -> None:
    """Drop the run id cached in ``cfg``, so that its next ``paths.run_dir`` is decided afresh
    (a new id, the env's, or ``resume=auto``'s choice)."""
    OmegaConf.get_cache(cfg).pop("factory.run_id", None)


def sweep_id(*, _root_) -> str:
    """A new id for a multirun, cached like ``run_id``: names its directory and, with the job
    number, its trials (``<n>_<sweep id>``), so that trial run ids never repeat across sweeps.

    Hydra copies the primary config's cache into each job's config, and submitit pickles it
    for every task of a job: all of them agree once the primary config has resolved it
    (``factory.sweeps.callback`` does at the sweep's start).
    """
    cache = OmegaConf.get_cache(_root_)["factory.sweep_id"]
    if "id" not in cache:
        cache["id"] = new_run_id()
    return cache["id"]


def factory_error(error: BaseException) -> FactoryError | None:
    """The ``FactoryError`` a resolver raised, from OmegaConf's wrapping of it (``None`` if none)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, FactoryError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def register() -> None:
    # Not use_cache: OmegaConf refuses it for resolvers that take _root_ (they cache themselves).
    OmegaConf.register_new_resolver("factory.run_id", run_id, replace=True)
    OmegaConf.register_new_resolver("factory.sweep_id", sweep_id, replace=True)
