"""Request and response shapes for the OpenAPI docs (``/docs``) only.

The handlers parse bodies themselves (``factory.serving.protocol``); these pydantic
models only describe them, so ``/docs`` shows real schemas without a pydantic
validation per row on the request path.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from pydantic import BaseModel, Field

Value = Union[float, int, str, None]


class PredictRequest(BaseModel):
    rows: List[Dict[str, Value]] = Field(
        ..., description="One object per row: every feature column of the model, nothing else. Numeric "
                         "columns take a number or null (missing); categorical ones a string or null.",
        json_schema_extra={"examples": [[{"amount": 42.5, "channel": "online", "hour": 13}]]})


class Prediction(BaseModel):
    prediction: Value = Field(..., description="The predicted class's label (the value, for regression)")
    score: Optional[float] = Field(..., description="P(positive class) for binary, the predicted class's "
                                                    "probability for multiclass, the value for regression")
    probabilities: Optional[Dict[str, float]] = Field(None, description="label -> probability (classification)")


class PredictResponse(BaseModel):
    model: str
    version: int
    request_id: str = Field(..., description="Also in the X-Request-ID header; the client's own when it sent one")
    predictions: List[Prediction]


class Tensor(BaseModel):
    name: str
    shape: List[int]
    datatype: str = Field(..., description="FP64 for numeric columns, BYTES for categorical ones")
    parameters: Optional[Dict[str, Any]] = None
    data: List[Any] = Field(..., description="row-major, flat or nested")


class RequestedOutput(BaseModel):
    name: str
    parameters: Optional[Dict[str, Any]] = None


class InferRequest(BaseModel):
    id: Optional[str] = None
    parameters: Optional[Dict[str, Any]] = None
    inputs: List[Tensor] = Field(..., description="One tensor per feature column, shape [N]")
    outputs: Optional[List[RequestedOutput]] = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str
    parameters: Optional[Dict[str, Any]] = None
    outputs: List[Tensor]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: List[int]


class ModelMetadata(BaseModel):
    name: str
    versions: List[str]
    platform: str
    inputs: List[TensorMetadata]
    outputs: List[TensorMetadata]


class GenerateParameters(BaseModel):
    max_tokens: Optional[int] = Field(None, description="Tokens to generate, 1 to limits.max_new_tokens (default "
                                                        "64, or the limit when lower)")
    temperature: Optional[float] = Field(None, description="Sampling temperature, > 0 (default 1.0)")
    top_k: Optional[int] = Field(None, description="Sample among the k likeliest tokens, >= 1 (default: all)")
    seed: Optional[int] = Field(None, description="Seeded sampling is reproducible (default: unseeded)")


class GenerateRequest(BaseModel):
    text_input: str = Field(..., description="The prompt", json_schema_extra={"examples": ["def main("]})
    parameters: Optional[GenerateParameters] = None


class GenerateResponse(BaseModel):
    model_name: str
    model_version: str
    text_output: str = Field(..., description="The generated text (the prompt not repeated)")


class Error(BaseModel):
    error: str


def request_body(model: type[BaseModel]) -> dict:
    """``openapi_extra`` documenting ``model`` as the JSON request body."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": _inline(schema, schema.pop("$defs", {}))}}}}


def _inline(node: Any, defs: dict) -> Any:
    """``node`` with each ``{"$ref": "#/$defs/X"}`` replaced by X (the docs resolve refs from their root)."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(defs[ref.rsplit("/", 1)[1]], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


ERRORS = {400: {"model": Error, "description": "Bad input: the message names the field, column and row"},
          401: {"model": Error, "description": "Missing or invalid bearer token (when auth is on)"},
          404: {"model": Error, "description": "Unknown model name or version"},
          413: {"model": Error, "description": "More rows than limits.max_rows"},
          422: {"model": Error, "description": "max_tokens over limits.max_new_tokens (language models)"}}
