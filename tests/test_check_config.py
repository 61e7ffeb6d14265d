"""`pitfalls check-config` on TF Serving bundles, statically: one faulty and one fixed bundle per rule, the
command line (exit codes, JSON, HTML), and the untrusted-bundle attacks.

Each rule's faulty bundle is the example's fixed bundle with one mistake planted (the catalog's way: the
same bundle, faulty and fixed); the rule must fire on the faulty copy and on no fixed one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest

from harness.cli import main
from harness.configcheck import check_config
from harness.configcheck.examples import example
from harness.paths import REPO_ROOT
from harness.registry import load_catalog
from harness.targets.tfserving.bundle import RULES

Mutation = Callable[[Path], None]


@pytest.fixture(scope="module")
def examples() -> dict[str, Path]:
    """The checked-in serving bundles (read only: tests plant mistakes in copies)."""
    return {"faulty": example("tfserving", "faulty"), "fixed": example("tfserving", "fixed")}


@pytest.fixture(scope="module")
def special_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SavedModels the zoo has none of: a fixed batch dimension of 1, and no serving_default signature."""
    import tensorflow as tf

    root = tmp_path_factory.mktemp("special")

    class Fixed(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": x * 2.0}

    fixed = Fixed()
    tf.saved_model.save(fixed, str(root / "fixed_batch"), signatures={"serving_default": fixed.serve})

    class TwoFunctions(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32)])
        def double(self, x: tf.Tensor) -> tf.Tensor:
            return x * 2.0

        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32)])
        def triple(self, x: tf.Tensor) -> tf.Tensor:
            return x * 3.0

    tf.saved_model.save(TwoFunctions(), str(root / "no_default"))
    return {"fixed_batch": root / "fixed_batch", "no_default": root / "no_default"}


def edit(relative: str, old: str, new: str) -> Mutation:
    def apply(bundle: Path) -> None:
        path = bundle / relative
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, 1))
    return apply


def both(*mutations: Mutation) -> Mutation:
    def apply(bundle: Path) -> None:
        for mutation in mutations:
            mutation(bundle)
    return apply


def rename(old: str, new: str) -> Mutation:
    return lambda bundle: (bundle / old).rename(bundle / new) and None


def remove(relative: str) -> Mutation:
    return lambda bundle: (bundle / relative).unlink()


def write(relative: str, text: str) -> Mutation:
    return lambda bundle: (bundle / relative).write_text(text) and None


ALLOW = "--allow_version_labels_for_unavailable_models=true \\\n"
#: rule -> the one mistake that makes the fixed example bundle faulty
PLANTED: dict[str, Mutation] = {
    "tfserving/relative-base-path": edit("models.config", 'base_path: "/models/classifier"', 'base_path: "models/classifier"'),
    "tfserving/duplicate-model-name": edit("models.config", "\n}\n", '\n  config { name: "classifier" base_path: '
                                           '"/models/classifier" model_platform: "tensorflow" }\n}\n'),
    "tfserving/base-path-not-in-bundle": edit("start.sh", '"$(pwd)/models:/models"', '"$(pwd)/models:/srv/models"'),
    "tfserving/base-path-is-version-dir": edit("models.config", 'base_path: "/models/classifier"',
                                               'base_path: "/models/classifier/1"'),
    "tfserving/no-numbered-version": both(rename("models/classifier/1", "models/classifier/stable"),
                                          rename("models/classifier/2", "models/classifier/canary")),
    "tfserving/non-numeric-version-dir": lambda b: (b / "models" / "classifier" / "export-tmp").mkdir(),
    "tfserving/version-without-saved-model": remove("models/classifier/2/saved_model.pb"),
    "tfserving/specific-version-missing": edit("models.config", "versions: 2", "versions: 3"),
    "tfserving/label-not-served": edit("models.config", 'key: "canary" value: 2', 'key: "canary" value: 3'),
    "tfserving/labels-at-startup": edit("start.sh", ALLOW, ""),
    "tfserving/batch-sizes-not-increasing": write("batching.config", "max_batch_size { value: 16 }\n"
                                                  "allowed_batch_sizes: 8\nallowed_batch_sizes: 8\nallowed_batch_sizes: 16\n"),
    "tfserving/batch-sizes-last-not-max": edit("batching.config", "allowed_batch_sizes: 16", "allowed_batch_sizes: 8"),
    "tfserving/batching-file-unused": edit("start.sh", "--enable_batching=true ", ""),
    "tfserving/config-file-unused": edit("start.sh", "--model_config_file=/config/models.config", ""),
    "tfserving/config-file-not-mounted": edit("start.sh", '-v "$(pwd)/models.config:/config/models.config"', ""),
    "tfserving/monitoring-file-unused": write("monitoring.config", 'prometheus_config {\n  enable: true\n  path: "/metrics"\n}\n'),
    "tfserving/flag-without-equals": edit("start.sh", "--batching_parameters_file=", "--batching_parameters_file "),
    "tfserving/model-env-ignored": edit("start.sh", "docker run --rm", "docker run --rm -e MODEL_NAME=classifier"),
    "tfserving/rest-port-not-published": edit("start.sh", "-p 8501:8501", ""),
    "tfserving/request-to-grpc-port": edit("client.sh", "localhost:8501/v1/models/classifier/labels",
                                           "localhost:8500/v1/models/classifier/labels"),
    "tfserving/request-without-verb": edit("client.sh", "stable:predict", "stable/predict"),
    "tfserving/request-unknown-model": edit("client.sh", "8501/v1/models/classifier/labels", "8501/v1/models/clasifier/labels"),
    "tfserving/request-unknown-version": edit("client.sh", "labels/stable", "labels/beta"),
    "tfserving/request-unknown-signature": edit("client.sh", '"serving_default"', '"predict"'),
    "tfserving/request-unknown-input": edit("client.sh", '"instances": [[0, 0, 0, 0, 0, 0, 0, 0]]',
                                            '"inputs": {"features": [[0, 0, 0, 0, 0, 0, 0, 0]]}'),
}
#: rules that need a SavedModel the zoo does not make (built in `special_models`)
PLANTED_WITH_MODEL = {"tfserving/fixed-batch-dimension": "fixed_batch", "tfserving/no-serving-default": "no_default"}
#: rules only the running server can fire: tested on the container (test_check_config_verified.py)
RUNTIME_ONLY = {"tfserving/load-error", "tfserving/start-error", "tfserving/request-error"}


def fired(bundle: Path) -> dict[str, list[str]]:
    report = check_config([bundle], verify=False)
    found: dict[str, list[str]] = {}
    for f in report.findings:
        found.setdefault(f.step, []).append(f.text)
    return found


def copy_of(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


def test_every_rule_has_a_planted_mistake_or_a_runtime_test() -> None:
    assert set(RULES) == set(PLANTED) | set(PLANTED_WITH_MODEL) | RUNTIME_ONLY


def test_the_fixed_example_has_no_finding(examples: dict[str, Path]) -> None:
    report = check_config([examples["fixed"]], verify=False)
    assert report.findings == [] and report.exit_code() == 0
    pieces = report.bundles[0].pieces
    assert pieces["model server config"] == ["models.config"] and pieces["batching parameters"] == ["batching.config"]
    assert pieces["run lines"] == ["start.sh:3"] and pieces["client requests"] == ["client.sh:2", "client.sh:4"]


@pytest.mark.parametrize("rule", sorted(PLANTED))
def test_rule_fires_on_its_planted_mistake(rule: str, examples: dict[str, Path], tmp_path: Path) -> None:
    bundle = copy_of(examples["fixed"], tmp_path / "bundle")
    PLANTED[rule](bundle)
    found = fired(bundle)
    assert rule in found, f"{rule} did not fire; fired: {found}"
    finding = next(f for f in check_config([bundle], verify=False).findings if f.step == rule)
    assert finding.verified == "static" and finding.file.startswith(str(bundle))
    assert finding.scenario == RULES[rule].scenario and finding.fix


@pytest.mark.parametrize("rule", sorted(PLANTED_WITH_MODEL))
def test_rule_fires_on_a_model_that_has_the_mistake(rule: str, examples: dict[str, Path],
                                                    special_models: dict[str, Path], tmp_path: Path) -> None:
    fixed = copy_of(examples["fixed"], tmp_path / "fixed")
    faulty = copy_of(examples["fixed"], tmp_path / "faulty")
    for version in ("1", "2"):
        shutil.rmtree(faulty / "models" / "classifier" / version)
        shutil.copytree(special_models[PLANTED_WITH_MODEL[rule]], faulty / "models" / "classifier" / version)
    if rule == "tfserving/no-serving-default":  # the request names no signature: the server takes serving_default
        edit("client.sh", '"signature_name": "serving_default", ', "")(faulty)
        edit("client.sh", '"signature_name": "serving_default", ', "")(fixed)
    assert rule in fired(faulty)
    assert rule not in fired(fixed)


def test_rules_name_lessons_that_exist_and_the_docs_list_every_rule() -> None:
    catalog = load_catalog()
    docs = (REPO_ROOT / "docs" / "check-config.md").read_text()
    for rule in RULES.values():
        assert rule.scenario is None or rule.scenario in catalog.files, rule.id
        assert rule.scenario is None or rule.taxonomy is not None, rule.id
        assert f"`{rule.id}`" in docs, f"docs/check-config.md does not list {rule.id}"


def test_faulty_example_on_the_command_line(examples: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    code = main(["check-config", str(examples["faulty"]), "--static", "--json", "-q",
                 "--report-dir", str(tmp_path / "out")])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["schema"] == "pitfalls-check-config/1" and not report["ok"]
    for f in report["findings"]:
        assert {"severity", "text", "taxonomy", "scenario", "verified", "file", "line", "fix"} <= set(f)
    steps = {f["step"] for f in report["findings"]}
    assert {"tfserving/label-not-served", "tfserving/version-without-saved-model", "tfserving/batch-sizes-last-not-max",
            "tfserving/rest-port-not-published", "tfserving/request-unknown-signature",
            "tfserving/flag-without-equals"} <= steps
    label = next(f for f in report["findings"] if f["step"] == "tfserving/label-not-served")
    assert label["file"].endswith("models.config") and label["line"] == 3
    assert label["taxonomy"] == "server/serving/serving-multiple-models-simultaneously"
    html = (tmp_path / "out" / "check-config.html").read_text()
    assert "pitfalls explain server/serving/serving-multiple-models-simultaneously" in html
    assert json.loads((tmp_path / "out" / "check-config.json").read_text())["findings"] == report["findings"]


def test_fixed_example_exits_zero(examples: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(examples["fixed"]), "--static", "-q"]) == 0
    assert "ok: no blocker" in capsys.readouterr().out


# bad input: one line, exit 2 ---------------------------------------------------------------------
def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pitfalls: error: "), captured.err
    return lines[0]


def test_a_directory_with_no_configuration_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("nothing to deploy here\n")
    assert "found no deployment configuration" in one_line_error(["check-config", str(tmp_path), "--static"], capsys)
    assert "is not a directory" in one_line_error(["check-config", str(tmp_path / "missing"), "--static"], capsys)


def test_a_config_that_does_not_parse_is_bad_input(examples: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bundle = copy_of(examples["fixed"], tmp_path / "bundle")
    edit("models.config", 'name: "classifier"', 'nmae: "classifier"')(bundle)
    line = one_line_error(["check-config", str(bundle), "--static"], capsys)
    assert "models.config" in line and "does not parse" in line and "nmae" in line


# attacks: the bundle is untrusted ---------------------------------------------------------------------
def test_attack_a_symlink_out_of_the_bundle_is_refused(examples: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "models.config").write_text('model_config_list { config { name: "x" base_path: "/etc" } }\n')
    bundle = copy_of(examples["fixed"], tmp_path / "bundle")
    (bundle / "linked").symlink_to(secret)
    line = one_line_error(["check-config", str(bundle), "--static"], capsys)
    assert "linked" in line and "leads out of the directory" in line


def test_attack_a_mount_that_climbs_out_of_the_bundle_is_refused(examples: dict[str, Path], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bundle = copy_of(examples["fixed"], tmp_path / "bundle")
    edit("start.sh", '"$(pwd)/models:/models"', '"$(pwd)/../../../etc:/models"')(bundle)
    line = one_line_error(["check-config", str(bundle), "--static"], capsys)
    assert "outside the bundle" in line


def test_attack_scripts_are_parsed_never_run(examples: dict[str, Path], tmp_path: Path) -> None:
    bundle = copy_of(examples["fixed"], tmp_path / "bundle")
    marker = tmp_path / "ran"
    edit("start.sh", "docker run --rm", f"touch {marker}; docker run --rm -e X=$(touch {marker})")(bundle)
    (bundle / "client.sh").write_text((bundle / "client.sh").read_text() + f"curl http://localhost:8501/v1/models/`touch {marker}`\n")
    check_config([bundle], verify=False)
    assert not marker.exists()


def test_attack_an_oversized_file_is_not_read(examples: dict[str, Path], tmp_path: Path) -> None:
    from harness.configcheck.files import TEXT_BYTES

    bundle = copy_of(examples["fixed"], tmp_path / "bundle")
    (bundle / "huge.config").write_text('model_config_list { config { name: "huge" base_path: "x" } }\n'
                                        + "#" * (TEXT_BYTES + 10))
    report = check_config([bundle], verify=False)
    assert report.bundles[0].pieces["model server config"] == ["models.config"]
    assert not any("huge" in f.text for f in report.findings)


def test_attack_markup_in_the_bundle_is_escaped_in_the_page(examples: dict[str, Path], tmp_path: Path) -> None:
    from harness.configcheck.render import html_page

    bundle = copy_of(examples["fixed"], tmp_path / "bundle")
    payload = "<script>alert(1)</script>"
    edit("models.config", 'name: "classifier"', f'name: "{payload}"')(bundle)
    report = check_config([bundle], verify=False)
    assert any(payload in f.text for f in report.findings)
    page = html_page(report)
    assert payload not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # the report's JSON only (tojson escapes < inside it)


@pytest.mark.parametrize(("env", "fires"), [("-e MODEL_NAME=classifier", False), ("-e MODEL_NAME=model", True),
                                            ("-e MODEL_NAME=classifier -e MODEL_BASE_PATH=/srv/models", True)])
def test_model_name_and_base_path_of_the_run_line(env: str, fires: bool, examples: dict[str, Path],
                                                  tmp_path: Path) -> None:
    """No config file: the image's entrypoint serves $MODEL_BASE_PATH/$MODEL_NAME, which must be mounted."""
    bundle = tmp_path / "bundle"
    shutil.copytree(examples["fixed"] / "models", bundle / "models")
    (bundle / "start.sh").write_text(f'docker run -p 8501:8501 -v "$(pwd)/models/classifier:/models/classifier" '
                                     f"{env} tensorflow/serving\n")
    found = fired(bundle)
    assert ("tfserving/base-path-not-in-bundle" in found) is fires, found
    if fires:
        assert "/models/model" in found["tfserving/base-path-not-in-bundle"][0] or "/srv/models" in \
            found["tfserving/base-path-not-in-bundle"][0]
    else:
        assert found == {}


def test_the_serving_run_line_is_told_from_other_containers(examples: dict[str, Path], tmp_path: Path) -> None:
    """A script that starts a database too, and serves from an image of its own name."""
    bundle = copy_of(examples["fixed"], tmp_path / "bundle")
    start = (bundle / "start.sh").read_text()
    (bundle / "start.sh").write_text("docker run -d -p 5432:5432 -e POSTGRES_PASSWORD=x postgres:16\n"
                                     + start.replace("tensorflow/serving", "registry.example/classifier-server:3"))
    report = check_config([bundle], verify=False)
    assert report.bundles[0].pieces["run lines"] == ["start.sh:4"] and report.findings == []


COMPOSE = """services:
  cache:
    image: redis:7
  serving:
    image: tensorflow/serving:2.19.0
    ports:
      - "8500:8500"
      - "8501:8501"
    volumes:
      - ./models:/models:ro
      - ./models.config:/config/models.config:ro
      - type: bind
        source: ./batching.config
        target: /config/batching.config
    command:
      - --model_config_file=/config/models.config
      - --allow_version_labels_for_unavailable_models=true
      - --enable_batching=true
      - --batching_parameters_file=/config/batching.config
"""


def compose_bundle(examples: dict[str, Path], target: Path, text: str = COMPOSE) -> Path:
    """The fixed example with its start.sh replaced by the same server as a Compose service."""
    bundle = copy_of(examples["fixed"], target)
    (bundle / "start.sh").unlink()
    (bundle / "deploy").mkdir()
    for name in ("models", "models.config", "batching.config"):
        (bundle / name).rename(bundle / "deploy" / name)
    (bundle / "deploy" / "docker-compose.yml").write_text(text)
    return bundle


def test_a_compose_service_is_read_as_the_run_line(examples: dict[str, Path], tmp_path: Path) -> None:
    """Volumes relative to the Compose file's directory, list-form command flags, the service's line."""
    fixed = compose_bundle(examples, tmp_path / "fixed")
    report = check_config([fixed], verify=False)
    assert report.findings == [] and report.bundles[0].pieces["run lines"] == ["deploy/docker-compose.yml:4"]
    faulty = compose_bundle(examples, tmp_path / "faulty", COMPOSE.replace('      - "8501:8501"\n', "").replace(
        "--batching_parameters_file=/config", "--batching_parameters_file /config").replace(
        "- --model_config_file=/config/models.config", "- --model_config_file=/config/other.config"))
    found = {(f.step, f.file, f.line) for f in check_config([faulty], verify=False).findings}
    compose = str(faulty / "deploy" / "docker-compose.yml")
    assert {("tfserving/rest-port-not-published", compose, 4), ("tfserving/flag-without-equals", compose, 4),
            ("tfserving/config-file-not-mounted", compose, 4)} <= found, found


def test_attack_a_compose_volume_that_climbs_out_is_refused(examples: dict[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    bundle = compose_bundle(examples, tmp_path / "bundle", COMPOSE.replace("./models:/models", "../../../etc:/models"))
    line = one_line_error(["check-config", str(bundle), "--static"], capsys)
    assert "outside the bundle" in line


def test_a_compose_file_that_is_not_yaml_is_bad_input(examples: dict[str, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    bundle = compose_bundle(examples, tmp_path / "bundle", COMPOSE.replace("    ports:\n", "    ports: [\n"))
    line = one_line_error(["check-config", str(bundle), "--static"], capsys)
    assert "docker-compose.yml looks like a Compose file but is not YAML" in line


def test_attack_a_compose_file_with_a_python_tag_is_not_run(examples: dict[str, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran"
    bundle = compose_bundle(examples, tmp_path / "bundle", COMPOSE.replace(
        "image: redis:7", f"image: !!python/object/apply:os.system ['touch {marker}']"))
    line = one_line_error(["check-config", str(bundle), "--static"], capsys)
    assert "is not YAML" in line and not marker.exists()
