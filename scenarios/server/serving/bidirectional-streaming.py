"""The serving API has no streaming RPC: a bidirectional stream is refused; unary calls in flight work."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from harness.compare import max_abs_diff
from harness.errors import RuntimeFailure
from harness.models import ModelSpec, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import Server, grpc_predict, serve_spec, signature_defs

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")
STREAM_METHOD = "/tensorflow.serving.PredictionService/StreamPredict"


def _start(run: "Run[TfservingTarget]") -> tuple[Server, Any, str]:
    import grpc

    server = serve_spec(run, SPEC)
    (name,) = signature_defs(server)["serving_default"]["inputs"]
    return server, run.enter(grpc.insecure_channel(server.grpc_target)), name


def faulty(run: "Run[TfservingTarget]") -> None:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    server, channel, name = _start(run)
    x, _ = trained_model(run.cache, SPEC).probe()

    def requests() -> Iterator[Any]:  # one example per message, as a sensor or a chat would send them
        for row in x:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "model"
            request.inputs[name].CopyFrom(tf.make_tensor_proto(row[None, :]))
            yield request

    # A client generated from a proto that declares `rpc StreamPredict(stream PredictRequest)
    # returns (stream PredictResponse)`: the server's PredictionService has no such method.
    stream = channel.stream_stream(STREAM_METHOD, request_serializer=predict_pb2.PredictRequest.SerializeToString,
                                   response_deserializer=predict_pb2.PredictResponse.FromString)
    try:
        for reply in stream(requests(), timeout=30):
            run.observe(f"stream answered: {reply}")
    except grpc.RpcError as exc:
        raise RuntimeFailure(server.implementation, f"{exc.code().name}: {exc.details()}", kind=exc.code().name,
                             source=f"gRPC status of the bidirectional call {STREAM_METHOD}") from None


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    import numpy as np

    server, channel, name = _start(run)
    x, expected = trained_model(run.cache, SPEC).probe()
    # The workaround: every arriving example is one unary Predict, sent without waiting for the
    # previous answer (several calls in flight on one HTTP/2 connection), answers kept in order.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda row: grpc_predict(server, {name: row[None, :]}, channel=channel), x))
    got = np.concatenate([next(iter(a.outputs.values())) for a in answers])
    return {"answered": len(answers), "sent": len(x), "max_abs_diff": max_abs_diff(got, expected)}


SCENARIO = Scenario(
    title="No streaming in the serving API: a bidirectional gRPC stream is UNIMPLEMENTED",
    targets=("tfserving",),
    figures={"answered": "events", "max_abs_diff": "parity", "sent": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"^UNIMPLEMENTED\b", runtime="tfserving"),
    remedy=succeeds(Figure("answered", ">=", 16), Figure("max_abs_diff", "<=", 1e-5)),
    cause="TF Serving's PredictionService (prediction_service.proto) offers only unary RPCs: Predict, "
          "Classify, Regress, MultiInference and GetModelMetadata each take one request and give one "
          "response; the REST API is request/response too. There is no streaming method, so a client "
          "that opens a bidirectional stream (to send examples as they arrive and read results as they "
          "come) gets gRPC's UNIMPLEMENTED status for a method the server does not have.",
    fix="Send each example (or each small batch) as its own unary Predict call, several in flight at "
        "once on one channel, and put the answers back in order; or collect examples into batches "
        "(server-side batching can merge concurrent calls). For real token-by-token streaming use a "
        "serving system that offers streaming RPCs, or put a streaming gateway in front of the unary "
        "API.",
    references=("https://github.com/tensorflow/serving/blob/master/tensorflow_serving/apis/prediction_service.proto",
                "https://grpc.io/docs/guides/status-codes/",
                "https://www.tensorflow.org/tfx/serving/api_rest"),
)
