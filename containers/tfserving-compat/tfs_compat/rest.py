"""The HTTP/REST API (``http_server.cc``, ``http_rest_api_handler.cc``, ``http_rest_api_util.cc``)."""

from __future__ import annotations

import dataclasses
import http.server
import re
import threading
import urllib.parse
from typing import Any, Optional

from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)

from . import json_codec
from .logs import get_logger
from .service import SIGNATURE_DEF_FIELD, PredictionService
from .status import Code, ServingError, failed_precondition, invalid_argument
from .texts import T

DISPATCH_RE = re.compile(r"/v1/.*", re.IGNORECASE)
PREDICTION_RE = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE)
STATUS_RE = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class RestReply:
    status: int
    body: str
    headers: tuple[tuple[str, str], ...]


class _ModelInfoError(Exception):
    """``ParseModelInfo`` failed: ``ProcessRequest`` returns before ``MakeJsonFromStatus``, so
    the reply has the status's HTTP code and an empty body."""

    def __init__(self, error: ServingError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclasses.dataclass(frozen=True)
class _Target:
    name: str
    version: Optional[int]
    label: Optional[str]
    action: str  # "predict", "classify", "regress", "metadata", "status", or "" (no match)


def _parse_target(method: str, path: str) -> _Target:
    """``ParseModelInfo``."""
    match = None
    if method == "POST":
        match = PREDICTION_RE.fullmatch(path)
    elif method == "GET":
        match = STATUS_RE.fullmatch(path)
    if match is None:
        return _Target("", None, None, "")
    name = urllib.parse.unquote(match.group(1) or "")
    version: Optional[int] = None
    if match.group(2):
        version = int(match.group(2))
        if version >= 2**63:
            raise _ModelInfoError(invalid_argument(T("Failed to convert version: <version> to numeric.",
                                                     version=match.group(2))))
    label = urllib.parse.unquote(match.group(3)) if match.group(3) else None
    action = match.group(4) or ""
    if method == "GET":
        action = "metadata" if action == "metadata" else "status"
    return _Target(name, version, label, action)


def _fill_model_spec(spec: Any, target: _Target) -> None:
    spec.name = target.name
    if target.version is not None:
        spec.version.value = target.version
    if target.label is not None:
        spec.version_label = target.label


class RestApi:
    """Turns (method, path, body) into a reply, as ``HttpRestApiHandler::ProcessRequest``."""

    def __init__(self, service: PredictionService, timeout_ms: int, enable_cors: bool) -> None:
        self.service = service
        self.timeout_ms = timeout_ms
        self.enable_cors = enable_cors

    def handle(self, method: str, path: str, body: bytes, origin: str) -> Optional[RestReply]:
        """None when the path is not under /v1/ (the dispatcher ignores it: 404).

        As ``RestApiRequestDispatcher::ProcessRequest`` (http_server.cc): an OPTIONS preflight
        never reaches the handler, so it gets no Content-Type and no body, only the status (and
        the CORS headers when enabled).
        """
        if not DISPATCH_RE.fullmatch(path):
            return None
        cors = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Methods", "POST, GET"),
                ("Access-Control-Allow-Headers", "Content-Type")] if self.enable_cors else []
        if method == "OPTIONS":
            if re.search(r"https?://", origin):
                return RestReply(200, "", tuple(cors))
            error = failed_precondition(T("Origin header is missing in CORS preflight"))
            return RestReply(error.http_status, "", tuple(cors))
        headers = tuple([("Content-Type", "application/json")] + cors)
        try:
            text = self._dispatch(method, path, body)
        except _ModelInfoError as failure:
            return RestReply(failure.error.http_status, "", headers)
        except ServingError as error:
            return RestReply(error.http_status, json_codec.error_json(error.message), headers)
        return RestReply(200, text, headers)

    def _dispatch(self, method: str, path: str, body: bytes) -> str:
        target = _parse_target(method, path)
        if target.action in ("predict", "classify", "regress") and method == "POST":
            return getattr(self, f"_{target.action}")(target, body)
        if target.action == "metadata":
            return self._metadata(target)
        if target.action == "status":
            return self._status(target)
        raise invalid_argument(T("Malformed request: <method> <path>", method=method, path=path))

    def _predict(self, target: _Target, body: bytes) -> str:
        import tensorflow as tf

        request = predict_pb2.PredictRequest()
        _fill_model_spec(request.model_spec, target)
        document = json_codec.parse_json(body)
        signature_name = json_codec.read_signature_name(document)
        row_format = json_codec.fill_predict_request(
            document, signature_name,
            lambda name: self.service.signature_inputs(request.model_spec, name), request,
            literals=json_codec.may_hold_booleans(body)) == "row"
        response = self.service.predict(request, self.timeout_ms)
        outputs = {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}
        return json_codec.predict_response_json(outputs, row_format)

    def _classify(self, target: _Target, body: bytes) -> str:
        request = classification_pb2.ClassificationRequest()
        _fill_model_spec(request.model_spec, target)
        json_codec.fill_classify_regress_request(json_codec.parse_json(body), request)
        response = self.service.classify(request, self.timeout_ms)
        return json_codec.classify_response_json(response.result)

    def _regress(self, target: _Target, body: bytes) -> str:
        request = regression_pb2.RegressionRequest()
        _fill_model_spec(request.model_spec, target)
        json_codec.fill_classify_regress_request(json_codec.parse_json(body), request)
        response = self.service.regress(request, self.timeout_ms)
        return json_codec.regress_response_json(response.result)

    def _status(self, target: _Target) -> str:
        if not target.name:
            raise invalid_argument(T("Missing model name in request."))
        request = get_model_status_pb2.GetModelStatusRequest()
        _fill_model_spec(request.model_spec, target)
        return json_codec.proto_json(self.service.get_model_status(request), preserve_names=True)

    def _metadata(self, target: _Target) -> str:
        if not target.name:
            raise invalid_argument(T("Missing model name in request."))
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=[SIGNATURE_DEF_FIELD])
        _fill_model_spec(request.model_spec, target)
        response = self.service.get_model_metadata(request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        if not response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_map):
            raise ServingError(Code.INTERNAL, T("Failed to unpack 'Any' object to 'SignatureDefMap'."))
        spec_json = json_codec.proto_json(response.model_spec, preserve_names=True)
        map_json = json_codec.proto_json(signature_map, preserve_names=True)
        return T('{\n"model_spec":<model_spec>,\n"metadata": {"signature_def": <signature_def>}\n}\n',
                 model_spec=spec_json, signature_def=map_json)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tfs_compat"
    api: RestApi  # set on the subclass made per server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        path = urllib.parse.urlsplit(self.path).path
        try:
            reply = self.api.handle(self.command, path, body, self.headers.get("Origin") or "")
        except Exception as error:  # noqa: BLE001 - a bug here must not kill the connection thread
            get_logger().exception(T("REST handler failed"))
            reply = RestReply(500, json_codec.error_json(T("<exception_type>: <text>",
                                                           exception_type=type(error).__name__, text=error)), ())
        if reply is None:
            reply = RestReply(404, "", ())
        data = reply.body.encode("utf-8")
        self.send_response(reply.status)
        for key, value in reply.headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_OPTIONS = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return


class _HttpServer(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops bursts of concurrent clients for ~1 s


class RestServer:
    """A threading HTTP server bound to (host, port), run on its own thread."""

    def __init__(self, api: RestApi, host: str, port: int) -> None:
        handler = type("BoundHandler", (_Handler,), {"api": api})
        self._server = _HttpServer((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="httprestserver", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
