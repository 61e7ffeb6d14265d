"""The model server has no authentication: anyone who reaches the port can predict."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.errors import RuntimeFailure
from harness.models import ModelSpec, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.tfserving.kit import basic_auth_proxy, http_request, serve_spec

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")
USER, PASSWORD = "client-app", "s3cret-for-tests"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def faulty(run: "Run[TfservingTarget]") -> dict[str, float]:
    # The server port is the only gate: a client with no credentials, or wrong ones, predicts.
    server = serve_spec(run, SPEC)
    x, _ = trained_model(run.cache, SPEC).probe()
    body = {"instances": x[:2].tolist()}
    anonymous = server.request("POST", server.model_path() + ":predict", body)
    wrong = server.request("POST", server.model_path() + ":predict", body, headers=_basic("intruder", "guess"))
    run.observe(f"no credentials: HTTP {anonymous.status} {anonymous.text[:200]}")
    run.observe(f"wrong credentials: HTTP {wrong.status} {wrong.text[:200]}")
    served = sum(1 for r in (anonymous, wrong) if r.status == 200 and "predictions" in (r.body or {}))
    return {"unauthenticated_predictions": served}


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    server = serve_spec(run, SPEC)
    run.note("published_ports", server.published)
    proxy = run.enter(basic_auth_proxy(server.rest_url, {USER: PASSWORD}))
    x, expected = trained_model(run.cache, SPEC).probe()
    path = server.model_path() + ":predict"
    body = {"instances": x.tolist()}
    anonymous = http_request("POST", proxy + path, body)
    wrong = http_request("POST", proxy + path, body, headers=_basic(USER, "guess"))
    allowed = http_request("POST", proxy + path, body, headers=_basic(USER, PASSWORD))
    for label, reply in (("no credentials", anonymous), ("wrong password", wrong), ("credentials", allowed)):
        run.observe(f"via nginx, {label}: HTTP {reply.status} {reply.text[:160]!r}")
    rejected = sum(1 for r in (anonymous, wrong) if r.status == 401 and "401 Authorization Required" in r.text)
    if allowed.status != 200:  # the proxy (or the server behind it) refused a client with credentials
        raise RuntimeFailure("nginx", allowed.text, kind=f"HTTP {allowed.status}", source=f"reply to POST {path}")
    bindings = [b for host_ports in server.published.values() for b in host_ports]
    loopback_only = all(b.startswith("127.0.0.1:") for b in bindings) and (bool(bindings) or server.mode != "container")
    return {"rejected_by_proxy": rejected, "max_abs_diff": max_abs_diff(allowed.body["predictions"], expected),
            "ports_on_loopback_only": float(loopback_only)}


SCENARIO = Scenario(
    title="No authentication in the model server; nginx with HTTP basic auth in front",
    targets=("tfserving",),
    figures={"max_abs_diff": "parity", "ports_on_loopback_only": "exact", "rejected_by_proxy": "exact",
             "unauthenticated_predictions": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=succeeds(Figure("unauthenticated_predictions", ">=", 2)),
    remedy=succeeds(Figure("rejected_by_proxy", ">=", 2), Figure("max_abs_diff", "<=", 1e-5),
                    Figure("ports_on_loopback_only", ">=", 1)),
    cause="TF Serving has no authentication or authorisation of its own: its REST (8501) and gRPC "
          "(8500) ports answer every client, and an Authorization header is simply ignored. A "
          "container started with `-p 8501:8501` publishes the port on every interface, so anyone who "
          "can reach the host can query (and probe the metadata of) the model.",
    fix="Keep the server's ports private (publish them on 127.0.0.1 only, or on an internal network) "
        "and put a reverse proxy that authenticates in front of it: here a real nginx with "
        "`auth_basic` and an htpasswd file, proxying to the REST port. Without credentials, or with a "
        "wrong password, nginx answers its own 401; with them the request reaches the model. Use TLS "
        "(or gRPC with TLS/mTLS at the proxy) so the credentials are not sent in clear.",
    references=("https://github.com/tensorflow/serving/issues/767",
                "https://docs.nginx.com/nginx/admin-guide/security-controls/configuring-http-basic-authentication/",
                "https://nginx.org/en/docs/http/ngx_http_auth_basic_module.html",
                "https://www.tensorflow.org/tfx/serving/docker"),
)
