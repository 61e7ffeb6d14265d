"""`pitfalls check-config` on tf.js web apps and Android LiteRT builds, statically: one planted mistake per rule.

As for serving bundles (tests/test_check_config.py): the example's fixed app, copied, with one mistake planted
per rule; the rule fires on the faulty copy and no rule fires on the fixed example.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest

from harness.configcheck import check_config
from harness.configcheck.examples import example
from harness.paths import REPO_ROOT
from harness.registry import load_catalog
from harness.targets.litert.android import RULES as ANDROID_RULES
from harness.targets.tfjs.webapp import RULES as TFJS_RULES
from test_check_config import Mutation, edit



@pytest.fixture(scope="module")
def fixed_apps() -> dict[str, Path]:
    """The checked-in fixed apps (read only: tests plant mistakes in copies)."""
    return {"tfjs": example("tfjs", "fixed"), "android": example("android", "fixed")}


def model_json(change: Callable[[dict], None]) -> Mutation:  # type: ignore[type-arg]
    def apply(app: Path) -> None:
        path = app / "model" / "model.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
    return apply


def shard(app: Path) -> Path:
    return sorted((app / "model").glob("*.bin"))[0]


def asset(app: Path) -> Path:
    return app / "app" / "src" / "main" / "assets" / "model.tflite"


def patched_model(change: Callable[[object], None]) -> Mutation:
    """The app's model.tflite re-packed after ``change(model)`` on LiteRT's schema object."""
    def apply(app: Path) -> None:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as schema

        data = asset(app).read_bytes()
        parsed = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
        change(parsed)
        builder = flatbuffers.Builder(len(data) + 1024)
        builder.Finish(parsed.Pack(builder), file_identifier=b"TFL3")
        asset(app).write_bytes(bytes(builder.Output()))
    return apply


def as_flex_op(model: object) -> None:
    code = model.operatorCodes[0]  # type: ignore[attr-defined]
    code.builtinCode = code.deprecatedBuiltinCode = 32  # CUSTOM
    code.customCode = b"FlexErf"


def newer_min_runtime(model: object) -> None:
    for entry in model.metadata:  # type: ignore[attr-defined]
        if entry.name == b"min_runtime_version":
            model.buffers[entry.buffer].data = list(b"2.16.0".ljust(16, b"\0"))  # type: ignore[attr-defined]


TFJS_PLANTED: dict[str, Mutation] = {
    "tfjs/no-format": model_json(lambda d: (d.pop("format", None), d.update(modelTopology={"versions": {}}))),
    "tfjs/shard-missing": lambda app: shard(app).unlink(),
    "tfjs/shard-size-mismatch": lambda app: shard(app).write_bytes(shard(app).read_bytes() + b"\0\0\0\0"),
    "tfjs/unsupported-op": model_json(lambda d: d["modelTopology"]["node"].append({"name": "leak", "op": "PyFunc"})),
    "tfjs/loader-format-mismatch": edit("app.js", "tf.loadGraphModel", "tf.loadLayersModel"),
    "tfjs/file-url": edit("app.js", "'model/model.json'", "'file:///srv/app/model/model.json'"),
    "tfjs/unawaited-load": edit("app.js", "await tf.loadGraphModel", "tf.loadGraphModel"),
    "tfjs/no-backend-chosen": edit("app.js", "await tf.setBackend('cpu');\n", ""),
}
ANDROID_PLANTED: dict[str, Mutation] = {
    "litert/tflite-compressed": lambda app: (edit("app/build.gradle", "    androidResources { noCompress += 'tflite' }\n", "")(app),
                                             edit("build.gradle", "version '8.5.0'", "version '4.0.1'")(app)),
    "litert/runtime-older-than-model": lambda app: (
        edit("app/build.gradle", "'com.google.ai.edge.litert:litert:1.0.1'", "'org.tensorflow:tensorflow-lite:2.4.0'")(app),
        patched_model(newer_min_runtime)(app)),
    "litert/flex-without-dependency": patched_model(as_flex_op),
    "litert/abi-without-arm64": edit("app/build.gradle", "'arm64-v8a', ", ""),
    "litert/asset-missing": edit("app/src/main/java/org/example/classifier/Classifier.java", '"model.tflite"',
                                 '"classifier.tflite"'),
    "litert/not-a-flatbuffer": lambda app: asset(app).write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n"),
}
RUNTIME_ONLY = {"tfjs/load-error", "tfjs/predict-error", "tfjs/request-failed", "tfjs/tensor-leak", "tfjs/page-error",
                "tfjs/kernel-missing", "litert/load-error"}
CASES = sorted([("tfjs", r) for r in TFJS_PLANTED] + [("android", r) for r in ANDROID_PLANTED])


def steps(app: Path) -> set[str]:
    return {f.step for f in check_config([app], verify=False).findings}


def test_every_rule_has_a_planted_mistake_or_a_runtime_test() -> None:
    assert set(TFJS_RULES) | set(ANDROID_RULES) == set(TFJS_PLANTED) | set(ANDROID_PLANTED) | RUNTIME_ONLY


@pytest.mark.parametrize("kind", ["tfjs", "android"])
def test_the_fixed_example_has_no_finding(kind: str, fixed_apps: dict[str, Path]) -> None:
    report = check_config([fixed_apps[kind]], verify=False)
    assert report.findings == [] and report.exit_code() == 0 and len(report.bundles) == 1


@pytest.mark.parametrize(("kind", "rule"), CASES)
def test_rule_fires_on_its_planted_mistake(kind: str, rule: str, fixed_apps: dict[str, Path], tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(fixed_apps[kind], app)
    (TFJS_PLANTED if kind == "tfjs" else ANDROID_PLANTED)[rule](app)
    report = check_config([app], verify=False)
    hits = [f for f in report.findings if f.step == rule]
    assert hits, f"{rule} did not fire; fired: {[(f.step, f.text) for f in report.findings]}"
    rules = TFJS_RULES if kind == "tfjs" else ANDROID_RULES
    assert hits[0].verified == "static" and hits[0].scenario == rules[rule].scenario and hits[0].file.startswith(str(app))


def test_rules_name_lessons_that_exist_and_the_docs_list_every_rule() -> None:
    catalog = load_catalog()
    docs = (REPO_ROOT / "docs" / "check-config.md").read_text()
    for rule in [*TFJS_RULES.values(), *ANDROID_RULES.values()]:
        assert rule.scenario in catalog.files and rule.taxonomy is not None, rule.id
        assert f"`{rule.id}`" in docs, f"docs/check-config.md does not list {rule.id}"


def test_attack_a_weight_path_that_climbs_out_of_the_app_is_refused(fixed_apps: dict[str, Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    app = tmp_path / "app"
    shutil.copytree(fixed_apps["tfjs"], app)
    model_json(lambda d: d["weightsManifest"][0]["paths"].append("../../../../etc/passwd"))(app)
    assert main(["check-config", str(app), "--static"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "outside the bundle" in err[0]


def test_attack_app_code_is_read_never_run(fixed_apps: dict[str, Path], tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(fixed_apps["tfjs"], app)
    marker = tmp_path / "ran"
    (app / "build.js").write_text(f"require('fs').writeFileSync({str(marker)!r}, 'x'); tf.loadGraphModel('model/model.json')\n")
    check_config([app], verify=False)
    assert not marker.exists()


def test_a_runtime_that_is_not_here_is_a_skip_with_its_reason(fixed_apps: dict[str, Path],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.targets.tfjs.target import TfjsTarget

    monkeypatch.setattr(TfjsTarget, "unavailable_reason", classmethod(lambda cls: "chromium is missing (test)"))
    report = check_config([fixed_apps["tfjs"]], verify=True)
    assert report.bundles[0].verified == "skipped: tf.js in Chromium cannot run here: chromium is missing (test)"
    assert report.findings == [] and report.exit_code() == 0


def test_attack_markup_in_a_page_run_is_escaped_in_the_page(fixed_apps: dict[str, Path]) -> None:
    """A page run carries strings from the untrusted app and its page (file name, kernel and backend names the
    page's tf.js reported, refused URLs): the HTML page escapes each."""
    from harness.configcheck.render import html_page, summary
    from harness.targets.tfjs.webapp import PageRun

    report = check_config([fixed_apps["tfjs"]], verify=False)
    payload = "<img src=x onerror=alert(1)>"
    run = PageRun(f"{payload}.html", "cpu", asked=[payload], num_tensors=[5, 5, 5], kernels=[payload],
                  blocked=[f"https://example.com/{payload}", f"GET http://192.0.2.2/{payload}"], waited="3 predictions seen")
    report.bundles[0].runs = [run.to_json()]
    page = html_page(report)
    assert payload not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img" not in page and "3 predictions seen" in page
    assert f"{payload}.html on cpu" in summary(report)  # the terminal gets the text as it is
    assert f"(3 predictions seen); refused: https://example.com/{payload}, GET http://192.0.2.2/{payload}" \
        in summary(report)


def test_attack_the_refusing_proxy_forwards_nothing_reads_a_bounded_head_and_keeps_its_first_line() -> None:
    """What a page's connections meet in the network stack: a request line is kept (printable, at most 500
    characters of a head read up to PROXY_HEAD_BYTES), nothing is answered, an endless head is cut."""
    import socket

    from harness.targets.tfjs.webapp import PROXY_HEAD_BYTES, RefusingProxy

    with RefusingProxy() as proxy:
        settings = proxy.settings("http://127.0.0.1:8123")
        assert settings["bypass"] == "127.0.0.1:8123" and settings["server"].startswith("http://127.0.0.1:")
        port = int(settings["server"].rsplit(":", 1)[1])
        answers = []
        for head in (b"CONNECT 192.0.2.2:443 HTTP/1.1\r\nHost: 192.0.2.2:443\r\n\r\n",
                     b"GET http://192.0.2.2/\x1b[31mred HTTP/1.1\r\n\r\n", b"A" * (4 * PROXY_HEAD_BYTES)):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
                try:
                    client.sendall(head)
                except OSError:
                    pass  # the proxy closed before reading all of an endless head
                try:
                    answers.append(client.recv(100))  # b"": closed unanswered
                except ConnectionResetError:
                    answers.append(b"")
    assert answers == [b"", b"", b""]
    assert proxy.refused == ["CONNECT 192.0.2.2:443", "GET http://192.0.2.2/?[31mred", "A" * 500]


class MadeUpPage:
    """A page's answers to the predictions waiter, one per poll, on a made-up clock that ``sleep`` advances."""

    def __init__(self, states: Callable[[float], dict | None]) -> None:  # type: ignore[type-arg]
        self.now = 0.0
        self.states = states
        self.polls = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def state(self) -> dict | None:  # type: ignore[type-arg]
        self.polls += 1
        return self.states(self.now)


def page_state(done: int, running: int = 0, resources: int = 5, loaded: bool = True) -> dict:  # type: ignore[type-arg]
    return {"done": done, "running": running, "resources": resources, "loaded": loaded}


def test_a_slow_page_is_waited_for_until_its_third_prediction() -> None:
    """A loaded machine: the model files arrive one by one over 60 s and each prediction takes 20 s (the old
    fixed 30 s wait cut this page at no prediction); the wait ends at the third, not at a time."""
    from harness.targets.tfjs.webapp import PAGE_PREDICTIONS, wait_for_predictions

    def slow(t: float) -> dict | None:  # type: ignore[type-arg]
        if t < 5:
            return None  # still navigating: the page cannot answer
        if t < 60:
            return page_state(0, resources=int(t // 6), loaded=t > 20)
        done = min(3, int((t - 60) // 20))
        return page_state(done, running=1 if done < 3 else 0, resources=10)

    page = MadeUpPage(slow)
    waited = wait_for_predictions(page.state, clock=page.clock, sleep=page.sleep)
    assert waited.done == PAGE_PREDICTIONS and waited.why == "predictions" and waited.seconds == 120.0
    assert waited.text == "3 predictions seen"


def test_a_page_that_stops_predicting_ends_the_wait_when_quiet_and_says_why() -> None:
    from harness.targets.tfjs.webapp import PAGE_QUIET_S, wait_for_predictions

    page = MadeUpPage(lambda t: page_state(1 if t >= 8 else 0, running=1 if 4 <= t < 8 else 0))
    waited = wait_for_predictions(page.state, clock=page.clock, sleep=page.sleep)
    assert waited.why == "quiet" and waited.done == 1 and waited.seconds == 8 + PAGE_QUIET_S
    assert waited.text.startswith("1 of 3 predictions seen: the page was then quiet for")


def test_a_prediction_still_running_or_a_page_fetching_is_never_quiet_the_ceiling_ends_it() -> None:
    from harness.targets.tfjs.webapp import PAGE_WAIT_CEILING_S, wait_for_predictions

    running = MadeUpPage(lambda t: page_state(2, running=1))  # a prediction that never ends
    waited = wait_for_predictions(running.state, clock=running.clock, sleep=running.sleep)
    assert waited.why == "ceiling" and waited.done == 2 and waited.seconds >= PAGE_WAIT_CEILING_S
    assert "ceiling ended it with the page still busy" in waited.text
    fetching = MadeUpPage(lambda t: page_state(0, resources=int(t)))  # fetches from its origin every second
    assert wait_for_predictions(fetching.state, clock=fetching.clock, sleep=fetching.sleep).why == "ceiling"
    unloaded = MadeUpPage(lambda t: page_state(0, loaded=False))  # its load event never came
    assert wait_for_predictions(unloaded.state, clock=unloaded.clock, sleep=unloaded.sleep).why == "ceiling"
