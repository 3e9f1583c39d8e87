"""factory.plots figures in a real Jupyter kernel (the project's `factory` kernel): one image each, no `<Figure size`.

One kernel start for the whole file: the cells run in order, first without `%matplotlib inline`
(a fresh kernel, as a notebook written from the README), then with it (as the report notebooks).
"""
from __future__ import annotations

import pytest

pytest.importorskip("jupyter_client")

from tests.integration.helpers import cell_outputs, live_kernel  # noqa: E402

FIGURE = ("from factory import plots\n"
          "plots.pr_curve([0, 1, 0, 1, 1, 0], [0.1, 0.8, 0.3, 0.7, 0.4, 0.2])")
MULTICLASS = ("import numpy as np\n"
              "p = np.array([[.8, .1, .1], [.2, .7, .1], [.1, .2, .7], [.6, .3, .1], [.3, .3, .4], [.2, .6, .2]])\n"
              "display(plots.roc_curve([0, 1, 2, 0, 2, 1], p, labels=['cat', 'dog', 'owl']))")


def _outputs(client, code: str) -> list[dict]:
    return cell_outputs(client, code, timeout=60)


def _images(outputs: list[dict]) -> int:
    return sum("image/png" in output.get("data", {}) for output in outputs)


def _text(outputs: list[dict]) -> str:
    return "".join(output.get("text", "") + output.get("data", {}).get("text/plain", "")
                   + "".join(output.get("traceback", [])) for output in outputs)


@pytest.fixture(scope="module")
def client():
    with live_kernel() as client:
        yield client


def test_figures_show_one_image_with_and_without_matplotlib_inline(client):
    plain = _outputs(client, FIGURE)  # a fresh kernel: no %matplotlib, pyplot never imported
    assert _images(plain) == 1, plain
    assert "<Figure size" not in _text(plain) and "Traceback" not in _text(plain)
    multiclass = _outputs(client, MULTICLASS)
    assert _images(multiclass) == 1 and "Traceback" not in _text(multiclass), multiclass

    inline = _outputs(client, "%matplotlib inline\n" + FIGURE)
    assert _images(inline) == 1, inline  # the inline backend's formatter and ours: still one image
    assert "<Figure size" not in _text(inline)
    displayed = _outputs(client, "figure = plots.pr_curve([0, 1, 0, 1], [0.2, 0.9, 0.4, 0.6])\n"
                                 "display(figure)\nimport matplotlib.pyplot as plt")
    assert _images(displayed) == 1, displayed  # nothing left for pyplot to show at the cell's end
