"""A client of TF Serving's API: REST requests, gRPC Predict, the served signatures.

* :class:`Server`: a running server (addresses, implementation, logs) with small REST helpers;
  every error body of the server arrives as :class:`~harness.errors.RuntimeFailure` carrying the
  server's own text;
* :func:`http_request`: one HTTP request whose error status is a :class:`Reply` too;
* :func:`grpc_predict`: ``PredictionService.Predict`` through the official stubs;
* :func:`signature_defs`: the signatures the server reports on ``GET .../metadata``, and
  :func:`signature_of` to read one as a :class:`~harness.targets.base.Signature`.

Nothing heavy is imported at module level.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import RuntimeFailure
from harness.targets.base import Signature, TensorSpec

# How long a scenario waits for the log line of a failure the server reports only in its log: the
# wait ends at the line; the budget is for a start-up on a busy 2-core machine (issue 24).
LOG_WAIT_BUDGET_S = 600.0

if TYPE_CHECKING:
    import grpc
    import numpy as np
    from numpy.typing import ArrayLike

JsonBody = Any  # a parsed JSON document (dict, list, str, number, None)

#: TF's DataType enum names (as the metadata endpoint prints them) -> numpy dtype names.
DTYPES = {"DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_HALF": "float16", "DT_BFLOAT16": "bfloat16",
          "DT_INT8": "int8", "DT_INT16": "int16", "DT_INT32": "int32", "DT_INT64": "int64",
          "DT_UINT8": "uint8", "DT_UINT16": "uint16", "DT_UINT32": "uint32", "DT_UINT64": "uint64",
          "DT_BOOL": "bool", "DT_STRING": "object"}


@dataclass
class Reply:
    """An HTTP reply of the server: status and parsed JSON body (or raw text)."""

    status: int
    body: JsonBody
    text: str
    seconds: float

    @property
    def error(self) -> str | None:
        return self.body.get("error") if isinstance(self.body, dict) else None


def http_request(method: str, url: str, body: JsonBody = None, *, raw: bytes | None = None,
                 timeout: float = 60.0, headers: Mapping[str, str] | None = None) -> Reply:
    """One HTTP request; an error status is a :class:`Reply` too (its body is the server's)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, text = resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode(errors="replace")
    seconds = time.perf_counter() - started
    try:
        parsed: JsonBody = json.loads(text)
    except ValueError:
        parsed = None
    return Reply(status, parsed, text, seconds)


@dataclass
class Server:
    """A running server: addresses, implementation, logs and small REST helpers."""

    rest_url: str
    grpc_target: str
    implementation: str
    mode: str
    model_name: str
    read_logs: Callable[[int | None], str] | None = field(repr=False, default=None)
    published: dict[str, list[str]] = field(default_factory=dict)
    """Container port -> ``host_ip:host_port`` bindings (empty for a host subprocess)."""

    def logs(self, tail_lines: int | None = None) -> str:
        return str(self.read_logs(tail_lines)) if self.read_logs else ""

    def request(self, method: str, path: str, body: JsonBody = None, *, raw: bytes | None = None,
                timeout: float = 60.0, headers: Mapping[str, str] | None = None,
                base_url: str | None = None) -> Reply:
        """Send a request; ``body`` is JSON-encoded, ``raw`` sent as is.

        ``base_url`` sends it elsewhere than the server's REST port (e.g. a proxy in front).
        """
        return http_request(method, (base_url or self.rest_url) + path, body, raw=raw, timeout=timeout,
                            headers=headers)

    def checked_request(self, method: str, path: str, body: JsonBody = None) -> JsonBody:
        """Send a REST request as a client would; an error reply raises with the server's own text."""
        reply = self.request(method, path, body)
        if reply.status != 200 or reply.error:
            raise RuntimeFailure(self.implementation, reply.error or reply.text or f"HTTP {reply.status}",
                                 kind=f"HTTP {reply.status}", source=f"error body of {method} {path}")
        return reply.body

    def model_path(self, model: str | None = None, *, version: int | None = None,
                   label: str | None = None) -> str:
        path = f"/v1/models/{model or self.model_name}"
        if version is not None:
            path += f"/versions/{version}"
        elif label is not None:
            path += f"/labels/{label}"
        return path

    def predict(self, body: Mapping[str, Any], *, model: str | None = None, version: int | None = None,
                verb: str = "predict", label: str | None = None) -> JsonBody:
        """POST ``:predict`` (or ``:classify``/``:regress``); an error body raises RuntimeFailure."""
        path = self.model_path(model, version=version, label=label) + f":{verb}"
        return self.checked_request("POST", path, body)

    def raise_from_log(self, pattern: str, *, timeout: float = LOG_WAIT_BUDGET_S) -> None:
        """Wait for a server log line matching ``pattern`` and raise it as the runtime's error.

        For failures TF Serving reports only in its log (e.g. a model it never finds).  The wait
        ends as soon as the line appears; ``timeout`` is a budget for a busy machine, not a
        verdict: when it runs out, :class:`~harness.errors.WaitTimeout` (a harness error) says
        which pattern was awaited and the log's last line, so a slow start can never pass for
        "the server did not fail" (issue 24).
        """
        from harness.waiting import LogMessage

        line_of_match = LogMessage(read=self.logs, pattern=rf"^.*(?:{pattern}).*$", timeout=timeout,
                                   poll_interval=0.2).wait()
        raise RuntimeFailure(self.implementation, line_of_match.strip(), kind="log",
                             source="the server's log (stderr)")

    def status(self, model: str | None = None) -> Reply:
        return self.request("GET", self.model_path(model))

    def metadata(self, model: str | None = None) -> JsonBody:
        return self.checked_request("GET", self.model_path(model) + "/metadata")


def signature_defs(server: Server, model: str | None = None) -> dict[str, dict[str, Any]]:
    """The served model's signatures (name -> inputs, outputs, method_name) from GET /metadata.

    The JSON as the server prints it: each input and output with ``dtype`` (``DT_FLOAT``) and
    ``tensor_shape`` (``{"dim": [{"size": "-1"}, ...]}``).
    """
    return dict(server.metadata(model)["metadata"]["signature_def"].get("signature_def", {}))


def _tensor_spec(name: str, info: Mapping[str, Any]) -> TensorSpec:
    shape = info.get("tensor_shape", {})
    dims: tuple[int | None, ...] = ()
    if not shape.get("unknown_rank"):
        sizes = (int(d["size"]) for d in shape.get("dim", []))
        dims = tuple(None if size < 0 else size for size in sizes)
    dtype = str(info.get("dtype", "DT_INVALID"))
    return TensorSpec(name, DTYPES.get(dtype, dtype), dims)


def signature_of(signature_def: Mapping[str, Any]) -> Signature:
    """One signature of :func:`signature_defs` as a :class:`Signature` (numpy dtypes, -1 -> None)."""
    return Signature(
        inputs=tuple(_tensor_spec(n, i) for n, i in sorted(signature_def.get("inputs", {}).items())),
        outputs=tuple(_tensor_spec(n, i) for n, i in sorted(signature_def.get("outputs", {}).items())))


@dataclass(frozen=True)
class GrpcReply:
    """What ``PredictionService.Predict`` answered: outputs by name and the version that served."""

    outputs: dict[str, "np.ndarray"]
    version: int


def grpc_predict(server: Server, inputs: Mapping[str, "ArrayLike"], *, channel: "grpc.Channel | None" = None,
                 model: str | None = None, version: int | None = None, signature: str = "serving_default",
                 timeout: float = 30.0) -> GrpcReply:
    """``PredictionService.Predict`` on ``server`` with ``inputs`` as they are (dtypes kept, as a
    real client sends them, through ``tf.make_tensor_proto``).

    ``channel`` reuses an open channel (steady traffic, calls in flight together); without one a
    channel is opened for this call.  A gRPC error status raises :class:`RuntimeFailure` with the
    server's code and message.
    """
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model or server.model_name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))

    def call(open_channel: "grpc.Channel") -> Any:
        try:
            return prediction_service_pb2_grpc.PredictionServiceStub(open_channel).Predict(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise RuntimeFailure(server.implementation, f"{exc.code().name}: {exc.details()}",
                                 kind=exc.code().name, source="gRPC status of PredictionService.Predict") from None

    if channel is not None:
        reply = call(channel)
    else:
        with grpc.insecure_channel(server.grpc_target) as own:
            reply = call(own)
    return GrpcReply({name: tf.make_ndarray(tensor) for name, tensor in reply.outputs.items()},
                     int(reply.model_spec.version.value))


def wait_listening(server: Server, timeout: float) -> None:
    """Wait until the REST port answers at all (any HTTP status), for servers not awaited as ready."""
    from harness.errors import WaitTimeout
    from harness.waiting import HttpReady

    try:
        HttpReady(f"{server.rest_url}/v1/models/{server.model_name}", lambda status, body: True,
                  timeout=timeout, poll_interval=0.1).wait()
    except WaitTimeout as exc:
        raise WaitTimeout(f"the REST port never answered: {exc.message}",
                          evidence=f"{exc.evidence}\n--- server log ---\n{server.logs(40)}",
                          hint="read the server log above") from None
