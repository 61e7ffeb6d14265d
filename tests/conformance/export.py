"""Export the conformance models for a server started outside the suite (e.g. tensorflow/serving).

``python -m tests.conformance.export DIR [MOUNT]`` writes ``DIR/tiny/1`` (a Keras ``model.export``)
and ``DIR/half/1`` (the graph model with predict/classify/regress signatures), and
``DIR/models.config``, a ``--model_config_file`` serving both with base paths under ``MOUNT``
(default ``/models``, where the real image's container sees ``DIR``).  Existing versions are kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .support import export_example_model, export_keras_model

MODELS = {"tiny": export_keras_model, "half": export_example_model}


def export_all(root: Path, mount: str = "/models") -> Path:
    for name, export in MODELS.items():
        if not (root / name / "1").exists():
            export(root / name / "1")
    entries = "".join(f'  config {{\n    name: "{name}"\n    base_path: "{mount}/{name}"\n'
                      '    model_platform: "tensorflow"\n  }\n' for name in MODELS)
    config = root / "models.config"
    config.write_text(f"model_config_list {{\n{entries}}}\n")
    return config


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: python -m tests.conformance.export DIR [MOUNT]  (MOUNT defaults to /models)",
              file=sys.stderr)
        return 2
    print(export_all(Path(argv[0]).resolve(), argv[1] if len(argv) > 1 else "/models"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
