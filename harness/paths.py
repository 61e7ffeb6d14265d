"""Where things live: the checkout, the scenario tree and the caches (one module, no imports).

Every other module asks here; nothing here touches the disk at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SCENARIO_ROOT = REPO_ROOT / "scenarios"
CONTAINERS_DIR = REPO_ROOT / "containers"
# the npm packages the browser target serves; a version-matrix cell points $PITFALLS_NODE_MODULES at its own
NODE_MODULES = Path(os.environ.get("PITFALLS_NODE_MODULES") or REPO_ROOT / "node_modules")
DEFAULT_RESULTS = REPO_ROOT / "results" / "latest.json"


def user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def model_cache_root() -> Path:
    """Trained, exported and converted models: ``$PITFALLS_CACHE`` or ``~/.cache/pitfalls``.

    Outside the checkout, so that clones (and CI on the same machine) share what was built;
    every key carries the versions that determine an artifact, so sharing is safe.
    """
    return Path(os.environ.get("PITFALLS_CACHE") or user_cache() / "pitfalls")


def environment_cache_root() -> Path:
    """Costly environment pieces (serving-image wheels, the arm64 root file system):
    ``$PITFALLS_ENV_CACHE`` or ``~/.cache/pitfalls-env``; kept apart from the model cache so that a
    cold-cache benchmark empties one without rebuilding the other."""
    return Path(os.environ.get("PITFALLS_ENV_CACHE") or user_cache() / "pitfalls-env")
