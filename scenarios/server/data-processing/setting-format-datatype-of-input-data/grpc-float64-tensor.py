"""A gRPC client sends NumPy's default float64 to a float32 signature: TF's dtype check refuses it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import Server, grpc_predict, serve_versions, signature_defs

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")


def _client_rows(run: "Run[TfservingTarget]") -> tuple["np.ndarray", Server, dict[str, Any]]:
    """Probe features as the client builds them (lists, CSV, pandas: float64), the server, its signature."""
    import numpy as np

    x, _ = trained_model(run.cache, SPEC).probe()
    server = serve_versions(run, {1: saved_model(run.cache, SPEC)})
    return np.array(x.tolist()), server, signature_defs(server)["serving_default"]


def _send(run: "Run[TfservingTarget]", server: Server, signature: dict[str, Any], rows: "np.ndarray") -> dict[str, float]:
    """PredictionService.Predict with ``rows`` as they are; the reply against Keras."""
    (input_name, info), = signature["inputs"].items()
    (output_name,) = signature["outputs"]
    run.note("dtypes", {"signature": info["dtype"], "sent": str(rows.dtype)})
    got = grpc_predict(server, {input_name: rows}).outputs[output_name]
    return {"max_abs_diff": max_abs_diff(got, trained_model(run.cache, SPEC).probe()[1])}


def faulty(run: "Run[TfservingTarget]") -> dict[str, float]:
    rows, server, signature = _client_rows(run)
    # The float64 array goes into tf.make_tensor_proto as it is: a DT_DOUBLE tensor.
    return _send(run, server, signature, rows)


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    import numpy as np

    rows, server, signature = _client_rows(run)
    # Cast to the dtype the signature declares before building the TensorProto.
    (info,) = signature["inputs"].values()
    rows = rows.astype({"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64}[info["dtype"]])
    return _send(run, server, signature, rows)


SCENARIO = Scenario(
    title="float64 TensorProto sent over gRPC to a DT_FLOAT signature vs a float32 cast",
    targets=("tfserving",),
    figures={"max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Expects arg\[0\] to be float but double is provided", runtime="tfserving"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5)),
    cause="NumPy arrays built from Python floats, CSV files or pandas are float64, and "
          "tf.make_tensor_proto keeps the array's dtype, so the PredictRequest carries a DT_DOUBLE "
          "tensor. TF Serving hands gRPC tensors to the graph as they are (only the REST API "
          "converts JSON numbers to the signature's dtype), and TensorFlow's function call "
          "rejects the argument: INVALID_ARGUMENT \"Expects arg[0] to be float but double is "
          "provided\".",
    fix="Read each input's dtype from the signature (GET /metadata, or GetModelMetadata over "
        "gRPC) and cast before building the TensorProto (x.astype(np.float32), or "
        "tf.make_tensor_proto(x, dtype=tf.float32)). The served outputs then equal Keras's.",
    references=("https://www.tensorflow.org/api_docs/python/tf/make_tensor_proto",
                "https://github.com/huaweicloud/ModelArts-Lab/issues/216",
                "https://github.com/tensorflow/serving/issues/1495"),
)
