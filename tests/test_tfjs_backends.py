"""The tf.js backend table drives the page, the browsers, the option check, the bundles and the check.

Adding a backend is its entry in ``harness/targets/tfjs/backends.py`` plus its npm package: the
tests below hold that true (no other harness module names a backend the table adds; a made-up entry
is picked up by page, browser flags, options and check) and run the WebGPU backend for real.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.artifacts import ArtifactCache
from harness.compare import TOLERANCES, parity, tolerance_for
from harness.errors import HarnessError, RuntimeFailure, UsageError
from harness.models import ModelSpec, trained_model
from harness.targets.base import ModelSource
from harness.targets.tfjs import backends
from harness.targets.tfjs.backends import (CHECK_BACKENDS_ENV, TABLE, VARIANTS, Bundle, TfjsBackend, backend_named,
                                           browser_flags, check_backends, lib_mounts, npm_packages, page_scripts)
from harness.targets.tfjs.page import index_html
from harness.targets.tfjs.target import TfjsTarget
from test_tfjs_target import target  # noqa: F401  # the session's browser target, as scenarios get it

ROOT = Path(__file__).resolve().parents[1]
WEBGPU = "webgpu"


# ---------------------------------------------------------------------------- the table (no browser)

def test_table_entries_are_consistent() -> None:
    names = [b.name for b in TABLE]
    assert len(set(names)) == len(names) and backends.DEFAULT_BACKEND in names
    assert backends.BACKENDS == tuple(names)
    for backend in TABLE:
        assert backend.tolerance in TOLERANCES, backend
        assert backend_named(backend.name) is backend
        assert browser_flags(backend)[:len(backends.COMMON_BROWSER_FLAGS)] == backends.COMMON_BROWSER_FLAGS
    assert [b.name for b in check_backends()] == [b.name for b in (*TABLE, *VARIANTS) if b.in_check]
    for variant in VARIANTS:  # a variant runs a backend of the table, in its browser, with its flags set first
        runs = backend_named(variant.tfjs_name)
        assert runs in TABLE and variant.name not in backends.BACKENDS and browser_flags(variant) == browser_flags(runs)
        assert variant.env_flags and backend_named(variant.name) is variant and variant.tolerance in TOLERANCES
        assert all(f"tf.env().set({json.dumps(k)}, {json.dumps(v)});" in variant.env_js() for k, v in variant.env_flags)
    with pytest.raises(UsageError, match=r"unknown tf.js backend 'metal': use one of cpu, "):
        backend_named("metal")


def test_table_and_package_json_name_the_same_npm_packages_at_one_version() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert sorted(package["dependencies"]) == sorted(npm_packages())
    versions = {package["dependencies"][name] for name in npm_packages()}
    assert len(versions) == 1, package["dependencies"]  # pinned exactly, one tf.js release for all bundles
    for name in npm_packages():
        assert lock["packages"][f"node_modules/{name}"]["version"] == package["dependencies"][name]
        assert lock["packages"][""]["dependencies"][name] == package["dependencies"][name]


def test_only_the_table_names_the_webgpu_backend() -> None:
    """The diff that added WebGPU touched the table and the bundle, nothing else of the harness."""
    pattern = re.compile(WEBGPU, re.I)
    naming = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "harness").rglob("*")
                    if p.is_file() and p.suffix in (".py", ".html", ".js", ".yaml", ".toml", ".json")
                    and pattern.search(p.read_text(encoding="utf-8", errors="replace")))
    assert naming == ["harness/targets/tfjs/backends.py"]
    entry = backend_named(WEBGPU)
    assert entry.bundle is not None and entry.bundle.package == "@tensorflow/tfjs-backend-webgpu"
    assert entry.bundle.package in json.loads((ROOT / "package.json").read_text())["dependencies"]


def test_bad_check_backends_variable_is_one_line_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHECK_BACKENDS_ENV, "cpu, webgpu")
    assert [b.name for b in check_backends()] == ["cpu", WEBGPU]
    monkeypatch.setenv(CHECK_BACKENDS_ENV, "cpu,metal")
    with pytest.raises(UsageError) as info:
        check_backends()
    assert str(info.value).startswith(f"{CHECK_BACKENDS_ENV}: unknown tf.js backend 'metal'") and "\n" not in str(info.value)


def test_unknown_backend_option_is_refused_before_a_browser_starts() -> None:
    target = TfjsTarget()  # never activated: the option check comes first
    with pytest.raises(UsageError, match=r"^tfjs option backend='metal' is not one of cpu, wasm, webgl, webgpu, webgl-f16$"):
        target.load_impl(None, {"backend": "metal"})  # type: ignore[arg-type]  # refused before the model is read


# ---------------------------------------------------------------------------- a made-up backend entry

MADE_UP_JS = b"""// A backend with cpu's kernels under another name, as a backend package registers itself.
(() => {
  for (const k of tf.getKernelsForBackend('cpu')) tf.registerKernel({...k, backendName: 'madeup'});
  const Cpu = tf.findBackend('cpu').constructor;
  tf.registerBackend('madeup', () => new Cpu(), 0);
})();
"""


@pytest.fixture()
def made_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> TfjsBackend:
    """One more entry in the table: its bundle in a node_modules of its own, a flag of its own."""
    for name in npm_packages():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).symlink_to(backends.NODE_MODULES / name)
    dist = tmp_path / "@example" / "tfjs-backend-madeup" / "dist"
    dist.mkdir(parents=True)
    (dist / "madeup.min.js").write_bytes(MADE_UP_JS)
    entry = TfjsBackend("madeup", "cpu kernels under another name",
                        bundle=Bundle("@example/tfjs-backend-madeup", ("madeup.min.js",)),
                        setup_js="window.__madeupPrefix = prefix;",
                        browser_flags=("--disable-gpu", "--user-agent=pitfalls-madeup"),
                        tolerance="int8")
    monkeypatch.setattr(backends, "NODE_MODULES", tmp_path)
    monkeypatch.setattr(backends, "TABLE", (*TABLE, entry))
    return entry


def test_a_made_up_entry_reaches_mounts_scripts_flags_and_the_check(made_up: TfjsBackend,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert lib_mounts()["/lib/tfjs-backend-madeup/"] == backends.NODE_MODULES / "@example/tfjs-backend-madeup/dist"
    assert "@example/tfjs-backend-madeup" in npm_packages()
    assert page_scripts(made_up) == ("/lib/tfjs/tf.min.js", "/lib/tfjs-backend-madeup/madeup.min.js")
    assert '<script src="/lib/tfjs-backend-madeup/madeup.min.js"></script>' in index_html(made_up)
    assert "madeup" not in index_html(backend_named("cpu"))  # another browser: its bundle stays out
    assert browser_flags(made_up)[-2:] == ("--disable-gpu", "--user-agent=pitfalls-madeup")
    from harness.targets.tfjs import target as tfjs_target

    tfjs_target._check_options({"backend": "madeup"})  # the load option accepts it, as it refuses "metal"
    # the check's tf.js path: one load per entry, with the entry's tolerance path
    from harness.targets import target_checks

    declaration = target_checks("tfjs")
    assert declaration is not None and declaration.loads is not None
    loads = declaration.loads(None)  # type: ignore[arg-type]  # the loads depend on the table only
    madeup = next(load for load in loads if load.label == "tfjs@madeup")
    assert (madeup.tolerance, madeup.options) == ("int8", {"backend": "madeup"})
    assert [load.label for load in loads] == [f"tfjs@{b.name}" for b in (*backends.TABLE, *VARIANTS) if b.in_check]


def test_a_made_up_entry_gets_its_page_browser_and_setup(target: TfjsTarget, made_up: TfjsBackend) -> None:
    with target.page(backend="madeup") as page:
        assert page.evaluate("() => [tf.getBackend(), window.__madeupPrefix, navigator.userAgent]") == [
            "madeup", "/lib/tfjs-backend-madeup/", "pitfalls-madeup"]  # its setup ran, in a browser with its flags
        assert page.evaluate("async () => tf.tensor([1, 2, 3]).sum().array()") == 6
        with pytest.raises(HarnessError, match="runs in a browser with other flags"):
            page.use_backend("wasm")
    with target.page(backend="cpu") as page:  # the shared browser has neither its flag nor its bundle
        assert page.evaluate("() => [navigator.userAgent === 'pitfalls-madeup', typeof window.__madeupPrefix]") == [False, "undefined"]


# ---------------------------------------------------------------------------- WebGPU for real

def test_webgpu_page_has_an_adapter_and_a_device(target: TfjsTarget) -> None:
    with target.page(backend=WEBGPU) as page:
        found = page.evaluate("""async () => {
          const adapter = await navigator.gpu.requestAdapter();
          const device = await adapter.requestDevice();
          return {backend: tf.getBackend(), architecture: adapter.info.architecture, device: !!device.queue,
                  kernels: tf.getKernelsForBackend('webgpu').length, cpuKernels: tf.getKernelsForBackend('cpu').length};
        }""")
        assert found == {"backend": WEBGPU, "architecture": "swiftshader", "device": True, "kernels": 162,
                         "cpuKernels": 172}
        page.goto("about:blank")  # no secure origin, no WebGPU
        assert page.evaluate("() => 'gpu' in navigator") is False
    with target.page(backend=None) as page:  # the shared browser: no WebGPU bundle, no adapter asked for
        assert not any("webgpu" in s for s in page.evaluate("() => [...document.scripts].map((s) => s.src)"))


def test_webgpu_lacks_kernels_and_tfjs_says_which(target: TfjsTarget) -> None:
    with target.page(backend=WEBGPU) as page:
        missing = page.evaluate("""() => {
          const here = new Set(tf.getKernelsForBackend('webgpu').map((k) => k.kernelName));
          return tf.getKernelsForBackend('cpu').map((k) => k.kernelName).filter((k) => !here.has(k)).sort(); }""")
        assert "Unique" in missing and all(re.match(r"(Ragged|Sparse|String|Unique|StaticRegex|BitwiseAnd|NonMaxSuppressionV4)", k)
                                           for k in missing), missing
        with pytest.raises(RuntimeFailure, match=r"Kernel 'Unique' not registered for backend 'webgpu'"):
            page.evaluate("async () => tf.unique(tf.tensor1d([1, 2, 1])).values.array()")


def test_webgpu_predicts_like_cpu_within_its_tolerance(target: TfjsTarget, pitfalls_cache: ArtifactCache) -> None:
    trained = trained_model(pitfalls_cache, ModelSpec("dense", "keras3"))
    prepared = target.prepare(ModelSource.from_trained(trained), pitfalls_cache)
    x, want = trained.probe()
    outputs = {}
    for name in ("cpu", WEBGPU):
        with target.load(prepared, options={"backend": name}) as deployed:
            assert deployed.page.evaluate("() => tf.getBackend()") == name
            outputs[name] = next(iter(deployed.predict({"input_layer": x}).values()))
    tolerance = tolerance_for(backend_named(WEBGPU).tolerance)
    assert parity(outputs[WEBGPU], outputs["cpu"]).within(tolerance)
    assert parity(outputs[WEBGPU], want).within(tolerance)


def _unique_saved_model(cache: ArtifactCache) -> Path:
    """A SavedModel whose graph holds the ``Unique`` op (tf.js has a cpu kernel for it, none on WebGPU)."""
    from harness.artifacts import library_versions

    def build(out: Path) -> None:
        import tensorflow as tf

        class Coded(tf.Module):
            def __init__(self) -> None:
                self.w = tf.Variable(tf.random.stateless_normal((4, 2), seed=(1, 2)))

            @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32, name="x")])
            def serve(self, x: Any) -> Any:
                idx = tf.unique(tf.reshape(x, [-1])).idx  # each value's first position: the Unique op
                return {"y": tf.matmul(tf.reshape(tf.cast(idx, tf.float32), tf.shape(x)), self.w)}

        module = Coded()
        tf.saved_model.save(module, str(out / "saved_model"), signatures={"serving_default": module.serve})

    key = {"model": "unique-op", "versions": library_versions("tensorflow")}
    return cache.get_or_build("test_unique_saved_model", key, build) / "saved_model"


@pytest.mark.slow
def test_check_on_webgpu_quotes_tfjs_for_a_kernel_it_lacks(target: TfjsTarget, pitfalls_cache: ArtifactCache,
                                                           pitfalls_check: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHECK_BACKENDS_ENV, f"cpu,{WEBGPU}")
    report = pitfalls_check(_unique_saved_model(pitfalls_cache), targets=["tfjs"], cache=pitfalls_cache, progress=None)
    tfjs = report.targets["tfjs"]
    assert [(f.step, f.text, f.verified) for f in tfjs.findings] == [
        (f"predict tfjs@{WEBGPU}", f"Error: Kernel 'Unique' not registered for backend '{WEBGPU}'", "runtime")]
    assert "tfjs@cpu.first_predict_s" in tfjs.figures  # the same model ran on cpu, within its tolerance (no finding)
