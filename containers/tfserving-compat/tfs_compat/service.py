"""Predict / Classify / Regress / GetModelMetadata / GetModelStatus on the official protos.

Both front ends (gRPC and REST) call these; the checks and their wording follow TF Serving's
``predict_util.cc``, ``classifier.cc``, ``regressor.cc``, ``util.cc``,
``get_model_metadata_impl.cc`` and ``get_model_status_impl.cc``.  Execution errors are
TensorFlow's own (see :mod:`tfs_compat.servable`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from google.protobuf import text_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)

from .core import ServerCore
from .servable import SavedModelServable
from .status import Code, ServingError, failed_precondition, invalid_argument, not_found
from .tensors import array_to_proto, dtype_enum_name, proto_to_array
from .texts import T

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
SIGNATURE_DEF_FIELD = "signature_def"


@dataclasses.dataclass(frozen=True)
class ServiceOptions:
    enable_signature_method_name_check: bool = False
    serialize_as_tensor_content: bool = False


def _debug_string(message: Any) -> str:
    """C++ ``Message::DebugString()`` is the text format."""
    return str(text_format.MessageToString(message))


def _set_model_spec(spec: Any, name: str, version: int, signature_name: str) -> None:
    spec.name = name
    spec.version.value = version
    spec.signature_name = signature_name


class PredictionService:
    """The serving logic shared by the gRPC servicers and the REST handler."""

    def __init__(self, core: ServerCore, options: ServiceOptions) -> None:
        self.core = core
        self.options = options

    # ------------------------------------------------------------------ Predict

    def predict(self, request: Any, timeout_ms: int) -> Any:
        _require_model_spec(request)
        with self.core.servable_handle(request.model_spec) as servable:
            return self._run_predict(servable, request, timeout_ms)

    def _run_predict(self, servable: SavedModelServable, request: Any, timeout_ms: int) -> Any:
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_defs.get(signature_name)
        if signature is None:
            raise failed_precondition(T('Serving signature key "<signature>" not found.',
                                        signature=signature_name))
        response = predict_pb2.PredictResponse()
        _set_model_spec(response.model_spec, servable.name, servable.version, signature_name)
        self._verify_predict_signature(signature)
        _verify_inputs_size(signature, request)
        feeds = _input_values(signature, request.inputs)
        aliases = _output_aliases(signature, list(request.output_filter))
        outputs = servable.run(feeds, [signature.outputs[a].name for a in aliases], timeout_ms)
        if len(outputs) != len(aliases):
            raise ServingError(Code.UNKNOWN, T("Predict internal error"))
        for alias, value in zip(aliases, outputs):
            response.outputs[alias].CopyFrom(
                array_to_proto(value, self.options.serialize_as_tensor_content))
        return response

    def _verify_predict_signature(self, signature: Any) -> None:
        if self.options.enable_signature_method_name_check and signature.method_name not in (
                PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
            raise ServingError(Code.INTERNAL, T(
                "Expected prediction signature method_name to be one of {<predict>, <classify>, "
                "<regress>}. Was: <method_name>", predict=PREDICT_METHOD, classify=CLASSIFY_METHOD,
                regress=REGRESS_METHOD, method_name=signature.method_name))

    def signature_inputs(self, model_spec: Any, signature_name: str) -> Any:
        """``HttpRestApiHandler::GetInfoMap``: the input TensorInfo map of a signature."""
        with self.core.servable_handle(model_spec) as servable:
            name = signature_name or DEFAULT_SIGNATURE
            signature = servable.signature_defs.get(name)
            if signature is None:
                raise invalid_argument(T('Serving signature name: "<signature>" not found in signature def',
                                         signature=name))
            return signature.inputs

    # ---------------------------------------------------------- Classify/Regress

    def classify(self, request: Any, timeout_ms: int) -> Any:
        _require_model_spec(request)
        with self.core.servable_handle(request.model_spec) as servable:
            signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            signature = self._find_signature(servable, signature_name, CLASSIFY_METHOD, "classification")
            input_name, output_names = _classification_tensors(signature)
            examples = serialized_examples(request.input)
            outputs = servable.run({input_name: examples}, [n for _, n in output_names], timeout_ms)
            response = classification_pb2.ClassificationResponse()
            _set_model_spec(response.model_spec, servable.name, servable.version, signature_name)
            _fill_classifications(dict(zip([k for k, _ in output_names], outputs)), len(examples),
                                  response.result)
            return response

    def regress(self, request: Any, timeout_ms: int) -> Any:
        _require_model_spec(request)
        with self.core.servable_handle(request.model_spec) as servable:
            signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            signature = self._find_signature(servable, signature_name, REGRESS_METHOD, "regression")
            input_name, output_name = _regression_tensors(signature)
            examples = serialized_examples(request.input)
            (values,) = servable.run({input_name: examples}, [output_name], timeout_ms)
            response = regression_pb2.RegressionResponse()
            _set_model_spec(response.model_spec, servable.name, servable.version, signature_name)
            _fill_regressions(values, len(examples), response.result)
            return response

    def _find_signature(self, servable: SavedModelServable, name: str, method: str, kind: str) -> Any:
        signature = servable.signature_defs.get(name)
        if signature is None:
            raise invalid_argument(T("No signature was found with the name: <signature>", signature=name))
        if self.options.enable_signature_method_name_check and signature.method_name != method:
            raise invalid_argument(
                T("Expected classification signature method_name to be <method>. Was: <method_name>",
                  method=method, method_name=signature.method_name) if kind == "classification" else
                T("Expected regression signature method_name to be <method>. Was: <method_name>",
                  method=method, method_name=signature.method_name))
        return signature

    # ------------------------------------------------------------ Metadata/Status

    def get_model_metadata(self, request: Any) -> Any:
        _require_model_spec(request)
        if not request.metadata_field:
            raise invalid_argument(T("GetModelMetadataRequest must specify at least one metadata_field"))
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise invalid_argument(T("Metadata field <field> is not supported", field=field))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        with self.core.servable_handle(request.model_spec) as servable:
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, value in servable.signature_defs.items():
                signature_map.signature_def[key].CopyFrom(value)
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
        return response

    def get_model_status(self, request: Any) -> Any:
        _require_model_spec(request)
        spec = request.model_spec
        states = self.core.version_states(spec.name)
        response = get_model_status_pb2.GetModelStatusResponse()
        if spec.WhichOneof("version_choice") == "version":
            version = int(spec.version.value)
            if version not in states:
                raise not_found(T("Could not find version <version> of model <model>", version=version,
                                  model=spec.name))
            _add_version_status(response, version, states[version])
            return response
        if not states:
            raise not_found(T("Could not find any versions of model <model>", model=spec.name))
        for version in sorted(states, reverse=True):
            _add_version_status(response, version, states[version])
        return response


# ---------------------------------------------------------------------- helpers


def _require_model_spec(request: Any) -> None:
    """predict_impl.cc, classification_service.cc, regression_service.cc,
    get_model_metadata_impl.cc, get_model_status_impl.cc: the request must carry a model_spec."""
    if not request.HasField("model_spec"):
        raise invalid_argument(T("Missing ModelSpec"))


def _joined(names: Any) -> str:
    """``absl::StrJoin`` of a ``std::set<string>``: sorted, comma-separated."""
    return ",".join(sorted(names))


def _verify_inputs_size(signature: Any, request: Any) -> None:
    """``VerifyRequestInputsSize`` (predict_util.cc)."""
    sent, expected = set(request.inputs), set(signature.inputs)
    if len(sent) > len(expected) or (len(sent) < len(expected) and not signature.defaults):
        raise invalid_argument(T(
            "input size does not match signature: <sent_count>!=<expected_count> len({<sent>}) != "
            "len({<expected>}). Sent extra: {<extra>}. Missing but required: {<missing>}.",
            sent_count=len(sent), expected_count=len(expected), sent=_joined(sent),
            expected=_joined(expected), extra=_joined(sent - expected), missing=_joined(expected - sent)))


def _input_values(signature: Any, request_inputs: Any) -> dict[str, np.ndarray]:
    """TF's ``saved_model::GetInputValues`` (tensorflow/cc/saved_model/util.cc), which
    ``PreProcessPrediction`` calls: every signature input from the request or, when absent, from
    the signature's ``defaults``; a request input that names no signature input is an error.

    C++ walks the signature's input map in its (unspecified) hash order; we walk it sorted, so
    with several missing inputs the one named first may differ.
    """
    feeds: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    for alias in sorted(signature.inputs):
        feed_name = signature.inputs[alias].name
        if alias in request_inputs:
            proto = request_inputs[alias]
            seen.add(alias)
        elif alias in signature.defaults:
            proto = signature.defaults[alias]
        else:
            raise invalid_argument(T(
                "Signature input alias: <alias>(feed name: <feed_name>) not found in request and no "
                "default value provided. Inputs expected to be in the request {<request_inputs>}, or "
                "default input alias set: <default_inputs>", alias=alias, feed_name=feed_name,
                request_inputs=_joined(request_inputs), default_inputs=_joined(signature.defaults)))
        feeds[feed_name] = proto_to_array(alias, proto)
    if request_inputs and len(seen) != len(request_inputs):
        raise invalid_argument(T(
            "Inputs contains invalid name. Used request inputs: <used>, request input: <request_inputs>",
            used=_joined(seen), request_inputs=_joined(request_inputs)))
    return feeds


def _output_aliases(signature: Any, output_filter: list[str]) -> list[str]:
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(T(
                "output tensor alias not found in signature: <alias> Outputs expected to be in the set "
                "{<outputs>}.", alias=alias, outputs=_joined(signature.outputs)))
        if alias in seen:
            raise invalid_argument(T("duplicate output tensor alias: <alias>", alias=alias))
        seen.add(alias)
    return output_filter or sorted(signature.outputs)


def _add_version_status(response: Any, version: int, state: Any) -> None:
    entry = response.model_version_status.add()
    entry.version = version
    entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state.state.value)
    entry.status.SetInParent()
    if state.error is not None:
        entry.status.error_code = int(state.error.code)
        entry.status.error_message = state.error.message


def serialized_examples(model_input: Any) -> np.ndarray:
    """``InputToSerializedExampleTensor`` (util.cc): one serialized tf.Example per row."""
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        rows = [example.SerializeToString() for example in model_input.example_list.examples]
    elif kind == "example_list_with_context":
        context = model_input.example_list_with_context.context.SerializeToString()
        rows = [context + example.SerializeToString()
                for example in model_input.example_list_with_context.examples]
    else:
        rows = []
    if not rows:
        raise invalid_argument(T("Input is empty."))
    return np.array(rows, dtype=object)


def _classification_tensors(signature: Any) -> tuple[str, list[tuple[str, str]]]:
    """``PreProcessClassification``: (input tensor, [(output key, tensor name)])."""
    if len(signature.inputs) != 1:
        raise invalid_argument(T("Expected one input Tensor."))
    if len(signature.outputs) not in (1, 2):
        raise invalid_argument(T("Expected one or two output Tensors, found <count>",
                                 count=len(signature.outputs)))
    if "inputs" not in signature.inputs:
        raise invalid_argument(T("No classification inputs found in SignatureDef: <signature>",
                                 signature=_debug_string(signature)))
    outputs = [(key, signature.outputs[key].name) for key in ("classes", "scores") if key in signature.outputs]
    if not outputs:
        raise invalid_argument(T(
            'Expected classification signature outputs to contain at least one of "classes" or '
            '"scores". Signature was: <signature>', signature=_debug_string(signature)))
    return signature.inputs["inputs"].name, outputs


def _regression_tensors(signature: Any) -> tuple[str, str]:
    """``PreProcessRegression``: (input tensor, output tensor)."""
    if len(signature.inputs) != 1:
        raise invalid_argument(T("Expected one input Tensor."))
    if len(signature.outputs) != 1:
        raise invalid_argument(T("Expected one output Tensor."))
    if "inputs" not in signature.inputs:
        raise invalid_argument(T("No regression inputs found in SignatureDef: <signature>",
                                 signature=_debug_string(signature)))
    if "outputs" not in signature.outputs:
        raise invalid_argument(T("No regression outputs found in SignatureDef: <signature>",
                                 signature=_debug_string(signature)))
    return signature.inputs["inputs"].name, signature.outputs["outputs"].name


def _check_class_tensor(name: str, value: np.ndarray, num_examples: int, want: str) -> None:
    if value.ndim != 2:
        raise invalid_argument(T("Expected Tensor shape: [batch_size num_classes] but got <shape>",
                                 shape=_shape(value)))
    if want == "DT_STRING" and value.dtype.kind not in "SUO":
        raise invalid_argument(T("Expected classes Tensor of DT_STRING. Got: <dtype>", dtype=_dt(value)))
    if want == "DT_FLOAT" and value.dtype != np.float32:
        raise invalid_argument(T("Expected scores Tensor of DT_FLOAT. Got: <dtype>", dtype=_dt(value)))
    if value.shape[0] != num_examples:
        raise invalid_argument(T("Expected <tensor> output batch size of <expected>. Got: <got>", tensor=name,
                                 expected=num_examples, got=value.shape[0]))


def _shape(value: np.ndarray) -> str:
    """``TensorShape::DebugString``: ``[2,3]``."""
    return "[" + ",".join(str(size) for size in value.shape) + "]"


def _dt(value: np.ndarray) -> str:
    import tensorflow as tf

    return dtype_enum_name(tf.as_dtype(value.dtype).as_datatype_enum)


def _fill_classifications(outputs: dict[str, np.ndarray], num_examples: int, result: Any) -> None:
    classes, scores = outputs.get("classes"), outputs.get("scores")
    if classes is not None:
        _check_class_tensor("classes", classes, num_examples, "DT_STRING")
    if scores is not None:
        _check_class_tensor("scores", scores, num_examples, "DT_FLOAT")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(T("Tensors class and score should match in dim_size(1). Got <classes> vs. "
                                 "<scores>", classes=classes.shape[1], scores=scores.shape[1]))
    reference = classes if classes is not None else scores
    assert reference is not None
    for row in range(num_examples):
        entry = result.classifications.add()
        for column in range(reference.shape[1]):
            item = entry.classes.add()
            if classes is not None:
                label = classes[row, column]
                item.label = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
            if scores is not None:
                item.score = float(scores[row, column])


def _fill_regressions(values: np.ndarray, num_examples: int, result: Any) -> None:
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise invalid_argument(T("Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
                                 "but got <shape>", shape=_shape(values)))
    if values.shape[0] != num_examples:
        raise invalid_argument(T("Input batch size did not match output batch size: <inputs> vs. <outputs>",
                                 inputs=num_examples, outputs=values.shape[0]))
    if values.dtype != np.float32:
        raise invalid_argument(T("Expected output Tensor of DT_FLOAT.  Got: <dtype>", dtype=_dt(values)))
    for value in values.reshape(-1):
        result.regressions.add().value = float(value)
