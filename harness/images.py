"""Docker images and containers of the server platform, built here with no registry.

No image is ever pulled.  The serving image is built locally in three cached steps:

1. the base image ``pitfalls/base:<suite>-<hash12>``: ``containers/base/make-rootfs.sh`` runs
   ``debootstrap --variant=minbase`` from the Debian mirror apt uses on this machine, and the
   root file system is ``docker import``-ed;
2. the wheels: ``pip download`` on the host (cp311, manylinux x86_64) into the cache directory;
3. ``pitfalls/serving-compat:<tf>-<hash12>``: ``containers/serving/Dockerfile`` with the wheels
   and the server package ``containers/tfserving-compat/tfs_compat`` in the build context,
   built with ``--network none``.

Each tag carries a hash of everything that went into it, so a second call finds the image and
returns at once.  A :class:`filelock.FileLock` in the cache directory serialises builds between
processes (pytest-xdist workers).  The real ``tensorflow/serving`` image is used only when it is
already present locally (:func:`real_serving_image`).

:class:`ServingContainer` runs either image as a context manager, in the style of
testcontainers: ports published on 127.0.0.1 only, readiness awaited with :class:`HttpReady`,
the container always removed on exit.  The docker SDK is imported inside functions only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError, RuntimeFailure, SetupError, WaitTimeout

if TYPE_CHECKING:  # pragma: no cover - typing only
    import docker
    from docker.models.containers import Container

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTAINERS_DIR = REPO_ROOT / "containers"
BASE_SCRIPT = CONTAINERS_DIR / "base" / "make-rootfs.sh"
SERVING_DIR = CONTAINERS_DIR / "serving"
SERVING_FILES = ("Dockerfile", "tf_serving_entrypoint.sh", "tensorflow_model_server")
SERVER_PACKAGE_DIR = CONTAINERS_DIR / "tfserving-compat" / "tfs_compat"

BASE_REPOSITORY = "pitfalls/base"
COMPAT_REPOSITORY = "pitfalls/serving-compat"
REAL_REPOSITORY = "tensorflow/serving"
COMPAT_IMPLEMENTATION = "tfserving-compatible"
REAL_IMPLEMENTATION = "tensorflow/serving"
DEBIAN_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CONTAINER_LABEL = "pitfalls"
OWNER_LABEL = "pitfalls.pid"
GRPC_PORT = 8500
REST_PORT = 8501
SETUP_HINT = "run scripts/setup-docker.sh as root: it installs Debian's docker.io and starts dockerd"
LOCK_TIMEOUT_S = 3600.0


# --- small helpers -----------------------------------------------------------------------

def progress(message: str) -> None:
    """One progress line on stderr for a long step (debootstrap, pip download, build)."""
    print(f"[pitfalls images] {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    """Where wheels and build contexts are kept: the environment cache (see harness.artifacts)."""
    from harness.paths import environment_cache_root

    return environment_cache_root()


def images_cache_dir() -> Path:
    path = cache_root() / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_lock() -> Any:
    """The file lock that serialises image builds between processes."""
    from filelock import FileLock

    return FileLock(str(images_cache_dir() / "build.lock"), timeout=LOCK_TIMEOUT_S)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def sha256_of_parts(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


# --- the engine --------------------------------------------------------------------------

def docker_client() -> docker.DockerClient:
    """A client of the local engine; :class:`SetupError` with a hint when none answers."""
    try:
        import docker
    except ImportError as exc:
        raise SetupError("the docker SDK is not installed", evidence=str(exc),
                         hint="pip install 'pitfalls[server]' (docker>=7,<8)") from exc
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # DockerException, requests' ConnectionError, FileNotFoundError
        raise SetupError("no Docker engine answers", evidence=f"{type(exc).__name__}: {exc}",
                         hint=SETUP_HINT) from exc
    return client


def engine_unavailable_reason() -> str | None:
    """None when an engine answers, else the exact reason (for a pytest skip)."""
    try:
        docker_client().close()
    except SetupError as exc:
        return f"{exc.message} ({exc.evidence}); {exc.hint}"
    return None


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


# --- step 1: the base image --------------------------------------------------------------

def _deb822_mirrors(text: str, suite: str) -> list[str]:
    found: list[str] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
            found.extend(fields.get("uris", "").split())
    return found


def _one_line_mirrors(text: str, suite: str) -> list[str]:
    found: list[str] = []
    for line in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            found.append(words[1])
    return found


def debian_mirror(suite: str = DEBIAN_SUITE, apt_dir: Path = Path("/etc/apt")) -> str:
    """The mirror apt uses here for ``suite`` (``$PITFALLS_DEBIAN_MIRROR`` overrides it)."""
    override = os.environ.get("PITFALLS_DEBIAN_MIRROR")
    if override:
        return override
    candidates: list[str] = []
    parts = apt_dir / "sources.list.d"
    for path in sorted(parts.glob("*.sources")) if parts.is_dir() else []:
        candidates += _deb822_mirrors(path.read_text(errors="replace"), suite)
    for path in [apt_dir / "sources.list", *sorted(parts.glob("*.list"))]:
        if path.is_file():
            candidates += _one_line_mirrors(path.read_text(errors="replace"), suite)
    usable = [uri for uri in candidates if uri.startswith(("http://", "https://"))]
    return usable[0].rstrip("/") if usable else DEFAULT_MIRROR


def base_image_tag(suite: str, mirror: str) -> str:
    key = sha256_of_parts([BASE_SCRIPT.read_bytes(), suite.encode(), mirror.encode()])
    return f"{BASE_REPOSITORY}:{suite}-{key[:12]}"


def _make_rootfs_tar(out_tar: Path, mirror: str, suite: str) -> None:
    if os.geteuid() != 0:
        raise SetupError("building the base image needs root (debootstrap)",
                         hint="run the tests as root, or build the image once as root")
    if shutil.which("debootstrap") is None:
        raise SetupError("debootstrap is not installed", hint=SETUP_HINT)
    env = dict(os.environ, PITFALLS_DEBOOTSTRAP_CACHE=str(images_cache_dir() / "debootstrap-debs"))
    proc = subprocess.run(["bash", str(BASE_SCRIPT), str(out_tar), mirror, suite], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SetupError(f"making the base root file system failed (exit {proc.returncode})",
                         evidence=tail(proc.stderr + proc.stdout),
                         hint=f"check that apt can reach {mirror}; PITFALLS_DEBIAN_MIRROR overrides it")


def ensure_base_image(client: docker.DockerClient, suite: str = DEBIAN_SUITE) -> str:
    """The base image tag, made with debootstrap + ``docker import`` unless it exists.

    Call it with the build lock held.
    """
    mirror = debian_mirror(suite)
    tag = base_image_tag(suite, mirror)
    if image_exists(client, tag):
        return tag
    repository, _, version = tag.partition(":")
    progress(f"debootstrap {suite} (minbase + python3) from {mirror} -> {tag}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=images_cache_dir(), prefix="rootfs-") as tmp:
        tar_path = Path(tmp) / "rootfs.tar"
        _make_rootfs_tar(tar_path, mirror, suite)
        progress(f"debootstrap done in {time.monotonic() - started:.1f}s; docker import")
        client.api.import_image_from_file(
            str(tar_path), repository=repository, tag=version,
            changes=['ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
                     'CMD ["python3"]', f'LABEL pitfalls.base.mirror="{mirror}"'])
    if not image_exists(client, tag):
        raise SetupError(f"docker import did not create {tag}", hint="see dockerd's log")
    progress(f"base image {tag} ready in {time.monotonic() - started:.1f}s")
    return tag


# --- step 2: the wheels ------------------------------------------------------------------

PIP_PLATFORMS = ([f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)]
                 + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"])
"""Wheel platforms that bookworm's glibc 2.36 on x86_64 accepts (pip does not expand them)."""


def serving_requirements(tf_version: str) -> list[str]:
    """What the compatible server needs, for one TensorFlow version."""
    major_minor = ".".join(tf_version.split(".")[:2])
    return [f"tensorflow=={tf_version}", f"tensorflow-serving-api=={major_minor}.*",
            "grpcio", "numpy"]


@dataclass(frozen=True)
class WheelSet:
    """Wheels downloaded for one TensorFlow version: their directory and file names."""

    directory: Path
    requirements: tuple[str, ...]
    files: tuple[str, ...]

    def manifest(self) -> bytes:
        sizes = [f"{name} {(self.directory / name).stat().st_size}" for name in self.files]
        return "\n".join([*self.requirements, "--", *sizes]).encode()

    def total_bytes(self) -> int:
        return sum((self.directory / name).stat().st_size for name in self.files)


def _read_wheel_manifest(path: Path, requirements: Sequence[str]) -> tuple[str, ...] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    files = tuple(data.get("files", ()))
    if data.get("requirements") != list(requirements) or not files:
        return None
    if not all((path.parent / name).is_file() for name in files):
        return None
    return files


def download_wheels(tf_version: str) -> WheelSet:
    """``pip download`` the server's wheels (cp311, manylinux x86_64), once per TF version.

    Call it with the build lock held.
    """
    requirements = serving_requirements(tf_version)
    directory = images_cache_dir() / "wheels" / f"cp311-manylinux_x86_64-tf{tf_version}"
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / "manifest.json"
    files = _read_wheel_manifest(manifest, requirements)
    if files is not None:
        return WheelSet(directory, tuple(requirements), files)
    platform_args = [arg for plat in PIP_PLATFORMS for arg in ("--platform", plat)]
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", *platform_args,
               "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
               "--progress-bar", "off", "--dest", str(directory), *requirements]
    progress(f"pip download {' '.join(requirements)} (cp311, manylinux x86_64) -> {directory}")
    started = time.monotonic()
    proc = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise SetupError(f"pip download of the wheels for TF {tf_version} failed",
                         evidence=tail(proc.stdout + proc.stderr),
                         hint="the package registry must be reachable; check pip's index settings")
    saved = re.findall(r"^(?:Saved|File was already downloaded) (\S+)$", proc.stdout, re.MULTILINE)
    files = tuple(sorted({Path(name).name for name in saved}))
    if not files:
        raise SetupError("pip download reported no wheel", evidence=tail(proc.stdout))
    manifest.write_text(json.dumps({"requirements": requirements, "files": list(files)}, indent=1))
    wheels = WheelSet(directory, tuple(requirements), files)
    progress(f"{len(files)} wheels, {wheels.total_bytes() / 1e6:.0f} MB, "
             f"in {time.monotonic() - started:.1f}s")
    return wheels


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
                progress("build " + text.strip())
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


def _build_compat_image(client: docker.DockerClient, tag: str, tf_version: str,
                        wheels: WheelSet, base_tag: str) -> str:
    progress(f"docker build {tag} (network none, {wheels.total_bytes() / 1e6:.0f} MB of wheels)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=images_cache_dir(), prefix="context-") as tmp:
        context = Path(tmp)
        _make_build_context(context, wheels)
        image_id = _docker_build(client, context, tag,
                                 {"BASE_IMAGE": base_tag, "TF_VERSION": tf_version})
    progress(f"built {tag} in {time.monotonic() - started:.1f}s")
    return image_id


def _compat_image(tf_version: str) -> ServingImage:
    client = docker_client()
    started = time.monotonic()
    with build_lock():
        base_tag = ensure_base_image(client)
        wheels = download_wheels(tf_version)
        base_id = client.images.get(base_tag).id
        tag = f"{COMPAT_REPOSITORY}:{tf_version}-{serving_inputs_hash(tf_version, wheels, base_id)[:12]}"
        if image_exists(client, tag):
            return ServingImage(tag, COMPAT_IMPLEMENTATION, tf_version, 0.0,
                                client.images.get(tag).id, reused=True)
        image_id = _build_compat_image(client, tag, tf_version, wheels, base_tag)
    return ServingImage(tag, COMPAT_IMPLEMENTATION, tf_version,
                        round(time.monotonic() - started, 1), image_id)


def real_serving_image(tf_version: str | None = None) -> str | None:
    """The tag of a local ``tensorflow/serving`` image (never pulled), else None.

    ``$PITFALLS_REAL_SERVING_IMAGE`` names the one to use; otherwise a tag equal to
    ``tf_version`` wins, then ``latest``, then the highest ``X.Y.Z`` tag (GPU and devel tags
    are never chosen).  Raises :class:`SetupError` when no engine answers.
    """
    client = docker_client()
    wanted = os.environ.get("PITFALLS_REAL_SERVING_IMAGE")
    if wanted:
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


# --- readiness ---------------------------------------------------------------------------

Predicate = Callable[[int, str], bool]


@dataclass
class HttpReady:
    """Poll ``GET url`` until ``predicate(status, body)`` holds, at most ``timeout`` seconds.

    The predicate may raise to give up at once (e.g. a model that failed to load for good).
    ``abort`` is asked before each poll; a string it returns ends the wait with that reason
    (e.g. "container exited with code 1"), and it may raise too.  :meth:`wait` returns the
    last body.
    """

    url: str
    predicate: Predicate
    timeout: float = 120.0
    poll_interval: float = 0.5
    abort: Callable[[], str | None] | None = None
    last_seen: str = field(default="nothing yet", init=False)

    def _poll(self) -> tuple[int, str] | None:
        try:
            with urllib.request.urlopen(self.url, timeout=max(self.poll_interval, 2.0)) as reply:
                body = reply.read().decode(errors="replace")
                self.last_seen = f"HTTP {reply.status}: {body[:2000]}"
                return reply.status, body
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            self.last_seen = f"HTTP {exc.code}: {body[:2000]}"
            return exc.code, body
        except (OSError, ValueError) as exc:  # refused, reset, timed out while starting
            self.last_seen = f"{type(exc).__name__}: {exc}"
            return None

    def wait(self) -> str:
        deadline = time.monotonic() + self.timeout
        started = time.monotonic()
        while True:
            reason = self.abort() if self.abort else None
            if reason:
                raise WaitTimeout(f"gave up waiting for {self.url} after "
                                  f"{time.monotonic() - started:.1f}s: {reason}",
                                  evidence=f"last seen: {self.last_seen}")
            answer = self._poll()
            if answer is not None and self.predicate(*answer):
                return answer[1]
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"{self.url} was not ready after {self.timeout:.0f}s",
                                  evidence=f"last seen: {self.last_seen}")
            time.sleep(self.poll_interval)


@dataclass(frozen=True)
class ModelAvailable:
    """Predicate on ``GET /v1/models/<name>``: some version is AVAILABLE.

    With ``fail_on_error`` a status where every version has ended with an error raises
    :class:`RuntimeFailure` carrying the server's own error text (e.g. TF's
    "Op type not registered ..." when an older TF loads a newer SavedModel).
    """

    runtime: str = COMPAT_IMPLEMENTATION
    fail_on_error: bool = True

    def __call__(self, status: int, body: str) -> bool:
        if status != 200:
            return False
        try:
            versions = json.loads(body).get("model_version_status") or []
        except ValueError:
            return False
        if any(v.get("state") == "AVAILABLE" for v in versions):
            return True
        errors = [v.get("status") or {} for v in versions if v.get("state") == "END"]
        errors = [e for e in errors if e.get("error_code", "OK") not in ("OK", 0, "0")]
        if self.fail_on_error and errors and len(errors) == len(versions):
            raise RuntimeFailure(self.runtime, str(errors[0].get("error_message", "")),
                                 kind=str(errors[0].get("error_code", "")),
                                 source="GET /v1/models/<name> model_version_status")
        return False


# --- containers --------------------------------------------------------------------------

LOAD_FAILED = re.compile(
    r"Loading servable: \{name: (?P<name>\S+) version: \d+\} failed: (?P<code>[A-Z_]+): "
    r"(?P<message>.*)$", re.MULTILINE)


def load_failure_in_log(log: str, model_name: str) -> tuple[str, str] | None:
    """``(error code, message)`` of the first failed load of ``model_name`` in a server log.

    Both tensorflow/serving and the compatible server log
    ``Loading servable: {name: N version: V} failed: CODE: message`` when a version fails to
    load; the server does not open its REST port while it retries the first load, so the log is
    where the runtime's own error text shows first.
    """
    for match in LOAD_FAILED.finditer(log):
        if match["name"] == model_name:
            return match["code"], match["message"].rstrip()
    return None


def _host_port(container: Container, port: int) -> int:
    for _ in range(50):
        bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get(f"{port}/tcp")
        if bindings:
            return int(bindings[0]["HostPort"])
        time.sleep(0.1)
        container.reload()
    raise HarnessError(f"port {port} of container {container.name} was not published",
                       evidence=json.dumps(container.attrs["NetworkSettings"].get("Ports")))


class ServingContainer:
    """A serving container as a context manager (testcontainers style).

    The constructor only records the options; ``__enter__`` runs the container (label
    ``pitfalls=1``, ports 8500/8501 published on 127.0.0.1 at random host ports, model
    directories mounted read-only) and waits until ``ready_model`` has an AVAILABLE version;
    ``__exit__`` always removes it.  ``model_dir`` is the host directory holding numbered
    version subdirectories; it is mounted at ``/models/<model_name>``.  ``models`` mounts more
    such directories (name -> host dir), ``files`` more read-only paths (host -> container
    path), e.g. a model config file for ``--model_config_file``.  ``args`` are passed to the
    entrypoint after the default flags; ``command`` replaces entrypoint and flags altogether.
    Set ``wait=False`` to skip the readiness wait.  With ``fail_on_load_error`` (the default)
    a failed load of ``ready_model`` ends the wait at once with :class:`RuntimeFailure`
    carrying the server's own error text (from ``GET /v1/models/<name>`` or, while the server
    retries its first load with the REST port still closed, from its log).
    """

    def __init__(self, image: ServingImage | str, *, model_name: str = "model",
                 model_dir: Path | str | None = None, models: Mapping[str, Path | str] | None = None,
                 files: Mapping[Path | str, str] | None = None,
                 env: Mapping[str, str] | None = None, args: Sequence[str] = (),
                 command: Sequence[str] | None = None, wait: bool = True,
                 ready_model: str | None = None, ready_timeout: float = 120.0,
                 poll_interval: float = 0.5, fail_on_load_error: bool = True,
                 log_tail_lines: int = 40) -> None:
        self.image = image if isinstance(image, ServingImage) else \
            ServingImage(image, _implementation_of(image), "", 0.0)
        self.model_name = model_name
        self.mounts: dict[str, str] = {}
        if model_dir is not None:
            self.mounts[str(Path(model_dir).resolve())] = f"/models/{model_name}"
        for name, path in (models or {}).items():
            self.mounts[str(Path(path).resolve())] = f"/models/{name}"
        for path, target in (files or {}).items():
            self.mounts[str(Path(path).resolve())] = target
        self.env = {"MODEL_NAME": model_name, **(env or {})}
        self.args = list(args)
        self.command = list(command) if command is not None else None
        self.wait = wait
        self.ready_model = ready_model or model_name
        self.ready_timeout = ready_timeout
        self.poll_interval = poll_interval
        self.fail_on_load_error = fail_on_load_error
        self.log_tail_lines = log_tail_lines
        self.name = f"pitfalls-serving-{uuid.uuid4().hex[:10]}"
        self.start_to_ready_seconds: float | None = None
        self._client: docker.DockerClient | None = None
        self._container: Container | None = None
        self._rest_port: int | None = None
        self._grpc_port: int | None = None
        self._final_logs: str | None = None

    # addresses ---------------------------------------------------------------------------
    @property
    def rest_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the REST API (port 8501 in the container)."""
        return f"http://127.0.0.1:{self._require_port(self._rest_port)}"

    @property
    def grpc_target(self) -> str:
        """``127.0.0.1:<port>`` of the gRPC API (port 8500 in the container)."""
        return f"127.0.0.1:{self._require_port(self._grpc_port)}"

    @property
    def container_id(self) -> str:
        if self._container is None:
            raise HarnessError("the container is not running", hint="use it inside `with`")
        return str(self._container.id)

    def model_url(self, model: str | None = None) -> str:
        return f"{self.rest_url}/v1/models/{model or self.model_name}"

    def _require_port(self, port: int | None) -> int:
        if port is None:
            raise HarnessError("the container has no published port yet",
                               hint="use the address inside the `with ServingContainer(...)` block")
        return port

    # logs --------------------------------------------------------------------------------
    def logs(self, tail_lines: int | None = None) -> str:
        """The container's stdout+stderr (kept after removal)."""
        if self._container is not None:
            import docker.errors

            try:
                raw: bytes = self._container.logs(stdout=True, stderr=True,
                                                  tail=tail_lines if tail_lines else "all")
                return raw.decode(errors="replace")
            except docker.errors.APIError:  # removed meanwhile: fall back to the kept logs
                pass
        text = self._final_logs or ""
        return tail(text, tail_lines) if tail_lines else text

    # lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> ServingContainer:
        self._client = docker_client()
        try:
            self._run()
            if self.wait:
                started = time.monotonic()
                self._wait_ready()
                self.start_to_ready_seconds = round(time.monotonic() - started, 2)
        except BaseException:  # also KeyboardInterrupt: never leave a container behind
            self._remove()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._remove()

    def _run(self) -> None:
        assert self._client is not None
        volumes = {host: {"bind": target, "mode": "ro"} for host, target in self.mounts.items()}
        options: dict[str, Any] = {
            "name": self.name,
            "labels": {CONTAINER_LABEL: "1", OWNER_LABEL: str(os.getpid())},
            "ports": {f"{GRPC_PORT}/tcp": ("127.0.0.1", None),
                      f"{REST_PORT}/tcp": ("127.0.0.1", None)},
            "volumes": volumes, "environment": self.env}
        if self.command is not None:
            options.update(entrypoint=self.command[:1], command=self.command[1:])
        elif self.args:
            options.update(command=self.args)
        # create + start, never containers.run: run would try to pull a missing image.
        import docker.errors

        try:
            self._container = self._client.containers.create(self.image.tag, **options)
        except docker.errors.ImageNotFound as exc:
            raise SetupError(f"image {self.image.tag} is not in the local engine",
                             evidence=str(exc),
                             hint="build it with harness.images.ensure_serving_image(); "
                                  "images are never pulled") from exc
        self._container.start()
        self._container.reload()
        self._rest_port = _host_port(self._container, REST_PORT)
        self._grpc_port = _host_port(self._container, GRPC_PORT)

    def _abort_reason(self) -> str | None:
        """Asked before each poll: raise the server's load error, or say it has exited."""
        assert self._container is not None
        if self.fail_on_load_error:
            failure = load_failure_in_log(self.logs(), self.ready_model)
            if failure is not None:
                raise RuntimeFailure(self.image.implementation, failure[1], kind=failure[0],
                                     source="container log: 'Loading servable ... failed'")
        self._container.reload()
        state = self._container.attrs.get("State", {})
        if state.get("Status") in ("exited", "dead"):
            return f"container exited with code {state.get('ExitCode')}"
        return None

    def _wait_ready(self) -> None:
        waiter = HttpReady(self.model_url(self.ready_model),
                           ModelAvailable(self.image.implementation, self.fail_on_load_error),
                           timeout=self.ready_timeout, poll_interval=self.poll_interval,
                           abort=self._abort_reason)
        try:
            waiter.wait()
        except WaitTimeout as exc:
            raise WaitTimeout(
                f"{self.image.tag}: model {self.ready_model!r} never became AVAILABLE "
                f"({exc.message})",
                evidence=f"{exc.evidence}\n--- container log (last {self.log_tail_lines} "
                         f"lines) ---\n{self.logs(self.log_tail_lines)}",
                hint=f"check that MODEL_NAME ({self.env.get('MODEL_NAME')}) names a directory "
                     f"mounted under /models with numbered version subdirectories "
                     f"(mounts: {self.mounts}), and read the log above") from exc

    def _remove(self) -> None:
        container, self._container = self._container, None
        if container is None:
            return
        import docker.errors

        try:
            self._final_logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
        except docker.errors.APIError:
            self._final_logs = self._final_logs or ""
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass


def _implementation_of(tag: str) -> str:
    return REAL_IMPLEMENTATION if tag.startswith(REAL_REPOSITORY + ":") else COMPAT_IMPLEMENTATION


def _process_alive(pid_text: str) -> bool:
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        return False  # our own containers are leftovers once we ask
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftover_containers(*, all_owners: bool = False) -> list[str]:
    """Remove containers labelled ``pitfalls=1`` that are left over; return their names.

    A container is left over when the process that started it (label ``pitfalls.pid``) is this
    one or no longer runs, so a call from one pytest-xdist worker never removes a container that
    another live worker is still using.  ``all_owners=True`` removes every such container.
    """
    import docker.errors

    client = docker_client()
    removed: list[str] = []
    for container in client.containers.list(all=True, filters={"label": f"{CONTAINER_LABEL}=1"}):
        owner = container.labels.get(OWNER_LABEL, "")
        if not all_owners and _process_alive(owner):
            continue
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            continue
        removed.append(str(container.name))
    return removed
