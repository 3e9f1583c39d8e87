"""The ONNX graph of a trained model on raw columns: fitted preprocessing, network and scores in one.

Two parts, joined into one graph:
    front end (``onnx.helper``): each categorical column, ``tensor(string) [N]``, through an
        ``ai.onnx.ml`` LabelEncoder to its int64 code (``""`` -> MISSING, an unseen level -> UNSEEN);
    ``RawScorer`` (``torch.onnx.export``): numeric columns ``tensor(double) [N]`` and the codes ->
        the float block exactly as ``Preprocessor.transform_features`` builds it (standardized in
        float64 and imputed, then float32; missing indicators; one-hot) -> the network ->
        ``scores`` (sigmoid, softmax or the value; an ensemble averaged as ``SupervisedModel`` does).
Why the split: torch has no string tensors, and ONNX Runtime's LabelEncoder maps strings in one op.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings

import numpy as np
import torch
from torch import nn

from factory.data.preprocessing import FIRST_LEVEL, MISSING, UNSEEN, Preprocessor
from factory.models.metrics import scores

#: The graph's one output: P(class 1) (N,), class probabilities (N, C), or the value (N,).
OUTPUT = "probabilities"
#: ONNX opsets: 17 for the torch part (ORT runs it everywhere), ai.onnx.ml 3 for LabelEncoder's strings.
OPSET, ML_OPSET = 17, 3
_CODE = "{}::code"  # the torch part's input for a categorical column's codes (internal to the graph)


class RawScorer(nn.Module):
    """Raw columns (numerics float64 with NaN, categoricals as int64 codes) -> scores, in torch.

    Args:
        model: the trained ``SupervisedModel`` (eval mode).
        preprocessor: its fitted ``Preprocessor``.
    """

    def __init__(self, model: nn.Module, preprocessor: Preprocessor) -> None:
        super().__init__()
        state = preprocessor.state_dict()
        self.model, self.task = model, model.task
        self.schema = preprocessor.schema
        numeric = state["numeric"]
        names = [c["name"] for c in numeric]
        self.register_buffer("mean", torch.tensor([c["mean"] for c in numeric], dtype=torch.float64))
        self.register_buffer("std", torch.tensor([c["std"] for c in numeric], dtype=torch.float64))
        self.indicators = [names.index(name) for name in state["indicators"]]
        self.onehot = [(j, len(c["levels"]) + FIRST_LEVEL) for j, c in enumerate(state["categorical"]) if c["onehot"]]
        self.embedded = [j for j, c in enumerate(state["categorical"]) if not c["onehot"]]
        self.n_numeric = len(names)

    def forward(self, *columns: torch.Tensor) -> torch.Tensor:
        """``columns``: the numeric columns (N,) float64, then the categorical codes (N,) int64, in schema order."""
        numeric, codes = columns[: self.n_numeric], columns[self.n_numeric:]
        parts = []
        if numeric:
            raw = torch.stack(numeric, dim=1)  # (N, k) float64
            z = (raw - self.mean) / self.std  # float64 as numpy computes it; cast once, as transform does
            parts.append(torch.where(torch.isnan(z), torch.zeros_like(z), z).float())
            if self.indicators:
                parts.append(torch.isnan(raw[:, self.indicators]).float())
        for j, width in self.onehot:  # (N, width): code c sets column c
            levels = torch.arange(width, dtype=torch.int64)
            parts.append((codes[j].unsqueeze(1) == levels).float())
        x_cat = (torch.stack([codes[j] for j in self.embedded], dim=1) if self.embedded
                 else torch.zeros((columns[0].shape[0], 0), dtype=torch.int64))
        x_num = torch.cat(parts, dim=1) if parts else torch.zeros((x_cat.shape[0], 0))  # only embedded columns
        if self.schema.image_shape is not None:
            x_num = x_num.reshape(-1, *self.schema.image_shape)
        return scores(self.task, self.model(x_num, x_cat))


def build_graph(model: nn.Module, preprocessor: Preprocessor):
    """The whole graph as an ``onnx.ModelProto``: one input per raw feature column, output ``OUTPUT``.

    Raises:
        Exception: whatever ``torch.onnx.export`` raises for a network it cannot export
            (the caller turns it into one line).
    """
    import onnx

    schema = preprocessor.schema
    scorer = RawScorer(model, preprocessor).eval()
    torch_inputs = [*schema.numeric, *(_CODE.format(c) for c in schema.categorical)]
    example = tuple([torch.zeros(2, dtype=torch.float64) for _ in schema.numeric]
                    + [torch.full((2,), FIRST_LEVEL, dtype=torch.int64) for _ in schema.categorical])
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings(), _native_stderr_discarded():
        # Shape checks in Python (rtdl's embeddings) are constants for a fixed feature count: the warning is moot.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # The legacy (TorchScript) exporter: 1.1 s against 2.9 s for dynamo on these networks, same graph.
        torch.onnx.export(scorer, example, buffer, input_names=torch_inputs, output_names=[OUTPUT],
                          dynamic_axes={name: {0: "N"} for name in [*torch_inputs, OUTPUT]},
                          opset_version=OPSET, dynamo=False)
    graph = onnx.load_from_string(buffer.getvalue())
    _add_front_end(graph, preprocessor)
    return graph


@contextlib.contextmanager
def _native_stderr_discarded():
    """Silence the exporter's C++ log for the block.

    When a conversion fails, torch's exporter logs the whole TorchScript graph (thousands of
    lines; torch 2.13's switch for it is always on) to a buffered std::cout that flushes later;
    sent to the unbuffered std::cerr instead, it is dropped here. The exception names the op.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    torch._C._jit_set_onnx_log_output_stream("stderr")
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        torch._C._jit_set_onnx_log_output_stream("stdout")  # torch's default


def _add_front_end(model, preprocessor: Preprocessor) -> None:
    """Replace the torch part's code inputs by string inputs through LabelEncoders; inputs in feature order."""
    from onnx import TensorProto, helper

    graph, state = model.graph, preprocessor.state_dict()
    inputs = {i.name: i for i in graph.input}
    nodes = []
    for cat in state["categorical"]:
        name, levels = cat["name"], cat["levels"]
        # "" is missing, as Preprocessor reads it; also where an old state's levels hold "" (fitted before that rule)
        keys = [level for level in levels if level != ""] + [""]
        values = [FIRST_LEVEL + i for i, level in enumerate(levels) if level != ""] + [MISSING]
        nodes.append(helper.make_node("LabelEncoder", [name], [_CODE.format(name)], domain="ai.onnx.ml",
                                      name=f"encode {name}", keys_strings=keys, values_int64s=values,
                                      default_int64=UNSEEN))
        if _CODE.format(name) not in inputs:  # the exporter keeps every input; say so if that changes
            raise ValueError(f"the exported network does not read categorical column {name!r}")
        inputs[name] = helper.make_tensor_value_info(name, TensorProto.STRING, ["N"])
    ordered = [inputs[name] for name in preprocessor.schema.features]
    del graph.input[:]
    graph.input.extend(ordered)
    torch_nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + torch_nodes)  # topological order: the encoders feed the torch part
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))


def example_columns(preprocessor: Preprocessor, rows: int = 3) -> dict[str, np.ndarray]:
    """A few rows of raw inputs (zeros, the first level) for checking a graph runs."""
    state = preprocessor.state_dict()
    columns = {name: np.zeros(rows, dtype=np.float64) for name in preprocessor.schema.numeric}
    for cat in state["categorical"]:
        columns[cat["name"]] = np.array([(cat["levels"] or [""])[0]] * rows, dtype=object)
    return {name: columns[name] for name in preprocessor.schema.features}
