"""A custom Keras 3 layer, registered when this module is imported (``pitfalls check --import
check_models.custom_layers``): the check must load a model that uses it, as the user's code would."""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="pitfalls_tests")
class GramDeterminant(keras.layers.Layer):
    """det(x xᵀ + I) of each row reshaped to 2x2 pairs: TF's MatrixDeterminant, which no TF Lite
    builtin, Core ML op or tf.js kernel implements."""

    def call(self, inputs: Any) -> Any:
        import tensorflow as tf

        m = tf.reshape(inputs[:, :8], (-1, 2, 4))
        gram = tf.matmul(m, m, transpose_b=True) + tf.eye(2)
        return tf.expand_dims(tf.linalg.det(gram), -1)
