"""``pitfalls reduce``: the search, the finding key, the reproducer's README and the command's bad input
(fast; the real reductions are in test_reduce_litert.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.reduce.api import parse_finding, reproducers
from harness.reduce.run import SAMPLE, _fenced, check_out_dir, split_probe
from harness.reduce.search import smallest_window
from harness.reduce.slicing import Window


def _asked_by(culprits: set[int]) -> tuple[list[Window], "object"]:
    asked: list[Window] = []

    def shows(window: Window) -> bool:
        asked.append(window)
        return all(window.start <= c < window.stop for c in culprits)

    return asked, shows


@pytest.mark.parametrize("count,culprit", [(1, 0), (7, 0), (7, 2), (7, 6), (40, 17)])
def test_the_search_finds_the_one_culprit_layer(count: int, culprit: int) -> None:
    asked, shows = _asked_by({culprit})
    assert smallest_window(count, shows) == Window(culprit, culprit + 1)  # type: ignore[arg-type]
    assert len(asked) == len(set(asked)), "a window was asked twice"
    assert len(asked) <= 2 * count.bit_length() + 2, asked


def test_the_search_keeps_every_layer_a_finding_needs() -> None:
    asked, shows = _asked_by({3, 8})
    assert smallest_window(12, shows) == Window(3, 9)  # type: ignore[arg-type]


def test_the_linear_pass_shrinks_where_bisection_assumed_too_much() -> None:
    """A finding only the window 4..5 shows (a prefix holding layer 4 does not, as accumulated error
    can mask it): bisection keeps the whole prefix, the one-layer steps cannot go below it."""
    def shows(window: Window) -> bool:
        return window == Window(0, 6) or (window.start <= 4 and window.stop >= 6 and window.start >= 3)

    found = smallest_window(6, shows)
    assert found.start >= 3 and found.stop == 6 and shows(found)


def test_findings_are_declared_by_the_targets_and_unknown_ones_are_refused() -> None:
    found = reproducers()
    reproducer, path = parse_finding("litert:float16", found)
    assert (reproducer.target, path) == ("litert", "float16")
    assert parse_finding("litert dynamic", found)[1] == "dynamic"  # check's label works too
    assert parse_finding("litert", found)[1] == "float32"  # check's label of the common path
    with pytest.raises(UsageError, match="reproducible findings: .*litert:float32"):
        parse_finding("litert:float64", found)
    with pytest.raises(UsageError, match="no reproducer for target 'nowhere'"):
        parse_finding("nowhere:float32", found)


def test_the_same_converter_error_from_another_slice_has_the_same_key() -> None:
    key = reproducers()["litert"].key
    text = ("Could not translate MLIR to FlatBuffer.<unknown>:0: error: loc(callsite(fused[\"ResizeBicubic:\", "
            "\"{where}/resize/ResizeBicubic\"])): 'tf.ResizeBicubic' op is neither a custom op nor a flex op\n"
            "error: Some ops are not supported by the native TFLite runtime, you can enable TF kernels fallback "
            "using TF Select. Flex ops: FlexResizeBicubic\nDetails:\n\ttf.ResizeBicubic(tensor<?x{n}x{n}x4xf32>)")
    whole = {"kind": "converter", "error": "ConverterError", "text": text.format(where="model_1/bicubic", n=12)}
    sliced = {"kind": "converter", "error": "ConverterError", "text": text.format(where="reduced_1/bicubic_1", n=7)}
    other_op = {"kind": "converter", "error": "ConverterError", "text": text.replace("ResizeBicubic", "MatrixDeterminant")}
    assert key(whole) == key(sliced)
    assert key(whole) != key(other_op)
    assert key(whole) != key({"kind": "runtime", "error": "RuntimeError", "text": text})
    assert key({"kind": "divergence", "max_abs_diff": 2.0, "bound": 0.1}) == key({"kind": "divergence",
                                                                                "max_abs_diff": 0.5, "bound": 0.2})


def test_the_litert_script_gets_the_paths_settings_and_tolerance() -> None:
    from harness.reduce.api import ScriptSpec

    source = reproducers()["litert"].script("dynamic", ScriptSpec("keras", "model.keras", ("features",)))
    assert "'quantize': 'dynamic'" in source and "'atol': 0.05" in source and "'inputs': ['features']" in source
    assert "harness" not in source.replace("pitfalls reduce", "") and "import pitfalls" not in source
    compile(source, "reproduce.py", "exec")


def test_runtime_text_cannot_break_out_of_its_code_fence() -> None:
    text = "converter said ```\n# Heading injected\n````"
    fenced = _fenced(text)
    fence = fenced.splitlines()[0]
    assert fence == "`" * 5 and fenced.endswith("\n" + fence)


def test_a_non_empty_out_directory_is_refused_unless_overwrite(tmp_path: Path) -> None:
    (tmp_path / "kept.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty.*--overwrite"):
        check_out_dir(tmp_path, overwrite=False)
    check_out_dir(tmp_path, overwrite=True)
    check_out_dir(tmp_path / "new", overwrite=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="a file is there"):
        check_out_dir(tmp_path / "file", overwrite=False)


def _one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


def test_the_command_refuses_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.txt").write_text("mine")
    line = _one_line_exit_2(["reduce", str(tmp_path / "missing.keras"), "--finding", "litert:float32",
                             "--out", str(out), "-q"], capsys)
    assert "not empty" in line
    assert (out / "kept.txt").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["kept.txt"]
    line = _one_line_exit_2(["reduce", "model.keras", "--finding", "litert:nothing", "--out", str(tmp_path / "o")],
                            capsys)
    assert "reproducible findings" in line and not (tmp_path / "o").exists()


def test_a_probe_is_read_from_checks_label_and_a_label_that_is_no_synthetic_probe_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check labels a finding on a further probe `litert int8 [wide]`: reduce feeds that probe; an
    --inputs/--calibration label, or a --probe that contradicts the label, is refused in one line."""
    assert split_probe("litert int8 [wide]", None) == ("litert int8", "wide")
    assert split_probe("litert:int8 [edge]", "edge") == ("litert:int8", "edge")
    assert split_probe("litert:int8", None) == ("litert:int8", SAMPLE)
    assert split_probe("litert:int8", "wide") == ("litert:int8", "wide")
    assert split_probe("litert int8 [--calibration cal.npz]", None, "/data/cal.npz") == ("litert int8", "calibration")
    line = _one_line_exit_2(["reduce", "model.keras", "--finding", "litert [--calibration cal.npz]",
                             "--out", str(tmp_path / "o"), "-q"], capsys)
    assert "give that file with --calibration" in line
    line = _one_line_exit_2(["reduce", "model.keras", "--finding", "litert [--calibration cal.npz]",
                             "--calibration", "other.npz", "--out", str(tmp_path / "o"), "-q"], capsys)
    assert "give that file with --calibration" in line
    line = _one_line_exit_2(["reduce", "model.keras", "--finding", "litert [--inputs x.npz]",
                             "--out", str(tmp_path / "o"), "-q"], capsys)
    assert "pass that file with --inputs" in line
    line = _one_line_exit_2(["reduce", "model.keras", "--finding", "litert int8 [wide]", "--probe", "edge",
                             "--out", str(tmp_path / "o"), "-q"], capsys)
    assert "names the probe 'wide' but --probe says 'edge'" in line
    assert not (tmp_path / "o").exists()


def test_a_model_carrying_code_is_refused_and_its_code_never_runs(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The attack: a Keras 3 model whose Lambda writes a file; reduce without --trust-model refuses it
    before loading anything, writes nothing, and the file is never written."""
    import keras

    marker = tmp_path / "marker"
    writes = eval(f"lambda t: t if __import__('pathlib').Path({str(marker)!r}).write_text('ran') else t")  # noqa: S307
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="dense"),
                      keras.layers.Lambda(writes, name="writes_a_file")]).save(tmp_path / "lambda.keras")
    marker.unlink(missing_ok=True)  # building it ran the Lambda here once, on purpose
    out = tmp_path / "out"
    line = _one_line_exit_2(["reduce", str(tmp_path / "lambda.keras"), "--finding", "litert:float32",
                             "--out", str(out), "-q"], capsys)
    assert "refused to load" in line and "writes_a_file" in line and "--trust-model" in line
    assert not marker.exists(), "the model's code ran on the host"
    assert not out.exists(), "a refused reduction wrote its directory"


def test_a_link_inside_a_saved_model_is_refused_and_what_it_points_at_is_never_copied(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The attack: a SavedModel that loads fine but holds a symbolic link to a file outside it
    (a key a user would send upstream inside the reproducer); reduce refuses it in one line
    and writes nothing, and the file's content is nowhere under --out's parent."""
    import tensorflow as tf

    class Double(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x):  # type: ignore[no-untyped-def]
            return {"y": 2.0 * x}

    module = Double()
    model = tmp_path / "model" / "linked"
    tf.saved_model.save(module, str(model), signatures={"serving_default": module.serve})
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-KEY-42")
    (model / "assets").mkdir(exist_ok=True)
    (model / "assets" / "vocabulary.txt").symlink_to(secret)
    work = tmp_path / "work"
    work.mkdir()
    line = _one_line_exit_2(["reduce", str(model), "--finding", "litert:float32", "--out", str(work / "out"), "-q"],
                            capsys)
    assert "symbolic link inside the SavedModel" in line
    assert list(work.iterdir()) == [], "a refused reduction left something behind"


def test_exit_codes_say_reduced_not_shown_or_whole_model_only() -> None:
    from harness.reduce.run import NOT_SHOWN, REDUCED, WHOLE_ONLY, ReduceResult

    assert ReduceResult("t:p", {}, 5).exit_code() == NOT_SHOWN == 1
    assert ReduceResult("t:p", {}, 5, window=Window(2, 3)).exit_code() == REDUCED == 0
    assert ReduceResult("t:p", {}, 5, window=Window(0, 5)).exit_code() == WHOLE_ONLY == 3


def test_a_window_rebuilt_from_configs_computes_what_the_model_computes_there() -> None:
    """A window across a skip connection (two inputs from outside it) and a Sequential's layers
    (which hold a second node from when it was built): the slice's outputs on the reference's
    inputs are the full model's values at those layers."""
    import keras
    import numpy as np

    from harness.reduce.slicing import build_slice, sliceable_layers

    keras.utils.set_random_seed(0)
    x = keras.Input((6,), name="features")
    a = keras.layers.Dense(5, activation="relu", name="a")(x)
    b = keras.layers.Dense(5, activation="tanh", name="b")(a)
    c = keras.layers.Add(name="skip")([a, b])
    d = keras.layers.Dense(3, name="d")(c)
    model = keras.Model(x, d)
    feed = np.random.default_rng(0).standard_normal((4, 6)).astype("float32")
    names = [layer.name for layer in sliceable_layers(model)]
    assert names == ["a", "b", "skip", "d"]
    made = build_slice(model, Window(1, 3), {"features": feed}, feed)
    assert made.layers == ["b", "skip"] and made.input_names == ["a"]
    want = keras.Model(x, c).predict(feed, verbose=0)
    got = made.model.predict(made.inputs["a"], verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    sequential = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="h"),
                                   keras.layers.Dense(2, name="o")])
    made = build_slice(sequential, Window(1, 2), {sequential.inputs[0].name.split(":")[0]: feed}, feed)
    want = sequential.predict(feed, verbose=0)
    np.testing.assert_allclose(made.model.predict(made.inputs[made.input_names[0]], verbose=0), want,
                               rtol=1e-6, atol=1e-6)


def test_a_tf_keras_window_is_rebuilt_too() -> None:
    """tf_keras keeps its graph differently (``map_arguments`` pops values by str(id)): the same check."""
    import numpy as np
    import tf_keras

    from harness.reduce.slicing import build_slice

    tf_keras.utils.set_random_seed(0)
    x = tf_keras.Input((6,), name="features")
    a = tf_keras.layers.Dense(5, activation="relu", name="a")(x)
    b = tf_keras.layers.Dense(5, activation="tanh", name="b")(a)
    c = tf_keras.layers.Add(name="skip")([a, b])
    model = tf_keras.Model(x, tf_keras.layers.Dense(3, name="d")(c))
    feed = np.random.default_rng(0).standard_normal((4, 6)).astype("float32")
    made = build_slice(model, Window(1, 3), {"features": feed}, feed)
    assert made.layers == ["b", "skip"] and made.input_names == ["a"]
    np.testing.assert_allclose(made.model.predict(made.inputs["a"], verbose=0),
                               tf_keras.Model(x, c).predict(feed, verbose=0), rtol=1e-6, atol=1e-6)


def test_a_target_without_a_reproducer_module_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A target declared elsewhere (as the architecture walkthrough's made-up one) has no reproducer."""
    import harness.targets

    monkeypatch.setattr(harness.targets, "TARGET_NAMES", (*harness.targets.TARGET_NAMES, "madeup"))
    found = reproducers()
    assert "madeup" not in found and {"litert", "tfjs"} <= set(found)
