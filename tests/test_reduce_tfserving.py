"""``pitfalls reduce`` on TF Serving findings: the reproducer is the whole model as served (a
stateful model's state is the finding), and its ``reproduce.py`` (standard library and the docker
CLI) is run as a person would run it, in a fresh process with a clean environment, against the
local stand-in image (``--image``: tests never pull).  Its container is confined as check's are,
and a script killed while it waits leaves nothing that pitfalls' sweep does not remove."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from check_models import require_targets
from check_models.wild import int64_ids_keras, stateful_lstm_keras
from harness.artifacts import ArtifactCache
from harness.cli import main
from harness.reduce.api import RESULT_PREFIX, reproducers
from harness.reduce.run import NOT_SHOWN, WHOLE_ONLY

LABEL = "pitfalls.reproducer=1"


@pytest.fixture(scope="module")
def stand_in() -> str:
    """The local stand-in serving image's tag (built if need be, never pulled)."""
    from harness.environments.engine import engine_unavailable_reason
    from harness.environments.serving_image import ensure_serving_image
    from harness.targets.tfserving.target import DEFAULT_TF_VERSION

    require_targets("tfserving")
    reason = engine_unavailable_reason()
    if reason:
        pytest.skip(f"the TF Serving reproducer needs a Docker engine: {reason}")
    return ensure_serving_image(DEFAULT_TF_VERSION).tag


@pytest.fixture(scope="module")
def stateful_reproducer(stand_in: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lstm") / "repro"
    assert main(["reduce", str(stateful_lstm_keras(ArtifactCache())), "--finding", "tfserving", "--out", str(out),
                 "-q"]) == WHOLE_ONLY
    return out


def _reproducer_containers(pid: int) -> list[str]:
    """The containers a reproducer script of process ``pid`` started (labelled with its pid)."""
    done = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={LABEL}", "--filter", f"label=pitfalls.pid={pid}"],
                          capture_output=True, text=True, check=True)
    return done.stdout.split()


def _clean_env(home: Path) -> dict[str, str]:
    home.mkdir(exist_ok=True)
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home)}


def _run(script: Path, home: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """``python -S reproduce.py``: no site-packages (no numpy, no TensorFlow, no pitfalls), the
    standard library only, a clean environment."""
    done = subprocess.run([sys.executable, "-S", str(script), *args], cwd=home, capture_output=True, text=True,
                          env=_clean_env(home), timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert lines, done.stdout[-2000:] + done.stderr[-2000:]
    return done.returncode, json.loads(lines[-1][len(RESULT_PREFIX):]), done.stdout + done.stderr


def test_the_stateful_lstm_reproducer_shows_the_second_request_differing(stateful_reproducer: Path, stand_in: str,
                                                                          tmp_path: Path) -> None:
    """The whole model (exit 3, the reason said), written as served: the fixed-batch SavedModel, the
    same body twice, the expected numbers; run fresh on the stand-in, request 1 matches and request 2
    leaves tolerance (the LSTM's states carried over), exit 1, and no container is left."""
    out = stateful_reproducer
    record = json.loads((out / "finding.json").read_text())
    assert record["cannot_reduce"].startswith("cannot reduce: a TF Serving finding is the served model's as a whole")
    for name in ("model/1/saved_model.pb", "requests/1.json", "requests/2.json", "expected.json", "inputs/x.npy",
                 "versions.txt", "versions.json", "README.md", "reproduce.py"):
        assert (out / name).is_file(), name
    bodies = [json.loads((out / "requests" / f"{n}.json").read_text()) for n in (1, 2)]
    assert bodies[0] == bodies[1] and len(bodies[0]["inputs"]["x"]) == 2  # the fixed batch of the stateful export
    script = (out / "reproduce.py").read_text()
    assert not re.search(r"^\s*(from|import) harness", script, re.M) and "tensorflow/serving:" in script
    readme = (out / "README.md").read_text()
    assert f"--image {stand_in}" in readme and "stand-in" in readme
    assert "tensorflow/serving:" in (out / "versions.txt").read_text()

    code, seen, output = _run(out / "reproduce.py", tmp_path / "home", "--image", stand_in, "--pull", "never")
    assert code == 1 and seen["kind"] == "divergence" and seen["request"] == 2, output[-3000:]
    first, second = seen["replies"]
    expected = seen["expected"]
    name = next(iter(expected))
    assert max(abs(a - b) for a, b in zip(sum(first[name], []), sum(expected[name], []))) <= seen["bound"]
    assert seen["max_abs_diff"] > seen["bound"] and first != second
    key = reproducers()["tfserving"].key
    assert key(seen) == key(record["observed_on_model"])
    gone = subprocess.run(["docker", "inspect", seen["container"]], capture_output=True, text=True)
    assert seen["container"].startswith("pitfalls-reproducer-") and gone.returncode != 0  # removed by the script


def test_a_missing_image_is_a_setup_error_in_one_line(stateful_reproducer: Path, tmp_path: Path) -> None:
    code, seen, output = _run(stateful_reproducer / "reproduce.py", tmp_path / "home", "--image",
                              "pitfalls/no-such-serving-image:0", "--pull", "never")
    assert code == 2 and seen["kind"] == "broken", output[-3000:]
    assert "setup error: docker run pitfalls/no-such-serving-image:0 failed" in output
    assert "No such image" in seen["text"] or "not found" in seen["text"].lower(), seen  # docker's own words


def test_the_script_confines_its_container_and_a_killed_script_leaves_it_to_the_sweep(
        stateful_reproducer: Path, stand_in: str, tmp_path: Path) -> None:
    """The attack: the script killed (SIGKILL) while its server starts.  Its container ran confined
    as check's do (unprivileged, no capabilities, no-new-privileges, memory and pids limits, the model
    read-only, the port on 127.0.0.1 only) and labelled with an owner whose lock died with the
    script, so pitfalls' sweep removes it."""
    from harness.environments.ownership import CONFINED_UID
    from harness.targets.tfserving.container import remove_leftover_containers

    home = tmp_path / "home"
    env = _clean_env(home)
    process = subprocess.Popen([sys.executable, str(stateful_reproducer / "reproduce.py"), "--image", stand_in,
                                "--pull", "never"], cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        started: list[str] = []
        while not started and process.poll() is None:  # until `docker run -d` made it (or the script ended)
            started = _reproducer_containers(process.pid)
            time.sleep(0.25)
        assert started, "the script never started a container"
        inspected = json.loads(subprocess.run(["docker", "inspect", started[0]], capture_output=True, text=True,
                                              check=True).stdout)[0]
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    host = inspected["HostConfig"]
    user = inspected["Config"]["User"]
    assert user and not user.startswith("0") and user != "root"
    assert user == (f"{CONFINED_UID}:{CONFINED_UID}" if os.geteuid() == 0 else f"{os.getuid()}:{os.getgid()}")
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] > 0 and host["PidsLimit"] > 0
    assert all(not m["RW"] for m in inspected["Mounts"]) and len(inspected["Mounts"]) == 1
    assert inspected["Mounts"][0]["Source"] == str(stateful_reproducer / "model")
    assert all(b["HostIp"] == "127.0.0.1" for bindings in host["PortBindings"].values() for b in bindings)
    labels = inspected["Config"]["Labels"]
    assert labels["pitfalls"] == "1" and labels["pitfalls.owner"]

    remove_leftover_containers()
    assert not _reproducer_containers(process.pid)


def test_float_json_ids_show_nothing_on_the_stand_in(stand_in: str, tmp_path: Path) -> None:
    """What the runtime shows decides: the stand-in turns the float JSON of an int64 signature (3.0)
    into the ids and replies as TensorFlow does, so the int64-ids model shows no finding on
    `tfserving:float-json`: exit 1, nothing written."""
    out = tmp_path / "ids"
    assert main(["reduce", str(int64_ids_keras(ArtifactCache())), "--finding", "tfserving:float-json", "--out",
                 str(out), "-q"]) == NOT_SHOWN
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".reduce-")]
