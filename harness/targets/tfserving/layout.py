"""A model base path as TF Serving reads it: ``<name>/<version>/saved_model.pb``.

Used by :meth:`TfservingTarget.load <harness.targets.tfserving.target.TfservingTarget.load>` and by the
server scenarios (through :mod:`harness.targets.tfserving.kit`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def link_or_copy(source: str, target: str) -> object:
    """A hard link of ``source`` at ``target`` where the file system allows, else a copy (a ``copytree`` copy function)."""
    import shutil

    try:
        os.link(source, target)
        return target
    except OSError:
        return shutil.copy2(source, target)


def model_base_path(workdir: Path, versions: Mapping[int, Path], name: str = "model", *,
                    hard_links: bool = False) -> Path:
    """A model base path as TF Serving expects it: ``<name>/<version>/saved_model.pb``.

    The SavedModels are copied (not symlinked) so that the directory can be bind-mounted.  With
    ``hard_links`` (for large models that nothing writes to) files are hard-linked where the file
    system allows it; never use it when a scenario writes into the version directories, since a
    hard link shares the cached file.
    """
    import shutil

    base = workdir / name
    base.mkdir(parents=True, exist_ok=True)
    for version, saved in versions.items():
        shutil.copytree(saved, base / str(version), copy_function=link_or_copy if hard_links else shutil.copy2)
    return base
