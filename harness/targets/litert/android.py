"""Android LiteRT builds: the Gradle build files of an app, its ``.tflite`` assets and the code that opens them.

Found by content: a ``build.gradle``/``build.gradle.kts`` that applies an Android plugin
(``com.android.application``/``com.android.library``) or holds an ``android { }`` block, and the
``.tflite`` files of the project.  Static (the build files are parsed as text, never run by Gradle):
``.tflite`` assets the build compresses (no ``noCompress`` for ``tflite`` with an Android Gradle
plugin older than 4.1, which is when ``tflite`` joined the default list), the declared TF Lite runtime
against the ``min_runtime_version`` each asset records, Select-TF-ops (``Flex*``) models without the
select-tf-ops dependency, ABI filters without ``arm64-v8a``, and asset names the code opens that the
app does not ship.  Each ``.tflite`` is read as a flatbuffer with LiteRT's own schema
(``ai_edge_litert.schema_py_generated``) within a size limit.

Verified: each asset (a copy in the run's work directory) is loaded and invoked on zeros in the LiteRT
interpreter, in the LiteRT target's worker process (never in this process); its error is reported
in the interpreter's words, with the catalog lesson the text matches.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.configcheck.files import ProjectFiles, line_of
from harness.configcheck.rules import ConfigRule

if TYPE_CHECKING:
    from harness.check.report import Finding

KIND = "litert"
TFLITE_BYTES = 512 << 20
#: the Android Gradle plugin release from which .tflite is in the default noCompress list
AGP_NO_COMPRESS_TFLITE = (4, 1)

S_BUILD = "mobile/dl-integration-into-projects/build-configuration"
S_VERSION = "mobile/dl-integration-into-projects/avoiding-version-incompatibility"
S_FLEX = "mobile/dl-library-compilation/usage-of-prebuilt-libraries/litert"
S_IMPORT = "mobile/dl-integration-into-projects/importing-loading-models"
S_ARM64 = "mobile/dl-library-compilation/usage-of-prebuilt-libraries/arm64"

RULES: dict[str, ConfigRule] = {r.id: r for r in (
    ConfigRule("litert/tflite-compressed", S_BUILD, "blocker",
               "Add `androidResources { noCompress += \"tflite\" }` (AGP 7+) or `aaptOptions { noCompress \"tflite\" }`, "
               "or build with the Android Gradle plugin 4.1 or newer.",
               "AssetManager.openFd: \"This file can not be opened as a file descriptor; it is probably "
               "compressed\"; the interpreter on the compressed bytes: \"The model is not a valid Flatbuffer buffer\""),
    ConfigRule("litert/runtime-older-than-model", S_VERSION, "blocker",
               "Depend on a TF Lite / LiteRT runtime at least as new as the model's min_runtime_version, or "
               "convert with the runtime's TF version.",
               "the interpreter: \"Didn't find op for builtin opcode '<op>' version '<v>'\""),
    ConfigRule("litert/flex-without-dependency", S_FLEX, "blocker",
               "Add the select-tf-ops dependency (org.tensorflow:tensorflow-lite-select-tf-ops or "
               "com.google.ai.edge.litert:litert-select-tf-ops), or convert with builtins only.",
               "the interpreter: \"Select TensorFlow op(s), included in the given model, is(are) not supported by "
               "this interpreter\""),
    ConfigRule("litert/abi-without-arm64", S_ARM64, "warning",
               "Include arm64-v8a in abiFilters: most devices are 64-bit, and the runtime's native library must "
               "match the device's ABI.", "Android loads only the native libraries of the ABIs the APK ships"),
    ConfigRule("litert/asset-missing", S_IMPORT, "blocker",
               "Put the model under src/main/assets/ with the name the code opens.",
               "AssetManager.open/openFd: java.io.FileNotFoundException: <name>"),
    ConfigRule("litert/not-a-flatbuffer", S_IMPORT, "blocker",
               "Ship the .tflite file byte for byte (no text-mode copy, no Git LFS pointer, no truncation).",
               "the interpreter: \"The model is not a valid Flatbuffer buffer\""),
    ConfigRule("litert/load-error", S_IMPORT, "blocker",
               "Read the interpreter's text: the asset did not load or run.",
               "the LiteRT interpreter's exception, in the LiteRT worker process"),
)}


@dataclass
class GradleBuild:
    file: str
    text: str
    agp_version: tuple[int, ...] | None
    runtime: tuple[str, tuple[int, ...]] | None  # (artifact, version)
    has_flex_dependency: bool
    no_compress_tflite: bool
    abi_filters: list[str]


@dataclass
class TfliteAsset:
    file: str
    min_runtime: tuple[int, ...] | None = None
    flex_ops: list[str] = field(default_factory=list)
    valid: bool = True


@dataclass
class AndroidApp:
    files: ProjectFiles
    builds: list[GradleBuild] = field(default_factory=list)
    assets: list[TfliteAsset] = field(default_factory=list)
    opened: list[tuple[str, int, str]] = field(default_factory=list)  # (code file, line, asset name)
    kind: str = KIND

    @property
    def pieces(self) -> dict[str, list[str]]:
        return {"gradle builds": [b.file for b in self.builds], ".tflite assets": [a.file for a in self.assets],
                "code opening assets": sorted({f"{f}:{n}" for f, n, _ in self.opened})}

    def static_findings(self) -> list[Finding]:
        return static_findings(self)

    def verify(self, progress: Any = None) -> list[Finding]:
        return verify(self, progress)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


AGP_PATTERNS = (r"com\.android\.tools\.build:gradle:([\d.]+)",
                r"id\s*\(?\s*['\"]com\.android\.(?:application|library)['\"]\s*\)?\s*version\s*['\"]([\d.]+)['\"]")
RUNTIME = re.compile(r"['\"](org\.tensorflow:tensorflow-lite|com\.google\.ai\.edge\.litert:litert):([\d.]+)['\"]")
OPENED = re.compile(r"(?:loadMappedFile\s*\(\s*[^,]+,\s*|openFd\s*\(\s*|\.open\s*\(\s*)\"([^\"]+\.tflite)\"")


def find_bundle(files: ProjectFiles) -> AndroidApp | None:
    app = AndroidApp(files)
    agp: tuple[int, ...] | None = None
    for name in files.files:
        base = posixpath.basename(name)
        if base in ("build.gradle", "build.gradle.kts", "settings.gradle", "settings.gradle.kts",
                    "libs.versions.toml"):
            text = files.read_text(name) or ""
            for pattern in AGP_PATTERNS:
                match = re.search(pattern, text)
                if match:
                    agp = _version(match.group(1))
            match = re.search(r"^agp\s*=\s*['\"]([\d.]+)['\"]", text, re.M)  # a version catalog
            if match:
                agp = _version(match.group(1))
    for name in files.files:
        base = posixpath.basename(name)
        if base in ("build.gradle", "build.gradle.kts"):
            text = files.read_text(name) or ""
            if not re.search(r"com\.android\.(application|library)|^\s*android\s*\{", text, re.M):
                continue
            runtime = RUNTIME.search(text)
            abi = re.search(r"abiFilters\s*(?:\+=|\.addAll\()?\s*(?:listOf\()?([^\n)]*)", text)
            app.builds.append(GradleBuild(
                name, text, agp, (runtime.group(1), _version(runtime.group(2))) if runtime else None,
                re.search(r"select-tf-ops", text) is not None,
                re.search(r"noCompress[^\n]*tflite", text) is not None,
                re.findall(r"['\"]([\w-]+)['\"]", abi.group(1)) if abi else []))
        elif name.endswith(".tflite"):
            app.assets.append(_read_asset(files, name))
        elif name.endswith((".java", ".kt")):
            text = files.read_text(name) or ""
            for match in OPENED.finditer(text):
                app.opened.append((name, line_of(text, match.start()), match.group(1)))
    return app if app.builds else None


def _read_asset(files: ProjectFiles, name: str) -> TfliteAsset:
    asset = TfliteAsset(name)
    size = files.size(name)
    if size is None or size > TFLITE_BYTES:
        return asset
    data = files.inside(name).read_bytes()
    if data[4:8] != b"TFL3":
        asset.valid = False
        return asset
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception:  # noqa: BLE001 - a damaged flatbuffer: the interpreter says what it is when verified
        asset.valid = False
        return asset
    for code in model.operatorCodes or []:
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        if custom and str(custom).startswith("Flex"):
            asset.flex_ops.append(str(custom))
    for entry in model.metadata or []:
        entry_name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if entry_name == "min_runtime_version" and model.buffers and entry.buffer < len(model.buffers):
            data = model.buffers[entry.buffer].data
            raw_bytes = data.tobytes() if hasattr(data, "tobytes") else bytes(data or b"")
            raw = raw_bytes.split(b"\0")[0].decode(errors="replace")
            if re.fullmatch(r"[\d.]+", raw):
                asset.min_runtime = _version(raw)
    return asset


def _shown(version: tuple[int, ...]) -> str:
    return ".".join(str(v) for v in version)


def static_findings(app: AndroidApp) -> list[Finding]:
    found: list[Finding] = []
    shipped = {posixpath.basename(a.file) for a in app.assets if "/assets/" in "/" + a.file}
    for build in app.builds:
        if app.assets and not build.no_compress_tflite and (build.agp_version is None
                                                            or build.agp_version < AGP_NO_COMPRESS_TFLITE):
            agp = _shown(build.agp_version) if build.agp_version else "an unknown version"
            found.append(RULES["litert/tflite-compressed"].finding(
                f"the build has no noCompress for tflite and uses the Android Gradle plugin {agp}: "
                f"{', '.join(a.file for a in app.assets)} would be compressed into the APK",
                file=build.file, severity=None if build.agp_version else "warning"))
        if build.runtime is not None and build.runtime[0] == "org.tensorflow:tensorflow-lite":
            match = RUNTIME.search(build.text)
            line = line_of(build.text, match.start()) if match else None
            for asset in app.assets:
                if asset.min_runtime and asset.min_runtime > build.runtime[1]:
                    found.append(RULES["litert/runtime-older-than-model"].finding(
                        f"{asset.file} records min_runtime_version {_shown(asset.min_runtime)}; the build depends on "
                        f"{build.runtime[0]}:{_shown(build.runtime[1])}", file=build.file, line=line))
        for asset in app.assets:
            if asset.flex_ops and not build.has_flex_dependency:
                found.append(RULES["litert/flex-without-dependency"].finding(
                    f"{asset.file} uses Select TF ops ({', '.join(sorted(set(asset.flex_ops)))}); the build has no "
                    "select-tf-ops dependency", file=build.file))
        if build.abi_filters and "arm64-v8a" not in build.abi_filters:
            match = re.search(r"abiFilters", build.text)
            found.append(RULES["litert/abi-without-arm64"].finding(
                f"abiFilters {build.abi_filters} leave out arm64-v8a", file=build.file,
                line=line_of(build.text, match.start()) if match else None))
    for asset in app.assets:
        if not asset.valid:
            found.append(RULES["litert/not-a-flatbuffer"].finding(
                f"{asset.file} does not start like a TF Lite flatbuffer (no TFL3 identifier) or does not parse",
                file=asset.file))
    for file, line, name in app.opened:
        if posixpath.basename(name) not in shipped:
            found.append(RULES["litert/asset-missing"].finding(
                f"the code opens the asset {name!r}; the app's assets are {sorted(shipped) or 'none'}",
                file=file, line=line))
    return found


def verify(app: AndroidApp, progress: Any = None) -> list[Finding]:
    """Load and invoke each asset in the LiteRT interpreter (the LiteRT target's worker process)."""
    import shutil

    import numpy as np

    from harness.check.rules import rule_for
    from harness.configcheck.files import copies_directory
    from harness.errors import NotApplicable, RuntimeFailure
    from harness.targets.litert.target import LitertTarget

    reason = LitertTarget.unavailable_reason()
    if reason:
        raise NotApplicable(f"LiteRT cannot run here: {reason}")
    if not app.assets:
        raise NotApplicable("the app ships no .tflite asset")
    findings: list[Finding] = []
    with copies_directory() as work, LitertTarget() as target:
        for index, asset in enumerate(app.assets):
            copy = work / f"asset{index}.tflite"
            shutil.copyfile(app.files.inside(asset.file), copy)
            source = f"LiteRT interpreter {target.versions().get('ai-edge-litert', '')} in the LiteRT worker process"
            try:
                details = target.inspect(copy)
                inputs = [np.zeros([max(int(d), 1) for d in i["shape"]], dtype=i["dtype"])
                          for i in details["inputs"]]
                target.predict(copy, inputs)
            except RuntimeFailure as exc:
                known = rule_for("litert", exc.message)
                findings.append(RULES["litert/load-error"].runtime_finding(
                    exc.message, file=asset.file, source=source, lesson=known.scenario if known else None,
                    fix=known.fix if known else ""))
                continue
            if progress:
                progress(f"litert: {asset.file} loaded and invoked")
    return findings
