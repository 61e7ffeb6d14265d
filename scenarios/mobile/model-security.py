"""The model ships inside the app: anyone can unzip the package and run it elsewhere.

The "app bundle" here is a real zip archive (an APK or IPA is one) holding the ``.tflite``
asset.  The attacker's side unzips it and runs the model with the stock LiteRT runtime; the
app's side runs the same model inside the app.  Fixed: the bundle holds only an encrypted model,
the key is delivered at run time (here by a stand-in for a licence server or the platform key
store, never written into the bundle), and the app decrypts into memory.  The cipher is a
SHAKE-256 keystream with an HMAC-SHA256 tag built from the standard library, enough to show the
effect; a real app uses the platform's AES-GCM (Android Keystore, CryptoKit) or Core ML's model
encryption.  Limits: the decrypted model lives in app memory, so a rooted or jailbroken device
with a debugger can still dump it; encryption raises the cost of extraction, it does not make it
impossible.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("dense", "keras3")
TAG = 32


def _keystream(key: bytes, nonce: bytes, length: int) -> bytes:
    return hashlib.shake_256(key + nonce).digest(length)


def encrypt(data: bytes, key: bytes) -> bytes:
    nonce = secrets.token_bytes(16)
    body = bytes(a ^ b for a, b in zip(data, _keystream(key, nonce, len(data))))
    return nonce + body + hmac.new(key, nonce + body, hashlib.sha256).digest()


def decrypt(blob: bytes, key: bytes) -> bytes:
    nonce, body, tag = blob[:16], blob[16:-TAG], blob[-TAG:]
    if not hmac.compare_digest(tag, hmac.new(key, nonce + body, hashlib.sha256).digest()):
        raise ValueError("model file was modified or the key is wrong")
    return bytes(a ^ b for a, b in zip(body, _keystream(key, nonce, len(body))))


def build_bundle(bundle: Path, asset_name: str, asset: bytes) -> Path:
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("AndroidManifest.xml", "<manifest package='org.example.app'/>")
        z.writestr("classes.dex", b"dex\n035\0" + bytes(512))
        z.writestr(asset_name, asset)
    return bundle


def extract(bundle: Path, dest: Path) -> list[Path]:
    """The attacker: unzip everything that looks like a model."""
    with zipfile.ZipFile(bundle) as z:
        names = [n for n in z.namelist() if n.startswith("assets/")]
        z.extractall(dest, members=names)
    return [dest / n for n in names]


def _outputs(interp: Any, x: Any) -> Any:
    """Run through the model's signature (which resizes the input to the batch)."""
    runner = interp.get_signature_runner()
    name = next(iter(runner.get_input_details()))
    return next(iter(runner(**{name: x}).values()))


def run_outside(model_path: str, x: Any) -> dict[str, Any]:
    """In the LiteRT worker: run an extracted file with the stock runtime; report what happened."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interp = Interpreter(model_path=model_path)
    except ValueError as exc:
        return {"ran": False, "error": str(exc)}
    return {"ran": True, "output": _outputs(interp, x)}


def run_in_app(model: bytes, x: Any) -> Any:
    """In the LiteRT worker: the app runs the model from memory."""
    from ai_edge_litert.interpreter import Interpreter

    return _outputs(Interpreter(model_content=model), x)


def _attack(run: Run[LitertTarget], bundle: Path, x: Any) -> dict[str, Any]:
    extracted = extract(bundle, run.workdir / "extracted")
    run.note("extracted", [p.name for p in extracted])
    outcome: dict[str, Any] = run.target.call(run_outside, str(extracted[0]), x)
    if not outcome["ran"]:
        run.observe(outcome["error"])
    return outcome


def faulty(run: Run[LitertTarget]) -> dict[str, float]:
    import numpy as np

    model = convert_to_tflite(run.cache, saved_model(run.cache, SPEC)).read_bytes()
    bundle = build_bundle(run.workdir / "app.apk", "assets/model.tflite", model)
    x, _ = trained_model(run.cache, SPEC).probe()
    in_app = np.asarray(run.target.call(run_in_app, model, x))
    stolen = _attack(run, bundle, x)
    if not stolen["ran"]:
        return {"extracted_model_runs": 0.0}
    return {"extracted_model_runs": 1.0,
            "extracted_vs_app_max_abs_diff": max_abs_diff(stolen["output"], in_app)}


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    import numpy as np

    model = convert_to_tflite(run.cache, saved_model(run.cache, SPEC)).read_bytes()
    key = secrets.token_bytes(32)  # delivered at run time; never part of the bundle
    bundle = build_bundle(run.workdir / "app.apk", "assets/model.tflite.enc", encrypt(model, key))
    x, expected = trained_model(run.cache, SPEC).probe()
    stolen = _attack(run, bundle, x)
    with zipfile.ZipFile(bundle) as z:
        in_app = np.asarray(run.target.call(run_in_app, decrypt(z.read("assets/model.tflite.enc"), key), x))
    return {"extracted_model_runs": float(stolen["ran"]),
            "key_in_bundle": float(key in bundle.read_bytes()),
            "app_max_abs_diff": max_abs_diff(in_app, expected)}


SCENARIO = Scenario(
    title="The model file extracted from the app package runs anywhere",
    targets=("litert",),
    figures={"app_max_abs_diff": "parity", "extracted_model_runs": "exact", "extracted_vs_app_max_abs_diff": "parity",
             "key_in_bundle": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=succeeds(Figure("extracted_model_runs", ">=", 1),
                     Figure("extracted_vs_app_max_abs_diff", "<=", 1e-6)),
    remedy=succeeds(Figure("extracted_model_runs", "<=", 0), Figure("key_in_bundle", "<=", 0),
                    Figure("app_max_abs_diff", "<=", 1e-5)),
    cause="An APK or IPA is a zip archive, and a `.tflite` asset inside it is the complete model: "
          "unzipping the package and loading the file in the stock LiteRT runtime reproduces the "
          "app's outputs exactly. Whoever installs the app has the model, its architecture and "
          "its weights, and can copy, study or attack it. Sun et al. (USENIX Security 2021) found 41% "
          "of 1,468 ML apps shipped unprotected models, and extracted most protected ones at run time.",
    fix="Do not ship the plain model: ship it encrypted (or download it after authentication), "
        "keep the key out of the package (platform key store, licence server), decrypt into "
        "memory and build the interpreter from the buffer; the extracted file is then rejected by "
        "LiteRT. On Apple platforms Core ML has built-in model encryption. Limits: the key and "
        "the decrypted model exist on the device at run time, so this raises the cost of "
        "extraction rather than preventing it; for models that must stay secret, run them on a "
        "server, and consider obfuscation or watermarking.",
    references=("https://developer.apple.com/documentation/coreml/generating-a-model-encryption-key",
                "https://github.com/zhoumingyi/ModelObfuscator",
                "https://arxiv.org/abs/2002.07687"),
)
