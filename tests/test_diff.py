"""`pitfalls diff`: behaviour changes between two crafted results files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crafted import ASYNC, LITERT, SERVER, new_records, old_records, record, run_to_the_end, write_results
from harness import diff
from harness.cli import main
from harness.diff import diff_results, figure_moved, legacy_figure_class, normalise_text, regressions
from harness.paths import REPO_ROOT
from harness.results import build_results, load_results


def _changes(old: list, new: list, threshold: float = 20.0) -> dict:
    found = diff_results(build_results(old, env={}), build_results(new, env={}), threshold)
    return {(c.scenario, c.variant, c.kind, c.what.split(" by ")[0]): c for c in found}


def test_diff_finds_regressions_improvements_and_new_error_text() -> None:
    changes = _changes(old_records(), new_records())
    broken = changes[(LITERT, "fixed", "outcome", "fixed variant now broken")]
    assert (broken.severity, broken.old, broken.new) == ("regression", "works", "broken")
    assert changes[(LITERT, "fixed", "figure", "max_abs_diff rose")].severity == "regression"
    assert changes[(ASYNC, "fixed", "figure", "predict_ms rose")].severity == "regression"
    text = changes[(ASYNC, "faulty", "error-text", "new error text")]
    assert text.severity == "changed" and text.new.endswith("(new wording)")
    assert changes[(SERVER, "faulty", "outcome", "symptom reproduced again")].severity == "improvement"
    assert not any(key[0] == ASYNC and key[2] == "figure" and "load_ms" in key[3] for key in changes)
    # the default noise band (a factor 20) takes a 3x latency move for noise; parity and outcome stay
    default = {(c.scenario, c.variant, c.kind) for c in diff_results(
        build_results(old_records(), env={}), build_results(new_records(), env={}))}
    assert (ASYNC, "fixed", "figure") not in default and (LITERT, "fixed", "figure") in default


def test_symptom_no_longer_reproduced_is_a_regression() -> None:
    old = [record(ASYNC, "tfjs", "faulty", "reproduced", error="m.predict is not a function")]
    new = [record(ASYNC, "tfjs", "faulty", "not-reproduced")]
    (change,) = diff_results(build_results(old, env={}), build_results(new, env={}))
    assert (change.what, change.severity) == ("symptom no longer reproduced", "regression")


def test_threshold_and_noise_floor() -> None:
    assert not any(c.kind == "figure" for c in diff_results(
        build_results(old_records(), env={}), build_results(new_records(), env={}), 1000.0)
        if c.scenario == ASYNC)
    # 1e-7 -> 5e-7 is +400 % but below the parity noise floor of 1e-6
    old = [record(ASYNC, "tfjs", "fixed", "works", figures={"max_abs_diff": 1e-7})]
    new = [record(ASYNC, "tfjs", "fixed", "works", figures={"max_abs_diff": 5e-7})]
    assert diff_results(build_results(old, env={}), build_results(new, env={})) == []


def test_added_and_removed_records_are_changes_not_regressions() -> None:
    old, new = old_records(), old_records()[:-2]
    found = diff_results(build_results(old, env={}), build_results(new, env={}))
    assert {c.kind for c in found} == {"removed"} and not regressions(found)


def test_cli_diff_table_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write_results(tmp_path / "old.json", old_records())
    new = write_results(tmp_path / "new.json", new_records())
    data = json.loads(new.read_text())
    data["environment"]["packages"]["tensorflowjs"] = "4.23.0"
    new.write_text(json.dumps(data))
    assert main(["diff", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("versions changed: tensorflowjs: 4.22.0 -> 4.23.0\n")
    assert "fixed variant now broken" in out and LITERT in out
    assert out.rstrip().endswith("regression(s)")
    assert main(["diff", str(old), str(old)]) == 0
    assert "no scenario changed behaviour" in capsys.readouterr().out


def test_cli_diff_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write_results(tmp_path / "old.json", old_records())
    new = write_results(tmp_path / "new.json", new_records())
    assert main(["diff", str(old), str(new), "--json", "--threshold", "50"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["threshold_pct"] == 50 and data["regressions"] == 3 and data["environment"] == {}
    assert main(["diff", str(old), str(new), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["threshold_pct"] == 1900 and data["regressions"] == 2  # predict_ms x3 is within the band
    assert {"scenario", "target", "variant", "kind", "severity", "what", "old", "new"} <= set(data["changes"][0])


@pytest.mark.parametrize("args, words", [
    (["diff", "missing-old.json", "missing-new.json"], "results file not found: missing-old.json"),
    (["diff", "OLD", "NEW", "--threshold", "-5"], "--threshold must be a percentage"),
    (["diff", "OLD"], "the following arguments are required: NEW"),
])
def test_cli_diff_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list, words: str) -> None:
    paths = {"OLD": str(write_results(tmp_path / "o.json", old_records())),
             "NEW": str(write_results(tmp_path / "n.json", new_records()))}
    assert main([paths.get(a, a) for a in args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and words in captured.err


# ------------------------------------------------------------------ volatile parts of runtime texts

#: rule name -> two texts of the same runtime message from two runs (seen or shaped like real ones)
SAME_MESSAGE = {
    "tf-function-id": (  # seen: mobile/model-conversion/conversion-of-unsupported-models/litert faulty
        'error: loc(callsite(callsite(fused["StringSplitV2:", "StringSplit/StringSplitV2@__inference_serve_8683"] at '
        'fused["StatefulPartitionedCall:", "StatefulPartitionedCall@__inference_signature_wrapper_serve_8697"])',
        'error: loc(callsite(callsite(fused["StringSplitV2:", "StringSplit/StringSplitV2@__inference_serve_7991"] at '
        'fused["StatefulPartitionedCall:", "StatefulPartitionedCall@__inference_signature_wrapper_serve_8005"])'),
    "tf-function-node": (  # seen: server/.../b64-image-bytes faulty, TF 2.18 and 2.19 servers
        "Unknown image file format. One of JPEG, PNG, GIF, BMP required. [[{{function_node map_while_body_18638}}"
        "{{node map/while/DecodePng}}]]",
        "Unknown image file format. One of JPEG, PNG, GIF, BMP required. [[{{function_node map_while_body_7270}}"
        "{{node map/while/DecodePng}}]]"),
    "tf-log-prefix": (  # seen: server/serving/model-loading faulty, two runs of the same versions
        "2026-12-01 07:36:21.894355: W tfs_compat/core.py:117] No versions of servable model found under "
        "base path /models/model/1. Did you forget to name your leaf directory as a number (eg. '/1/')?",
        "2026-12-01 07:37:31.097388: W tfs_compat/core.py:117] No versions of servable model found under "
        "base path /models/model/1. Did you forget to name your leaf directory as a number (eg. '/1/')?"),
    "glog-prefix": ("I1201 07:25:46.123456  4711 loader_harness.cc:74] Loading servable version {name: m}",
                    "I1202 19:01:02.000001    12 loader_harness.cc:74] Loading servable version {name: m}"),
    "python-log-prefix": ("WARNING:absl:Found untraced functions", "Found untraced functions"),
    "iso-timestamp": ("request at 2026-12-01T07:25:46.123+00:00 failed", "request at 2026-12-02T10:00:00Z failed"),
    "clock-time": ("[07:25:46.123] worker exited", "[23:59:01.9] worker exited"),
    "pitfalls-cache-entry": ("Could not open /root/.cache/pitfalls/tflite/0a1b2c3d4e5f60718293/model.tflite",
                             "Could not open /home/ci/.cache/pitfalls/tflite/ffeeddccbbaa99887766/model.tflite"),
    "temp-path": (  # seen: mobile/model-conversion/saving-models/litert faulty (Keras's text, run directory)
        "Use `model.export(filepath)` if you want to export a SavedModel for use with TFLite/TFServing/etc. "
        "Received: filepath=/tmp/pitfalls-run-98pfd954/faulty-7pdt7e1a/model",
        "Use `model.export(filepath)` if you want to export a SavedModel for use with TFLite/TFServing/etc. "
        "Received: filepath=/tmp/pitfalls-run-zs72wfcg/faulty-3oha2qpl/model"),
    "run-directory": ("see pitfalls-run-k2j3h4/faulty-1 for the log", "see pitfalls-run-a0b9c8/faulty-1 for the log"),
    "loopback-port": ("UNAVAILABLE: ipv4:127.0.0.1:45121: Connection refused",
                      "UNAVAILABLE: ipv4:127.0.0.1:38007: Connection refused"),
    "container-id": ("No such container: 3f2a9c81d0e4", "No such container: 0b1c2d3e4f5a"),
    "container-name": ('The container name "/pitfalls-serving-3f9a0c21bd" is already in use',
                       'The container name "/pitfalls-serving-00aa11bb22" is already in use'),
    "hex-address": ("<tflite.Interpreter object at 0x7f3a2c1b9d50>", "<tflite.Interpreter object at 0x7f00aa11bb22>"),
    "process-id": ("worker process 81234 exited with signal 9", "worker process 77 exited with signal 9"),
    "thread-id": ("Exception in thread Thread-17 (worker)", "Exception in thread Thread-3 (worker)"),
}


def test_every_text_rule_has_a_tested_example() -> None:
    assert {rule.name for rule in diff.TEXT_RULES} == set(SAME_MESSAGE)
    for rule in diff.TEXT_RULES:
        assert rule.pattern.search(rule.example), rule.name
        assert rule.pattern.sub(rule.replacement, rule.example) != rule.example, rule.name


@pytest.mark.parametrize("name", sorted(SAME_MESSAGE))
def test_the_same_message_from_two_runs_normalises_equal(name: str) -> None:
    a, b = SAME_MESSAGE[name]
    assert a != b and normalise_text(a) == normalise_text(b)


def test_normalising_keeps_what_the_runtime_said() -> None:
    a, _ = SAME_MESSAGE["tf-log-prefix"]
    assert normalise_text(a).startswith("No versions of servable model found under base path /models/model/1.")
    reworded = a.replace("No versions of servable model found", "No servable versions found")
    assert normalise_text(a) != normalise_text(reworded)
    assert normalise_text("Dimension mismatch. Got 8 but expected 4") != normalise_text(
        "Dimension mismatch. Got 8 but expected 3")


def test_error_text_changes_only_when_the_words_change() -> None:
    a, b = SAME_MESSAGE["tf-log-prefix"]
    old = [record(SERVER, "tfserving", "faulty", "reproduced", error=a)]
    same = [record(SERVER, "tfserving", "faulty", "reproduced", error=b)]
    assert diff_results(build_results(old, env={}), build_results(same, env={})) == []
    reworded = [record(SERVER, "tfserving", "faulty", "reproduced", error=b.replace("No versions", "No version"))]
    (change,) = diff_results(build_results(old, env={}), build_results(reworded, env={}))
    assert (change.kind, change.what) == ("error-text", "new error text")


# ------------------------------------------------------------------ figures judged by class

@pytest.mark.parametrize("name, cls", [
    ("max_abs_diff", "parity"), ("int8_max_abs_diff", "parity"), ("arm_vs_x86_max_abs_diff", "parity"),
    ("old_vs_new_model_max_diff", "parity"), ("diff_to_new_model", "parity"), ("int8_arm_vs_x86_max_steps", "parity"),
    ("tflite_bytes", "size"), ("large_variables_megabytes", "size"), ("size_ratio_int8", "size"),
    ("weight_bytes_ratio", "size"), ("revisit_bytes", "size"),
    ("predict_ms", "latency_ms"), ("median_ms_float_builtin_1thread", "latency_ms"), ("load_seconds_small", "seconds"),
    ("load_time_ratio", "ratio"), ("speedup_vs_builtin_float", "speedup"), ("slowdown_vs_xnnpack", "ratio"),
    ("webgl_first_over_warm", "ratio"), ("webgl_vs_cpu", "ratio"), ("batched_requests_per_second", "speedup"),
    ("throughput_ratio", "speedup"), ("latency_ratio_vs_reference", "ratio"), ("cpu_first_sample_over_median", "ratio"),  # an older file: from its name
    ("old_model_answers_after_update", "events"), ("failed_requests", "events"), ("errors", "events"),
    ("wrong_answers", "events"),
    ("accuracy", "exact"), ("backends_as_requested", "exact"), ("label_agreement", "exact"), ("flex_ops", "exact"),
    ("is_tflite_flatbuffer", "exact"), ("page_errors", "exact"),
])
def test_older_results_fall_back_to_classes_from_names(name: str, cls: str) -> None:
    """A results file written before figures declared their class: the legacy name rules class them."""
    assert legacy_figure_class(name) == cls
    assert diff.figure_class_in(record(LITERT, "litert", "fixed", "works", figures={name: 1.0}), name) == cls


def moved(name: str, a: float, b: float, **kwargs: object) -> str | None:
    """figure_moved for a figure of an older results file (classed by its name)."""
    return figure_moved(legacy_figure_class(name), a, b, **kwargs)  # type: ignore[arg-type]  # the keywords pass through


def test_bounds_come_from_the_scenarios_expectation() -> None:
    rec = record(LITERT, "litert", "fixed", "works",
                 expected="succeeds with speedup_vs_builtin_float > 3, int8_max_abs_diff <= 0.05, x >= 1e-05")
    assert diff.figure_bounds(rec) == {"speedup_vs_builtin_float": [(">", 3.0)],
                                       "int8_max_abs_diff": [("<=", 0.05)], "x": [(">=", 1e-05)]}


def test_parity_moves_by_bound_or_orders_of_magnitude() -> None:
    assert moved("max_abs_diff", 2.6e-8, 9.0e-8) is None  # below the float-noise floor
    assert moved("max_abs_diff", 1e-4, 5e-4) is None  # x5: same order
    assert "orders of magnitude" in str(moved("max_abs_diff", 1e-4, 2e-3))
    assert "orders of magnitude" in str(moved("max_abs_diff", 0.0, 1e-3))
    assert moved("max_abs_diff", 1e-4, 5e-4, bounds=[("<=", 3e-4)]) == "now violates its bound"


def test_timing_moves_by_bound_noise_band_or_repeats() -> None:
    assert moved("load_seconds_small", 0.669, 0.146) is None  # x4.6, seen between two same-version runs
    # x10.4, seen between two same-version runs (a core-pinned median on a loaded machine)
    assert moved("median_ms_float_builtin_1thread", 6.78454, 70.2342) is None
    assert moved("median_ms_float", 1.4, 60.0) is not None  # x43: a hang, a lost accelerator
    assert moved("median_ms_float", 1.4, 9.0, threshold_pct=400) is not None  # x6.4 beyond a x5 band
    assert moved("predict_ms", 0.3, 1.2) is None  # x4 and below the 1 ms floor anyway
    assert moved("load_time_ratio", 4.6, 8.8, bounds=[(">", 2.0)]) is None
    assert moved("load_time_ratio", 4.6, 1.5, bounds=[(">", 2.0)]) == "now violates its bound"
    assert moved("predict_ms", 10.0, 14.0, threshold_pct=20) is not None
    same = ([10.0, 12.0, 11.0, 30.0], [11.5, 13.0, 9.0, 12.0])
    apart = ([10.0, 12.0, 11.0, 10.5], [15.0, 16.0, 14.5, 15.5])
    assert moved("predict_ms", 10.75, 15.25, repeats=same) is None
    assert "repeats moved" in str(moved("predict_ms", 10.75, 15.25, repeats=apart, threshold_pct=20))
    assert moved("predict_ms", 10.75, 15.25, repeats=apart) is None  # ranges apart, within the band
    # seen: two runs of the same versions beside other work, a paired ratio's repeats ranges apart
    busy = ([240.0, 272.5, 301.0], [25.0, 28.5, 33.0])
    assert moved("speedup_vs_builtin_float", 272.5, 28.5, repeats=busy) is None
    assert moved("speedup_vs_builtin_float", 272.5, 2.5, repeats=([240.0, 272.5, 301.0], [2.0, 2.5, 3.0])) is not None


def test_a_single_sample_kept_as_evidence_moves_only_by_its_bound() -> None:
    """Seen: two runs of browser/inference-speed fixed beside other work, the first sample after
    warm-up over the median went 1.16 -> 27.9 on cpu (x24, beyond the x20 band) while the scenario's
    bounds held: one sample is no statistic, the scenario declares it ``evidence``."""
    assert figure_moved("ratio", 1.16, 27.9) is not None  # as a ratio it would be called a change
    assert figure_moved("evidence", 1.16, 27.9) is None
    assert figure_moved("evidence", 1.16, 27.9, bounds=[("<=", 3.0)]) == "now violates its bound"
    from harness.registry import all_scenarios

    declared = next(s for s in all_scenarios() if s.id == "browser/inference-speed").figure_class
    assert declared("cpu_first_sample_over_median") == "evidence" and declared("webgl_first_over_median") == "ratio"


def test_events_size_and_exact() -> None:
    assert moved("old_model_answers_after_update", 14, 9) is None
    assert moved("failed_requests", 0, 3) == "moved between zero and non-zero"
    # seen: thread-management faulty, two same-version runs: its race made one wrong answer once
    assert moved("wrong", 0, 1, variant="faulty") is None
    assert moved("wrong", 0, 1, bounds=[("<=", 0)], variant="faulty") == "now violates its bound"
    assert moved("tflite_bytes", 4096, 4100) == "changed"
    assert moved("accuracy", 0.87, 0.86) == "changed"


def test_repeats_in_records_are_used() -> None:
    def rec(samples: list[float]) -> dict:
        r = record(ASYNC, "tfjs", "fixed", "works", figures={"predict_ms": sorted(samples)[len(samples) // 2]})
        r["evidence"]["repeats"] = {"predict_ms": samples}
        return r

    noisy = diff_results(build_results([rec([5.0, 9.0, 6.0, 30.0, 7.0])], env={}),
                         build_results([rec([6.0, 8.0, 25.0, 9.5, 8.5])], env={}), threshold_pct=10)
    assert noisy == []
    before, after = build_results([rec([5.0, 5.5, 6.0])], env={}), build_results([rec([9.0, 9.5, 10.0])], env={})
    # ranges apart but x1.7: within the default noise band (the load changes between runs)
    assert diff_results(before, after) == []
    # a dedicated quiet machine narrows the band: then the apart ranges count
    (slower,) = diff_results(before, after, threshold_pct=20)
    assert slower.severity == "regression" and "repeats moved" in slower.what


def test_a_fixed_variant_broken_and_parity_moved_are_still_regressions() -> None:
    old = [record(LITERT, "litert", "fixed", "works", figures={"max_abs_diff": 1e-6},
                  expected="succeeds with max_abs_diff <= 0.0001")]
    new = [record(LITERT, "litert", "fixed", "broken", figures={"max_abs_diff": 0.3},
                  expected="succeeds with max_abs_diff <= 0.0001")]
    found = diff_results(build_results(old, env={}), build_results(new, env={}))
    assert {(c.kind, c.severity) for c in found} == {("outcome", "regression"), ("figure", "regression")}


# ------------------------------------------------------------------ two real runs of the same versions

# what the two runs need, each the cheapest of its kind: a model server's error text with a timestamp and
# its load timings (server/serving/model-loading), LiteRT timings (mobile/inference-speed), a browser's
# timings and a ratio of them (the faulty variant of browser/inference-speed: its fixed variant benchmarks
# every backend again with warm-up, about 20 s a run, for more figures of the same two kinds)
SELECTION = ["server/serving/model-loading", "mobile/inference-speed", "browser/inference-speed"]
KEYWORD = "not (fixed and tfjs)"
RAN = {("server/serving/model-loading", "faulty"), ("server/serving/model-loading", "fixed"),
       ("mobile/inference-speed", "faulty"), ("mobile/inference-speed", "fixed"), ("browser/inference-speed", "faulty")}


@pytest.mark.slow
@pytest.mark.timeout(3600)  # two real runs: about 1 min on a quiet machine, over 10 at a load average of 39
def test_two_real_runs_of_the_same_versions_show_no_change(tmp_path: Path) -> None:
    """Run a small selection twice (a server, LiteRT timings, a browser): the diff says nothing changed.

    Real texts that needed normalising: the TF log prefix of the model server's error
    (``2026-12-01 07:36:21.894355: W tfs_compat/core.py:117] No versions of servable ...``, the
    timestamp differs per run); timings that moved between the runs: load_seconds_small x4.6,
    webgl_reported_ms x2.8, median_ms_float_builtin_1thread x2.9 (all within the noise band or
    judged by their bounds, which held)."""
    import sys

    runs = []
    for name in ("first", "second"):
        results = tmp_path / name / "results.json"
        argv = [sys.executable, "-m", "harness", "run", *SELECTION, "-k", KEYWORD, "--results", str(results)]
        proc = run_to_the_end(argv, timeout=1700, what=f"the {name} run of {SELECTION}", cwd=REPO_ROOT)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs.append(load_results(results))
    assert [r["outcome"] for r in runs[0]["records"]] == [r["outcome"] for r in runs[1]["records"]]
    assert {(r["scenario"], r["variant"]) for r in runs[0]["records"]} == RAN
    figures = {name for r in runs[1]["records"] for name in r["evidence"].get("figures") or {}}
    assert {"load_seconds_small", "median_ms_float_builtin_1thread", "webgl_reported_ms", "webgl_first_over_warm"} <= figures
    # the server's error texts as the runs recorded them differ (their timestamps): the diff must normalise them
    server_errors = [next(r["evidence"]["error"]["message"] for r in run["records"]
                          if (r["scenario"], r["variant"]) == ("server/serving/model-loading", "faulty")) for run in runs]
    assert "No versions of servable" in server_errors[0] and server_errors[0] != server_errors[1]
    changes = diff_results(runs[0], runs[1])
    assert changes == [], diff.changes_table(changes)
    assert main(["diff", str(tmp_path / "first" / "results.json"), str(tmp_path / "second" / "results.json")]) == 0


def test_leaving_a_version_range_is_a_change_of_applicability_not_a_regression() -> None:
    na = "not applicable on these versions: tensorflow 2.21.0 is outside tensorflow<2.20"
    old = [record(LITERT, "litert", "faulty", "reproduced", error="Cannot set tensor: Dimension mismatch."),
           record(LITERT, "litert", "fixed", "works", figures={"max_abs_diff": 1e-6}),
           record(SERVER, "tfserving", "faulty", "not-applicable", verdict=na),
           record(SERVER, "tfserving", "fixed", "not-applicable", verdict=na)]
    new = [record(LITERT, "litert", "faulty", "not-applicable", verdict=na),
           record(LITERT, "litert", "fixed", "not-applicable", verdict=na),
           record(SERVER, "tfserving", "faulty", "not-applicable", verdict=na),
           record(SERVER, "tfserving", "fixed", "broken", error="Servable not found for request")]
    found = diff_results(build_results(old, env={}), build_results(new, env={}))
    assert not regressions(found)
    by_key = {(c.scenario, c.variant): c for c in found}
    assert set(by_key) == {(LITERT, "faulty"), (LITERT, "fixed"), (SERVER, "fixed")}  # n/a -> n/a: no change
    gone = by_key[(LITERT, "faulty")]
    assert (gone.kind, gone.severity, gone.old, gone.new) == ("applicability", "changed", "reproduced", "not-applicable")
    assert gone.what == f"no longer applies on these versions: {na}"
    back = by_key[(SERVER, "fixed")]
    assert (back.kind, back.what, back.old, back.new) == ("applicability", "applies on these versions again: now broken",
                                                          "not-applicable", "broken")
    assert f"no longer applies on these versions: {na}"[:60] in diff.changes_table(found)


def test_embedded_json_is_compared_by_value_not_key_order() -> None:
    # seen: browser/model-loading/selection-usage-of-apis faulty, tf.js quoting the model JSON (two runs)
    a = 'layer: Improper config format: {"attr":{"fusedOps":{"list":{"s":["QmlhcwA="]}},"leakyreluAlpha":{"f":0.2},"numArgs":{"i":"1"}}} x'
    b = 'layer: Improper config format: {"attr":{"fusedOps":{"list":{"s":["QmlhcwA="]}},"numArgs":{"i":"1"},"leakyreluAlpha":{"f":0.2}}} x'
    assert diff.normalise_text(a) == diff.normalise_text(b)
    changed = b.replace('"i":"1"', '"i":"2"')
    assert diff.normalise_text(a) != diff.normalise_text(changed)
    assert diff.normalise_text("a {not json} b {\"k\": 1}") == "a {not json} b {\"k\":1}"
