"""Parity between two sets of outputs: one function, one shape policy, tolerances by dtype.

After Polygraphy's comparator (``compare_accuracy``): running and comparing are separate steps.
:func:`parity` compares what a target gave with a reference (Keras on the same inputs) and
returns a :class:`Parity` record whose fields have the same names everywhere; a scenario turns the
ones it judges into figures (``{"max_abs_diff": parity(got, want).max_abs_diff}``) and a
pre-flight check judges :meth:`Parity.within` a tolerance chosen by the path's dtype.

Shape policy: the two arrays must have the same shape once both are numpy arrays.  A mismatch is a
harness bug by default (:class:`ShapeMismatch`, recorded as ``error``); where a runtime's wrong
output shape *is* the symptom, a scenario says ``on_shape_mismatch="inf"`` and every difference
figure is ``inf`` with ``shape_match`` false.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from harness.errors import HarnessError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


class ShapeMismatch(HarnessError):
    """Outputs and reference have different shapes and the caller did not expect it."""


@dataclass(frozen=True)
class Tolerance:
    """``|got - want| <= atol + rtol * |want|`` elementwise, as numpy's ``allclose``."""

    atol: float
    rtol: float


#: Tolerances by the numeric path a model took: float32 kernels differ in summation order only;
#: float16 keeps about three decimal digits; int8 output of a softmax moves in steps of 1/256.
TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(atol=1e-4, rtol=1e-3),
    "float16": Tolerance(atol=1e-2, rtol=1e-2),
    "int8": Tolerance(atol=5e-2, rtol=5e-2),
}


def tolerance_for(path: str) -> Tolerance:
    """The tolerance of a numeric path (``float32``, ``float16``, ``int8``; ``float64`` as float32)."""
    key = {"float64": "float32", "uint8": "int8"}.get(path, path)
    if key not in TOLERANCES:
        raise KeyError(f"no tolerance for {path!r} (known: {', '.join(TOLERANCES)})")
    return TOLERANCES[key]


@dataclass(frozen=True)
class Parity:
    """How far ``got`` is from ``want`` (the reference)."""

    max_abs_diff: float
    mean_abs_diff: float
    p99_abs_diff: float
    max_rel_diff: float  # |got - want| / max(|want|, tiny), the largest
    sqnr_db: float  # 10 log10(signal power / noise power); inf when identical
    label_agreement: float | None  # argmax over the last axis agrees (None for scalars per row)
    shape_match: bool
    shape: tuple[int, ...]

    def within(self, tolerance: Tolerance, want_abs_max: float | None = None) -> bool:
        """True when the worst difference is inside ``atol + rtol * max|want|``."""
        if not self.shape_match:
            return False
        scale = want_abs_max if want_abs_max is not None else 1.0
        return self.max_abs_diff <= tolerance.atol + tolerance.rtol * scale

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["shape"] = list(self.shape)
        return {k: (None if isinstance(v, float) and math.isinf(v) and k != "sqnr_db" else v)
                for k, v in data.items()}


def parity(got: "ArrayLike", want: "ArrayLike", *,
           on_shape_mismatch: Literal["raise", "inf"] = "raise") -> Parity:
    """Compare ``got`` with the reference ``want`` (any array-likes; compared in float64)."""
    import numpy as np

    g = np.asarray(got, dtype="float64")
    w = np.asarray(want, dtype="float64")
    if g.shape != w.shape:
        if on_shape_mismatch == "raise":
            raise ShapeMismatch(f"cannot compare outputs of shape {g.shape} with a reference of shape {w.shape}",
                                hint="the target and the reference must run on the same inputs; pass "
                                     "on_shape_mismatch='inf' where a wrong output shape is the symptom")
        inf = float("inf")
        return Parity(inf, inf, inf, inf, -inf, None, False, tuple(g.shape))
    if g.size == 0:
        return Parity(0.0, 0.0, 0.0, 0.0, float("inf"), None, True, tuple(g.shape))
    diff = np.abs(g - w)
    tiny = np.finfo("float64").tiny
    noise = float(np.mean(diff ** 2))
    signal = float(np.mean(w ** 2))
    sqnr = float("inf") if noise == 0.0 else (10.0 * math.log10(signal / noise) if signal > 0 else -float("inf"))
    labels = (float(np.mean(np.argmax(g, axis=-1) == np.argmax(w, axis=-1)))
              if g.ndim >= 2 and g.shape[-1] > 1 else None)
    return Parity(
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        p99_abs_diff=float(np.quantile(diff, 0.99)),
        max_rel_diff=float((diff / np.maximum(np.abs(w), tiny)).max()),
        sqnr_db=sqnr,
        label_agreement=labels,
        shape_match=True,
        shape=tuple(g.shape),
    )


def max_abs_diff(got: "ArrayLike", want: "ArrayLike") -> float:
    """``parity(got, want).max_abs_diff``: the figure most scenarios judge."""
    return parity(got, want).max_abs_diff


def label_agreement(got: "ArrayLike", want: "ArrayLike") -> float:
    """Share of rows whose argmax agrees (a classifier's decision), from :func:`parity`."""
    value = parity(got, want).label_agreement
    if value is None:
        raise ShapeMismatch("label agreement needs outputs with a class axis of size > 1")
    return value


def accuracy(got: "ArrayLike", labels: "ArrayLike") -> float:
    """Share of rows whose argmax equals the integer label."""
    import numpy as np

    g = np.asarray(got)
    y = np.asarray(labels)
    if g.shape[:-1] != y.shape:
        raise ShapeMismatch(f"outputs of shape {g.shape} do not fit labels of shape {y.shape}")
    return float(np.mean(np.argmax(g, axis=-1) == y))


def pair_outputs(got: "Mapping[str, ArrayLike]", want_names: "list[str]",
                 want_shapes: "list[tuple[int, ...]]") -> "list[str] | None":
    """For each reference output (``want_names``, in order), the name of the target's output that
    holds it: by name first, then by a shape no other output has, then in the order left.  None
    when the counts differ (nothing can be paired for sure).

    Runtimes rename outputs (LiteRT: ``StatefulPartitionedCall:1``) and may reorder them, so a
    model with several outputs cannot be compared by position alone.
    """
    import numpy as np

    if len(got) != len(want_names):
        return None
    left = list(got)
    paired: dict[int, str] = {}
    for i, name in enumerate(want_names):
        if name in left:
            paired[i] = name
            left.remove(name)
    shapes = {name: tuple(np.shape(got[name])) for name in left}
    for i, shape in enumerate(want_shapes):
        if i in paired:
            continue
        same = [n for n in left if shapes[n] == tuple(shape)]
        wanted_alike = [j for j, s in enumerate(want_shapes) if j not in paired and tuple(s) == tuple(shape)]
        if len(same) == 1 and len(wanted_alike) == 1:
            paired[i] = same[0]
            left.remove(same[0])
    for i in range(len(want_names)):
        if i not in paired:
            paired[i] = left.pop(0)
    return [paired[i] for i in range(len(want_names))]


def is_classifier_output(want: "ArrayLike") -> bool:
    """Whether a reference output reads as class probabilities: a class axis of size > 1, values
    in [0, 1] and rows that sum to 1 (a softmax)."""
    import numpy as np

    w = np.asarray(want, dtype="float64")
    if w.ndim < 2 or w.shape[-1] < 2 or w.size == 0 or not np.all(np.isfinite(w)):
        return False
    return bool(w.min() >= 0.0 and w.max() <= 1.0 and np.allclose(w.sum(axis=-1), 1.0, atol=1e-3))


def non_finite(got: "ArrayLike", want: "ArrayLike") -> int:
    """How many values are inf or NaN in ``got`` where the reference ``want`` is finite (overflow)."""
    import numpy as np

    g = np.asarray(got, dtype="float64")
    w = np.asarray(want, dtype="float64")
    if g.shape != w.shape:
        return int(np.count_nonzero(~np.isfinite(g)))
    return int(np.count_nonzero(~np.isfinite(g) & np.isfinite(w)))
