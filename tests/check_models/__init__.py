"""Models for the tests of ``pitfalls check``: real architectures no one here wrote
(``keras.applications`` with ``weights=None``) and models with custom layers or ops that converters
reject.  Built into the artifact cache (kind ``check-model``) so that a warm run reuses them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from harness.artifacts import ArtifactCache, library_versions

if TYPE_CHECKING:
    from harness.check import CheckReport

REVISION = 2


def require_targets(*targets: str) -> None:
    """Skip the calling test unless every one of ``targets`` can run here (with the target's reason)."""
    import pytest

    from harness.targets import target_class

    for name in targets:
        reason = target_class(name).unavailable_reason()
        if reason:
            pytest.skip(f"{name} not available here: {reason}")


def finding_texts(report: "CheckReport", target: str) -> str:
    """Every finding's text of ``target`` in ``report``, one after another."""
    return "\n".join(f.text for f in report.targets[target].findings)


_SHARED_REPORTS: dict[tuple[str, str], "CheckReport"] = {}


def shared_check(pitfalls_check: Callable[..., "CheckReport"], path: Path, memo: Path | None = None,
                 **options: Any) -> "CheckReport":
    """``pitfalls_check(path, **options)`` run once per test session for the same model and options:
    tests that assert different things about the same report (read only) share one real check
    instead of running it again.  ``memo`` (:func:`shared_memo_dir`, under xdist) is a directory
    every worker of this session sees: the first worker to ask runs the check under a file lock and
    leaves the report there (pickled: it is this session's own object, written by this test code,
    in the session's private temporary directory), the others read it."""
    key = (str(Path(path).resolve()), repr(sorted(options.items())))
    if key in _SHARED_REPORTS:
        return _SHARED_REPORTS[key]
    if memo is None:
        _SHARED_REPORTS[key] = pitfalls_check(path, **options)
        return _SHARED_REPORTS[key]
    import hashlib
    import pickle

    from filelock import FileLock

    entry = memo / f"check-{hashlib.sha256(repr(key).encode()).hexdigest()[:32]}.pickle"
    with FileLock(str(entry) + ".lock"):
        if entry.is_file():
            report = pickle.loads(entry.read_bytes())
        else:
            report = pitfalls_check(path, **options)
            partial = entry.with_suffix(".partial")
            partial.write_bytes(pickle.dumps(report))
            partial.replace(entry)
    _SHARED_REPORTS[key] = report
    return report


def shared_memo_dir(tmp_path_factory: Any, worker_id: str) -> Path | None:
    """The directory all xdist workers of this session share (None without xdist: one process, and
    the base temporary directory's parent then outlives the session, so it must not hold a memo)."""
    if worker_id == "master":
        return None
    memo = Path(tmp_path_factory.getbasetemp()).parent / "shared-checks"
    memo.mkdir(exist_ok=True)
    return memo


def calibrate_batchnorm(model: Any, images: Any, seed: int = 0) -> None:
    """Give a ``weights=None`` network live activations: each BatchNormalization's moving mean and
    variance are set, in layer order, to the statistics of its input on ``images``, and its scale
    and offset drawn near 1 and 0.  Without this, a random-init deep CNN's activations shrink to
    ~1e-10 and every output is the uniform 1/classes, so parity would compare constants."""
    import numpy as np

    rng = np.random.default_rng(seed)
    module = __import__(type(model).__module__.split(".")[0])
    for layer in model.layers:
        if type(layer).__name__ != "BatchNormalization":
            continue
        probe = module.Model(model.inputs, layer.input)
        values = np.asarray(probe.predict(images, verbose=0), dtype="float64")
        axes = tuple(range(values.ndim - 1))
        channels = values.shape[-1]
        gamma = rng.uniform(0.5, 1.5, channels)
        beta = rng.normal(0.0, 0.1, channels)
        layer.set_weights([gamma.astype("float32"), beta.astype("float32"),
                           values.mean(axis=axes).astype("float32"),
                           (values.var(axis=axes) + 1e-6).astype("float32")])


def _images(n: int, size: int, seed: int = 1) -> Any:
    import numpy as np

    return np.random.default_rng(seed).random((n, size, size, 3)).astype("float32")


def _cached(cache: ArtifactCache, name: str, filename: str, build: Callable[[Path], None]) -> Path:
    key = {"model": name, "revision": REVISION, "versions": library_versions("tensorflow", "keras", "tf-keras")}
    return cache.get_or_build("check-model", key, build) / filename


def _application(cache: ArtifactCache, name: str, filename: str, flavour: str, size: int,
                 make: Callable[[Any], Any]) -> Path:
    """A ``keras.applications`` (or ``tf_keras.applications``) network, seeded, BatchNorm calibrated
    on random ``size``x``size`` images, saved as ``filename``."""
    def build(out: Path) -> None:
        import importlib

        k = importlib.import_module(flavour)
        k.utils.set_random_seed(0)
        model = make(k.applications)
        calibrate_batchnorm(model, _images(16, size))
        model.save(out / filename)

    return _cached(cache, name, filename, build)


def mobilenet_v2(cache: ArtifactCache) -> Path:
    """keras.applications.MobileNetV2 (Keras 3), alpha 0.35 at 96x96, 10 classes."""
    return _application(cache, "mobilenet_v2", "mobilenet_v2.keras", "keras", 96, lambda apps: apps.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10))


def efficientnet_b0(cache: ArtifactCache) -> Path:
    """keras.applications.EfficientNetB0 (Keras 3) at 64x64, 10 classes."""
    return _application(cache, "efficientnet_b0", "efficientnet_b0.keras", "keras", 64, lambda apps: apps.EfficientNetB0(
        input_shape=(64, 64, 3), weights=None, classes=10))


def mobilenet_v1_tf_keras(cache: ArtifactCache) -> Path:
    """tf_keras.applications.MobileNet (v1), alpha 0.25 at 128x128, saved as .h5 (Keras 2 format)."""
    return _application(cache, "mobilenet_v1_tf_keras", "mobilenet_v1.h5", "tf_keras", 128, lambda apps: apps.MobileNet(
        input_shape=(128, 128, 3), alpha=0.25, weights=None, classes=10))


def determinant_saved_model(cache: ArtifactCache) -> Path:
    """A SavedModel whose signature computes tf.linalg.det (MatrixDeterminant): no TF Lite builtin,
    no Core ML conversion, no tf.js kernel; TF Serving runs it."""
    def build(out: Path) -> None:
        import tensorflow as tf

        class Det(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([None, 3, 3], tf.float32, name="m")])
            def serve(self, m: Any) -> Any:
                return {"det": tf.linalg.det(m)}

        module = Det()
        tf.saved_model.save(module, str(out / "det"), signatures={"serving_default": module.serve})

    return _cached(cache, "determinant_saved_model", "det", build)


def softsign_keras(cache: ArtifactCache) -> Path:
    """A Keras 3 model with a Softsign activation: converts everywhere except tf.js (no Softsign op)."""
    def build(out: Path) -> None:
        import keras

        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.layers.Input((8,), name="features"),
                                  keras.layers.Dense(16, activation="softsign", name="hidden"),
                                  keras.layers.Dense(3, activation="softmax", name="scores")], name="softsign_mlp")
        model.save(out / "softsign.keras")

    return _cached(cache, "softsign_keras", "softsign.keras", build)


def custom_layer_keras(cache: ArtifactCache) -> Path:
    """A Keras 3 model with the registered custom layer ``GramDeterminant`` (check_models.custom_layers)."""
    def build(out: Path) -> None:
        import keras

        from check_models.custom_layers import GramDeterminant

        keras.utils.set_random_seed(0)
        inputs = keras.Input((8,), name="features")
        hidden = keras.layers.Dense(8, activation="tanh", name="hidden")(inputs)
        outputs = keras.layers.Dense(1, name="score")(GramDeterminant(name="gram_det")(hidden))
        keras.Model(inputs, outputs, name="custom_det").save(out / "custom_det.keras")

    return _cached(cache, "custom_layer_keras", "custom_det.keras", build)


def outlier_dense_keras(cache: ArtifactCache) -> Path:
    """A Keras 3 MLP whose middle Dense layer ``mixer`` carries one row of weights of 100 fed by a unit
    that is always 0 (``embed``'s last unit has a bias of -100 under its relu): Keras never sees the
    row, but any quantisation of ``mixer``'s kernel (per tensor or per output channel) takes its
    scale from it and rounds every other weight to 0.  ``embed`` (quantised too) and ``head`` (512
    weights: under the dynamic-range threshold of 1024, kept float) are right on their own."""
    def build(out: Path) -> None:
        import keras
        import numpy as np

        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.layers.Input((32,), name="features"),
                                  keras.layers.Dense(64, activation="relu", name="embed"),
                                  keras.layers.Dense(64, activation="relu", name="mixer"),
                                  keras.layers.Dense(8, name="head")], name="outlier_mlp")
        kernel, bias = model.get_layer("embed").get_weights()
        bias[-1] = -100.0
        model.get_layer("embed").set_weights([kernel, bias])
        kernel, bias = model.get_layer("mixer").get_weights()
        kernel[-1, :] = 100.0
        model.get_layer("mixer").set_weights([kernel, np.full_like(bias, 0.1)])
        model.save(out / "outlier.keras")

    return _cached(cache, "outlier_dense_keras", "outlier.keras", build)


def cancelling_dense_keras(cache: ArtifactCache) -> Path:
    """A Keras 3 MLP whose middle Dense layer ``cancel`` adds two products of 1e6 that cancel (``embed``
    gives two equal units, its first and last; ``cancel``'s kernel has rows +1e6 and -1e6 for them): its output, of order
    1, is the small rest of a float32 sum of terms of order 1e6, which each runtime rounds in its
    own order (one ulp of 1e6 is 0.06).  ``embed`` and ``head`` are plain."""
    def build(out: Path) -> None:
        import keras

        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.layers.Input((16,), name="features"),
                                  keras.layers.Dense(32, activation="relu", name="embed"),
                                  keras.layers.Dense(16, name="cancel"),
                                  keras.layers.Dense(4, name="head")], name="cancelling_mlp")
        kernel, bias = model.get_layer("embed").get_weights()
        kernel[:, -1] = abs(kernel[:, 0])
        kernel[:, 0] = kernel[:, -1]
        bias[-1] = bias[0] = 1.0
        model.get_layer("embed").set_weights([kernel, bias])
        kernel, bias = model.get_layer("cancel").get_weights()
        kernel[0, :] = 1e6
        kernel[-1, :] = -1e6
        model.get_layer("cancel").set_weights([kernel, bias])
        model.save(out / "cancelling.keras")

    return _cached(cache, "cancelling_dense_keras/2", "cancelling.keras", build)
