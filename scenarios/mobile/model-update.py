"""A model update is downloaded, but the app keeps predicting with the interpreter it cached.

The app loads its model once and keeps the interpreter (as apps do, since building one costs
time).  An update then replaces the model file on disk, atomically, as it should.  Without a
version check nothing tells the cached interpreter: it keeps answering with the old weights
(and on Linux and Android the old, memory-mapped file stays readable after the rename, so
nothing fails either).  The fix compares the installed model's version with the loaded one
before predicting and rebuilds the interpreter when they differ.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite

OLD = ModelSpec("dense", "keras3", seed=0)
NEW = ModelSpec("dense", "keras3", seed=1, epochs=1)  # an update that changes the answers clearly


def install(model: Path, app_dir: Path, version: int) -> None:
    """The updater: write the new file beside the old one, then rename both into place."""
    tmp = app_dir / "model.tflite.part"
    tmp.write_bytes(model.read_bytes())
    os.replace(tmp, app_dir / "model.tflite")
    (app_dir / "model.part.json").write_text(json.dumps({"version": version}))
    os.replace(app_dir / "model.part.json", app_dir / "model.json")


class CachedModel:
    """The app's model holder: one interpreter, built on first use."""

    def __init__(self, app_dir: str, check_version: bool) -> None:
        self.app_dir = Path(app_dir)
        self.check_version = check_version
        self.interp: Any = None
        self.version: int | None = None
        self.loads = 0

    def installed_version(self) -> int:
        return int(json.loads((self.app_dir / "model.json").read_text())["version"])

    def predict(self, x: Any) -> Any:
        from ai_edge_litert.interpreter import Interpreter

        if self.interp is None or (self.check_version and self.installed_version() != self.version):
            self.version = self.installed_version()
            self.interp = Interpreter(model_path=str(self.app_dir / "model.tflite"))
            self.loads += 1
        detail = self.interp.get_input_details()[0]
        self.interp.resize_tensor_input(detail["index"], list(x.shape))
        self.interp.allocate_tensors()
        self.interp.set_tensor(detail["index"], x)
        self.interp.invoke()
        return self.interp.get_tensor(self.interp.get_output_details()[0]["index"])


def app_session(app_dir: str, new_model: str, x: Any, check_version: bool) -> dict[str, Any]:
    """In the LiteRT worker: predict, let the updater install version 2, predict again."""
    app = CachedModel(app_dir, check_version)
    before = app.predict(x)
    install(Path(new_model), Path(app_dir), version=2)
    after = app.predict(x)
    return {"before": before, "after": after, "loads": app.loads, "version_used": app.version}


def _session(run: Run, check_version: bool) -> dict[str, float]:
    import numpy as np

    old, new = (convert_to_tflite(run.cache, saved_model(run.cache, s)) for s in (OLD, NEW))
    app_dir = run.workdir / "app"
    app_dir.mkdir()
    install(old, app_dir, version=1)
    x, old_expected = trained_model(run.cache, OLD).probe()
    # What a freshly started app answers with version 2 (the probe of NEW uses other inputs).
    new_expected = run.target.predict(new, [x], resize=True)[0]
    got = run.target.call(app_session, str(app_dir), str(new), x, check_version)
    run.note("interpreter_loads", got["loads"])
    run.note("installed_model_bytes_equal_new", (app_dir / "model.tflite").read_bytes() == new.read_bytes())
    after = np.asarray(got["after"])
    return {"old_vs_new_model_max_diff": float(np.max(np.abs(old_expected - new_expected))),
            "after_update_vs_old_model": float(np.max(np.abs(after - old_expected))),
            "after_update_vs_new_model": float(np.max(np.abs(after - new_expected)))}


def faulty(run: Run) -> dict[str, float]:
    return _session(run, check_version=False)


def fixed(run: Run) -> dict[str, float]:
    return _session(run, check_version=True)


SCENARIO = Scenario(
    title="Updated model file on disk, stale cached interpreter in the app",
    targets=("litert",),
    faulty=faulty,
    fixed=fixed,
    symptom=succeeds(Figure("old_vs_new_model_max_diff", ">", 0.05),
                     Figure("after_update_vs_old_model", "<=", 1e-5),
                     Figure("after_update_vs_new_model", ">", 0.05)),
    remedy=succeeds(Figure("old_vs_new_model_max_diff", ">", 0.05),
                    Figure("after_update_vs_new_model", "<=", 1e-5)),
    cause="An app builds its interpreter once and keeps it. A model update that replaces the "
          "file (correctly, by rename) does not reach the interpreter already in memory: it holds "
          "the old model's mapping, which stays valid after the rename, so the app silently keeps "
          "serving the old model until it restarts, and nothing reports an error.",
    fix="Give every model a version (a manifest written after the file, or its hash), compare "
        "the installed version with the loaded one before predicting (or on an update "
        "notification), and rebuild the interpreter when it changed. Write updates to a "
        "temporary file and rename it into place, never overwrite a mapped file in place. "
        "Firebase's model downloader and Play's asset delivery follow this pattern.",
    references=("https://firebase.google.com/docs/ml/android/use-custom-models",
                "https://developer.android.com/guide/playcore/asset-delivery"),
)
