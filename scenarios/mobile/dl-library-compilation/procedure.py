"""Building the LiteRT runtime from source: a known gap of this harness.

The documented procedure (CMake or Bazel) clones the TensorFlow/LiteRT sources and, at configure
time, downloads their third-party dependencies (abseil, eigen, flatbuffers, ruy, XNNPACK, ...)
from GitHub.  This machine reaches package registries only, and the project does not ship
someone else's sources or a recipe that builds them.  Both variants therefore check the
procedure's prerequisites for real and stop with what they found; the scenario is a strict xfail
whose reason says why.  The prebuilt runtimes it would replace are exercised by
``usage-of-prebuilt-libraries`` (x86-64 and aarch64 wheels) and ``build-configuration``.
"""

from __future__ import annotations

import shutil

from harness.errors import SetupError
from harness.scenario import Figure, Raises, Run, Scenario, succeeds

GAP = ("building LiteRT needs its sources and, at configure time, third-party sources from GitHub "
       "(CMake FetchContent / Bazel http_archive); this machine reaches package registries only, "
       "so no build can run here, and none is faked")


def check_prerequisites(run: Run) -> None:
    """What the documented procedure needs first: a build tool and the LiteRT source tree."""
    found = {tool: shutil.which(tool) for tool in ("cmake", "bazel", "bazelisk", "g++")}
    run.note("tools", found)
    sources = [p for p in (run.workdir / "tensorflow_src", run.workdir / "litert") if p.is_dir()]
    run.note("source_trees", [str(p) for p in sources])
    raise SetupError("cannot build LiteRT here: " + GAP,
                     evidence=f"tools on PATH: {found}; source trees: {sources or 'none'}",
                     hint="use the prebuilt ai-edge-litert wheels, or build on a machine with network access")


def faulty(run: Run) -> None:
    check_prerequisites(run)


def fixed(run: Run) -> None:
    check_prerequisites(run)


SCENARIO = Scenario(
    title="Building the LiteRT library from source (documented limitation)",
    targets=("litert",),
    faulty=faulty,
    fixed=fixed,
    # What a custom build would cure (see usage-of-prebuilt-libraries); not judged here: known_gap.
    symptom=Raises(r"Make sure you apply/link the Flex delegate before inference", runtime="litert"),
    remedy=succeeds(Figure("built_library_bytes", ">", 0)),
    cause="Apps that need ops or delegates the prebuilt runtime lacks (Flex, custom kernels, a "
          "selective build that keeps only the model's ops) must build LiteRT themselves: a long "
          "Bazel or CMake build whose configure step downloads many third-party repositories, "
          "with toolchain and NDK versions that must match the sources.",
    fix="Prefer the prebuilt runtimes (Maven/CocoaPods/pip `ai-edge-litert`); when a custom build "
        "is unavoidable, follow the CMake or Bazel guide on a machine with network access, pin "
        "the source revision to the converter's TF version, and use selective builds to keep the "
        "binary small.",
    references=("https://ai.google.dev/edge/litert/build/cmake",
                "https://github.com/tensorflow/tensorflow/issues/71564"),
    known_gap=GAP,
)
