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
from typing import TYPE_CHECKING, Any, NamedTuple

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.litert.target import LitertTarget

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
    """The app's model holder: one interpreter, built on first use and kept (the mistake)."""

    def __init__(self, app_dir: str) -> None:
        self.app_dir = Path(app_dir)
        self.interp: Any = None
        self.version: int | None = None
        self.loads = 0

    def installed_version(self) -> int:
        return int(json.loads((self.app_dir / "model.json").read_text())["version"])

    def needs_load(self) -> bool:
        return self.interp is None

    def predict(self, x: Any) -> Any:
        from ai_edge_litert.interpreter import Interpreter

        if self.needs_load():
            self.version = self.installed_version()
            self.interp = Interpreter(model_path=str(self.app_dir / "model.tflite"))
            self.loads += 1
        detail = self.interp.get_input_details()[0]
        self.interp.resize_tensor_input(detail["index"], list(x.shape))
        self.interp.allocate_tensors()
        self.interp.set_tensor(detail["index"], x)
        self.interp.invoke()
        return self.interp.get_tensor(self.interp.get_output_details()[0]["index"])


class VersionCheckedModel(CachedModel):
    """The fix: before predicting, compare the installed version with the loaded one."""

    def needs_load(self) -> bool:
        return self.interp is None or self.installed_version() != self.version


def app_session(app: CachedModel, new_model: str, x: Any) -> dict[str, Any]:
    """In the LiteRT worker: predict, let the updater install version 2, predict again."""
    before = app.predict(x)
    install(Path(new_model), app.app_dir, version=2)
    after = app.predict(x)
    return {"before": before, "after": after, "loads": app.loads, "version_used": app.version}


def session_keeping_the_interpreter(app_dir: str, new_model: str, x: Any) -> dict[str, Any]:
    return app_session(CachedModel(app_dir), new_model, x)


def session_checking_the_version(app_dir: str, new_model: str, x: Any) -> dict[str, Any]:
    return app_session(VersionCheckedModel(app_dir), new_model, x)


class Update(NamedTuple):
    app_dir: Path
    new_model: Path
    x: "np.ndarray"
    old_expected: "np.ndarray"
    new_expected: "np.ndarray"


def installed_app(run: Run[LitertTarget]) -> Update:
    """Version 1 installed in the app directory; version 2 converted, waiting for the updater."""
    old, new = (convert_to_tflite(run.cache, saved_model(run.cache, s)) for s in (OLD, NEW))
    app_dir = run.workdir / "app"
    app_dir.mkdir()
    install(old, app_dir, version=1)
    x, old_expected = trained_model(run.cache, OLD).probe()
    # What a freshly started app answers with version 2 (the probe of NEW uses other inputs).
    new_expected = run.target.predict(new, [x], resize=True)[0]
    return Update(app_dir, new, x, old_expected, new_expected)


def figures(run: Run[LitertTarget], update: Update, got: dict[str, Any]) -> dict[str, float]:
    run.note("interpreter_loads", got["loads"])
    run.note("installed_model_bytes_equal_new",
             (update.app_dir / "model.tflite").read_bytes() == update.new_model.read_bytes())
    return {"old_vs_new_model_max_diff": max_abs_diff(update.old_expected, update.new_expected),
            "after_update_vs_old_model": max_abs_diff(got["after"], update.old_expected),
            "after_update_vs_new_model": max_abs_diff(got["after"], update.new_expected)}


def faulty(run: Run[LitertTarget]) -> dict[str, float]:
    update = installed_app(run)
    got = run.target.call(session_keeping_the_interpreter, str(update.app_dir), str(update.new_model), update.x)
    return figures(run, update, got)


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    update = installed_app(run)
    got = run.target.call(session_checking_the_version, str(update.app_dir), str(update.new_model), update.x)
    return figures(run, update, got)


SCENARIO = Scenario(
    title="Updated model file on disk, stale cached interpreter in the app",
    targets=("litert",),
    figures={"after_update_vs_new_model": "parity", "after_update_vs_old_model": "parity",
             "old_vs_new_model_max_diff": "parity"},
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
