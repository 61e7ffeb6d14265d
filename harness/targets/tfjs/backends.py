"""tf.js backends as data: what each needs from the page, the browser and the comparison.

One :class:`TfjsBackend` per backend, as LiteRT has one ``DeviceProfile`` per device
(:mod:`harness.targets.litert.profiles`).  Everything that differs between backends comes from
this table and nowhere else:

* the bundles served from ``node_modules`` (:func:`lib_mounts`) and the script tags of the page
  (:func:`page_scripts`);
* the JavaScript a page runs before ``tf.setBackend`` (``setup_js``, e.g. the wasm binaries' folder);
* the Chromium flags (``browser_flags``): pages of backends with the same flags share one browser
  per test process, a backend with other flags gets a browser of its own (:func:`browser_flags`);
* the numeric path the check compares with (``tolerance``, a key of :data:`harness.compare.TOLERANCES`),
  whether ``pitfalls check`` runs the backend by default (``in_check``) and on how many rows of
  each further probe (``probe_rows``);
* the option names the target accepts (:data:`BACKENDS`) and the npm packages a version-matrix
  cell installs (:func:`npm_packages`).

A numeric variant of a backend (WebGL's half floats) is an entry of :data:`VARIANTS`: the backend
it runs and the tf.js environment flags the page sets first.

Adding a backend is one entry in :data:`TABLE` plus its npm package in ``package.json`` and
``package-lock.json`` (``docs/architecture.md``, "Where to add things").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError
from harness.paths import NODE_MODULES

#: Chromium flags every browser of the target gets, whatever the backend.
COMMON_BROWSER_FLAGS = ("--no-sandbox", "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--no-first-run", "--disable-quic")
#: No GPU process: WebGL runs on Chromium's in-process software GL (SwiftShader).
GPU_PROCESS_OFF = ("--disable-gpu",)
#: ``pitfalls check`` runs these backends instead of the table's defaults (comma-separated names).
CHECK_BACKENDS_ENV = "PITFALLS_TFJS_BACKENDS"


@dataclass(frozen=True)
class Bundle:
    """An npm package whose ``dist/`` folder is served at ``/lib/<name>/``, and the scripts of it a page loads."""

    package: str
    scripts: tuple[str, ...]

    @property
    def prefix(self) -> str:
        """The URL prefix the page loads the bundle from, e.g. ``/lib/tfjs-backend-wasm/``."""
        return f"/lib/{self.package.rsplit('/', 1)[-1]}/"

    @property
    def dist(self) -> Path:
        return NODE_MODULES / self.package / "dist"

    def missing(self) -> list[str]:
        """The scripts of this bundle that are not installed (empty when it can be served)."""
        return [str(self.dist / s) for s in self.scripts if not (self.dist / s).is_file()]


#: tf.js itself: the core, layers, converter and the cpu and webgl backends in one script.
CORE = Bundle("@tensorflow/tfjs", ("tf.min.js",))


@dataclass(frozen=True)
class TfjsBackend:
    """One tf.js backend: the name ``tf.setBackend`` takes and what it needs."""

    name: str
    summary: str
    #: its own bundle, loaded after tf.js (None: built into tf.min.js)
    bundle: Bundle | None = None
    #: statements run in the page before ``tf.setBackend(name)``; ``prefix`` is the bundle's URL prefix
    setup_js: str = ""
    #: Chromium flags the backend needs, on top of :data:`COMMON_BROWSER_FLAGS`
    browser_flags: tuple[str, ...] = GPU_PROCESS_OFF
    #: the numeric path its outputs are compared on (:func:`harness.compare.tolerance_for`)
    tolerance: str = "float32"
    #: whether ``pitfalls check`` runs it when :data:`CHECK_BACKENDS_ENV` does not say
    in_check: bool = True
    #: the rows of each further probe (wide, edge...) ``pitfalls check`` predicts on it (the sample's
    #: first rows are the same on every backend): fewer on a backend that takes seconds per row of a CNN
    probe_rows: int = 2
    #: a variant (:data:`VARIANTS`): the tf.js backend it runs (``tf.setBackend`` takes this name)
    runs: str | None = None
    #: tf.js environment flags the page sets before ``tf.setBackend`` (``tf.env().set(name, value)``)
    env_flags: tuple[tuple[str, bool], ...] = ()

    @property
    def tfjs_name(self) -> str:
        """The name ``tf.setBackend`` takes and ``tf.getBackend()`` answers."""
        return self.runs or self.name

    def env_js(self) -> str:
        """The statements that set :attr:`env_flags` (names and values are data: rendered as JSON)."""
        import json

        return "".join(f"tf.env().set({json.dumps(name)}, {json.dumps(value)});" for name, value in self.env_flags)

    @property
    def prefix(self) -> str:
        return self.bundle.prefix if self.bundle is not None else CORE.prefix

    def scripts(self) -> tuple[str, ...]:
        """The script URLs a page loads for this backend, after tf.js's own."""
        return tuple(self.bundle.prefix + s for s in self.bundle.scripts) if self.bundle is not None else ()


TABLE: tuple[TfjsBackend, ...] = (
    # plain JavaScript on one thread: about a second per row of a 224x224 CNN here
    TfjsBackend("cpu", "plain JavaScript kernels (tf.js's reference)", probe_rows=1),
    TfjsBackend("wasm", "WebAssembly kernels (XNNPACK); the .wasm binaries are fetched from the bundle's folder",
                bundle=Bundle("@tensorflow/tfjs-backend-wasm", ("tf-backend-wasm.min.js",)),
                setup_js="tf.wasm.setWasmPaths(prefix);"),
    # SwiftShader renders every shader on the CPU: seconds per row of a 224x224 CNN here, the longest
    # page of a check (MobileNetV2 224²: 18.7 s for 2 rows on a busy machine, against wasm's 0.6 s)
    TfjsBackend("webgl", "WebGL shaders on Chromium's software GL (SwiftShader), without a GPU process",
                tolerance="float16", probe_rows=1),
    # Chromium's WebGPU on SwiftShader's Vulkan: it needs the GPU process, so not --disable-gpu. The
    # adapter is only offered to secure contexts (the loopback page is one; about:blank has no
    # navigator.gpu).  The flags are those of tf.js's own CI (tfjs-backend-webgpu karma config).
    # Shaders are compiled per op and shape on a CPU: several times slower than webgl here, so check
    # runs it only when asked.
    TfjsBackend("webgpu", "WebGPU compute shaders on SwiftShader (Chromium's software Vulkan)",
                bundle=Bundle("@tensorflow/tfjs-backend-webgpu", ("tf-backend-webgpu.min.js",)),
                browser_flags=("--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader",
                               "--disable-vulkan-fallback-to-gl-for-testing"),
                in_check=False),
)
#: Numeric paths of a backend of :data:`TABLE`, run with tf.js environment flags: each is a path of
#: its own in ``pitfalls check`` and a ``backend`` option of the target, but not a tf.js backend (the
#: catalog's backend scenarios iterate :data:`TABLE`).
VARIANTS: tuple[TfjsBackend, ...] = (
    # WebGL with half-float textures, as on the phones whose GPU cannot render to float32 textures:
    # tf.js stores every intermediate in float16 (largest finite 65504). SwiftShader renders float32,
    # so without the flag the webgl backend here computes in float32; WEBGL_FORCE_F16_TEXTURES is
    # the flag tf.webgl.forceHalfFloat() sets (tfjs-backend-webgl flags_webgl.ts).
    # SwiftShader converts every half-float texture in software: the slowest backend per row here
    TfjsBackend("webgl-f16", "WebGL forced to half-float textures (WEBGL_FORCE_F16_TEXTURES), as on GPUs "
                "that render no float32", tolerance="float16", runs="webgl",
                env_flags=(("WEBGL_FORCE_F16_TEXTURES", True),), probe_rows=1),
)
BACKENDS: tuple[str, ...] = tuple(b.name for b in TABLE)  # the tf.js backends' names, for callers that list them
DEFAULT_BACKEND = "cpu"


def backend_names() -> tuple[str, ...]:
    """The names of the table's backends and variants, in its order (what the ``backend`` option takes)."""
    return tuple(b.name for b in (*TABLE, *VARIANTS))


def backend_named(name: str) -> TfjsBackend:
    """The backend called ``name``; a one-line :class:`UsageError` naming the known ones otherwise."""
    for backend in (*TABLE, *VARIANTS):
        if backend.name == name:
            return backend
    raise UsageError(f"unknown tf.js backend {name!r}: use one of {', '.join(backend_names())}")


def browser_flags(backend: TfjsBackend) -> tuple[str, ...]:
    """The Chromium command-line flags of the browser ``backend``'s pages run in."""
    return (*COMMON_BROWSER_FLAGS, *backend.browser_flags)


def same_browser(backend: TfjsBackend) -> tuple[TfjsBackend, ...]:
    """The backends whose pages share ``backend``'s browser (same flags): a page loads all their bundles."""
    return tuple(b for b in TABLE if b.browser_flags == backend.browser_flags)


def page_scripts(backend: TfjsBackend) -> tuple[str, ...]:
    """The script URLs of a page in ``backend``'s browser: tf.js, then the bundles of that browser's backends.

    A bundle of a backend the browser cannot run is left out: the webgpu bundle registers its backend
    with a higher priority than webgl's, and without an adapter its start-up fails in the console."""
    return (*(CORE.prefix + s for s in CORE.scripts), *(s for b in same_browser(backend) for s in b.scripts()))


def lib_mounts() -> dict[str, Path]:
    """URL prefix -> installed ``dist/`` folder of every bundle (tf.js's and the backends')."""
    return {bundle.prefix: bundle.dist for bundle in (CORE, *(b.bundle for b in TABLE if b.bundle is not None))}


def npm_packages() -> tuple[str, ...]:
    """The npm packages the page serves (one version for all, as ``package.json``)."""
    return (CORE.package, *(b.bundle.package for b in TABLE if b.bundle is not None))


def check_backends() -> tuple[TfjsBackend, ...]:
    """The backends ``pitfalls check`` runs: :data:`CHECK_BACKENDS_ENV` if set, else those ``in_check``."""
    chosen = os.environ.get(CHECK_BACKENDS_ENV, "").strip()
    if not chosen:
        return tuple(b for b in (*TABLE, *VARIANTS) if b.in_check)
    try:
        return tuple(backend_named(name.strip()) for name in chosen.split(",") if name.strip())
    except UsageError as exc:
        raise UsageError(f"{CHECK_BACKENDS_ENV}: {exc}") from None
