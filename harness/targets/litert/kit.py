"""Helpers the LiteRT scenarios use, in the pytest process or inside a worker.

numpy only (imported lazily), never TensorFlow: a function a scenario runs in the LiteRT worker
(``run.target.call(fn, ...)``) may import this module.  The device profiles are re-exported
from :mod:`harness.targets.litert.profiles` so that a scenario imports its helpers from one place.

The in-worker API, for a function a scenario runs on the device side with ``run.target.call``
(re-exported from :mod:`harness.targets.litert.worker`, which a scenario does not import):
:func:`interpreter` (a LiteRT ``Interpreter`` as the profile builds it) and :func:`predict`
(set every input, invoke, read every output; ``resize``/``batch`` as app code resizes inputs).
"""

from __future__ import annotations

from typing import Any

from harness.targets.litert.profiles import PROFILES, DeviceProfile
from harness.targets.litert.worker import interpreter, predict


def quantize(x: Any, detail: dict[str, Any]) -> Any:
    """Real values to the integer type of a quantized tensor: ``q = round(x / scale) + zero_point``.

    ``detail`` is an entry of ``get_input_details()`` (or ``LitertTarget.inspect``'s plain copy).
    """
    import numpy as np

    scale, zero_point = detail["quantization"]
    dtype = np.dtype(detail["dtype"])
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(x) / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: Any, detail: dict[str, Any]) -> Any:
    """Integer values of a quantized tensor back to reals: ``x = (q - zero_point) * scale``."""
    import numpy as np

    scale, zero_point = detail["quantization"]
    return ((np.asarray(q).astype("float32") - zero_point) * scale).astype("float32")


def resize_bilinear(images: Any, height: int, width: int) -> Any:
    """Bilinear resize of an NHWC batch with half-pixel centres (what a device image library does).

    Numpy only, so that device-side preprocessing runs in the worker without TensorFlow.  Halving
    a size averages each 2x2 block exactly.
    """
    import numpy as np

    x = np.asarray(images, dtype="float32")

    def taps(out: int, size: int) -> tuple[Any, Any, Any]:
        src = np.clip((np.arange(out) + 0.5) * size / out - 0.5, 0, size - 1)
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, size - 1), (src - lo).astype("float32")

    y0, y1, fy = taps(height, x.shape[1])
    x0, x1, fx = taps(width, x.shape[2])
    fx = fx[None, None, :, None]
    rows0 = x[:, y0][:, :, x0] * (1 - fx) + x[:, y0][:, :, x1] * fx
    rows1 = x[:, y1][:, :, x0] * (1 - fx) + x[:, y1][:, :, x1] * fx
    fy = fy[None, :, None, None]
    return (rows0 * (1 - fy) + rows1 * fy).astype("float32")


__all__ = ["DeviceProfile", "PROFILES", "dequantize", "interpreter", "predict", "quantize", "resize_bilinear"]
