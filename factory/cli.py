"""What every ``scripts/*.py`` entry point shares: bad input is one line and exit code 2."""
from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from typing import Callable, TypeVar

from factory.config import CONFIG_DIR  # also registers the resolvers before Hydra composes
from factory.config.hydra_errors import check_group_choices, describe
from factory.errors import EXIT_BAD_INPUT, FactoryError
from factory.errors import exit_bad_input as _exit_bad_input
from factory.rundir.provenance import CODE_DIR
from factory.sweeps.outcome import in_sweep, record_job_error, sweep_failure

F = TypeVar("F", bound=Callable)


def job(task: F) -> F:
    """Wrap a Hydra task function so bad input exits 2 from inside the job.

    Exiting from the job itself keeps Hydra from adding its own "Error executing job"
    line around ours. In a sweep (``-m``) a failing job is logged and returns ``None``
    instead, so the other trials still run; the sweep fails at its end (``factory.sweeps.outcome``).
    """

    @functools.wraps(task)
    def wrapped(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except Exception as e:
            if in_sweep():  # one failed trial must not end the sweep; run.json and sweep.json say why
                logging.getLogger(task.__module__).error(
                    "trial failed: %s", e, exc_info=not isinstance(e, FactoryError))
                record_job_error(e)
                return None
            if not isinstance(e, FactoryError):
                raise
            _exit_bad_input(str(e), e)

    return wrapped  # type: ignore[return-value]


#: The exit status of a command whose reader went away (``| head``): as one killed by SIGPIPE.
EXIT_BROKEN_PIPE = 141


def quiet_pipe(main: Callable[[], object]) -> object:
    """``main()``; a reader that stops early (``script.py ... | head``) ends it quietly, exit 141, not with a
    ``BrokenPipeError`` traceback."""
    try:
        result = main()
        sys.stdout.flush()  # here, not at exit: a small output is still in the buffer
        return result
    except BrokenPipeError:
        # Python flushes stdout once more at exit: point it at /dev/null so that flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the non-Hydra scripts (registry, export): a usage error is one line and exit 2."""

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def take_model_argument(argv: list[str]) -> tuple[list[str], str | None]:
    """Take ``model=REF`` (a registered model: ``NAME@stage``) out of a command line: ``(the rest, REF)``.

    ``model`` is also a config group (``conf/model/``), so Hydra would read ``model=REF`` as a
    choice of that group and fail; ``scripts/serve.py`` and ``scripts/score.py`` take it out
    before Hydra composes and set ``cfg.model`` from it (``set_model``).
    """
    return take_argument(argv, "model")


def take_argument(argv: list[str], name: str) -> tuple[list[str], str | None]:
    """Take ``name=VALUE`` out of a command line: ``(the rest, VALUE)`` (the last one given, or None).

    For a key that is also a config group's name (``model``; ``pipeline`` in ``scripts/monitor.py``),
    which Hydra would read as a choice of that group.
    """
    rest, found = [], None
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key == name:
            found = value
        else:
            rest.append(arg)
    return rest, found


def set_model(cfg, ref: str | None) -> None:
    """Put the ``model=REF`` argument (``take_model_argument``) into ``cfg.model``."""
    from omegaconf import open_dict

    if ref is not None:
        with open_dict(cfg):
            cfg.model = ref


def run_cli(hydra_main: Callable[[], object]) -> None:
    """Call a ``@hydra.main`` function, reporting bad input as ``error: ...`` and exit 2.

    Hydra prints composition errors over several lines and exits 1; asking it to raise
    (``HYDRA_FULL_ERROR``) lets us report them in one line instead. Set
    ``FACTORY_TRACEBACK=1`` to see the full traceback of a bad-input error.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        _use_user_config_dir()
        check_group_choices(sys.argv[1:], CONFIG_DIR)
    except FactoryError as e:
        _exit_bad_input(str(e), e)
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        _share_config_repository()
    try:
        hydra_main()
    except FactoryError as e:
        _exit_bad_input(str(e), e)
    except (HydraException, OmegaConfBaseException) as e:
        _exit_bad_input(describe(e, _config_name()), e)
    if sweep_failure():  # every trial ran; some failed (Hydra ignores callback errors)
        print(f"error: {sweep_failure()}", file=sys.stderr)
        sys.exit(1)


def _use_user_config_dir() -> None:
    """``$FACTORY_CONFIG_DIR`` becomes Hydra's ``--config-dir``; a ``--config-dir`` given sets it, so
    the processes this one starts (report kernels, DDP workers) search the same directory.

    Raises:
        ConfigError: the directory does not exist (Hydra would print a traceback-like block).
    """
    from factory.config.compose import CONFIG_DIR_ENV, user_config_dir
    from factory.errors import ConfigError

    args = sys.argv[1:]
    for i, arg in enumerate(args):
        flag, sep, value = arg.partition("=")
        if flag in ("--config-dir", "-cd"):
            given = value if sep else (args[i + 1] if i + 1 < len(args) else "")
            if not os.path.isdir(given):
                raise ConfigError(f"{flag}: {given}: no such directory")
            os.environ[CONFIG_DIR_ENV] = os.path.abspath(given)
            return
    user_dir = user_config_dir()
    if user_dir is not None:
        sys.argv[1:1] = ["--config-dir", str(user_dir)]


def _config_name() -> str:
    """The config this script composes: its name (``scripts/evaluate.py``), else ``train``."""
    from factory.config.schemas import ROOTS

    name = os.path.splitext(os.path.basename(sys.argv[0]))[0].removeprefix("factory-")  # or factory-evaluate
    return name if name in ROOTS else "train"


def _share_config_repository() -> None:
    """Hydra's ``--help`` copies the whole config repository for each of its ~100 config-group
    lookups (0.3-0.4 s of a 1 s answer here); for one help text, one copy serves them all."""
    try:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl

        build = ConfigLoaderImpl._parse_overrides_and_create_caching_repo
    except (ImportError, AttributeError):  # another Hydra: keep its own (slower) way
        return
    built: dict = {}

    def shared(self, config_name, overrides):
        key = (id(self), config_name, tuple(overrides))
        if key not in built:
            built[key] = build(self, config_name, overrides)
        return built[key]

    ConfigLoaderImpl._parse_overrides_and_create_caching_repo = shared


#: The checkout's scripts the ``factory-<name>`` console scripts run: only an editable install
#: (``pip install -e .``, as ``make install`` does) has them; a plain ``pip install .`` copies
#: the package alone into site-packages.
SCRIPTS_DIR = CODE_DIR / "scripts"


def _run_script(name: str) -> None:
    """Run ``scripts/<name>.py`` as ``python scripts/<name>.py`` does, for the ``factory-<name>``
    console scripts (pyproject ``[project.scripts]``). The script runs as ``__main__`` from its
    file, so Hydra finds ``conf/`` beside it from any working directory. Not ``runpy``: it sets
    ``sys.argv[0]`` to the ``.py`` file, and Hydra's shell completion would bind to ``python``
    instead of the command's own name.

    Without the script (not an editable install) it prints one ``error:`` line and exits 2.
    """
    path = SCRIPTS_DIR / f"{name}.py"
    if not path.is_file():
        print(f"error: factory-{name} runs scripts/{name}.py of a source checkout: install with "
              f"`pip install -e .` from the repository (no {path})", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    exec(compile(path.read_text(), str(path), "exec"), {"__name__": "__main__", "__file__": str(path)})


def train() -> None:
    _run_script("train")


def evaluate() -> None:
    _run_script("evaluate")


def report() -> None:
    _run_script("report")


def schedule() -> None:
    _run_script("schedule")
