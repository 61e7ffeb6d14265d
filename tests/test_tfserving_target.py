"""Tests of the tfserving helpers (kit, client) that need no serving container."""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.scenario import Run, Scenario, Succeeds
from harness.targets.tfserving import kit
from harness.targets.tfserving.client import http_request
from harness.targets.tfserving.target import TfservingTarget


def test_ssha_entry_is_rfc2307_salted_sha1() -> None:
    user, _, stored = kit.ssha_entry("client", "pw").partition(":")
    assert user == "client" and stored.startswith("{SSHA}")
    raw = base64.b64decode(stored[len("{SSHA}"):])
    digest, salt = raw[:20], raw[20:]
    assert hashlib.sha1(b"pw" + salt).digest() == digest


LOG = """\
2026-11-22 18:25:30.100000: I tfs_compat/core.py:290] Loading servable version {name: small version: 1}
2026-11-22 18:25:30.150000: I tfs_compat/core.py:330] Successfully loaded servable version {name: small version: 1}
2026-11-22 18:25:30.200000: I tfs_compat/core.py:290] Loading servable version {name: large version: 1}
2026-11-22 18:25:31.450000: I tfs_compat/core.py:330] Successfully loaded servable version {name: large version: 1}
"""


def test_load_seconds_from_log() -> None:
    assert kit.load_seconds_from_log(LOG, "small") == pytest.approx(0.05)
    assert kit.load_seconds_from_log(LOG, "large") == pytest.approx(1.25)
    with pytest.raises(HarnessError, match="no 'Loading servable version"):
        kit.load_seconds_from_log(LOG, "other")


@pytest.fixture()
def upstream() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            self.rfile.read(length)
            body = ('{"predictions": [[1.0]], "saw_authorization": %s}'
                    % ("true" if self.headers.get("Authorization") else "false")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_basic_auth_proxy_rejects_then_forwards(upstream: str) -> None:
    if not Path(kit.NGINX).is_file():
        pytest.skip("nginx is not installed (run.sh installs nginx-light)")
    good = {"Authorization": "Basic " + base64.b64encode(b"client:pw").decode()}
    with kit.basic_auth_proxy(upstream, {"client": "pw"}) as url:
        anonymous = http_request("POST", url + "/v1/models/m:predict", {"instances": [[1]]})
        allowed = http_request("POST", url + "/v1/models/m:predict", {"instances": [[1]]}, headers=good)
    assert anonymous.status == 401 and "401 Authorization Required" in anonymous.text
    assert allowed.status == 200 and allowed.body == {"predictions": [[1.0]], "saw_authorization": False}
    with pytest.raises(OSError):  # nginx is gone once the block ends
        http_request("POST", url + "/", {}, timeout=2)


def _run(tmp_path: Path) -> Run[TfservingTarget]:
    """A real run context (never activated: enter_together only registers callbacks with it)."""
    from harness.artifacts import ArtifactCache

    scenario = Scenario(title="enter_together", targets=("tfserving",), faulty=lambda run: None,
                        fixed=lambda run: None, symptom=Succeeds())
    return Run(scenario=scenario, variant="fixed", target=TfservingTarget("subprocess"), workdir=tmp_path,
               cache=ArtifactCache(tmp_path / "cache"))


def test_enter_together_stops_the_started_ones_when_one_fails(tmp_path: Path) -> None:
    events: list[str] = []

    @contextmanager
    def fake(name: str, fail: bool) -> Iterator[str]:
        if fail:
            raise RuntimeError(f"{name} failed")
        events.append(f"start {name}")
        try:
            yield name
        finally:
            events.append(f"stop {name}")

    run = _run(tmp_path)
    assert kit.enter_together(run, fake("a", False), fake("b", False)) == ["a", "b"]  # type: ignore[arg-type]  # str stands in for Server
    run.close()
    assert sorted(events) == ["start a", "start b", "stop a", "stop b"]
    run, events[:] = _run(tmp_path), []
    with pytest.raises(RuntimeError, match="b failed"):
        kit.enter_together(run, fake("a", False), fake("b", True))  # type: ignore[arg-type]  # str stands in for Server
    assert events == ["start a"]  # the one that started is registered, so closing the run stops it
    run.close()
    assert events == ["start a", "stop a"]


def test_serving_implementation_is_chosen_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """PITFALLS_SERVING_IMPLEMENTATION picks the stand-in (default) or the real image; the results
    record which ran; a real server without a container engine is refused, not silently replaced."""
    from harness.errors import HarnessError
    from harness.targets.tfserving.target import TfservingTarget

    monkeypatch.delenv("PITFALLS_SERVING_IMPLEMENTATION", raising=False)
    assert TfservingTarget(mode="subprocess").implementation == "tfserving-compatible"
    monkeypatch.setenv("PITFALLS_SERVING_IMPLEMENTATION", "tfserving-2000")
    with pytest.raises(HarnessError, match="is not a serving implementation"):
        TfservingTarget()
    monkeypatch.setenv("PITFALLS_SERVING_IMPLEMENTATION", "tensorflow/serving")
    target = TfservingTarget(mode="subprocess")
    with pytest.raises(HarnessError, match="needs a container"):
        target.activate()
    assert TfservingTarget(mode="subprocess").versions()["serving_implementation"] == "tensorflow/serving"


# ---------------------------------------------------------------------------- run variants as data

def test_variant_table_is_consistent_and_unknown_names_are_one_line_usage_errors() -> None:
    from harness.compare import TOLERANCES
    from harness.errors import UsageError
    from harness.targets.tfserving.variants import DEFAULT_VARIANT, VARIANTS, check_variants, variant_named

    assert DEFAULT_VARIANT in VARIANTS and VARIANTS[DEFAULT_VARIANT].protocol == "rest" and not VARIANTS[DEFAULT_VARIANT].args
    for name, variant in VARIANTS.items():
        assert variant.name == name and variant_named(name) is variant and variant.tolerance in TOLERANCES
        assert all(arg.startswith("--") and "=" in arg for arg in variant.args), variant  # TF Serving takes --name=value only
        for path, holds in variant.mounts:  # every mounted file is one its flags read
            assert any(arg.endswith("=" + path) for arg in variant.args) and variant.mount(holds) == path
    assert [v.name for v in check_variants("rest")] == ["rest"] and [v.name for v in check_variants("grpc")] == ["grpc"]
    with pytest.raises(UsageError) as info:
        variant_named("http3")
    assert str(info.value).startswith("unknown TF Serving variant 'http3': use one of rest, grpc,") and "\n" not in str(info.value)


def test_load_takes_a_rest_variant_and_refuses_others_before_a_server_starts() -> None:
    from harness.errors import UsageError

    target = TfservingTarget()  # never activated: the options are checked first
    with pytest.raises(UsageError, match=r"variant='grpc': load serves REST variants"):
        target.load_impl(None, {"variant": "grpc"})  # type: ignore[arg-type]  # refused before the model is read
    with pytest.raises(UsageError, match=r"variant='batching': load serves REST variants that mount no file"):
        target.load_impl(None, {"variant": "batching"})  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"^unknown tfserving load option\(s\) backend: use model_name, tf_version, variant$"):
        target.load_impl(None, {"backend": "webgl"})  # type: ignore[arg-type]


def test_the_check_runs_the_variants_the_table_marks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A REST variant marked in_check is a path of its own (its flags on its own server), a gRPC one
    a request on the same server: the check's tfserving paths are read from the table."""
    import dataclasses

    from harness.targets import target_checks
    from harness.targets.tfserving import variants

    declaration = target_checks("tfserving")
    assert declaration is not None and declaration.loads is not None
    assert [(load.label, load.options) for load in declaration.loads(None)] == [  # type: ignore[arg-type]
        ("tfserving", {"variant": "rest"})]
    batched = dataclasses.replace(variants.VARIANTS["no-load-retries"], in_check=True, tolerance="float16")
    monkeypatch.setitem(variants.VARIANTS, batched.name, batched)
    loads = declaration.loads(None)  # type: ignore[arg-type]
    assert [(load.label, load.options, load.tolerance) for load in loads] == [
        ("tfserving", {"variant": "rest"}, "float32"), ("tfserving@no-load-retries", {"variant": "no-load-retries"}, "float16")]


def test_no_scenario_spells_a_variant_s_flags_by_hand() -> None:
    """The scenarios that choose a variant name it (serve(variant=...)); its flags live in the table only."""
    from harness.paths import SCENARIO_ROOT
    from harness.targets.tfserving.variants import VARIANTS

    flags = {arg.split("=")[0] + "=" for v in VARIANTS.values() for arg in v.args}  # as passed, not as prose
    spelled = sorted(f"{p.relative_to(SCENARIO_ROOT)}: {flag}" for p in SCENARIO_ROOT.rglob("*.py")
                     for flag in flags if flag in p.read_text())
    assert not spelled, spelled
    users = sorted(p.name for p in SCENARIO_ROOT.rglob("*.py") if "variant=" in p.read_text() and "server" in p.parts)
    assert users == ["avoiding-version-incompatibility.py", "configuration-of-batching.py",
                     "export-of-unsupported-models.py", "limitations-of-platforms-frameworks.py"]
