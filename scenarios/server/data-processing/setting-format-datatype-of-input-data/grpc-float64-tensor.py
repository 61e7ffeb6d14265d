"""A gRPC client sends NumPy's default float64 to a float32 signature: TF's dtype check refuses it."""

from __future__ import annotations

from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import grpc_predict, serve_versions, signature_defs

SPEC = ModelSpec("dense", "keras3")


def _predict(run: Run, cast_to_signature: bool) -> dict[str, float]:
    import numpy as np

    x, expected = trained_model(run.cache, SPEC).probe()
    rows = np.array(x.tolist())  # features as the client builds them (lists, CSV, pandas): float64
    server = serve_versions(run, {1: saved_model(run.cache, SPEC)})
    signature = signature_defs(server)["serving_default"]
    (input_name, info), = signature["inputs"].items()
    (output_name,) = signature["outputs"]
    if cast_to_signature:
        rows = rows.astype({"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64}[info["dtype"]])
    run.note("dtypes", {"signature": info["dtype"], "sent": str(rows.dtype)})
    got = grpc_predict(server, {input_name: rows}, signature_name="serving_default")[output_name]
    return {"max_abs_diff": float(np.max(np.abs(got - expected)))}


def faulty(run: Run) -> dict[str, float]:
    return _predict(run, cast_to_signature=False)


def fixed(run: Run) -> dict[str, float]:
    return _predict(run, cast_to_signature=True)


SCENARIO = Scenario(
    title="float64 TensorProto sent over gRPC to a DT_FLOAT signature vs a float32 cast",
    targets=("tfserving",),
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
