"""The tiny model zoo: seeded, generated data and small models that train in about a second.

Two Keras flavours, because the deployment pitfalls differ: ``keras3`` (``keras`` 3, what
``tf.keras`` is under TF 2.19) and ``tf_keras`` (the legacy Keras 2 package many converters still
expect).  Trained models are cached as artifacts together with a probe batch and the Keras
model's own outputs on it, so targets can check parity without reloading Keras.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harness.artifacts import ArtifactCache, library_versions

if TYPE_CHECKING:
    import numpy as np

Arch = Literal["dense", "cnn", "lstm", "rgb_cnn"]
Flavour = Literal["keras3", "tf_keras"]
CLASSES = 3
KERAS_DISTS = ("tensorflow", "keras", "tf-keras", "numpy")


# ---------------------------------------------------------------------------- generated data

def tabular_data(n: int = 256, seed: int = 0, features: int = 8) -> tuple["np.ndarray", "np.ndarray"]:
    """Standardised features; the class shifts the mean of a few features."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, size=n)
    x = rng.normal(0.0, 1.0, size=(n, features)).astype("float32")
    for k in range(CLASSES):
        x[y == k, k * 2: k * 2 + 2] += 2.5
    return x, y.astype("int64")


def image_data(n: int = 256, seed: int = 0, size: int = 28) -> tuple["np.ndarray", "np.ndarray"]:
    """Grey images in [0, 1]: the class is the position of a bright horizontal bar."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, size=n)
    x = rng.uniform(0.0, 0.2, size=(n, size, size, 1)).astype("float32")
    band = size // CLASSES
    for i, k in enumerate(y):
        row = int(k) * band + band // 2
        x[i, row - 1: row + 2, :, 0] += 0.8
    return np.clip(x, 0.0, 1.0), y.astype("int64")


def rgb_image_data(n: int = 256, seed: int = 0, size: int = 16) -> tuple["np.ndarray", "np.ndarray"]:
    """RGB images in [0, 1]: the class is the dominant colour channel (0 = R, 1 = G, 2 = B).

    A channel-order mistake (BGR for RGB) or an extra alpha channel changes the prediction, as it
    does for a real camera pipeline.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, size=n)
    x = rng.uniform(0.0, 0.35, size=(n, size, size, 3)).astype("float32")
    for i, k in enumerate(y):
        x[i, :, :, int(k)] += 0.6
    return np.clip(x, 0.0, 1.0), y.astype("int64")


def sequence_data(n: int = 256, seed: int = 0, steps: int = 10, features: int = 4) -> tuple["np.ndarray", "np.ndarray"]:
    """Sequences whose class is the sign/shape of a trend in the first feature."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, size=n)
    t = np.linspace(-1.0, 1.0, steps, dtype="float32")
    x = rng.normal(0.0, 0.2, size=(n, steps, features)).astype("float32")
    shapes = np.stack([t, -t, t * t * 2 - 0.7])
    x[:, :, 0] += shapes[y]
    return x, y.astype("int64")


def data_for(arch: Arch, n: int = 256, seed: int = 0) -> tuple["np.ndarray", "np.ndarray"]:
    if arch == "dense":
        return tabular_data(n, seed)
    if arch == "cnn":
        return image_data(n, seed)
    if arch == "rgb_cnn":
        return rgb_image_data(n, seed)
    if arch == "lstm":
        return sequence_data(n, seed)
    raise ValueError(f"unknown architecture {arch!r}")


# ---------------------------------------------------------------------------- models

@dataclass(frozen=True)
class ModelSpec:
    """What determines a trained model; its hash names the cached artifact."""

    arch: Arch = "dense"
    keras: Flavour = "keras3"
    seed: int = 0
    epochs: int = 5


def _keras_module(flavour: Flavour) -> Any:
    if flavour == "keras3":
        import keras

        return keras
    import tf_keras

    return tf_keras


#: Bump when build_model or the training recipe changes, so cached models are rebuilt.
BUILDER_REVISION = 2


def build_model(spec: ModelSpec) -> Any:
    """An untrained model of the given architecture, in the given Keras flavour.

    Every layer is named explicitly: default names come from process-wide counters
    (``input_layer`` vs ``input_layer_1``, ``input_1`` vs ``input_2``) and end up in signatures and
    in the runtimes' error texts, so a model must be named the same whatever was built before it
    in the process.
    """
    k = _keras_module(spec.keras)
    k.utils.set_random_seed(spec.seed)
    layers = k.layers
    # The names a fresh process gives (Keras 3 and tf_keras differ), stated explicitly.
    inp = "input_layer" if spec.keras == "keras3" else "input_1"
    if spec.arch == "dense":
        body = [layers.Input(shape=(8,), name=inp), layers.Dense(16, activation="relu", name="dense"),
                layers.Dense(CLASSES, activation="softmax", name="dense_1")]
    elif spec.arch == "cnn":
        body = [layers.Input(shape=(28, 28, 1), name=inp), layers.Conv2D(4, 3, activation="relu", name="conv2d"),
                layers.MaxPooling2D(2, name="max_pooling2d"), layers.Flatten(name="flatten"),
                layers.Dense(CLASSES, activation="softmax", name="dense")]
    elif spec.arch == "rgb_cnn":
        body = [layers.Input(shape=(16, 16, 3), name=inp), layers.Conv2D(4, 3, activation="relu", name="conv2d"),
                layers.GlobalAveragePooling2D(name="global_average_pooling2d"),
                layers.Dense(CLASSES, activation="softmax", name="dense")]
    elif spec.arch == "lstm":
        body = [layers.Input(shape=(10, 4), name=inp), layers.LSTM(8, name="lstm"),
                layers.Dense(CLASSES, activation="softmax", name="dense")]
    else:
        raise ValueError(f"unknown architecture {spec.arch!r}")
    model = k.Sequential(body, name="sequential")
    model.compile(optimizer=k.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def train_model(spec: ModelSpec) -> Any:
    x, y = data_for(spec.arch, 256, spec.seed)
    model = build_model(spec)
    model.fit(x, y, epochs=spec.epochs, batch_size=32, verbose=0, shuffle=False)
    return model


@dataclass(frozen=True)
class TrainedModel:
    """A cached trained model with a probe batch and the Keras outputs on it."""

    spec: ModelSpec
    dir: Path

    @property
    def model_file(self) -> Path:
        return self.dir / ("model.keras" if self.spec.keras == "keras3" else "model.h5")

    def probe(self) -> tuple["np.ndarray", "np.ndarray"]:
        """(inputs, Keras outputs) of the probe batch: 16 fresh examples."""
        import numpy as np

        with np.load(self.dir / "probe.npz") as f:
            return f["x"], f["y"]

    def test_set(self) -> tuple["np.ndarray", "np.ndarray"]:
        """Held-out labelled data (seed + 1000) for accuracy figures."""
        return data_for(self.spec.arch, 256, self.spec.seed + 1000)

    def info(self) -> dict[str, Any]:
        return json.loads((self.dir / "info.json").read_text())

    def load(self) -> Any:
        """The Keras model, through the one loader (:func:`harness.export.load_keras_model`; ours: trusted)."""
        from harness.export import load_keras_model
        from harness.targets.base import ModelSource

        return load_keras_model(ModelSource.from_trained(self))


def trained_model(cache: ArtifactCache, spec: ModelSpec = ModelSpec()) -> TrainedModel:
    """Train (or reuse) the model for ``spec``."""
    key = {"spec": asdict(spec), "builder": BUILDER_REVISION, "versions": library_versions(*KERAS_DISTS)}

    def build(out: Path) -> None:
        import numpy as np

        model = train_model(spec)
        model.save(out / ("model.keras" if spec.keras == "keras3" else "model.h5"))
        px, _ = data_for(spec.arch, 16, spec.seed + 7)
        py = np.asarray(model.predict(px, verbose=0))
        np.savez(out / "probe.npz", x=px, y=py)
        tx, ty = data_for(spec.arch, 256, spec.seed + 1000)
        accuracy = float((np.argmax(model.predict(tx, verbose=0), axis=1) == ty).mean())
        (out / "info.json").write_text(json.dumps({
            "spec": asdict(spec), "accuracy": accuracy,
            "input_shape": [None, *px.shape[1:]], "versions": key["versions"]}, indent=1))

    return TrainedModel(spec, cache.get_or_build("trained", key, build))


def saved_model(cache: ArtifactCache, spec: ModelSpec = ModelSpec()) -> Path:
    """A SavedModel directory with a ``serving_default`` signature, by the one export step
    (:func:`harness.export.saved_model_of`): Keras 3 ``model.export`` (the documented path for
    serving and TF Lite), tf_keras ``model.save(dir, save_format="tf")``.
    """
    from harness.export import saved_model_of
    from harness.targets.base import ModelSource

    return saved_model_of(cache, ModelSource.from_trained(trained_model(cache, spec)))


def keras_outputs(cache: ArtifactCache, trained: TrainedModel, x: "np.ndarray") -> "np.ndarray":
    """The Keras model's own outputs on ``x`` (cached by model and input bytes)."""
    import numpy as np

    x = np.ascontiguousarray(x, dtype="float32")
    key = {"model": trained.dir.name, "x": hashlib.sha256(x.tobytes()).hexdigest(),
           "shape": list(x.shape), "versions": library_versions(*KERAS_DISTS)}

    def build(out: Path) -> None:
        np.save(out / "y.npy", np.asarray(trained.load().predict(x, verbose=0)))

    return np.load(cache.get_or_build("keras_outputs", key, build) / "y.npy")
