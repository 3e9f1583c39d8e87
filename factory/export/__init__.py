"""ONNX export: a trained model on raw feature columns as one file, and its ONNX Runtime predictor.

``export_onnx(checkpoint, "model.onnx", quantize=True)`` writes the model with its fitted
preprocessing inside the graph (``graph``), metadata and an int8 copy (``onnx_file``);
``OnnxPredictor("model.onnx").predict(table)`` scores as ``predict_table`` does (``predictor``).
Below the registry, which keeps exported files with each version. torch, onnx and
onnxruntime load on first use.
"""
from factory.export.onnx_file import ExportResult, export_onnx, quantized_path, read_metadata, write_onnx
from factory.export.predictor import OnnxPredictor

__all__ = ["ExportResult", "OnnxPredictor", "export_onnx", "quantized_path", "read_metadata", "write_onnx"]
