"""The serving images, built here with no registry: a recipe on :mod:`harness.environments`.

No image is ever pulled.  The serving image is built locally in three cached steps, all under
one file lock (``<env cache>/images/build.lock``, shared by every TF version):

1. the base image ``pitfalls/base:<suite>-<hash12>``: :data:`BASE_RECIPE` on the shared builder —
   :func:`harness.environments.debootstrap.debootstrap` (minbase + python3 + python3-venv) from
   the Debian mirror apt uses here (:func:`harness.environments.mirror.debian_mirror`) in a
   scratch directory beside the cache, trimmed, tarred and ``docker import``-ed;
2. the wheels (:func:`harness.environments.wheels.download_wheels`: cp311, manylinux x86_64);
3. ``pitfalls/serving-compat:<tf>-<hash12>``: ``containers/serving/Dockerfile`` with the wheels
   and the server package ``containers/tfserving-compat/tfs_compat`` in the build context,
   built with ``--network none``.

Each tag carries a hash of everything that went into it (the base recipe, suite and mirror; the
TF version, base image id, wheel manifest and server files), so a second call finds the image
and returns at once.  The real ``tensorflow/serving`` image is used only when it is already
present locally (:func:`real_serving_image`).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.environments.build import (Stopwatch, build_lock, progress, run_logged,
                                        scratch_directory, sha256_of_parts, tail)
from harness.environments.debootstrap import debootstrap, trim_tree
from harness.environments.engine import SETUP_HINT, docker_client, image_exists
from harness.environments.mirror import debian_mirror
from harness.environments.wheels import WheelSet, download_wheels
from harness.errors import HarnessError, SetupError
from harness.paths import CONTAINERS_DIR

if TYPE_CHECKING:  # pragma: no cover - typing only
    import docker


@dataclass(frozen=True)
class BaseRecipe:
    """What decides the base root file system; hashed (with suite and mirror) into its tag."""

    variant: str = "minbase"
    #: python3 is 3.11 in bookworm (cp311 wheels); python3-venv gives venv + ensurepip, so the
    #: wheels install into /opt/venv with no network
    include: tuple[str, ...] = ("python3", "python3-venv")
    #: emptied after debootstrap: nothing here is needed to run Python
    trimmed: tuple[str, ...] = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc",
                                "usr/share/man", "usr/share/info", "usr/share/locale", "var/log", "tmp",
                                "root/.cache")
    recipe_version: str = "2"  # 1 was containers/base/make-rootfs.sh; bump when the steps change


BASE_RECIPE = BaseRecipe()
SERVING_DIR = CONTAINERS_DIR / "serving"
SERVING_FILES = ("Dockerfile", "tf_serving_entrypoint.sh", "tensorflow_model_server")
SERVER_PACKAGE_DIR = CONTAINERS_DIR / "tfserving-compat" / "tfs_compat"

BASE_REPOSITORY = "pitfalls/base"
COMPAT_REPOSITORY = "pitfalls/serving-compat"
REAL_REPOSITORY = "tensorflow/serving"
COMPAT_IMPLEMENTATION = "tfserving-compatible"
REAL_IMPLEMENTATION = "tensorflow/serving"
DEBIAN_SUITE = "bookworm"
SCOPE = "images"
BASE_BUILD_TIMEOUT_S = 1800.0

PIP_PLATFORMS = ([f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)]
                 + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"])
"""Wheel platforms that bookworm's glibc 2.36 on x86_64 accepts (pip does not expand them)."""


def images_cache_dir() -> Path:
    """Wheels, scratch directories, logs and the build lock of the serving images."""
    from harness.paths import environment_cache_root

    path = environment_cache_root() / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _lock() -> Path:
    return images_cache_dir() / "build.lock"


# --- step 1: the base image --------------------------------------------------------------

def base_image_tag(suite: str, mirror: str, recipe: BaseRecipe = BASE_RECIPE) -> str:
    import json
    from dataclasses import asdict

    key = sha256_of_parts([json.dumps(asdict(recipe), sort_keys=True).encode(), suite.encode(), mirror.encode()])
    return f"{BASE_REPOSITORY}:{suite}-{key[:12]}"


def _make_base_tar(root: Path, tar_path: Path, *, suite: str, mirror: str, log: Path,
                   cache: Path, recipe: BaseRecipe) -> None:
    """debootstrap ``suite`` into ``root``, trim it and tar it (numeric owners, xattrs) to ``tar_path``."""
    debootstrap(root, suite=suite, mirror=mirror, log=log, variant=recipe.variant, include=recipe.include,
                cache_dir=cache / "debootstrap-debs", missing_hint=SETUP_HINT)
    # the same sources as the host, so apt-get in a debugging shell looks where we did
    (root / "etc" / "apt" / "sources.list").write_text(f"deb {mirror} {suite} main\n")
    trim_tree(root, recipe.trimmed)
    for cached in (root / "usr" / "lib").glob("python3*/**/__pycache__"):
        shutil.rmtree(cached, ignore_errors=True)
    run_logged(["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf", str(tar_path), "."], log,
               "tar of the base root file system", timeout=BASE_BUILD_TIMEOUT_S)


def ensure_base_image(client: docker.DockerClient, suite: str = DEBIAN_SUITE) -> str:
    """The base image tag, made with debootstrap + ``docker import`` unless it exists.

    Call it with the build lock held (:func:`ensure_serving_image` does).
    """
    mirror = debian_mirror(suite)
    tag = base_image_tag(suite, mirror)
    if image_exists(client, tag):
        return tag
    if os.geteuid() != 0:
        raise SetupError("building the base image needs root (debootstrap)",
                         hint="run the tests as root, or build the image once as root")
    if shutil.which("debootstrap") is None:
        raise SetupError("debootstrap is not installed", hint=SETUP_HINT)
    repository, _, version = tag.partition(":")
    cache = images_cache_dir()
    log = cache / f"build-base-{version}.log"
    log.write_text(f"building {tag} from {BASE_RECIPE} ({suite}, {mirror})\n")
    progress(SCOPE, f"debootstrap {suite} (minbase + python3) from {mirror} -> {tag} (log: {log})")
    watch = Stopwatch()
    with scratch_directory(cache, "rootfs", SCOPE) as scratch:
        # everything inside the scratch directory, so that a killed build leaves it where the
        # next build removes it
        tar_path = scratch / "rootfs.tar"
        _make_base_tar(scratch / "root", tar_path, suite=suite, mirror=mirror, log=log, cache=cache,
                       recipe=BASE_RECIPE)
        progress(SCOPE, f"debootstrap done in {watch}; docker import")
        client.api.import_image_from_file(
            str(tar_path), repository=repository, tag=version,
            changes=['ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
                     'CMD ["python3"]', f'LABEL pitfalls.base.mirror="{mirror}"'])
    if not image_exists(client, tag):
        raise SetupError(f"docker import did not create {tag}", hint="see dockerd's log")
    progress(SCOPE, f"base image {tag} ready in {watch}")
    return tag


# --- step 2: the wheels ------------------------------------------------------------------

def serving_requirements(tf_version: str) -> list[str]:
    """What the compatible server needs, for one TensorFlow version."""
    major_minor = ".".join(tf_version.split(".")[:2])
    return [f"tensorflow=={tf_version}", f"tensorflow-serving-api=={major_minor}.*",
            "grpcio", "numpy"]


def serving_wheels(tf_version: str) -> WheelSet:
    """The server's wheels (cp311, manylinux x86_64) for one TF version, downloaded once."""
    directory = images_cache_dir() / "wheels" / f"cp311-manylinux_x86_64-tf{tf_version}"
    return download_wheels(serving_requirements(tf_version), directory, scope=SCOPE,
                           python_version="3.11", abi="cp311", platforms=PIP_PLATFORMS)


# --- step 3: the serving image -----------------------------------------------------------

@dataclass(frozen=True)
class ServingImage:
    """A serving image ready to run: which implementation, which TF, how long it took."""

    tag: str
    implementation: str
    tf_version: str
    built_seconds: float
    image_id: str = ""
    reused: bool = field(default=False)


def _server_files() -> list[Path]:
    if not SERVER_PACKAGE_DIR.is_dir():
        return []
    return sorted(path for path in SERVER_PACKAGE_DIR.rglob("*")
                  if path.is_file() and "__pycache__" not in path.parts
                  and path.suffix not in {".pyc", ".pyo"})


def serving_inputs_hash(tf_version: str, wheels: WheelSet, base_image_id: str) -> str:
    """A hash of every input of the serving image."""
    parts = [tf_version.encode(), base_image_id.encode(), wheels.manifest()]
    for name in SERVING_FILES:
        parts += [name.encode(), (SERVING_DIR / name).read_bytes()]
    for path in _server_files():
        parts += [str(path.relative_to(SERVER_PACKAGE_DIR)).encode(), path.read_bytes()]
    return sha256_of_parts(parts)


def compat_image_tag(tf_version: str, wheels: WheelSet, base_image_id: str) -> str:
    return f"{COMPAT_REPOSITORY}:{tf_version}-{serving_inputs_hash(tf_version, wheels, base_image_id)[:12]}"


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _make_build_context(context: Path, wheels: WheelSet) -> None:
    for name in SERVING_FILES:
        shutil.copy2(SERVING_DIR / name, context / name)
    for name in wheels.files:
        _link_or_copy(wheels.directory / name, context / "wheels" / name)
    (context / "wheels" / "requirements.txt").write_text("\n".join(wheels.requirements) + "\n")
    package = context / "server" / "tfs_compat"
    package.mkdir(parents=True)
    for path in _server_files():
        _link_or_copy(path, package / path.relative_to(SERVER_PACKAGE_DIR))


def _docker_build(client: docker.DockerClient, context: Path, tag: str,
                  buildargs: Mapping[str, str]) -> str:
    """Build with no network; stream the steps to stderr; return the image id."""
    output: list[str] = []
    image_id = ""
    error = ""
    for chunk in client.api.build(path=str(context), tag=tag, buildargs=dict(buildargs),
                                  network_mode="none", pull=False, rm=True, forcerm=True,
                                  decode=True):
        if "stream" in chunk:
            text = chunk["stream"]
            output.append(text)
            if text.startswith("Step "):
                progress(SCOPE, "build " + text.strip())
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
        if "error" in chunk:
            error = chunk["error"]
    if error or not image_id:
        raise SetupError(f"docker build of {tag} failed: {error or 'no image id'}",
                         evidence=tail("".join(output)),
                         hint="the build runs with --network none: everything must come from "
                              "the build context")
    return image_id


def _compat_image(tf_version: str) -> ServingImage:
    client = docker_client()
    watch = Stopwatch()
    with build_lock(_lock(), what=f"the serving image for TF {tf_version}"):
        base_tag = ensure_base_image(client)
        wheels = serving_wheels(tf_version)
        base_id = client.images.get(base_tag).id
        tag = compat_image_tag(tf_version, wheels, base_id)
        if image_exists(client, tag):
            return ServingImage(tag, COMPAT_IMPLEMENTATION, tf_version, 0.0,
                                client.images.get(tag).id, reused=True)
        progress(SCOPE, f"docker build {tag} (network none, "
                        f"{wheels.total_bytes() / 1e6:.0f} MB of wheels)")
        with scratch_directory(images_cache_dir(), "context", SCOPE) as context:
            _make_build_context(context, wheels)
            image_id = _docker_build(client, context, tag,
                                     {"BASE_IMAGE": base_tag, "TF_VERSION": tf_version})
        progress(SCOPE, f"built {tag} in {watch}")
    return ServingImage(tag, COMPAT_IMPLEMENTATION, tf_version, round(watch.seconds, 1), image_id)


def real_serving_image(tf_version: str | None = None) -> str | None:
    """The tag of a local ``tensorflow/serving`` image (never pulled), else None.

    ``$PITFALLS_REAL_SERVING_IMAGE`` names the one to use — for its own TF version only: when its
    tag names another version than ``tf_version``, the usual choice applies, so a scenario that
    needs TF 2.12 never runs silently on 2.19; otherwise a tag equal to ``tf_version`` wins, then
    ``latest``, then the highest ``X.Y.Z`` tag (GPU and devel tags are never chosen).  Raises
    :class:`SetupError` when no engine answers.
    """
    client = docker_client()
    wanted = os.environ.get("PITFALLS_REAL_SERVING_IMAGE")
    wanted_version = wanted.rpartition(":")[2] if wanted else ""
    if wanted and (not tf_version or not re.fullmatch(r"\d+\.\d+\.\d+", wanted_version)
                   or wanted_version == tf_version):
        return wanted if image_exists(client, wanted) else None
    release = re.compile(re.escape(REAL_REPOSITORY) + r":(\d+\.\d+\.\d+|latest)$")
    tags = sorted((tag for image in client.images.list(name=REAL_REPOSITORY)
                   for tag in image.tags if release.match(tag)), key=_version_key, reverse=True)
    for preferred in ([f"{REAL_REPOSITORY}:{tf_version}"] if tf_version else []) + \
            [f"{REAL_REPOSITORY}:latest"]:
        if preferred in tags:
            return preferred
    return tags[0] if tags else None


def _version_key(tag: str) -> tuple[int, ...]:
    version = tag.rpartition(":")[2]
    return tuple(int(part) for part in version.split(".")) if version[:1].isdigit() else (-1,)


def implementation_of(tag: str) -> str:
    """Which server an image tag runs: the real tensorflow/serving or the compatible one."""
    return REAL_IMPLEMENTATION if tag.startswith(REAL_REPOSITORY + ":") else COMPAT_IMPLEMENTATION


def ensure_serving_image(tf_version: str = "2.19.0",
                         implementation: str = COMPAT_IMPLEMENTATION) -> ServingImage:
    """A serving image for ``tf_version``: built (or found) locally, never pulled.

    ``implementation`` is ``"tfserving-compatible"`` (the image built here, the default) or
    ``"tensorflow/serving"`` (the real image, which must already be present locally).
    """
    if implementation == REAL_IMPLEMENTATION:
        tag = real_serving_image(tf_version)
        if tag is None:
            raise SetupError("no tensorflow/serving image is present locally",
                             hint="see containers/serving-real/README.md: `docker load` a saved "
                                  "image; nothing is ever pulled")
        version = tag.partition(":")[2]
        return ServingImage(tag, REAL_IMPLEMENTATION, version, 0.0,
                            docker_client().images.get(tag).id, reused=True)
    if implementation != COMPAT_IMPLEMENTATION:
        raise HarnessError(f"unknown serving implementation {implementation!r}",
                           hint=f"use {COMPAT_IMPLEMENTATION!r} or {REAL_IMPLEMENTATION!r}")
    return _compat_image(tf_version)
