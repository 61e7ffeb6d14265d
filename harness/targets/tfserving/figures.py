"""The data a server client holds and the figures the server's data scenarios judge.

* :func:`raw_measurements`: the tabular features as a client holds them, before the
  standardisation the model was trained behind (the scaler's statistics are ``RAW_MEAN``, ``RAW_STD``);
* :func:`probe_diff`: the worst difference between the served model and Keras on the probe batch;
* :func:`label_figures`: label agreement with Keras, accuracy against the true labels and the worst
  difference (all from :mod:`harness.compare`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.artifacts import ArtifactCache
from harness.compare import accuracy, label_agreement, parity
from harness.models import ModelSpec
from harness.targets.tfserving.client import Server

if TYPE_CHECKING:
    import numpy as np

# The training statistics of the 8 raw measurements behind the standardised features of
# harness.models.tabular_data (what a scaler's mean_ and scale_ would hold).
RAW_MEAN = (20.0, -5.0, 100.0, 3.0, 50.0, 0.5, 1000.0, 10.0)
RAW_STD = (5.0, 2.0, 30.0, 1.0, 10.0, 0.1, 200.0, 4.0)


def raw_measurements(standardised: "np.ndarray") -> "np.ndarray":
    """The raw values a client receives (sensor units), whose standardisation is ``standardised``."""
    import numpy as np

    return (standardised * np.asarray(RAW_STD, "float32") + np.asarray(RAW_MEAN, "float32")).astype("float32")


def probe_diff(server: Server, cache: ArtifactCache, spec: ModelSpec, *, rows: int | None = None,
               model: str | None = None, version: int | None = None, label: str | None = None) -> float:
    """Max |served - Keras| on the probe batch of ``spec`` (row format ``instances``), sent to
    ``model`` (default: the server's), pinned to a ``version`` or a ``label`` if given."""
    from harness.models import trained_model

    x, expected = trained_model(cache, spec).probe()
    x, expected = (x[:rows], expected[:rows]) if rows else (x, expected)
    got = server.predict({"instances": x.tolist()}, model=model, version=version, label=label)["predictions"]
    return parity(got, expected).max_abs_diff


def label_figures(got: "np.ndarray", expected: "np.ndarray", labels: "np.ndarray") -> dict[str, float]:
    """``label_agreement`` with Keras, ``accuracy`` against ``labels`` and ``max_abs_diff``."""
    return {"label_agreement": label_agreement(got, expected), "accuracy": accuracy(got, labels),
            "max_abs_diff": parity(got, expected).max_abs_diff}
