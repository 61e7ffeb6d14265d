"""Saving for TF Serving with Keras 3: model.save('dir') refuses; model.export('dir') writes a SavedModel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import serve_versions

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")


def faulty(run: "Run[TfservingTarget]") -> None:
    model = trained_model(run.cache, SPEC).load()
    model.save(str(run.workdir / "models" / "model" / "1"))  # the TF 2.x tutorial line


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    x, expected = trained.probe()
    export_dir = run.workdir / "export"
    trained.load().export(str(export_dir), verbose=False)
    run.note("export_files", sorted(p.name for p in export_dir.iterdir()))
    server = serve_versions(run, {1: export_dir})
    got = server.predict({"instances": x.tolist()})["predictions"]
    return {"max_abs_diff": max_abs_diff(got, expected),
            "has_saved_model_pb": float((export_dir / "saved_model.pb").is_file())}


SCENARIO = Scenario(
    title="Keras 3 model.save('models/model/1') for TF Serving vs model.export",
    targets=("tfserving",),
    figures={"has_saved_model_pb": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Invalid filepath extension for saving\. Please add either a `\.keras` extension .*"
                   r"Use `model\.export\(filepath\)` if you want to export a SavedModel for use with "
                   r"TFLite/TFServing/etc\."),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5), Figure("has_saved_model_pb", ">=", 1)),
    cause="TF Serving loads SavedModel directories (saved_model.pb plus variables/) from "
          "<base>/<version>/. With TF 2.15 and earlier, model.save('models/model/1') wrote one; in "
          "Keras 3 (TF 2.16 and later) model.save only writes the Keras formats (.keras zip or "
          ".h5), and a path without one of those extensions is refused with a ValueError pointing "
          "to model.export.",
    fix="Export the serving artifact with model.export('models/model/1'): it writes a SavedModel "
        "with a serving_default signature, which the server loads, and whose predictions equal "
        "Keras's. Keep model.save('model.keras') for reloading in Keras.",
    references=("https://keras.io/api/models/model_saving_apis/export/",
                "https://keras.io/guides/migrating_to_keras_3/",
                "https://www.tensorflow.org/tfx/serving/serving_basic"),
)
