"""A model download cut short: the app loads a truncated ``.tflite`` file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import ByVersion, Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("dense", "keras3")


def _shipped_model(run: Run[LitertTarget]) -> tuple[Path, dict[str, object]]:
    """The converted model and the manifest the app ships with it (size and SHA-256)."""
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    data = tflite.read_bytes()
    return tflite, {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _download(source: Path, dest: Path, *, cut_at: float = 1.0) -> Path:
    """Copy the model as an interrupted download would leave it (``cut_at`` < 1 truncates)."""
    data = source.read_bytes()
    dest.write_bytes(data[: int(len(data) * cut_at)])
    return dest


def _verified(path: Path, manifest: dict[str, object]) -> bool:
    data = path.read_bytes()
    return len(data) == manifest["bytes"] and hashlib.sha256(data).hexdigest() == manifest["sha256"]


def with_damaged_weights(model: bytes) -> bytes:
    """The model with 16 bytes of its largest weight buffer zeroed: the structure stays valid."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    parsed = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    largest = max((b.data for b in parsed.buffers if b.data is not None), key=len)
    weights = np.asarray(largest, dtype=np.uint8).tobytes()
    at = model.find(weights)
    damaged = bytearray(model)
    damaged[at + 16: at + 32] = bytes(16)
    return bytes(damaged)


def faulty(run: Run[LitertTarget]) -> None:
    tflite, _ = _shipped_model(run)
    partial = _download(tflite, run.workdir / "model.tflite", cut_at=0.6)
    run.note("bytes_on_disk", partial.stat().st_size)
    x, _ = trained_model(run.cache, SPEC).probe()
    run.target.predict(partial, [x[:1]], profile=PROFILES["host"])  # no check before loading


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    tflite, manifest = _shipped_model(run)
    run.note("manifest", manifest)
    target = run.workdir / "model.tflite"
    attempts = 0
    rejected = 0
    for cut in (0.6, 1.0):  # the first download is cut short, the retry completes
        attempts += 1
        _download(tflite, target, cut_at=cut)
        if _verified(target, manifest):
            break
        rejected += 1
    x, expected = trained_model(run.cache, SPEC).probe()
    got = run.target.predict(target, [x], profile=PROFILES["host"], resize=True)[0]
    # Damage LiteRT cannot see: it runs the model and answers wrongly; the digest catches it.
    damaged = run.workdir / "damaged.tflite"
    damaged.write_bytes(with_damaged_weights(tflite.read_bytes()))
    wrong = run.target.predict(damaged, [x], profile=PROFILES["host"], resize=True)[0]
    return {"truncated_downloads_rejected": rejected, "attempts": attempts,
            "max_abs_diff": max_abs_diff(got, expected),
            "damaged_model_runs_with_max_abs_diff": max_abs_diff(wrong, expected),
            "damaged_model_rejected_by_digest": float(not _verified(damaged, manifest))}


SCENARIO = Scenario(
    title="A truncated model file is loaded without an integrity check",
    targets=("litert",),
    figures={"attempts": "exact", "damaged_model_rejected_by_digest": "exact",
             "damaged_model_runs_with_max_abs_diff": "parity", "max_abs_diff": "parity",
             "truncated_downloads_rejected": "exact"},
    faulty=faulty,
    fixed=fixed,
    # the version matrix: LiteRT 2.1.6 and later verify the truncated flatbuffer; 1.4.0 to 2.1.5
    # read it and fail on the op table they no longer find (run: 1.4.0, 2.0.3, 2.1.0, 2.1.3-2.1.6, 2.2.0, 2.3.0)
    symptom=ByVersion((("ai-edge-litert>=2.1.6", Raises(r"^The model is not a valid Flatbuffer buffer$", runtime="litert")),
                       ("ai-edge-litert<2.1.6", Raises(r"^Missing registration for opcode_index \d+", runtime="litert")))),
    remedy=succeeds(Figure("truncated_downloads_rejected", ">=", 1), Figure("max_abs_diff", "<=", 1e-5),
                    Figure("damaged_model_runs_with_max_abs_diff", ">", 1e-4),
                    Figure("damaged_model_rejected_by_digest", ">=", 1)),
    cause="Apps often download the model after installation or copy it out of the package at "
          "first start. An interrupted download or a partial copy leaves a shorter file; LiteRT "
          "verifies the flatbuffer when it builds the model and refuses it with 'The model is not "
          "a valid Flatbuffer buffer', which says nothing about why. Worse, damage that keeps the "
          "structure intact (bytes zeroed inside the weights) is not detected at all: the "
          "interpreter runs and returns wrong numbers (measured in the fixed variant).",
    fix="Ship a manifest with the model's size and SHA-256 digest (or use the store's asset "
        "delivery, which verifies it), check the file before building the interpreter, retry or "
        "fall back to the bundled model when the check fails, and package the model as an asset "
        "that the build copies unchanged.",
    references=("https://ai.google.dev/edge/litert/inference",
                "https://github.com/tensorflow/flutter-tflite/pull/139",
                "https://github.com/tensorflow/tensorflow/issues/23628",
                "https://developer.android.com/guide/playcore/asset-delivery"),
)
