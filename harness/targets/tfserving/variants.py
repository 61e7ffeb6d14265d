"""TF Serving run variants as data: how a model is served and asked, one :class:`ServingVariant` each.

As LiteRT has one ``DeviceProfile`` per device (:mod:`harness.targets.litert.profiles`) and tf.js
one ``TfjsBackend`` per backend (:mod:`harness.targets.tfjs.backends`), a variant states what
differs between two ways of serving the same SavedModel: the API the client speaks (REST or
gRPC), the server flags on top of the image's, the files those flags read (mounted, so a
container is needed), whether the server may be a forked process of the worker's fork container
or must be a fresh one, the tolerance its answers are compared on, and whether ``pitfalls check``
runs it.  :meth:`TfservingTarget.serve(variant=...) <harness.targets.tfserving.target.TfservingTarget.serve>`
and the ``variant`` load option apply it; the check's paths and the scenarios that choose a
variant read it from :data:`VARIANTS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.errors import UsageError

Protocol = Literal["rest", "grpc"]


@dataclass(frozen=True)
class ServingVariant:
    """One way of serving and asking a model."""

    name: str
    summary: str
    #: the API the client speaks: REST (``:predict``, columnar JSON) or gRPC (``PredictionService``)
    protocol: Protocol = "rest"
    #: server flags on top of the image's defaults (``--name=value``)
    args: tuple[str, ...] = ()
    #: (container path, what the file holds) of each file the flags read: the scenario writes it
    #: and mounts it there, so the variant needs a container
    mounts: tuple[tuple[str, str], ...] = ()
    #: whether the server may be forked in the worker's fork container (False: a fresh one)
    fork: bool = True
    #: the numeric path its answers are compared on (:func:`harness.compare.tolerance_for`)
    tolerance: str = "float32"
    #: whether ``pitfalls check`` runs it
    in_check: bool = False

    @property
    def needs_container(self) -> bool:
        """Whether only a container can serve it (mounted files)."""
        return bool(self.mounts)

    def mount(self, what: str) -> str:
        """The container path of the mounted file that holds ``what``."""
        for path, holds in self.mounts:
            if holds == what:
                return path
        raise UsageError(f"serving variant {self.name!r} mounts no {what!r} (it mounts: "
                         f"{', '.join(h for _, h in self.mounts) or 'nothing'})")


VARIANTS: dict[str, ServingVariant] = {v.name: v for v in (
    ServingVariant("rest", "REST predict with the columnar format, the image's default flags", in_check=True),
    ServingVariant("grpc", "gRPC Predict on the same server, tensors of the dtypes the served metadata gives",
                   protocol="grpc", in_check=True),
    ServingVariant("batching", "server-side batching: requests queued and merged by the batching parameters file",
                   args=("--enable_batching=true", "--batching_parameters_file=/config/batching.config"),
                   mounts=(("/config/batching.config", "batching parameters"),)),
    ServingVariant("no-load-retries", "a failed load is not retried: the server gives up on a version at once",
                   args=("--max_num_load_retries=0",)),
    ServingVariant("fresh-container", "a fresh server container, never a forked process of the worker's fork container",
                   fork=False),
)}
DEFAULT_VARIANT = "rest"


def variant_named(name: str) -> ServingVariant:
    """The variant called ``name``; a one-line :class:`UsageError` naming the known ones otherwise."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise UsageError(f"unknown TF Serving variant {name!r}: use one of {', '.join(VARIANTS)}") from None


def check_variants(protocol: Protocol) -> tuple[ServingVariant, ...]:
    """The variants of ``protocol`` that ``pitfalls check`` runs, in the table's order."""
    return tuple(v for v in VARIANTS.values() if v.in_check and v.protocol == protocol)
