"""Shared pieces of the server scenarios on data, requests and exports (TF Serving's API).

* :func:`serve_versions`: a SavedModel (or several versions) behind the active ``tfserving``
  target, with the implementation that ran noted in the evidence;
* :func:`cached_export`: a SavedModel a scenario builds itself (a re-exported or re-signed
  model), cached by recipe and library versions so warm runs skip TensorFlow;
* :func:`export_endpoint`: a custom ``serving_default`` around a Keras 3 model, written so that a
  Session-based server restores its variables;
* :func:`signature_defs`: the signatures the server reports on its metadata endpoint;
* :func:`checked_request`: any REST call, an error reply raised with the server's own text;
* :func:`grpc_predict`: ``PredictionService.Predict`` through the official stubs, a failed call
  raised as :class:`RuntimeFailure` with the server's status text;
* :func:`raw_measurements`: the tabular features as a client holds them, before the
  standardisation the model was trained behind (the scaler's statistics are ``RAW_MEAN``,
  ``RAW_STD``);
* :func:`label_figures`: label agreement with Keras, accuracy against the true labels and the
  worst difference, the figures the data scenarios judge.

Nothing heavy is imported at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from harness.artifacts import ArtifactCache, library_versions
from harness.errors import RuntimeFailure
from harness.models import KERAS_DISTS
from harness.targets.tfserving import target as tfserving
from harness.targets.tfserving.target import serve_versions

if TYPE_CHECKING:
    import numpy as np

    from harness.scenario import Run
    from harness.targets.tfserving.target import Server


def cached_export(cache: ArtifactCache, recipe: Mapping[str, Any], build: Callable[[Path], None]) -> Path:
    """A SavedModel directory written by ``build(path)``, cached under the hash of ``recipe``.

    ``recipe`` names everything that determines the export (the trained model's artifact, the
    recipe's name and revision); the versions of TF and Keras are added to it.
    """
    key = {**recipe, "versions": library_versions(*KERAS_DISTS)}
    return cache.get_or_build("serving_export", key, lambda out: build(out / "saved_model")) / "saved_model"


def export_endpoint(out: Path, model: Any, serve: Callable[..., Any], input_signature: list[Any]) -> None:
    """Write ``serve`` (a function calling the Keras 3 ``model``) as the ``serving_default`` signature.

    ``keras.export.ExportArchive`` with ``track(model)`` stores the Keras variables so that the
    SavedModel's restore op initialises them in a Session, as TF Serving runs it
    (``tf.saved_model.save`` of a tf.Module holding a Keras 3 model does not).
    """
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=input_signature)
    archive.write_out(str(out), verbose=False)


def signature_defs(server: "Server") -> dict[str, Any]:
    """The served model's signatures (name -> inputs, outputs, method_name) from GET /metadata."""
    return dict(server.metadata()["metadata"]["signature_def"].get("signature_def", {}))


def checked_request(server: "Server", method: str, path: str, body: Any = None) -> Any:
    """Send a REST request as a client would; an error reply raises with the server's own text."""
    reply = server.request(method, path, body)
    if reply.status != 200 or reply.error:
        raise RuntimeFailure(server.implementation, reply.error or reply.text or f"HTTP {reply.status}",
                             kind=f"HTTP {reply.status}", source=f"error body of {method} {path}")
    return reply.body


def grpc_predict(server: "Server", inputs: Mapping[str, Any], *, signature_name: str = "",
                 model: str | None = None, timeout: float = 30.0) -> dict[str, "np.ndarray"]:
    """``PredictionService.Predict`` on ``server`` with ``inputs`` as they are (dtypes kept, as a
    real client sends them); a failed call raises :class:`RuntimeFailure` with the gRPC status."""
    import grpc

    with grpc.insecure_channel(server.grpc_target) as channel:
        outputs, _version = tfserving.grpc_predict(channel, model or server.model_name, inputs,
                                                   runtime=server.implementation,
                                                   signature=signature_name or "serving_default", timeout=timeout)
    return outputs


# The training statistics of the 8 raw measurements behind the standardised features of
# harness.models.tabular_data (what a scaler's mean_ and scale_ would hold).
RAW_MEAN = (20.0, -5.0, 100.0, 3.0, 50.0, 0.5, 1000.0, 10.0)
RAW_STD = (5.0, 2.0, 30.0, 1.0, 10.0, 0.1, 200.0, 4.0)


def raw_measurements(standardised: "np.ndarray") -> "np.ndarray":
    """The raw values a client receives (sensor units), whose standardisation is ``standardised``."""
    import numpy as np

    return (standardised * np.asarray(RAW_STD, "float32") + np.asarray(RAW_MEAN, "float32")).astype("float32")


def label_figures(got: "np.ndarray", expected: "np.ndarray", labels: "np.ndarray") -> dict[str, float]:
    """``label_agreement`` with Keras, ``accuracy`` against ``labels`` and ``max_abs_diff``."""
    import numpy as np

    got, expected = np.asarray(got, dtype="float64"), np.asarray(expected, dtype="float64")
    predicted = np.argmax(got, axis=-1)
    figures = {"label_agreement": float(np.mean(predicted == np.argmax(expected, axis=-1))),
               "accuracy": float(np.mean(predicted == labels))}
    figures["max_abs_diff"] = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("inf")
    return figures
