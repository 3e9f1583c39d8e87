"""Exported ONNX graphs in the registry: export into a version, load(backend="onnx"), scripts/export.py --format onnx.

One tiny diagnosis run (1 epoch) is trained for the module; each test uses its own registry.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from factory import registry
from factory.errors import FactoryError
from factory.models import TabularMLP
import factory.registry.exports as exports
from tests.conftest import REPO, script_env
from tests.integration.helpers import trained_run

EXPORT = str(REPO / "scripts" / "export.py")
REGISTRY = str(REPO / "scripts" / "registry.py")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("onnx-run")
    return trained_run(root)


def script(tmp_path: Path, path: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, path, *args], capture_output=True, text=True, cwd=tmp_path,
                          env=script_env(tmp_path), timeout=300)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_into_the_version_and_onnx_scores_as_torch(run_dir, tmp_path):
    reg = tmp_path / "reg"
    version = registry.register(run_dir, registry=reg)
    ref, files, comparison = exports.export_source("diagnosis@1", registry.Registry(reg), quantize=True,
                                                   reps=5, reps_large=3)
    assert ref == "diagnosis@1" and files == {"fp32": version.path / "model.onnx", "int8": version.path / "model.int8.onnx"}
    manifest = json.loads((version.path / "exports.json").read_text())
    assert {name: entry["sha256"] for name, entry in manifest["files"].items()} == {
        "model.onnx": sha(files["fp32"]), "model.int8.onnx": sha(files["int8"])}
    assert manifest["error"] is None and manifest["files"]["model.int8.onnx"]["quantized"] == "int8"
    last = registry.audit(reg)[-1]
    assert (last["action"], last["version"], last["details"]) == (
        "export", 1, {"model.onnx": sha(files["fp32"]), "model.int8.onnx": sha(files["int8"])})
    assert "model.onnx" not in json.loads((version.path / "meta.json").read_text())  # meta.json as registered
    assert list((reg / ".staging").iterdir()) == []
    assert comparison.max_diff["fp32"] <= 1e-5 and comparison.metric == "accuracy"  # diagnosis monitors val/loss

    torch_model = registry.load("diagnosis@1", reg)
    onnx_model = registry.load("diagnosis@1", reg, backend="onnx")
    assert onnx_model.onnx is not None and onnx_model.onnx.features == torch_model.features
    assert (onnx_model.task, onnx_model.class_labels) == ("binary", ["malignant", "benign"])
    rows = torch_model.datamodule().split_table("test")
    expected, got = torch_model.predict(rows), onnx_model.predict(rows)
    assert list(got.columns) == list(expected.columns) and len(got) == rows.num_rows
    np.testing.assert_allclose(got["score"], expected["score"], atol=1e-5, rtol=0)
    np.testing.assert_array_equal(got["prediction"], expected["prediction"])
    raw = rows.drop_columns(["target"]).to_pandas()  # new rows arrive without the target
    np.testing.assert_allclose(onnx_model.predict(raw)["score"], expected["score"], atol=1e-5, rtol=0)
    quantized = registry.load("diagnosis@1", reg, backend="onnx-int8").predict(rows)
    np.testing.assert_allclose(quantized["score"], expected["score"], atol=0.1)
    # The torch model is still there on an ONNX-loaded version, read from the checkpoint when asked for.
    assert sum(p.numel() for p in onnx_model.model.parameters()) == comparison.parameters


def test_onnx_backend_loads_without_torch(run_dir, tmp_path):
    reg = tmp_path / "reg"
    registry.register(run_dir, registry=reg)
    registry.export("diagnosis@1", reg)
    code = ("import sys; from factory import registry; m = registry.load('diagnosis', sys.argv[1], backend='onnx'); "
            "print(m.ref, sorted(k for k in ('torch', 'pytorch_lightning') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(reg)], capture_output=True, text=True, cwd=REPO,
                         env=script_env(tmp_path), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "diagnosis@1 []"


def test_altered_or_missing_export_is_refused_on_load(run_dir, tmp_path):
    reg = tmp_path / "reg"
    registry.register(run_dir, registry=reg)
    with pytest.raises(FactoryError, match=r"^diagnosis@1 has no model.onnx \(backend=onnx\); export it first: "
                                           r"python scripts/export.py diagnosis@1 --format onnx$"):
        registry.load("diagnosis", reg, backend="onnx")
    with pytest.raises(FactoryError, match=r"^backend 'tensorrt': expected one of torch, onnx, onnx-int8$"):
        registry.load("diagnosis", reg, backend="tensorrt")
    registry.export("diagnosis@1", reg)
    with pytest.raises(FactoryError, match=r"model.int8.onnx .*--quantize int8$"):
        registry.load("diagnosis", reg, backend="onnx-int8")
    onnx_file = registry.get("diagnosis@1", reg).path / "model.onnx"
    with open(onnx_file, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(FactoryError, match=r"^diagnosis@1: exported file .*model.onnx changed since it was exported"):
        registry.load("diagnosis", reg, backend="onnx")


class ExoticNet(TabularMLP):
    """The diagnosis network plus an op torch cannot export to ONNX (``erfcx``), contributing nothing."""

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return super().forward(x_num, x_cat) + 0 * torch.special.erfcx(x_num[:, :1])


def test_register_with_export_and_an_unexportable_model(run_dir, tmp_path):
    reg = tmp_path / "reg"
    version = registry.register(run_dir, registry=reg, export=True)
    assert set(registry.exported(version.ref, reg)["files"]) == {"model.onnx"}
    assert [e["action"] for e in registry.audit(reg)] == ["register", "export"]
    # A model that cannot be exported is registered all the same; exports.json says why.
    copy = tmp_path / "outputs" / "diagnosis" / run_dir.name
    shutil.copytree(run_dir, copy)
    best = copy / "checkpoints" / "best.ckpt"
    checkpoint = torch.load(best, map_location="cpu", weights_only=False)
    checkpoint["hyper_parameters"]["net"]["_target_"] = f"{__name__}.{ExoticNet.__qualname__}"
    torch.save(checkpoint, best)
    exotic = registry.register(copy, registry=reg, export=True)
    manifest = registry.exported(exotic.ref, reg)
    assert exotic.version == 2 and manifest["files"] == {}
    assert manifest["error"]["message"].startswith("cannot export ") and "aten::special_erfcx" in manifest["error"]["message"]
    assert registry.audit(reg)[-1]["action"] == "export" and registry.audit(reg)[-1]["details"] == {
        "error": manifest["error"]["message"]}
    assert sorted(p.name for p in exotic.path.iterdir()) == ["exports.json", "meta.json", "model.ckpt",
                                                             "profile-sample.parquet", "profile.json"]  # no graph
    assert registry.load(exotic.ref, reg).ref == "diagnosis@2"  # the PyTorch path serves it
    with pytest.raises(FactoryError, match="has no model.onnx"):
        registry.load(exotic.ref, reg, backend="onnx")


def test_a_graph_that_differs_from_pytorch_is_refused(run_dir, tmp_path):
    from factory.export import export_onnx
    from factory.export.compare import compare
    from factory.rundir.catalog import read_config

    best = Path(json.loads((run_dir / "run.json").read_text())["best_checkpoint"])
    state = torch.load(best, map_location="cpu", weights_only=False)
    for key, value in state["state_dict"].items():  # another model with the same inputs
        if value.is_floating_point():
            state["state_dict"][key] = value * 1.5
    other = tmp_path / "other.ckpt"
    torch.save(state, other)
    graph = export_onnx(other, tmp_path / "other.onnx").paths[0]
    with pytest.raises(FactoryError, match=r"probabilities differ from PyTorch's by .* \(row \d+ of the test split\), "
                                           r"over the 1e-05 allowed"):
        compare(best, read_config(run_dir).data, {"fp32": graph}, "val/loss", reps=2, reps_large=2)


def test_cli_export_of_a_run_prints_the_comparison(run_dir, tmp_path):
    out = script(tmp_path, EXPORT, str(run_dir), "--format", "onnx", "--quantize", "int8",
                 "--output", str(tmp_path / "edge" / "diag.onnx"), "--reps", "12", "--markdown")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0] == f"exported diagnosis -> {tmp_path}/edge/diag.onnx, {tmp_path}/edge/diag.int8.onnx"
    assert sorted(p.name for p in (tmp_path / "edge").iterdir()) == ["diag.int8.onnx", "diag.onnx"]
    text = out.stdout
    for expected in ("test split: 113 rows; binary", "file size: checkpoint", "fp32: max |probability difference|",
                     "int8: max |probability difference|", "test/accuracy", "batch 1: PyTorch eager",
                     "batch 256: PyTorch eager", "ORT fp32", "ORT int8", "torch "):
        assert expected in text, expected
    fp32 = float(text.split("fp32: max |probability difference| vs PyTorch ")[1].split(",")[0])
    assert fp32 <= 1e-5
    assert lines[-1].startswith("| diagnosis | 4,289 | ") and lines[-1].count("|") == 16


@pytest.mark.parametrize("args, message", [
    (["nope@production", "--format", "onnx"], "no model named 'nope'"),
    (["outputs/none/run", "--format", "onnx"], "no such run directory or checkpoint: outputs/none/run"),
    (["diagnosis@1", "--format", "onnx", "--output", "x.onnx"], "--output: diagnosis@1 is a registered model"),
    (["RUN", "--format", "onnx", "--output", "x.txt"], "--output: x.txt: expected a .onnx file"),
    (["RUN", "--quantize", "int8"], "--quantize is for --format onnx"),
    (["RUN", "--format", "onnx", "--quantize", "int4"], "argument --quantize: invalid choice: 'int4'"),
    (["bad.ckpt", "--format", "onnx"], "bad.ckpt is not a readable checkpoint"),
])
def test_cli_export_bad_input_is_one_line_and_exit_2(run_dir, tmp_path, args, message):
    reg = tmp_path / "reg"
    registry.register(run_dir, registry=reg)
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    before = sorted(p.name for p in tmp_path.iterdir())
    out = script(tmp_path, EXPORT, *[str(run_dir) if a == "RUN" else a for a in args], "--registry", str(reg))
    assert out.returncode == 2, out.stderr[-2000:]
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("error: ") and message in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written beside
    assert not list(run_dir.glob("checkpoints/*.onnx")) and registry.exported("diagnosis@1", reg) == {}


@pytest.mark.slow  # a CLI process that scores through ONNX Runtime (its frame imports torch: ~10 s here)
def test_cli_load_with_the_onnx_backend(run_dir, tmp_path):
    reg = tmp_path / "reg"
    registry.register(run_dir, registry=reg)
    registry.export("diagnosis@1", reg)
    loaded = registry.load("diagnosis@1", reg)
    rows = loaded.datamodule().split_table("test").to_pandas().drop(columns=["target"])
    rows.to_csv(tmp_path / "new.csv", index=False)
    out = script(tmp_path, REGISTRY, "load", "diagnosis", "--backend", "onnx", "--registry", str(reg),
                 "--score", "new.csv", "--output", "scored.csv")
    assert out.returncode == 0, out.stderr[-2000:]
    summary, written = out.stdout.strip().splitlines()[-2:]
    assert summary.startswith("loaded diagnosis v1 (none): ONNX Runtime graph model.onnx (")
    assert "for binary; 30 feature columns, classes ['malignant', 'benign']" in summary
    assert written == f"scored {len(rows)} rows -> scored.csv"
    import pandas as pd

    np.testing.assert_allclose(pd.read_csv(tmp_path / "scored.csv")["score"], loaded.predict(rows)["score"], atol=1e-5)
    shown = json.loads(script(tmp_path, REGISTRY, "show", "diagnosis", "--json", "--registry", str(reg)).stdout)
    assert set(shown["exports"]["files"]) == {"model.onnx"}
