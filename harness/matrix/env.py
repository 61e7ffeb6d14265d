"""A matrix cell's environment: resolved by uv, installed into a cached venv, plus its npm packages.

* :func:`resolve` runs ``uv pip compile`` on the harness's own requirements (``pyproject.toml``:
  the dependencies and the server, mobile and browser extras) with the cell's pins in place of the
  packages the matrix controls, preferring the versions of ``requirements.lock`` wherever the pins
  allow them (so a cell differs from the pinned stack only where it must).  A cell that cannot resolve is *infeasible*: the reason is uv's own
  text.  A pin of a version the registry does not have is bad input (:class:`UsageError`).
* :func:`ensure_venv` installs a resolved lock into ``<env cache>/matrix/venv-<digest>`` with
  ``uv pip sync`` once; the digest covers the lock, the Python and uv, so a changed resolution gets
  a new venv and a reused one is exactly the lock.  The venv runs the checkout's harness through
  ``PYTHONPATH`` (nothing of the checkout is installed into it).
* :func:`ensure_npm` installs another release of a target's npm package (and its bundle, one
  version for all: :func:`harness.targets.npm_packages`) into its own ``node_modules`` (``npm
  install`` into a temporary directory renamed into place); the checkout's own ``node_modules``
  serves the version ``package.json`` pins.

Every command has a timeout; its output goes to a log beside the environment.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from harness.errors import SetupError, UsageError
from harness.matrix.spec import NONE, Cell
from harness.paths import REPO_ROOT, environment_cache_root
from harness.targets import matrix_packages, npm_packages

RESOLVE_TIMEOUT_S = 300.0
INSTALL_TIMEOUT_S = 1800.0
NPM_TIMEOUT_S = 600.0
ENV_MARKER = "pitfalls-matrix-env.json"
# what pyproject pins exactly and a cell always decides (tensorflow-serving-api follows the cell's TF);
# any other package the cell pins (numpy, keras) replaces the harness's own range for it
COMMON_CONTROLLED = ("tensorflow", "tf-keras", "tensorflow-decision-forests", "tensorflow-serving-api")


def controlled() -> tuple[str, ...]:
    """The common controlled packages and every target's pip package (harness.targets)."""
    return (*COMMON_CONTROLLED, *(p for p, kind in matrix_packages().items() if kind == "pip"))
SEED_PACKAGES = ("pip", "setuptools")  # in the project venv from `python -m venv`, not in requirements.lock
NO_VERSION = re.compile(r"there is no version of ([A-Za-z0-9._-]+)==([^\s,]+)")
UV_NOISE = re.compile(r"^WARNING: Location '.*' is ignored: .*$", re.M)  # pip.conf find-links uv cannot read


def matrix_dir() -> Path:
    return environment_cache_root() / "matrix"


def uv_binary() -> str:
    """The uv the set-up installed into the project's venv (requirements.lock pins it)."""
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    if not found:
        raise SetupError("uv is not installed", evidence=f"no uv beside {sys.executable} nor on PATH",
                         hint="run the README set-up (`./run.sh setup`): requirements.lock pins uv")
    return found


def base_python() -> str:
    """The interpreter the project's venv was made from (cells use the same Python)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _name(requirement: str) -> str:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return canonicalize_name(Requirement(requirement).name)


def harness_requirements(pinned: Sequence[str] = ()) -> list[str]:
    """The harness's requirements from pyproject.toml, without the packages the matrix controls
    and those in ``pinned``."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in ("server", "mobile", "browser"):
        wanted += [r for r in project["optional-dependencies"][extra] if not r.startswith("pitfalls")]
    out: list[str] = []
    for requirement in wanted:
        if _name(requirement) not in (*controlled(), *pinned) and requirement not in out:
            out.append(requirement)
    return out


def cell_requirements(cell: Cell) -> list[str]:
    """What uv resolves for ``cell``: the harness's requirements and the cell's pins.

    pip and setuptools, which ``requirements.lock`` (a ``pip freeze``) does not list, are pinned to
    the project venv's own: the arm64 recipe downloads with the running pip and keys its root file
    system by that version, and the tensorflowjs converter imports ``pkg_resources``, which
    setuptools 81 and newer no longer ship (a cell left to take the newest setuptools fails every
    browser scenario with "No module named 'pkg_resources'").
    """
    pins = [f"{p}=={v}" for p, v in cell.pip_pins().items() if v != NONE]
    pins += [f"{seed}=={importlib.metadata.version(seed)}" for seed in SEED_PACKAGES]
    tf = cell.packages["tensorflow"]
    pins.append(f"tensorflow-serving-api=={'.'.join(tf.split('.')[:2])}.*")
    return harness_requirements(tuple(cell.pip_pins())) + pins


@dataclass(frozen=True)
class Resolution:
    """uv's answer for one cell: a lock, or the text saying why there is none."""

    cell: str
    requirements: tuple[str, ...]
    lock: str | None  # `name==version` lines
    reason: str  # uv's own text when infeasible
    seconds: float

    @property
    def feasible(self) -> bool:
        return self.lock is not None

    def versions(self) -> dict[str, str]:
        from packaging.utils import canonicalize_name

        found: dict[str, str] = {}
        for line in (self.lock or "").splitlines():
            m = re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line.strip())
            if m:
                found[canonicalize_name(m.group(1))] = m.group(2)
        return found

    def digest(self) -> str:
        return hashlib.sha256((self.lock or "").encode()).hexdigest()[:16]


def _run(cmd: Sequence[str], *, timeout: float, what: str, env: Mapping[str, str] | None = None,
         log: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                              env=dict(env) if env is not None else None)
    except subprocess.TimeoutExpired:
        raise SetupError(f"{what} did not finish in {timeout:.0f} s", evidence=" ".join(cmd),
                         hint="the registry may be slow; run again (what was installed is kept in uv's cache)") from None
    except OSError as exc:
        raise SetupError(f"{what} could not start: {exc}", evidence=" ".join(cmd),
                         hint="run the README set-up (`./run.sh setup`)") from None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as out:
            out.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n[exit {proc.returncode}]\n")
    return proc


def resolve(cell: Cell, *, scratch: Path) -> Resolution:
    """``uv pip compile`` for the cell (fresh every time: a lock is never taken from a cache)."""
    scratch.mkdir(parents=True, exist_ok=True)
    requirements = cell_requirements(cell)
    infile, constraints, out = scratch / f"{cell.name}.in", scratch / f"{cell.name}.constraints", scratch / f"{cell.name}.lock"
    infile.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    constraints.write_text("\n".join(cell.constraints) + "\n", encoding="utf-8")
    # the pinned stack as uv's preferences (an existing output file): a cell moves only what its pins force
    shutil.copyfile(REPO_ROOT / "requirements.lock", out)
    started = time.perf_counter()
    proc = _run([uv_binary(), "pip", "compile", "--quiet", "--no-header", "--no-annotate",
                 "--python", base_python(), "--constraint", str(constraints), str(infile), "-o", str(out)],
                timeout=RESOLVE_TIMEOUT_S, what=f"resolving cell {cell.name} with uv")
    seconds = time.perf_counter() - started
    text = UV_NOISE.sub("", proc.stderr).strip()
    if proc.returncode == 0 and out.exists():
        return Resolution(cell.name, tuple(requirements), out.read_text(encoding="utf-8"), "", seconds)
    missing = NO_VERSION.search(text)
    if missing:
        package, version = missing.group(1), missing.group(2)
        if f"{package}=={version}" in requirements:
            raise UsageError(f"cell {cell.name!r}: {package} {version} does not exist on the registry "
                             f"(uv: {missing.group(0)}); pick a released version")
    if "No solution found" not in text:
        raise SetupError(f"uv could not resolve cell {cell.name}", evidence=text[-2000:] or f"exit {proc.returncode}",
                         hint="is the package registry reachable? (`uv pip compile` needs it)")
    return Resolution(cell.name, tuple(requirements), None, text, seconds)


def npm_version_exists(package: str, version: str) -> bool:
    proc = _run(["npm", "view", f"{package}@{version}", "version", "--json"], timeout=120,
                what=f"asking npm for {package}@{version}")
    if proc.returncode == 0:
        return bool(proc.stdout.strip())
    if "E404" in proc.stderr or "No match found" in proc.stderr:
        return False
    raise SetupError(f"npm could not look up {package}@{version}", evidence=proc.stderr.strip()[-800:],
                     hint="is the npm registry reachable?")


def checkout_npm_version(package: str) -> str:
    """The version of ``package`` the checkout's ``package.json`` pins."""
    deps = json.loads((REPO_ROOT / "package.json").read_text(encoding="utf-8"))["dependencies"]
    return str(deps[package])


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(resolution: Resolution, *, log: Path) -> tuple[Path, bool]:
    """The cell's venv with exactly the lock installed; (path, built now)."""
    from harness.environments.build import build_lock

    assert resolution.lock is not None, "an infeasible cell has no venv"
    uv = uv_binary()
    uv_version = _run([uv, "--version"], timeout=30, what="uv --version").stdout.strip()
    key = hashlib.sha256("\n".join([resolution.lock, base_python(), sys.version, uv_version]).encode()).hexdigest()[:16]
    venv = matrix_dir() / f"venv-{key}"
    marker = venv / ENV_MARKER
    if marker.exists():
        return venv, False
    with build_lock(matrix_dir() / f"venv-{key}.lock", what=f"the venv of cell {resolution.cell}"):
        if marker.exists():
            return venv, False
        if venv.exists():
            shutil.rmtree(venv)  # a build that was killed: start again
        started = time.perf_counter()
        lock_file = matrix_dir() / f"venv-{key}.requirements.txt"
        lock_file.write_text(resolution.lock, encoding="utf-8")
        for cmd, what in (([uv, "venv", "--quiet", "--python", base_python(), str(venv)], "uv venv"),
                          ([uv, "pip", "sync", "--quiet", "--python", str(venv_python(venv)), str(lock_file)],
                           "uv pip sync")):
            proc = _run(cmd, timeout=INSTALL_TIMEOUT_S, what=f"{what} for cell {resolution.cell}", log=log)
            if proc.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise SetupError(f"{what} failed for cell {resolution.cell}",
                                 evidence=UV_NOISE.sub("", proc.stderr).strip()[-2000:], hint=f"full output in {log}")
        marker.write_text(json.dumps({"cell": resolution.cell, "lock_digest": resolution.digest(),
                                      "seconds": round(time.perf_counter() - started, 1)}) + "\n", encoding="utf-8")
    return venv, True


def ensure_npm(package: str, version: str, *, log: Path) -> tuple[Path | None, bool]:
    """A node_modules with ``package`` (and its bundle) at ``version``; None for the checkout's."""
    if version == checkout_npm_version(package):
        return None, False
    from harness.environments.build import build_directory

    bundle = npm_packages(package)
    final = matrix_dir() / f"npm-{package.strip('@').replace('/', '-')}-{version}"

    def fill(tmp: Path) -> None:
        # --ignore-scripts: no package's install script runs on this host (tf.js needs none)
        proc = _run(["npm", "install", "--prefix", str(tmp), "--ignore-scripts", "--no-audit", "--no-fund",
                     "--loglevel=error",
                     *[f"{p}@{version}" for p in bundle]], timeout=NPM_TIMEOUT_S,
                    what=f"npm install {package}@{version}", log=log)
        if proc.returncode != 0:
            raise SetupError(f"npm install of {package}@{version} failed", evidence=proc.stderr.strip()[-2000:],
                             hint=f"full output in {log}")

    built = build_directory(final, fill, what=f"{package} {version} (npm)", scope="matrix",
                            complete=lambda p: (p / "node_modules" / package / "package.json").exists())
    return final / "node_modules", built


def installed_npm_version(package: str, node_modules: Path | None) -> str:
    """The version of ``package`` a cell serves: in its own node_modules, else the checkout's."""
    from harness.versions import npm_version

    return npm_version(package, node_modules or REPO_ROOT / "node_modules") or "missing"


def cell_environment(*, node_modules: Path | None, serving_tf: str, cell_json: str) -> dict[str, str]:
    """The variables a cell's run gets: the checkout's harness, its npm packages, its serving TF, its identity."""
    from harness.results import MATRIX_CELL_ENV

    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PITFALLS_SERVING_TF"] = serving_tf
    env[MATRIX_CELL_ENV] = cell_json
    if node_modules is not None:
        env["PITFALLS_NODE_MODULES"] = str(node_modules)
    else:
        env.pop("PITFALLS_NODE_MODULES", None)
    return env
