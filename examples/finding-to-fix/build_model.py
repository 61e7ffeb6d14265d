"""Build the model of the README's full example (finding -> localisation -> remedy -> reproducer).

    python examples/finding-to-fix/build_model.py spiky.keras

A seeded Keras 3 MLP (16 -> 16 -> 8 -> 4) whose middle Dense layer ``spiky`` holds one weight of
400 among weights of about 0.3: per-tensor int8 weights round every other weight of that layer to 0,
so LiteRT's full-integer model diverges there, while float32 is exact.  ``tests/test_readme_example.py``
builds it with this very script and runs the README's commands on it.
"""

from __future__ import annotations

import sys
from pathlib import Path


def build(out: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16,), name="features")
    front = keras.layers.Dense(16, activation="relu", name="front")(inputs)
    spiky = keras.layers.Dense(8, activation="tanh", name="spiky")(front)
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(spiky), name="spiky_mlp")
    kernel, bias = model.get_layer("spiky").get_weights()
    kernel[0, 0] = 400.0
    model.get_layer("spiky").set_weights([kernel, bias])
    model.save(out)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].endswith(".keras"):
        sys.exit("usage: python examples/finding-to-fix/build_model.py OUT.keras")
    build(Path(sys.argv[1]))
