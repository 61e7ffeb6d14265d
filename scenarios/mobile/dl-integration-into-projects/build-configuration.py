"""The app build compresses the model asset, so the app cannot memory-map it out of the package.

An Android APK is a zip archive.  The usual loader (``FileUtil.loadMappedFile``, or
``AssetManager.openFd`` + ``FileChannel.map``) does not unpack the asset: it asks for the asset's
start offset and length inside the APK and maps that byte range.  That only works when the build
*stored* the file; aapt compresses every extension it is not told to leave alone.  On a device,
``openFd`` refuses a compressed entry ("This file can not be opened as a file descriptor; it is
probably compressed").  Here the same build choice is reproduced with a real zip archive, and the
loader maps the declared byte range the way the Java loader does; what LiteRT then receives is the
deflate stream, and LiteRT rejects it.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("dense", "keras3")
ASSET = "assets/model.tflite"
LOCAL_HEADER = struct.Struct("<4s5H3I2H")  # zip local file header, 30 bytes


def build_apk(apk: Path, model: Path, *, no_compress: tuple[str, ...], align: int = 4) -> Path:
    """Package a stand-in APK as aapt does: a manifest, code, and the model asset.

    ``no_compress`` is the build's ``androidResources { noCompress ... }`` list of extensions:
    aapt deflates every asset whose extension is not in it.  A stored entry is aligned like
    ``zipalign`` does, by padding the local header's extra field so the data starts at a
    multiple of ``align``.
    """
    compress_model = Path(ASSET).suffix.lstrip(".") not in no_compress
    with zipfile.ZipFile(apk, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("AndroidManifest.xml", b"<manifest package='org.example.app'/>\n" * 20)
        z.writestr("classes.dex", bytes(range(256)) * 40)
        info = zipfile.ZipInfo(ASSET, date_time=(2024, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED if compress_model else zipfile.ZIP_STORED
        if not compress_model:
            start = z.fp.tell() + LOCAL_HEADER.size + len(ASSET.encode())  # type: ignore[union-attr]  # fp is Optional in typeshed; open while writing
            pad = (-(start + 4)) % align
            info.extra = struct.pack("<HH", 0xD935, pad) + b"\0" * pad  # zipalign's padding field
        z.writestr(info, model.read_bytes())
    return apk


def asset_range(apk: Path, name: str) -> tuple[int, int]:
    """(start offset, declared length) of an entry's data, as AssetFileDescriptor reports them."""
    with zipfile.ZipFile(apk) as z:
        info = z.getinfo(name)
    with apk.open("rb") as f:
        f.seek(info.header_offset)
        header = LOCAL_HEADER.unpack(f.read(LOCAL_HEADER.size))
    name_len, extra_len = header[-2], header[-1]
    return info.header_offset + LOCAL_HEADER.size + name_len + extra_len, info.compress_size


def run_mapped_asset(apk: str, start: int, length: int, x: Any) -> Any:
    """In the LiteRT worker: map the asset's byte range out of the APK and run the model on it."""
    import mmap

    from ai_edge_litert.interpreter import Interpreter

    with open(apk, "rb") as f:
        base = start - start % mmap.ALLOCATIONGRANULARITY
        with mmap.mmap(f.fileno(), start - base + length, offset=base, access=mmap.ACCESS_READ) as mapped:
            # The Python API takes bytes (Java takes the MappedByteBuffer itself, without a copy).
            model = mapped[start - base: start - base + length]
    interp = Interpreter(model_content=model)
    detail = interp.get_input_details()[0]
    interp.resize_tensor_input(detail["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(detail["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def _package(run: Run[LitertTarget], *, no_compress: tuple[str, ...]) -> tuple[Path, Path, tuple[int, int]]:
    model = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    apk = build_apk(run.workdir / "app.apk", model, no_compress=no_compress)
    where = asset_range(apk, ASSET)
    run.note("asset", {"start": where[0], "stored_bytes": where[1], "model_bytes": model.stat().st_size,
                       "compressed": where[1] != model.stat().st_size, "no_compress": list(no_compress)})
    return model, apk, where


def faulty(run: Run[LitertTarget]) -> None:
    # build.gradle says nothing about assets, so aapt deflates the .tflite file too.
    _, apk, (start, length) = _package(run, no_compress=())
    x, _ = trained_model(run.cache, SPEC).probe()
    run.target.call(run_mapped_asset, str(apk), start, length, x)


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    import numpy as np

    # build.gradle: android { androidResources { noCompress "tflite" } }
    model, apk, (start, length) = _package(run, no_compress=("tflite",))
    x, expected = trained_model(run.cache, SPEC).probe()
    got = np.asarray(run.target.call(run_mapped_asset, str(apk), start, length, x))
    with apk.open("rb") as f:
        f.seek(start)
        region_is_model = f.read(length) == model.read_bytes()
    return {"max_abs_diff": max_abs_diff(got, expected),
            "mapped_region_is_model": float(region_is_model),
            "data_offset_mod_4": float(start % 4)}


SCENARIO = Scenario(
    title="The build compresses the .tflite asset, so it cannot be memory-mapped from the package",
    targets=("litert",),
    figures={"data_offset_mod_4": "exact", "mapped_region_is_model": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"^The model is not a valid Flatbuffer buffer$", runtime="litert"),
    remedy=succeeds(Figure("mapped_region_is_model", ">=", 1), Figure("data_offset_mod_4", "<=", 0),
                    Figure("max_abs_diff", "<=", 1e-5)),
    cause="Android's build (aapt) deflates assets unless told otherwise. TF Lite's Android loaders "
          "memory-map the model straight out of the APK: they take the asset's start offset and "
          "length and map that byte range, which is only the model when the entry is stored "
          "uncompressed. On a device `AssetManager.openFd` refuses the compressed entry with 'This "
          "file can not be opened as a file descriptor; it is probably compressed'; a loader that "
          "maps the range anyway hands LiteRT the deflate stream, and LiteRT rejects it as "
          "not a valid flatbuffer. This scenario builds both archives and maps the range for real.",
    fix="Keep the model uncompressed in the package: `android { androidResources { noCompress "
        "'tflite' } }` (older Gradle: `aaptOptions { noCompress \"tflite\" }`), and let zipalign "
        "align it; the mapped range is then the model itself and the interpreter can use it "
        "without a copy. The check here: the mapped bytes equal the model file, the data offset "
        "is 4-byte aligned, and the outputs match Keras.",
    references=("https://github.com/tensorflow/tensorflow/issues/22333",
                "https://github.com/nex3z/tflite-mnist-android/issues/8",
                "https://github.com/kivy/python-for-android/pull/2523"),
)
