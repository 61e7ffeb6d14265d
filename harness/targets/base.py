"""The one interface every target implements (after Polygraphy's runners).

A target is a context manager: ``activate()`` brings its runtime up (a browser, a worker
process, a serving container), ``deactivate()`` tears it down, whatever happened in between.
Public methods enforce the lifecycle and call the small ``*_impl`` methods a target overrides.
Heavy libraries are imported inside the implementations only.

The **deploy interface** is the path a model takes to a target, the same on every target and
usable from a scenario or from a plain script (``pitfalls check`` builds on it)::

    with target_class("litert")() as target:
        prepared = target.prepare(ModelSource.from_path("model.keras"), cache)  # convert / export
        with target.load(prepared) as deployed:                               # serve / open
            deployed.signature()                                                # names, dtypes, shapes
            outputs = deployed.predict({"input_layer": x})                      # {output name: array}
        prepared.sizes, target.versions()

Errors keep the harness's two families: text that the runtime produced arrives as
:class:`~harness.errors.RuntimeFailure`; a runtime that does not exist here (Core ML prediction
off macOS) raises :class:`~harness.errors.NotApplicable` with the exact reason.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from harness.errors import HarnessError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from harness.artifacts import ArtifactCache
    from harness.models import TrainedModel

ModelFormat = Literal["keras", "h5", "saved_model"]
TargetT = TypeVar("TargetT", bound="Target")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, numpy dtype name and shape (``None`` = dynamic)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Signature:
    """What a deployed model takes and gives, as the target itself reports it."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def to_json(self) -> dict[str, Any]:
        return {"inputs": [t.to_json() for t in self.inputs],
                "outputs": [t.to_json() for t in self.outputs]}


def _format_of(path: Path) -> ModelFormat:
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return "saved_model"
        raise UsageError(f"{path} is a directory without saved_model.pb: not a SavedModel "
                         "(pass the directory that holds saved_model.pb, or a .keras/.h5 file)")
    if path.suffix == ".keras":
        return "keras"
    if path.suffix in (".h5", ".hdf5"):
        return "h5"
    raise UsageError(f"{path} is not a model this tool reads: give a .keras file, an .h5 file "
                     "or a SavedModel directory")


@dataclass(frozen=True)
class ModelSource:
    """A model as a user hands it over: a ``.keras`` file, an ``.h5`` file or a SavedModel dir.

    ``trusted`` says whether its code may run: a user's file is untrusted unless the user said
    so (``--trust-model``), and every loader passes it through :func:`harness.trust.admit`
    first; the catalog's own models (:meth:`from_trained`) are trusted.  ``imports`` are the
    modules the user imported for its custom objects (trusted code a Keras config may name).
    """

    path: Path
    format: ModelFormat
    trusted: bool = False
    imports: tuple[str, ...] = ()

    @classmethod
    def from_path(cls, path: str | Path, *, trusted: bool = False, imports: tuple[str, ...] = ()) -> "ModelSource":
        p = Path(path).expanduser().resolve()
        if not p.exists():
            raise UsageError(f"no model at {p}: give the path of a .keras/.h5 file or a SavedModel directory")
        return cls(p, _format_of(p), trusted, tuple(imports))

    @classmethod
    def from_trained(cls, trained: "TrainedModel") -> "ModelSource":
        """A model of the catalog's zoo (ours: trusted)."""
        return cls.from_path(trained.model_file, trusted=True)


@dataclass(frozen=True)
class Prepared:
    """A model converted or exported for one target (usually a cache entry)."""

    target: str
    source: ModelSource
    artifact: Path  # .tflite file, .mlpackage dir, tf.js model dir, SavedModel base dir
    sizes: dict[str, int] = field(default_factory=dict)  # bytes, e.g. {"artifact": ..., "weights": ...}
    notes: dict[str, Any] = field(default_factory=dict)  # e.g. which conversion path was taken


def inputs_key(inputs: "Mapping[str, np.ndarray]") -> str:
    """The same inputs (names, dtypes, shapes, values) give the same key: how a deployment that starts
    predictions ahead (side by side) finds the one a later ``predict`` of the same inputs collects."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for name in sorted(inputs):
        array = np.asarray(inputs[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes() if array.dtype.kind != "O" else repr(array.tolist()).encode())
    return digest.hexdigest()


class Deployment(ABC):
    """A prepared model loaded on a running target; closed explicitly or with its target."""

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.closed = False
        self._signature: Signature | None = None

    def signature(self) -> Signature:
        """Inputs and outputs as the deployed runtime reports them (asked once, then kept)."""
        if self._signature is None:
            self._signature = self.signature_impl()
        return self._signature

    @abstractmethod
    def signature_impl(self) -> Signature:
        """Ask the deployed runtime for its inputs and outputs."""

    @abstractmethod
    def predict(self, inputs: "Mapping[str, np.ndarray]") -> "dict[str, np.ndarray]":
        """Outputs by output name for inputs by input name (a batch along the first axis)."""

    def close_impl(self) -> None:
        """Release what the deployment holds (default: nothing)."""

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.close_impl()

    def __enter__(self: "DeploymentT") -> "DeploymentT":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


DeploymentT = TypeVar("DeploymentT", bound=Deployment)


class Target(ABC):
    """Base class of the deployment targets."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self.is_active = False

    @property
    def platform(self) -> str:
        from harness.targets import target_info

        return target_info(self.name).platform

    # lifecycle ---------------------------------------------------------------------------
    def activate(self: TargetT) -> TargetT:
        if self.is_active:
            return self
        reason = self.unavailable_reason()
        if reason:
            raise HarnessError(f"target {self.name} is not available: {reason}")
        self.activate_impl()
        self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            try:
                self.deactivate_impl()
            finally:
                self.is_active = False

    def __enter__(self: TargetT) -> TargetT:
        return self.activate()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.deactivate()

    def require_active(self) -> None:
        if not self.is_active:
            raise HarnessError(f"target {self.name} used before activate()",
                               hint="use it as a context manager: `with Target() as t: ...`")

    # deploy interface --------------------------------------------------------------------
    def prepare(self, source: ModelSource, cache: "ArtifactCache", *,
                options: Mapping[str, Any] | None = None) -> Prepared:
        """Convert or export ``source`` for this target (cached); converter errors arrive as
        :class:`RuntimeFailure` with the converter's own text.  An untrusted source passes the trust
        gate first (:func:`harness.trust.admit`: refused with :class:`~harness.trust.ModelRefused`
        when it carries code)."""
        from harness.trust import admit

        admit(source)
        return self.prepare_impl(source, cache, dict(options or {}))

    def load(self, prepared: Prepared, *, options: Mapping[str, Any] | None = None) -> Deployment:
        """Load a prepared model on the running target (serve it, open it in a page, ...)."""
        self.require_active()
        if prepared.target != self.name:
            raise HarnessError(f"a model prepared for {prepared.target} cannot be loaded on {self.name}")
        from harness.counts import count

        count("model loads")
        return self.load_impl(prepared, dict(options or {}))

    def deploy(self, source: ModelSource, cache: "ArtifactCache", *,
               options: Mapping[str, Any] | None = None) -> Deployment:
        """``load(prepare(source))`` with the same options."""
        return self.load(self.prepare(source, cache, options=options), options=options)

    def prepare_impl(self, source: ModelSource, cache: "ArtifactCache", options: dict[str, Any]) -> Prepared:
        raise HarnessError(f"target {self.name} does not implement prepare() yet")

    def load_impl(self, prepared: Prepared, options: dict[str, Any]) -> Deployment:
        raise HarnessError(f"target {self.name} does not implement load() yet")

    # what each target provides -----------------------------------------------------------
    @classmethod
    @abstractmethod
    def unavailable_reason(cls) -> str | None:
        """A cheap check: None when the runtime can run here, else the exact reason."""

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of every runtime component involved, for the evidence."""

    def activate_impl(self) -> None:
        """Bring the runtime up (default: nothing to do)."""

    def warm_up(self) -> None:
        """On an active target, start now what its first :meth:`load` would start anyway (a server
        process, a worker), so that it overlaps other work (``pitfalls check`` calls it while the
        model loads).  Default: nothing to start."""

    def deactivate_impl(self) -> None:
        """Tear the runtime down (default: nothing to do)."""


class EarlyStarts(Generic[DeploymentT]):
    """What a target started before ``pitfalls check`` had its inputs (while its model loads for the
    reference: ``TargetChecks.early``): the model prepared from the file as given, and a deployment
    per name (a backend, a variant) opened on it, kept until the check's own :meth:`Target.prepare`
    and :meth:`Target.load` of the same file and artifact take them.  What failed is kept too and
    raised again there, once (a failed conversion is not run twice)."""

    def __init__(self) -> None:
        #: (artifact, name) -> the deployment opened early (or what opening it raised)
        self.opened: dict[tuple[Path, str], DeploymentT | Exception] = {}
        #: a model file's path -> what preparing it raised
        self.prepare_failed: dict[Path, Exception] = {}

    def start(self, target: Target, source: ModelSource, cache: "ArtifactCache", names: "Sequence[str]",
              ready: "Callable[[], bool]", open_one: "Callable[[Prepared, str], DeploymentT]", counted: str) -> None:
        """Prepare ``source`` (no options) and ``open_one`` a deployment per name of ``names``, one
        after the other, until ``ready()`` (the check's paths can start); each opened one counted as
        ``counted``."""
        from harness.counts import count

        if ready():
            return
        try:
            prepared = target.prepare(source, cache)
        except Exception as exc:  # noqa: BLE001 - raised again by the check's own prepare of this file
            self.prepare_failed[source.path] = exc
            return
        for name in names:
            if ready():
                return
            if (prepared.artifact, name) in self.opened:
                continue
            try:
                self.opened[(prepared.artifact, name)] = open_one(prepared, name)
                count(counted)
            except Exception as exc:  # noqa: BLE001 - raised again by this name's load
                self.opened[(prepared.artifact, name)] = exc

    def raise_prepare_failure(self, source: ModelSource) -> None:
        """In ``prepare`` (no options) of ``source``: what preparing it early raised, once."""
        failed = self.prepare_failed.pop(source.path, None)
        if failed is not None:
            raise failed

    def take(self, artifact: Path, name: str) -> DeploymentT | None:
        """The deployment of ``artifact`` opened early under ``name`` (None if none); what opening it raised is raised."""
        opened = self.opened.pop((artifact, name), None)
        if isinstance(opened, Exception):
            raise opened
        return opened

    def close(self) -> None:
        """Close what no load took."""
        while self.opened:
            opened = self.opened.popitem()[1]
            if isinstance(opened, Deployment):
                opened.close()
