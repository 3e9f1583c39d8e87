"""The project's Jupyter kernel: notebooks name it, papermill and JupyterLab start it.

``make install`` registers it inside the virtual environment (no writes to the home
directory); ``ensure_kernel`` registers it on first use where that did not happen, so
a fresh clone works either way.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

#: Name in every notebook's ``metadata.kernelspec.name``.
KERNEL_NAME = "factory"
DISPLAY_NAME = "Python (factory)"


def kernel_spec_dir(name: str = KERNEL_NAME) -> Path:
    """Where ``ipykernel install --sys-prefix`` puts the kernel of this environment."""
    return Path(sys.prefix) / "share" / "jupyter" / "kernels" / name


def ensure_kernel(name: str = KERNEL_NAME) -> str:
    """Register ``name`` for this interpreter if it is not registered; return ``name``.

    Jupyter searches the user's directory before the environment's, so a ``factory``
    kernel left there by another checkout would win: that case is logged, not changed.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        spec = manager.get_kernel_spec(name)
    except NoSuchKernel:
        install_kernel(name)
        return name
    executable = Path(spec.argv[0]) if spec.argv else None
    if executable is not None and executable.resolve() != Path(sys.executable).resolve() \
            and not str(executable).startswith(sys.prefix):
        log.warning("kernel %r runs %s, not this environment's %s (see `jupyter kernelspec list`)",
                    name, executable, sys.executable)
    return name


def install_kernel(name: str = KERNEL_NAME, display_name: str = DISPLAY_NAME) -> Path:
    """``python -m ipykernel install --sys-prefix --name <name>``, in-process."""
    from ipykernel.kernelspec import install

    return Path(install(kernel_name=name, display_name=display_name, prefix=sys.prefix))
