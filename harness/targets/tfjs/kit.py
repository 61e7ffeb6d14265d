"""Helpers the browser scenarios use (tf.js in Chromium).

A browser scenario imports :class:`~harness.targets.tfjs.target.TfjsTarget` (the deploy interface
and :meth:`~harness.targets.tfjs.target.TfjsTarget.page`, which returns a
:class:`~harness.targets.tfjs.target.TfjsPage`), the backend table
(:mod:`harness.targets.tfjs.backends`), the converter (:mod:`harness.targets.tfjs.convert`) and this
module, never :mod:`harness.targets.tfjs.page` itself.  Here:

* ``PREDICT_LAYERS_JS`` / ``PREDICT_GRAPH_JS``: the page-side scripts that load a model and predict in one go;
* a page serving a converted model, and one-call load-and-predict in it (layers or graph format);
* tiny tf_keras models with one feature tf.js lacks (a ``Lambda`` layer, a ``Softsign`` op),
  trained on the tabular data of :mod:`harness.models`;
* pixel helpers: the uint8 images a page draws on a canvas, as Python sees them;
* what a converted model costs (``model_bytes``) and what it exposes (``decode_weights``).

Parity is computed with :mod:`harness.compare` by the scenarios themselves.  Nothing heavy is
imported at module level.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping

from harness.artifacts import ArtifactCache, library_versions
from harness.models import KERAS_DISTS, tabular_data
from harness.scenario import Figure, Succeeds, succeeds
from harness.targets.tfjs.convert import artifact_sizes

if TYPE_CHECKING:
    import numpy as np

    from harness.scenario import Run
    from harness.targets.tfjs.target import TfjsPage, TfjsTarget

# The remedy of the data scenarios: the page gives Keras's labels and (float32-close) outputs.
MATCHES_KERAS: Succeeds = succeeds(Figure("label_agreement", ">=", 1.0), Figure("max_abs_diff", "<=", 1e-4))
MODEL_URL = "/model/model.json"

#: Load a layers model from ``url`` and predict ``x``; returns the output as nested arrays.
PREDICT_LAYERS_JS = ("async ({url, x}) => { const m = await tf.loadLayersModel(url);"
                     " return m.predict(tf.tensor(x)).array(); }")
#: The same for a graph model.
PREDICT_GRAPH_JS = ("async ({url, x}) => { const m = await tf.loadGraphModel(url);"
                    " return m.predict(tf.tensor(x)).array(); }")


def model_page(run: "Run[TfjsTarget]", converted: Path, extra: Mapping[str, Path] | None = None) -> "TfjsPage":
    """A fresh page on the run's tf.js target serving ``converted`` at ``/model/`` (plus ``extra``
    mounts), recording the page's errors as evidence; closed when the variant ends."""
    return run.enter(run.target.page({"/model/": converted, **(extra or {})}, observe=run.observe))


def predict_in_page(page: "TfjsPage", url: str, x: "np.ndarray", *, graph: bool = False) -> "np.ndarray":
    """Load ``url`` (a model.json on the page's server) and predict ``x`` as a nested array."""
    import numpy as np

    return np.asarray(page.evaluate(PREDICT_GRAPH_JS if graph else PREDICT_LAYERS_JS,
                                    {"url": url, "x": np.asarray(x).tolist()}), dtype="float64")


def model_bytes(model_dir: Path) -> dict[str, int]:
    """Bytes of a converted model: ``json_bytes``, ``weight_bytes`` (all shards) and ``shards`` (count)."""
    sizes = artifact_sizes(model_dir)
    return {"json_bytes": sizes["model_json"], "weight_bytes": sizes["weights"], "shards": sizes["shards"]}


def decode_weights(model_json: Mapping[str, Any], shards: Mapping[str, bytes]) -> "dict[str, np.ndarray]":
    """Decode tf.js weight shards with numpy, following ``weightsManifest`` (as tf.io does).

    ``shards`` maps each path listed in the manifest to its bytes.  Handles float32/int32 and
    the converter's uint8/uint16 affine quantization (``min``/``scale``) and float16.
    """
    import numpy as np

    weights: dict[str, np.ndarray] = {}
    for group in model_json["weightsManifest"]:
        blob = b"".join(shards[p] for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            quant = spec.get("quantization")
            dtype = np.dtype(quant["dtype"] if quant else spec["dtype"])
            raw = np.frombuffer(blob, dtype=dtype, count=count, offset=offset)
            offset += count * dtype.itemsize
            if quant and "scale" in quant:
                values = raw.astype("float32") * np.float32(quant["scale"]) + np.float32(quant["min"])
            else:
                values = raw.astype(spec["dtype"] if spec["dtype"] != "float32" else "float32")
            weights[spec["name"]] = values.reshape(spec["shape"])
    return weights


# ---------------------------------------------------------------------------- models tf.js lacks

Feature = Literal["lambda", "softsign"]


@dataclass(frozen=True)
class CustomModel:
    """A cached tf_keras model (8 features -> 3 classes) with one feature tf.js lacks."""

    feature: Feature
    dir: Path

    @property
    def h5(self) -> Path:
        return self.dir / "model.h5"

    @property
    def saved_model(self) -> Path:
        return self.dir / "saved_model"

    def probe(self) -> tuple["np.ndarray", "np.ndarray"]:
        import numpy as np

        with np.load(self.dir / "probe.npz") as f:
            return f["x"], f["y"]


def custom_model(cache: ArtifactCache, feature: Feature, seed: int = 0) -> CustomModel:
    """Train (or reuse) a tf_keras MLP whose hidden part uses ``feature``.

    ``lambda``: ``Dense(16, relu) -> Lambda(t * 0.5 + 1.0)`` (a Python function in the model);
    ``softsign``: ``Dense(16, activation="softsign")`` (the TF op ``Softsign``).
    Saved both as HDF5 (for the layers converter) and as a SavedModel (for the graph converter).
    """
    key = {"feature": feature, "seed": seed, "versions": library_versions(*KERAS_DISTS)}

    def build(out: Path) -> None:
        import numpy as np
        import tf_keras as k

        k.utils.set_random_seed(seed)
        if feature == "lambda":
            hidden = [k.layers.Dense(16, activation="relu"), k.layers.Lambda(lambda t: t * 0.5 + 1.0)]
        else:
            hidden = [k.layers.Dense(16, activation="softsign")]
        model = k.Sequential([k.layers.Input(shape=(8,)), *hidden, k.layers.Dense(3, activation="softmax")])
        model.compile(optimizer=k.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
        x, y = tabular_data(256, seed)
        model.fit(x, y, epochs=5, batch_size=32, verbose=0, shuffle=False)
        model.save(out / "model.h5")
        model.save(str(out / "saved_model"), save_format="tf")
        px, _ = tabular_data(16, seed + 7)
        np.savez(out / "probe.npz", x=px, y=np.asarray(model.predict(px, verbose=0)))
        (out / "info.json").write_text(json.dumps({"feature": feature, "seed": seed}))

    return CustomModel(feature, cache.get_or_build("custom_model", key, build))


# ---------------------------------------------------------------------------- pixels

def uint8_pixels(x: "np.ndarray") -> "np.ndarray":
    """Images in [0, 1] as the uint8 pixels a canvas holds (round to nearest)."""
    import numpy as np

    return np.clip(np.rint(np.asarray(x) * 255.0), 0, 255).astype("uint8")


def rgba_bytes(pixels: "np.ndarray") -> list[list[int]]:
    """uint8 RGB images (n, h, w, 3) as flat RGBA lists with opaque alpha, for ``ImageData``."""
    import numpy as np

    n, h, w, _ = pixels.shape
    rgba = np.concatenate([pixels, np.full((n, h, w, 1), 255, dtype="uint8")], axis=-1)
    return [img.reshape(-1).astype(int).tolist() for img in rgba]
