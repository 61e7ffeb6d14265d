"""PNG bytes for a DT_STRING input: a bare base64 string vs TF Serving's {"b64": ...} object."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.artifacts import ArtifactCache
from harness.models import ModelSpec, TrainedModel, trained_model
from harness.scenario import ByVersion, Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import Server, cached_export, export_endpoint, label_figures, serve_versions

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("rgb_cnn", "keras3")  # 16x16 RGB in [0, 1]; class = dominant channel
ROWS = 12


def export_png_model(cache: ArtifactCache, trained: TrainedModel) -> Path:
    """A serving signature that takes encoded PNG files (DT_STRING) and decodes them in the graph."""

    def build(out: Path) -> None:
        import tensorflow as tf

        model = trained.load()

        def serve(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
            def decode(png: tf.Tensor) -> tf.Tensor:
                return tf.reshape(tf.io.decode_png(png, channels=3), [16, 16, 3])

            pixels = tf.map_fn(decode, image_bytes, fn_output_signature=tf.uint8)
            return {"probabilities": model(tf.cast(pixels, tf.float32) / 255.0)}

        export_endpoint(out, model, serve, [tf.TensorSpec([None], tf.string, name="image_bytes")])

    return cached_export(cache, {"recipe": "png-bytes-signature/2", "model": trained.dir.name}, build)


def _png_files(run: "Run[TfservingTarget]") -> tuple[list[str], Server]:
    """The client's PNG files, base64-encoded as JSON needs them, and the server that decodes PNGs."""
    import base64

    import numpy as np
    import tensorflow as tf

    trained = trained_model(run.cache, SPEC)
    x, _ = trained.test_set()
    pixels = np.round(x[:ROWS] * 255).astype("uint8")
    files = [tf.io.encode_png(image).numpy() for image in pixels]  # the client's PNG files
    server = serve_versions(run, {1: export_png_model(run.cache, trained)})
    return [base64.b64encode(data).decode("ascii") for data in files], server


def _judge(run: "Run[TfservingTarget]", scores: "np.ndarray") -> dict[str, float]:
    """The served scores against Keras on the same (8-bit) pixels, and against the true labels."""
    import numpy as np

    from harness.models import keras_outputs

    trained = trained_model(run.cache, SPEC)
    x, y = trained.test_set()
    pixels = np.round(x[:ROWS] * 255).astype("uint8")
    return label_figures(scores, keras_outputs(run.cache, trained, pixels / np.float32(255)), y[:ROWS])


def faulty(run: "Run[TfservingTarget]") -> dict[str, float]:
    import numpy as np

    text, server = _png_files(run)
    # Each base64 string sent as a bare JSON string: the server takes it for the bytes themselves.
    scores = np.asarray(server.predict({"instances": text})["predictions"])
    return _judge(run, scores)


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    import numpy as np

    text, server = _png_files(run)
    # Each base64 string wrapped as {"b64": ...}: TF Serving's REST layer decodes it to the PNG bytes.
    scores = np.asarray(server.predict({"instances": [{"b64": t} for t in text]})["predictions"])
    return _judge(run, scores)


SCENARIO = Scenario(
    title="Base64 PNG sent as a plain JSON string to a DT_STRING input: the PNG decoder rejects it",
    targets=("tfserving",),
    figures={"accuracy": "exact", "label_agreement": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    # the version matrix: TF 2.20 added WebP to the formats decode_image names, TF 2.21 JPEG XL (the
    # serving image's TF follows this venv's: `serving-tf` defaults to `tensorflow` in a matrix cell)
    symptom=ByVersion((
        ("tensorflow<2.20", Raises(r"Unknown image file format\. One of JPEG, PNG, GIF, BMP required\.", runtime="tfserving")),
        ("tensorflow>=2.20,<2.21", Raises(r"Unknown image file format\. One of JPEG, PNG, GIF, BMP, WebP required\.",
                                          runtime="tfserving")),
        ("tensorflow>=2.21", Raises(r"Unknown image file format\. One of JPEG, JPEG XL, PNG, GIF, BMP, WebP required\.",
                                    runtime="tfserving")))),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5), Figure("label_agreement", ">=", 1.0),
                    Figure("accuracy", ">=", 0.9)),
    cause="JSON cannot carry raw bytes, so TF Serving's REST API decodes base64 only when the "
          "value is an object {\"b64\": \"...\"}. A bare string is taken as the tensor's bytes "
          "as written: the model's DecodePng receives the base64 text ('iVBORw0KGgo...') instead "
          "of a PNG, and TensorFlow's kernel fails with \"Unknown image file format. One of JPEG, "
          "PNG, GIF, BMP required.\" (HTTP 400). Sending the bytes as a JSON list of numbers fails "
          "too: a number is not of the string type the signature declares.",
    fix="Wrap each encoded file as {\"b64\": base64.b64encode(data).decode()} (standard, not "
        "URL-safe, alphabet) and let the server decode it; over gRPC put the raw bytes in a "
        "DT_STRING TensorProto. The decoded images then give Keras's predictions on the same "
        "pixels.",
    references=("https://www.tensorflow.org/tfx/serving/api_rest",
                "https://github.com/tensorflow/serving/issues/1141",
                "https://github.com/tensorflow/serving/issues/1570",
                "https://github.com/tensorflow/tensorflow/issues/29061"),
)
