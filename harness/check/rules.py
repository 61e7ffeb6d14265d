"""Which known pitfall a runtime's text is: patterns over the texts, each naming its catalog lesson.

A rule's ``scenario`` is the catalog scenario that reproduces the same text on a tiny model, so the
user can run ``pitfalls explain <scenario>``; its taxonomy node is derived from the scenario id
(tests check that every rule names a scenario that exists and targets the same runtime).  A text
that no rule knows is still reported, verbatim, as a finding without a lesson.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.check.report import Severity


@dataclass(frozen=True)
class Rule:
    target: str
    pattern: str  # a regular expression searched in the runtime's text
    scenario: str
    fix: str
    severity: Severity = "blocker"

    @property
    def taxonomy(self) -> str | None:
        from harness.taxonomy import taxonomy_node_for

        return taxonomy_node_for(self.scenario)


RULES: tuple[Rule, ...] = (
    # LiteRT / TF Lite converter and interpreter
    Rule("litert", r"Some ops are not supported by the native TFLite runtime",
         "mobile/model-conversion/conversion-of-unsupported-models/litert",
         "Rewrite the ops with TF Lite builtins, or convert with SELECT_TF_OPS and ship a runtime with the "
         "Flex delegate (the prebuilt ai-edge-litert wheel has none)."),
    Rule("litert", r"Select TensorFlow op\(s\), included in the given model, is\(are\) not supported by this interpreter",
         "mobile/dl-library-compilation/usage-of-prebuilt-libraries/litert",
         "This LiteRT build has no Flex delegate: rewrite the listed ops with builtins, or link a runtime "
         "built with the Flex delegate."),
    Rule("litert", r"Encountered unresolved custom op",
         "mobile/dl-library-compilation/register-of-unsupported-operators",
         "Register the custom op's kernel with the interpreter, or replace the op with builtins."),
    Rule("litert", r"For full integer quantization, a `representative_dataset` must be specified",
         "mobile/model-conversion/model-quantization/litert",
         "Give the converter a representative_dataset drawn from real inputs."),
    Rule("litert", r"The model is not a valid Flatbuffer buffer",
         "mobile/dl-integration-into-projects/importing-loading-models",
         "Ship the .tflite file byte for byte (no text-mode copy, no truncation, no compression by the build)."),
    Rule("litert", r"Didn't find op for builtin opcode .* version",
         "mobile/dl-integration-into-projects/avoiding-version-incompatibility",
         "Use a runtime at least as new as the converter, or convert with the runtime's TF version."),
    # Core ML
    Rule("coreml", r"Only a single concrete function is supported",
         "mobile/general-questions/entire-procedure-of-deployment/coreml",
         "coremltools does not read a Keras 3 model.export SavedModel: convert the tf_keras model (or its "
         "SavedModel) instead."),
    Rule("coreml", r"Input model path should be \.h5/\.hdf5 file or a directory",
         "mobile/model-conversion/saving-models/coreml",
         "coremltools reads no .keras file: give it a SavedModel directory, a tf_keras .h5, or (Keras 3) "
         "a single traced tf.function."),
    Rule("coreml", r"Conversion for TF op '[^']+' not implemented",
         "mobile/model-conversion/conversion-of-unsupported-models/coreml",
         "Rewrite the op with supported ones (or register a composite operator with coremltools)."),
    Rule("coreml", r"Model prediction is only supported on macOS",
         "mobile/general-questions/limitations-of-frameworks/coreml",
         "Core ML predictions run on Apple platforms only: check parity on a macOS runner.", severity="info"),
    # TensorFlow.js
    Rule("tfjs", r"Unsupported Ops in the model before optimization",
         "browser/general-questions/limitations-of-frameworks",
         "Replace the listed ops with ones tf.js implements, or register custom kernels in the page."),
    Rule("tfjs", r"Unknown layer: \w+",
         "browser/model-conversion/conversion-of-unsupported-models",
         "Port the custom layer to tf.js (registerClass) or convert to a graph model from the SavedModel."),
    Rule("tfjs", r"An InputLayer should be passed either a `batchInputShape` or an `inputShape`",
         "browser/environment/avoiding-version-incompatibility",
         "tf.js 4.x cannot read a Keras 3 layers config: convert the SavedModel to a graph model, or use tf_keras."),
    Rule("tfjs", r"Failed to parse model JSON",
         "browser/model-loading/selection-usage-of-apis",
         "Load a graph model with tf.loadGraphModel and a layers model with tf.loadLayersModel."),
    # TF Serving
    Rule("tfserving", r'Serving signature name: "serving_default" not found in signature def',
         "server/model-export/specification-of-model-information",
         "Export with a serving_default signature (Keras 3: model.export; tf.saved_model.save(..., signatures=...))."),
    Rule("tfserving", r"Expects arg\[\d+\] to be \w+ but \w+ is provided",
         "server/data-processing/setting-format-datatype-of-input-data/grpc-float64-tensor",
         "Send tensors of the signature's dtype (cast on the client), or export a signature of the client's dtype."),
    Rule("tfserving", r"Op type not registered '[^']+' in binary running on",
         "server/environment/avoiding-version-incompatibility",
         "Serve with a TF Serving at least as new as the TF that exported the model."),
    Rule("tfserving", r"Could not find SavedModel \.pb or \.pbtxt|does not appear to contain a SavedModel bundle",
         "server/general-questions/limitations-of-platforms-frameworks",
         "Serve a SavedModel directory (saved_model.pb + variables/) under a numbered version directory."),
)


def rule_for(target: str, text: str) -> Rule | None:
    for rule in RULES:
        if rule.target == target and re.search(rule.pattern, text, flags=re.DOTALL):
            return rule
    return None
