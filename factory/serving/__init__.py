"""Serving: registered models put to work over HTTP and on tables.

``factory.serving.app`` is the real-time server (Open Inference Protocol v2, ``/predict``,
``/metrics``) with dynamic batching (``batching``), hot reload of a stage and a Parquet
request log (``request_log``); ``factory.serving.score`` scores tables in batch. The ONNX
export and its ONNX Runtime predictor live one layer down, in ``factory.export``, because
the registry keeps and loads exported files. Nothing here is imported until used.
"""
