"""A matplotlib Figure that shows itself as an image in any Jupyter kernel.

A figure built with the object API (``Figure()``, no pyplot) has no display hook of its
own: without ``%matplotlib inline`` a kernel prints ``<Figure size 450x450 with 1 Axes>``.
This subclass carries its own ``_repr_png_``, so IPython renders it wherever it is the
value of a cell or passed to ``display``; outside IPython nothing calls it, so a script
stays quiet (no window, no output). With ``%matplotlib inline`` on, the inline backend's
PNG formatter for ``matplotlib.figure.Figure`` takes precedence over ``_repr_png_`` for the
same mime type, so one image shows, never two; and since no pyplot figure is opened, the
backend has nothing of ours to show again at the end of the cell.
"""
from __future__ import annotations

import io

from matplotlib.figure import Figure as _MatplotlibFigure


class Figure(_MatplotlibFigure):
    """``matplotlib.figure.Figure`` that renders as a PNG in Jupyter, with a readable repr."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()

    def __repr__(self) -> str:
        # Jupyter shows text/plain beside the image in text-only views; name the figure, not its size.
        width, height = (round(v) for v in self.get_size_inches() * self.dpi)
        titles = [t for t in [self.get_suptitle()] + [ax.get_title() for ax in self.axes] if t]
        name = repr(titles[0]) if titles else "figure"
        return f"<factory Figure {name}, {width}x{height} px, {len(self.axes)} axes>"
