"""Example bundles, one faulty and one fixed per kind: the tests' inputs and the README's demonstration.

``python -m harness.configcheck.examples DIR`` writes them under ``DIR/<kind>-faulty`` and
``DIR/<kind>-fixed``.  The models come from the harness's model cache (tiny trained Keras models
exported as the catalog exports them), so the directories hold real SavedModels, tf.js models and
``.tflite`` files, not stand-ins.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

TFSERVING_FAULTY_CONFIG = """model_config_list {
  config {
    name: "classifier"
    base_path: "/models/classifier"
    model_platform: "tensorflow"
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
  config {
    name: "images"
    base_path: "/models/images"
    model_platform: "tensorflow"
  }
}
"""
TFSERVING_FIXED_CONFIG = """model_config_list {
  config {
    name: "classifier"
    base_path: "/models/classifier"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
}
"""
TFSERVING_FAULTY_BATCHING = "max_batch_size { value: 16 }\nbatch_timeout_micros { value: 1000 }\n" \
                            "allowed_batch_sizes: 8\nallowed_batch_sizes: 4\n"
TFSERVING_FIXED_BATCHING = "max_batch_size { value: 16 }\nbatch_timeout_micros { value: 1000 }\n" \
                           "allowed_batch_sizes: 4\nallowed_batch_sizes: 16\n"
TFSERVING_FAULTY_START = """#!/bin/sh
# start the model server
docker run --rm -p 8500:8500 \\
  -v "$(pwd)/models:/models" -v "$(pwd)/models.config:/config/models.config" \\
  tensorflow/serving --model_config_file=/config/models.config \\
  --enable_batching --batching_parameters_file /config/batching.config
"""
TFSERVING_FIXED_START = """#!/bin/sh
# start the model server
docker run --rm -p 8500:8500 -p 8501:8501 \\
  -v "$(pwd)/models:/models" -v "$(pwd)/models.config:/config/models.config" \\
  -v "$(pwd)/batching.config:/config/batching.config" \\
  tensorflow/serving --model_config_file=/config/models.config \\
  --allow_version_labels_for_unavailable_models=true \\
  --enable_batching=true --batching_parameters_file=/config/batching.config
"""
TFSERVING_FAULTY_CLIENT = """#!/bin/sh
curl -s -d '{"signature_name": "predict", "instances": [[0, 0, 0, 0, 0, 0, 0, 0]]}' \\
  http://localhost:8500/v1/models/classifier:predict
curl -s http://localhost:8500/v1/models/clasifier
"""
TFSERVING_FIXED_CLIENT = """#!/bin/sh
curl -s -d '{"signature_name": "serving_default", "instances": [[0, 0, 0, 0, 0, 0, 0, 0]]}' \\
  http://localhost:8501/v1/models/classifier/labels/stable:predict
curl -s http://localhost:8501/v1/models/classifier
"""


def _cache():  # type: ignore[no-untyped-def]
    from harness.artifacts import ArtifactCache
    from harness.paths import model_cache_root

    return ArtifactCache(model_cache_root())


def write_tfserving(root: Path, *, faulty: bool) -> Path:
    """A serving bundle: models/, models.config, batching.config, start.sh, client.sh."""
    from harness.models import ModelSpec, saved_model, trained_model

    cache = _cache()
    root.mkdir(parents=True, exist_ok=True)
    stable = saved_model(cache, ModelSpec("dense", "keras3", seed=0))
    shutil.copytree(stable, root / "models" / "classifier" / "1")
    if faulty:
        (root / "models" / "classifier" / "v2-draft").mkdir()
        images = root / "models" / "images" / "1"
        images.mkdir(parents=True)
        shutil.copyfile(trained_model(cache, ModelSpec("dense", "keras3", seed=0)).dir / "model.keras",
                        images / "model.keras")
    else:
        shutil.copytree(saved_model(cache, ModelSpec("dense", "keras3", seed=1)), root / "models" / "classifier" / "2")
    (root / "models.config").write_text(TFSERVING_FAULTY_CONFIG if faulty else TFSERVING_FIXED_CONFIG)
    (root / "batching.config").write_text(TFSERVING_FAULTY_BATCHING if faulty else TFSERVING_FIXED_BATCHING)
    (root / "start.sh").write_text(TFSERVING_FAULTY_START if faulty else TFSERVING_FIXED_START)
    (root / "client.sh").write_text(TFSERVING_FAULTY_CLIENT if faulty else TFSERVING_FIXED_CLIENT)
    return root


TFJS_FAULTY_APP = """// load the classifier and predict one row
const model = tf.loadLayersModel('model/model.json');
const backup = tf.loadGraphModel('file:///home/me/app/model/model.json');
const y = model.predict(tf.zeros([1, 8]));
"""
TFJS_FIXED_APP = """// load the classifier and predict one row
await tf.setBackend('cpu');
const model = await tf.loadGraphModel('model/model.json');
const y = tf.tidy(() => model.predict(tf.zeros([1, 8])));
"""
TFJS_PAGE = """<!DOCTYPE html>
<html><head><script src="tf.min.js"></script></head>
<body><script type="module" src="app.js"></script></body></html>
"""


def write_tfjs(root: Path, *, faulty: bool) -> Path:
    """A web app: index.html, app.js and model/ (a graph model converted from the zoo's dense SavedModel)."""
    from harness.models import ModelSpec, saved_model
    from harness.targets.tfjs.convert import convert_graph_model

    cache = _cache()
    root.mkdir(parents=True, exist_ok=True)
    converted = convert_graph_model(cache, saved_model(cache, ModelSpec("dense", "keras3", seed=0)))
    model_dir = root / "model"
    model_dir.mkdir()
    for path in sorted(converted.iterdir()):
        if path.name == "model.json" or path.suffix == ".bin":
            shutil.copyfile(path, model_dir / path.name)
    if faulty:
        sorted(model_dir.glob("*.bin"))[-1].unlink()  # a shard left out of the deployment
    (root / "index.html").write_text(TFJS_PAGE)
    (root / "app.js").write_text(TFJS_FAULTY_APP if faulty else TFJS_FIXED_APP)
    return root


ANDROID_FAULTY_ROOT = """buildscript {
    dependencies { classpath 'com.android.tools.build:gradle:4.0.1' }
}
"""
ANDROID_FAULTY_APP = """apply plugin: 'com.android.application'

android {
    compileSdkVersion 30
    defaultConfig {
        applicationId "org.example.classifier"
        ndk { abiFilters 'armeabi-v7a' }
    }
}

dependencies {
    implementation 'org.tensorflow:tensorflow-lite:1.13.1'
}
"""
ANDROID_FIXED_ROOT = """plugins {
    id 'com.android.application' version '8.5.0' apply false
}
"""
ANDROID_FIXED_APP = """plugins { id 'com.android.application' }

android {
    namespace 'org.example.classifier'
    compileSdk 34
    defaultConfig {
        applicationId "org.example.classifier"
        ndk { abiFilters 'arm64-v8a', 'armeabi-v7a' }
    }
    androidResources { noCompress += 'tflite' }
}

dependencies {
    implementation 'com.google.ai.edge.litert:litert:1.0.1'
}
"""
ANDROID_CODE = """package org.example.classifier;

import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.support.common.FileUtil;

class Classifier {
    Interpreter open(android.content.Context context) throws java.io.IOException {
        return new Interpreter(FileUtil.loadMappedFile(context, "{name}"));
    }
}
"""


def with_newer_op_versions(model: bytes, version: int = 99) -> bytes:
    """The model as a converter newer than any runtime would write it: every builtin operator code at
    ``version`` (all else unchanged)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    parsed = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    for entry in parsed.operatorCodes:
        entry.version = version
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(parsed.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def write_android(root: Path, *, faulty: bool) -> Path:
    """An Android app: build.gradle, app/build.gradle, the classifier's code and its .tflite asset."""
    from harness.models import ModelSpec, saved_model
    from harness.targets.litert.convert import convert_to_tflite

    cache = _cache()
    assets = root / "app" / "src" / "main" / "assets"
    assets.mkdir(parents=True)
    model = convert_to_tflite(cache, saved_model(cache, ModelSpec("dense", "keras3", seed=0))).read_bytes()
    if faulty:  # converted by a newer converter than the app's runtime knows, and a copy cut short
        (assets / "model.tflite").write_bytes(with_newer_op_versions(model))
        (assets / "legacy.tflite").write_bytes(model[:len(model) // 2])
    else:
        (assets / "model.tflite").write_bytes(model)
    (root / "build.gradle").write_text(ANDROID_FAULTY_ROOT if faulty else ANDROID_FIXED_ROOT)
    (root / "app" / "build.gradle").write_text(ANDROID_FAULTY_APP if faulty else ANDROID_FIXED_APP)
    code = root / "app" / "src" / "main" / "java" / "org" / "example" / "classifier"
    code.mkdir(parents=True)
    (code / "Classifier.java").write_text(ANDROID_CODE.replace("{name}", "classifier.tflite" if faulty else "model.tflite"))
    return root


WRITERS = {"tfserving": write_tfserving, "tfjs": write_tfjs, "android": write_android}


def write_examples(directory: Path) -> list[Path]:
    written = []
    for kind, writer in WRITERS.items():
        for faulty in (True, False):
            target = directory / f"{kind}-{'faulty' if faulty else 'fixed'}"
            if target.exists():
                shutil.rmtree(target)
            written.append(writer(target, faulty=faulty))
    return written


if __name__ == "__main__":  # pragma: no cover - a convenience for the README
    for path in write_examples(Path(sys.argv[1] if len(sys.argv) > 1 else "examples")):
        print(path)
