"""Building an app against the prebuilt LiteRT library: link it, and let the loader find it.

The taxonomy node is "how to build the library".  Building the LiteRT runtime itself from source
(CMake or Bazel) is out of reach on this machine: the configure step downloads the sources and
their third-party dependencies from GitHub, which is not reachable here, and none of it is faked.
What is possible, and where many first native apps fail, is the other half of the documented
procedure: building a native app against the *prebuilt* library.  The ``ai-edge-litert`` wheel
ships ``ai_edge_litert/libLiteRt.so``, which exports the LiteRT C API (``LiteRtCreateEnvironment``,
``LiteRtCreateCompiledModel``, tensor buffers ...), but no headers; the small C program below
declares the few functions it calls itself, after the public headers ``litert/c/litert_*.h``.

* faulty: the program is built the way people first try.  ``cc app.c -o app`` fails at link
  time (ld: one ``undefined reference to `LiteRt...'`` per C API function, recorded); adding
  ``-L<dir> -lLiteRt`` links, but the binary does not record where the library lives, and the dynamic
  loader refuses to start it: ``error while loading shared libraries: libLiteRt.so: cannot open
  shared object file``.  Both texts are the toolchain's and the loader's own.
* fixed: linked with ``-L<dir> -lLiteRt -Wl,-rpath,<dir>``; the binary loads the wheel's library,
  runs the converted model on the probe batch (read from a file, written to a file) and its
  outputs match Keras and LiteRT's Python interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.errors import RuntimeFailure, SetupError
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("dense", "keras3")
TIMEOUT_S = 60.0
LIBRARY = "libLiteRt.so"

# The app declares the few LiteRT C API functions it calls (CompiledModel on the CPU), written
# after the public headers of google-ai-edge/LiteRT (litert/c/litert_common.h, litert_model.h,
# litert_environment.h, litert_options.h, litert_compiled_model.h, litert_tensor_buffer.h).
APP_C = r"""/* Runs a .tflite model on a batch of ROWS through the LiteRT C API (CompiledModel, CPU).
   usage: app MODEL INPUT.f32 OUTPUT.f32 ROWS */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Declarations written from the public headers litert/c/litert_{common,model,environment,
   options,compiled_model,tensor_buffer}.h; no header ships with the wheel. */
typedef int LiteRtStatus; /* 0 means ok */
typedef size_t LiteRtParamIndex;
typedef struct LiteRtEnvironmentT *LiteRtEnvironment;
typedef struct LiteRtModelT *LiteRtModel;
typedef struct LiteRtSignatureT *LiteRtSignature;
typedef struct LiteRtTensorT *LiteRtTensor;
typedef struct LiteRtOptionsT *LiteRtOptions;
typedef struct LiteRtCompiledModelT *LiteRtCompiledModel;
typedef struct LiteRtTensorBufferT *LiteRtTensorBuffer;
/* LiteRtRankedTensorType is a 72-byte plain struct: element type, then the layout
   (rank bit-field word, int32 dimensions[8], uint32 strides[8]). */
typedef struct { int32_t words[18]; } RankedTensorType;

enum { FLOAT32 = 1, CPU_ACCELERATOR = 1, HOST_MEMORY = 1, LOCK_READ = 0, LOCK_WRITE = 1 };

LiteRtStatus LiteRtCreateEnvironment(int num_options, const void *options, LiteRtEnvironment *env);
void LiteRtDestroyEnvironment(LiteRtEnvironment env);
LiteRtStatus LiteRtCreateModelFromFile(LiteRtEnvironment env, const char *path, LiteRtModel *model);
void LiteRtDestroyModel(LiteRtModel model);
LiteRtStatus LiteRtGetModelSignature(LiteRtModel model, LiteRtParamIndex index, LiteRtSignature *sig);
LiteRtStatus LiteRtGetSignatureInputTensorByIndex(LiteRtSignature sig, LiteRtParamIndex i, LiteRtTensor *t);
LiteRtStatus LiteRtGetSignatureOutputTensorByIndex(LiteRtSignature sig, LiteRtParamIndex i, LiteRtTensor *t);
LiteRtStatus LiteRtGetRankedTensorType(LiteRtTensor tensor, RankedTensorType *type);
LiteRtStatus LiteRtCreateOptions(LiteRtOptions *options);
void LiteRtDestroyOptions(LiteRtOptions options);
LiteRtStatus LiteRtSetOptionsHardwareAccelerators(LiteRtOptions options, int accelerators);
LiteRtStatus LiteRtCreateCompiledModel(LiteRtEnvironment env, LiteRtModel model, LiteRtOptions options,
                                       LiteRtCompiledModel *compiled);
void LiteRtDestroyCompiledModel(LiteRtCompiledModel compiled);
LiteRtStatus LiteRtCreateManagedTensorBuffer(LiteRtEnvironment env, int buffer_type,
                                             const RankedTensorType *type, size_t bytes,
                                             LiteRtTensorBuffer *buffer);
LiteRtStatus LiteRtLockTensorBuffer(LiteRtTensorBuffer buffer, void **host, int mode);
LiteRtStatus LiteRtUnlockTensorBuffer(LiteRtTensorBuffer buffer);
void LiteRtDestroyTensorBuffer(LiteRtTensorBuffer buffer);
LiteRtStatus LiteRtCompiledModelResizeInputTensor(LiteRtCompiledModel compiled, LiteRtParamIndex sig,
                                                  LiteRtParamIndex i, const int *dims, size_t rank);
LiteRtStatus LiteRtRunCompiledModel(LiteRtCompiledModel compiled, LiteRtParamIndex sig, size_t n_in,
                                    LiteRtTensorBuffer *in, size_t n_out, LiteRtTensorBuffer *out);

#define CHECK(call)                                                         \
  do {                                                                      \
    LiteRtStatus status_ = (call);                                          \
    if (status_ != 0) {                                                     \
      fprintf(stderr, "%s failed with LiteRtStatus %d\n", #call, status_); \
      return 1;                                                             \
    }                                                                       \
  } while (0)

/* The float32 tensor's type with every dynamic dimension (< 0) set to `batch`; returns its rank
   (-1 on error) and its size in bytes. */
static int batched_type(LiteRtTensor tensor, int batch, RankedTensorType *type, size_t *bytes) {
  if (LiteRtGetRankedTensorType(tensor, type) != 0 || type->words[0] != FLOAT32) return -1;
  int rank = type->words[1] & 0x7f;
  *bytes = sizeof(float);
  for (int d = 0; d < rank; ++d) {
    if (type->words[2 + d] < 0) type->words[2 + d] = batch;
    *bytes *= (size_t)type->words[2 + d];
  }
  return rank;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s MODEL INPUT OUTPUT ROWS\n", argv[0]);
    return 2;
  }
  long rows = strtol(argv[4], NULL, 10);
  LiteRtEnvironment env;
  LiteRtModel model;
  LiteRtSignature sig;
  LiteRtTensor in_tensor, out_tensor;
  LiteRtOptions options;
  LiteRtCompiledModel compiled;
  CHECK(LiteRtCreateEnvironment(0, NULL, &env));
  CHECK(LiteRtCreateModelFromFile(env, argv[1], &model));
  CHECK(LiteRtGetModelSignature(model, 0, &sig));
  CHECK(LiteRtGetSignatureInputTensorByIndex(sig, 0, &in_tensor));
  CHECK(LiteRtGetSignatureOutputTensorByIndex(sig, 0, &out_tensor));
  CHECK(LiteRtCreateOptions(&options));
  CHECK(LiteRtSetOptionsHardwareAccelerators(options, CPU_ACCELERATOR));
  CHECK(LiteRtCreateCompiledModel(env, model, options, &compiled));
  LiteRtDestroyOptions(options);
  RankedTensorType in_type, out_type;
  size_t in_bytes = 0, out_bytes = 0;
  int in_rank = batched_type(in_tensor, (int)rows, &in_type, &in_bytes);
  if (in_rank < 1 || batched_type(out_tensor, (int)rows, &out_type, &out_bytes) < 1) {
    fprintf(stderr, "expected float32 input and output tensors\n");
    return 1;
  }
  CHECK(LiteRtCompiledModelResizeInputTensor(compiled, 0, 0, &in_type.words[2], (size_t)in_rank));
  LiteRtTensorBuffer in_buf, out_buf;
  CHECK(LiteRtCreateManagedTensorBuffer(env, HOST_MEMORY, &in_type, in_bytes, &in_buf));
  CHECK(LiteRtCreateManagedTensorBuffer(env, HOST_MEMORY, &out_type, out_bytes, &out_buf));
  FILE *fin = fopen(argv[2], "rb");
  FILE *fout = fopen(argv[3], "wb");
  if (fin == NULL || fout == NULL) {
    perror("fopen");
    return 1;
  }
  void *host;
  CHECK(LiteRtLockTensorBuffer(in_buf, &host, LOCK_WRITE));
  size_t got = fread(host, 1, in_bytes, fin);
  CHECK(LiteRtUnlockTensorBuffer(in_buf));
  if (got != in_bytes) {
    fprintf(stderr, "read %zu of %zu input bytes\n", got, in_bytes);
    return 1;
  }
  CHECK(LiteRtRunCompiledModel(compiled, 0, 1, &in_buf, 1, &out_buf));
  CHECK(LiteRtLockTensorBuffer(out_buf, &host, LOCK_READ));
  size_t put = fwrite(host, 1, out_bytes, fout);
  CHECK(LiteRtUnlockTensorBuffer(out_buf));
  if (put != out_bytes) {
    perror("fwrite");
    return 1;
  }
  fclose(fin);
  fclose(fout);
  LiteRtDestroyTensorBuffer(in_buf);
  LiteRtDestroyTensorBuffer(out_buf);
  LiteRtDestroyCompiledModel(compiled);
  LiteRtDestroyModel(model);
  LiteRtDestroyEnvironment(env);
  printf("ran %ld rows: %zu input bytes, %zu output bytes\n", rows, in_bytes, out_bytes);
  return 0;
}
"""


def find_compiler(run: Run[LitertTarget]) -> str:
    """The C compiler on PATH (``cc``, else ``gcc``); skips the variant when there is none."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        run.skip("no C compiler on PATH (neither cc nor gcc): building a native app needs one")
    assert compiler is not None
    return compiler


def litert_library_dir() -> Path:
    """The directory of the wheel's ``libLiteRt.so``, found without importing LiteRT here."""
    from importlib.util import find_spec

    spec = find_spec("ai_edge_litert")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / LIBRARY).is_file():
            return Path(location)
    raise SetupError(f"{LIBRARY} not found in the ai_edge_litert package",
                     hint="install the ai-edge-litert wheel (see the README set-up)")


def _environment(run: Run[LitertTarget]) -> dict[str, str]:
    """A clean environment: no LD_LIBRARY_PATH (it would hide a missing rpath), temporaries in
    the work directory, and the C locale so that the tools' messages are stable."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env.update(TMPDIR=str(run.workdir), LC_ALL="C")
    return env


def _execute(run: Run[LitertTarget], argv: list[str]) -> subprocess.CompletedProcess[str]:
    run.note("commands", [*run.evidence.notes.get("commands", []), " ".join(argv)])
    # errors="replace": a tool may print bytes that are not UTF-8 (seen: LiteRT 2.1.0-2.1.5 quoting
    # the bytes it took for a path); its text is the evidence, not a reason for the harness to fail
    return subprocess.run(argv, cwd=run.workdir, env=_environment(run), capture_output=True,
                          text=True, errors="replace", timeout=TIMEOUT_S, check=False)


def build_app(run: Run[LitertTarget], link_flags: list[str]) -> subprocess.CompletedProcess[str]:
    """Compile and link ``app.c`` (written into the work directory) into ``app``."""
    source = run.workdir / "app.c"
    source.write_text(APP_C)
    argv = [find_compiler(run), "-std=c11", "-O2", "-Wall", str(source), "-o", str(run.workdir / "app"),
            *link_flags]
    return _execute(run, argv)


def first_line(text: str, needle: str) -> str:
    """The first line of a tool's output that contains ``needle`` (else its last line)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return next((line for line in lines if needle in line), lines[-1] if lines else "")


def _link_failure(result: subprocess.CompletedProcess[str]) -> RuntimeFailure:
    return RuntimeFailure("toolchain (cc/ld)", first_line(result.stderr, "undefined reference"),
                          kind=f"exit status {result.returncode}",
                          source="stderr of the C compiler driver (GNU ld)")


def faulty(run: Run[LitertTarget]) -> None:
    lib_dir = litert_library_dir()
    # First try: compile the app as if the C API were part of libc.
    first = build_app(run, [])
    if first.returncode != 0:
        run.observe(first_line(first.stderr, "undefined reference"))
        run.note("first_try", "link failed: the library was not named on the command line")
    # Second try: name the library; it links, but the binary does not say where to find it.
    second = build_app(run, [f"-L{lib_dir}", "-lLiteRt"])
    if second.returncode != 0:
        raise _link_failure(second)
    started = _execute(run, [str(run.workdir / "app"), "model.tflite", "in.f32", "out.f32", "1"])
    run.note("exit_status", started.returncode)
    if started.returncode != 0:
        raise RuntimeFailure("dynamic loader (ld.so)", first_line(started.stderr, "error while loading"),
                             kind=f"exit status {started.returncode}",
                             source="stderr of the built app, written by the dynamic loader before main()")


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    import numpy as np

    lib_dir = litert_library_dir()
    trained = trained_model(run.cache, SPEC)
    x, expected = trained.probe()
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    built = build_app(run, [f"-L{lib_dir}", "-lLiteRt", f"-Wl,-rpath,{lib_dir}"])
    if built.returncode != 0:
        raise _link_failure(built)
    inputs, outputs = run.workdir / "in.f32", run.workdir / "out.f32"
    np.ascontiguousarray(x, dtype="<f4").tofile(inputs)
    ran = _execute(run, [str(run.workdir / "app"), str(tflite), str(inputs), str(outputs), str(len(x))])
    run.observe(ran.stdout.strip())
    if ran.returncode != 0:
        raise RuntimeFailure("litert (C API app)", ran.stderr.strip()[-2000:],
                             kind=f"exit status {ran.returncode}", source="stderr of the built app")
    got = np.fromfile(outputs, dtype="<f4").reshape(expected.shape)
    python = run.target.predict(tflite, [x], resize=True)[0]
    return {"max_abs_diff": max_abs_diff(got, expected),
            "max_abs_diff_vs_litert_python": max_abs_diff(got, python)}


SCENARIO = Scenario(
    title="Building a native app against the prebuilt LiteRT library (link and rpath)",
    targets=("litert",),
    figures={"max_abs_diff": "parity", "max_abs_diff_vs_litert_python": "parity"},
    # the version matrix: 1.4.0 and 2.0.3 ship no libLiteRt.so; 2.1.0 to 2.1.5 ship it, but the app's
    # LiteRtCreateModelFromFile(env, path, &model) fails there with "ERROR: Could not open '<bytes>'"
    # (the library reads another argument as the path): the declarations above hold from 2.1.6 on
    # (run: 1.4.0, 2.0.3, 2.1.0, 2.1.3-2.1.6, 2.2.0, 2.3.0)
    applies=("ai-edge-litert>=2.1.6",),
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"error while loading shared libraries: libLiteRt\.so: cannot open shared object "
                   r"file: No such file or directory", runtime="dynamic loader"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5), Figure("max_abs_diff_vs_litert_python", "<=", 1e-5)),
    cause="Building LiteRT itself (CMake/Bazel) downloads its sources and dependencies from "
          "GitHub, which this machine cannot reach, so this scenario covers the half of the "
          "procedure that can run here: building an app against the prebuilt library. A C/C++ "
          "app that calls the LiteRT C API must name the library when it links (`-lLiteRt`), "
          "or ld stops with one `undefined reference to 'LiteRt...'` per API function it calls. "
          "Once it links, the binary records only the library's name (its SONAME), not its "
          "directory; at start-up the dynamic loader searches the standard directories, the "
          "binary's rpath and LD_LIBRARY_PATH, finds nothing, and the app dies before main() "
          "with 'error while loading shared libraries: libLiteRt.so: cannot open shared object "
          "file'.",
    fix="Link with `-L<dir> -lLiteRt` and tell the loader where the library lives: "
        "`-Wl,-rpath,<dir>` (or an `$ORIGIN`-relative rpath when the library ships next to the "
        "app, or install it into a directory known to ldconfig; on Android, package it in the "
        "APK's jniLibs). Then check the app's outputs against the Python runtime on the same "
        "inputs. For ops or delegates the prebuilt library lacks, a from-source build on a "
        "machine with network access remains the route (see build-configuration and "
        "usage-of-prebuilt-libraries).",
    references=("https://ai.google.dev/edge/litert/next/cpp",
                "https://ai.google.dev/edge/litert/build/cmake",
                "https://github.com/tensorflow/tensorflow/issues/50149",
                "https://github.com/mattn/go-tflite/issues/42",
                "https://github.com/tensorflow/tensorflow/issues/33980"),
)
