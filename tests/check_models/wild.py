"""Small, seeded models of the shapes people bring to ``pitfalls check`` (issue 21): string inputs
with a preprocessing layer inside, dict inputs, several outputs, int64 ids, a dynamic non-batch
dimension, a subclassed ``tf.Module`` with several signatures, a model whose output depends on the
whole batch.  Built into the artifact cache (kind ``check-model``) like :mod:`check_models`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.artifacts import ArtifactCache

from check_models import _cached

WORDS = ("cat", "dog", "bird", "fish")


def string_lookup_keras(cache: ArtifactCache) -> Path:
    """Keras 3: a string input read by a ``StringLookup`` (vocabulary WORDS), an Embedding, a Dense."""
    def build(out: Path) -> None:
        import keras

        keras.utils.set_random_seed(0)
        word = keras.Input((1,), dtype="string", name="word")
        ids = keras.layers.StringLookup(vocabulary=list(WORDS), name="lookup")(word)
        hidden = keras.layers.Flatten(name="flat")(keras.layers.Embedding(len(WORDS) + 1, 4, name="embed")(ids))
        keras.Model(word, keras.layers.Dense(3, name="scores")(hidden), name="words").save(out / "words.keras")

    return _cached(cache, "wild_string_lookup", "words.keras", build)


def dict_inputs_keras(cache: ArtifactCache) -> Path:
    """Keras 3 functional model built on a dict of two inputs (``age`` (2,), ``size`` (3,))."""
    def build(out: Path) -> None:
        import keras

        keras.utils.set_random_seed(0)
        inputs = {"age": keras.Input((2,), name="age"), "size": keras.Input((3,), name="size")}
        joined = keras.layers.Concatenate(name="joined")([inputs["age"], inputs["size"]])
        keras.Model(inputs, keras.layers.Dense(2, name="out")(joined), name="dict_in").save(out / "dict_in.keras")

    return _cached(cache, "wild_dict_inputs", "dict_in.keras", build)


def two_outputs_keras(cache: ArtifactCache) -> Path:
    """Keras 3: one input, two named outputs of different scales (``label`` softmax over 3,
    ``amount`` a regression of order 100)."""
    def build(out: Path) -> None:
        import keras

        keras.utils.set_random_seed(0)
        x = keras.Input((6,), name="features")
        hidden = keras.layers.Dense(8, activation="relu", name="hidden")(x)
        label = keras.layers.Dense(3, activation="softmax", name="label")(hidden)
        amount = keras.layers.Rescaling(100.0, name="amount")(keras.layers.Dense(1, name="amount_raw")(hidden))
        keras.Model(x, {"label": label, "amount": amount}, name="two_heads").save(out / "two_heads.keras")

    return _cached(cache, "wild_two_outputs", "two_heads.keras", build)


def int64_ids_keras(cache: ArtifactCache) -> Path:
    """Keras 3: int64 token ids (5 per row, vocabulary 20) through an Embedding."""
    def build(out: Path) -> None:
        import keras

        keras.utils.set_random_seed(0)
        ids = keras.Input((5,), dtype="int64", name="ids")
        pooled = keras.layers.GlobalAveragePooling1D(name="pool")(keras.layers.Embedding(20, 4, name="embed")(ids))
        keras.Model(ids, keras.layers.Dense(2, name="scores")(pooled), name="ids64").save(out / "ids64.keras")

    return _cached(cache, "wild_int64_ids", "ids64.keras", build)


def dynamic_length_keras(cache: ArtifactCache) -> Path:
    """Keras 3: sequences of any length (shape (None, None, 4)) pooled over time."""
    def build(out: Path) -> None:
        import keras

        keras.utils.set_random_seed(0)
        seq = keras.Input((None, 4), name="seq")
        pooled = keras.layers.GlobalAveragePooling1D(name="pool")(keras.layers.Dense(8, activation="tanh", name="step")(seq))
        keras.Model(seq, keras.layers.Dense(2, name="scores")(pooled), name="any_length").save(out / "any_length.keras")

    return _cached(cache, "wild_dynamic_length", "any_length.keras", build)


def module_saved_model(cache: ArtifactCache) -> Path:
    """A subclassed ``tf.Module`` with a variable, saved with ``tf.saved_model.save`` and two
    signatures: ``serving_default`` (x @ w + b) and ``doubled``."""
    def build(out: Path) -> None:
        import numpy as np
        import tensorflow as tf

        class Affine(tf.Module):
            def __init__(self) -> None:
                super().__init__()
                rng = np.random.default_rng(0)
                self.w = tf.Variable(rng.standard_normal((4, 3)).astype("float32"))
                self.b = tf.Variable(rng.standard_normal(3).astype("float32"))

            @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
            def serve(self, x: Any) -> Any:
                return {"y": tf.matmul(x, self.w) + self.b}

            @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
            def doubled(self, x: Any) -> Any:
                return {"y2": 2.0 * (tf.matmul(x, self.w) + self.b)}

        module = Affine()
        tf.saved_model.save(module, str(out / "affine"),
                            signatures={"serving_default": module.serve, "doubled": module.doubled})

    return _cached(cache, "wild_module_saved_model", "affine", build)


def batch_dependent_saved_model(cache: ArtifactCache) -> Path:
    """A SavedModel whose output depends on the whole batch: each value minus the batch's mean,
    over the batch's standard deviation (a normalisation over the whole tensor)."""
    def build(out: Path) -> None:
        import tensorflow as tf

        class BatchNorm(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
            def serve(self, x: Any) -> Any:
                mean = tf.reduce_mean(x)
                return {"z": (x - mean) / (tf.math.reduce_std(x) + 1e-3)}

        module = BatchNorm()
        tf.saved_model.save(module, str(out / "batch_norm"), signatures={"serving_default": module.serve})

    return _cached(cache, "wild_batch_dependent", "batch_norm", build)


ALL = {"string_lookup": string_lookup_keras, "dict_inputs": dict_inputs_keras, "two_outputs": two_outputs_keras,
       "int64_ids": int64_ids_keras, "dynamic_length": dynamic_length_keras, "module_saved_model": module_saved_model,
       "batch_dependent": batch_dependent_saved_model}


def tf_keras_keras(cache: ArtifactCache) -> Path:
    """A small MLP written by tf_keras in the ``.keras`` format (metadata says Keras 2.x)."""
    def build(out: Path) -> None:
        import tf_keras

        tf_keras.utils.set_random_seed(0)
        model = tf_keras.Sequential([tf_keras.layers.Input((6,), name="features"),
                                     tf_keras.layers.Dense(8, activation="relu", name="hidden"),
                                     tf_keras.layers.Dense(3, activation="softmax", name="scores")], name="tfk_mlp")
        model.save(out / "tfk_mlp.keras")

    return _cached(cache, "wild_tf_keras_keras", "tfk_mlp.keras", build)


ALL["tf_keras_keras"] = tf_keras_keras


def large_activations_keras(cache: ArtifactCache) -> Path:
    """A Keras 3 MLP whose hidden activations reach ~1e5 (beyond float16's 65504) and whose output
    is of order 1: exact in float32, inf/NaN wherever intermediates are stored in float16."""
    def build(out: Path) -> None:
        import keras
        import numpy as np

        keras.utils.set_random_seed(0)
        x = keras.Input((4,), name="x")
        hidden = keras.layers.Dense(8, name="amplify")(x)
        y = keras.layers.Dense(2, name="shrink")(hidden)
        model = keras.Model(x, y, name="large_activations")
        rng = np.random.default_rng(0)
        model.get_layer("amplify").set_weights([(rng.choice([-1.0, 1.0], (4, 8)) * 5e4).astype("float32"),
                                               np.zeros(8, "float32")])
        model.get_layer("shrink").set_weights([(rng.standard_normal((8, 2)) * 1e-5).astype("float32"),
                                              np.zeros(2, "float32")])
        model.save(out / "large_activations.keras")

    return _cached(cache, "wild_large_activations", "large_activations.keras", build)


def stateful_lstm_keras(cache: ArtifactCache) -> Path:
    """A Keras 3 stateful LSTM (batch fixed at 2 by its input, as ``stateful=True`` requires)."""
    def build(out: Path) -> None:
        import keras

        keras.utils.set_random_seed(0)
        x = keras.Input(batch_shape=(2, 5, 3), name="x")
        h = keras.layers.LSTM(4, stateful=True, name="lstm")(x)
        model = keras.Model(x, keras.layers.Dense(2, name="head")(h), name="stateful_lstm")
        model.save(out / "stateful_lstm.keras")

    return _cached(cache, "wild_stateful_lstm", "stateful_lstm.keras", build)
