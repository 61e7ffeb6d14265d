"""The server scenarios' one way in: TF Serving's API behind the active ``tfserving`` target.

A server scenario imports :class:`~harness.targets.tfserving.target.TfservingTarget` (the deploy
interface and :meth:`~harness.targets.tfserving.target.TfservingTarget.serve`) and this module, never
the modules behind it (``client``, ``container``, ``host``, ``forked``).  Defined here, the calls that
tie a server to a scenario's run:

* :func:`serve_versions` / :func:`serve_spec`: a model served until the variant ends, with the
  implementation that ran noted in the evidence; :func:`enter_together` starts several at once.

Re-exported here, each from the module that owns it:

* requests (:mod:`~harness.targets.tfserving.client`): :class:`Server`, :func:`http_request`,
  :func:`grpc_predict`, :func:`signature_defs`;
* layout (:mod:`~harness.targets.tfserving.layout`): :func:`model_base_path`, SavedModels laid out as
  TF Serving expects (``<name>/<version>/``);
* proxy (:mod:`~harness.targets.tfserving.proxy`): :func:`basic_auth_proxy`, a real nginx with HTTP
  basic auth in front of a server;
* logs (:mod:`~harness.targets.tfserving.logs`): :func:`load_seconds_from_log`;
* models (:mod:`~harness.targets.tfserving.exports`): :func:`cached_export`, :func:`export_endpoint`,
  :func:`wide_mlp_saved_model`;
* data and figures (:mod:`~harness.targets.tfserving.figures`): ``RAW_MEAN``, ``RAW_STD``,
  :func:`raw_measurements`, :func:`probe_diff`, :func:`label_figures`.
* run variants (:mod:`~harness.targets.tfserving.variants`): ``VARIANTS``, :func:`variant_named`
  (what ``serve(variant=...)`` applies: flags, mounted files, fork or fresh server).

Nothing heavy is imported at module level.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.models import ModelSpec
from harness.targets.tfserving.client import GrpcReply, Reply, Server, grpc_predict, http_request, signature_defs
from harness.targets.tfserving.exports import cached_export, export_endpoint, wide_mlp_saved_model
from harness.targets.tfserving.figures import RAW_MEAN, RAW_STD, label_figures, probe_diff, raw_measurements
from harness.targets.tfserving.layout import link_or_copy, model_base_path
from harness.targets.tfserving.logs import load_seconds_from_log
from harness.targets.tfserving.proxy import NGINX, basic_auth_proxy, ssha_entry
from harness.targets.tfserving.variants import VARIANTS, ServingVariant, variant_named

if TYPE_CHECKING:
    from harness.scenario import Run
    from harness.targets.tfserving.target import TfservingTarget

__all__ = ["VARIANTS", "ServingVariant", "variant_named", "GrpcReply", "Reply", "Server", "grpc_predict", "http_request", "signature_defs",
           "NGINX", "link_or_copy", "model_base_path", "serve_versions", "serve_spec", "enter_together",
           "basic_auth_proxy", "ssha_entry", "load_seconds_from_log", "cached_export", "export_endpoint",
           "wide_mlp_saved_model", "RAW_MEAN", "RAW_STD", "raw_measurements", "probe_diff", "label_figures"]


def serve_versions(run: "Run[TfservingTarget]", versions: Mapping[int, Path], *, name: str = "model",
                   **serve_options: Any) -> Server:
    """Serve ``{version: saved_model_dir}`` as model ``name`` until the variant ends.

    The server is registered with ``run`` (stopped when the variant ends) and its implementation
    noted.  ``serve_options`` go to :meth:`TfservingTarget.serve`.
    """
    base = model_base_path(run.workdir, versions, name=name)
    server = run.enter(run.target.serve(model_name=name, model_dir=base, **serve_options))
    run.note("implementation", server.implementation)
    return server


def serve_spec(run: "Run[TfservingTarget]", spec: ModelSpec, *, name: str = "model", **serve_options: Any) -> Server:
    """Serve the zoo's SavedModel of ``spec`` as version 1 of ``name``."""
    from harness.models import saved_model

    return serve_versions(run, {1: saved_model(run.cache, spec)}, name=name, **serve_options)


def enter_together(run: "Run[TfservingTarget]", *servers: AbstractContextManager[Server]) -> list[Server]:
    """Start several ``serve(...)`` contexts at once (threads) and register them with ``run``.

    Two containers starting side by side take about as long as one; each is stopped when the
    variant ends, and the ones that started are stopped too if another fails.
    """
    from concurrent.futures import ThreadPoolExecutor
    from functools import partial

    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        futures = [pool.submit(cm.__enter__) for cm in servers]
        started: list[Server] = []
        failure: BaseException | None = None
        for cm, future in zip(servers, futures):
            try:
                started.append(future.result())
            except BaseException as exc:  # noqa: BLE001 - re-raised after the others are registered
                failure = failure or exc
                continue
            run.callback(partial(cm.__exit__, None, None, None))
    if failure is not None:
        raise failure
    return started
