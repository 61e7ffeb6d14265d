"""A standalone reproducer of a TF Serving finding, written by ``pitfalls reduce`` (its template: the
``SETTINGS`` statement is filled in and the shared part pasted in place of its import).

It needs Python 3 (standard library only) and the docker CLI with an engine.  It starts a serving
container of ``--image`` (default: the real ``tensorflow/serving`` of the version that exported the
model) with ``model/`` beside it mounted read-only at ``/models/<name>``, its REST port published on
127.0.0.1 only, as an unprivileged user with every capability dropped, ``no-new-privileges`` and
memory and pids limits; waits until the model is AVAILABLE (or the server says why it is not); sends
``requests/<n>.json`` in order to ``POST /v1/models/<name>:predict``; compares each reply with
``expected.json`` (the SavedModel's own ``serving_default`` called by TensorFlow on a fresh load);
prints what it saw and removes the container.  Exit 1 when the finding shows, 0 when it does not, 2
on a setup error (no docker, no image, the server never became ready).
"""

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from harness.reduce.script_common import report

SETTINGS: dict[str, Any] = {}

SETUP_ERROR = 2


class SetupFailed(Exception):
    """The reproducer could not get a server to ask (not the finding)."""


def docker(*args: str, timeout: float = 300.0) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def owner_lock(labels: dict[str, str]) -> Any:
    """When ``SETTINGS["owners_dir"]`` exists (the machine that wrote this reproducer): a lock file of
    a random owner id held for the script's life, and the labels pitfalls' reaper removes a container
    by once that lock is free (the script killed).  Elsewhere: nothing."""
    folder = SETTINGS.get("owners_dir") or ""
    if not folder or not os.path.isdir(folder):
        return None
    import fcntl

    owner = secrets.token_hex(8)
    path = os.path.join(folder, owner + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, ("pid %d\n" % os.getpid()).encode())
    labels.update({"pitfalls": "1", "pitfalls.owner": owner, "pitfalls.pid": str(os.getpid())})
    return (fd, path)


def release(lock: Any) -> None:
    if lock is not None:
        fd, path = lock
        try:
            os.unlink(path)
        finally:
            os.close(fd)


def http(method: str, url: str, body: "bytes | None" = None, timeout: float = 60.0) -> "tuple[int, str]":
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


LOAD_FAILED = re.compile(r"Loading servable: \{name: (\S+) version: \d+\} failed: ([A-Z_]+): (.*)")


def start(here: str, image: str, pull: str, labels: dict[str, str]) -> "tuple[str, str]":
    """Create and start the confined container; (its name, the REST base URL on 127.0.0.1)."""
    if shutil.which("docker") is None:
        raise SetupFailed("the docker CLI is not on PATH: install Docker (https://docs.docker.com/engine/install/)")
    name = "pitfalls-reproducer-" + secrets.token_hex(5)
    user = "%d:%d" % ((os.getuid(), os.getgid()) if os.geteuid() != 0 else (10001, 10001))
    model = SETTINGS["model_name"]
    command = ["run", "-d", "--name", name, "--pull", pull, "--user", user, "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges", "--memory", SETTINGS["memory"],
               "--memory-swap", SETTINGS["memory"], "--pids-limit", str(SETTINGS["pids"]),
               "-p", "127.0.0.1::8501", "-v", "%s:/models/%s:ro" % (os.path.join(here, "model"), model),
               "-e", "MODEL_NAME=" + model]
    for key, value in labels.items():
        command += ["--label", "%s=%s" % (key, value)]
    done = docker(*command, image, timeout=1800.0)
    if done.returncode != 0:
        docker("rm", "-f", name)
        raise SetupFailed("docker run %s failed (exit %d): %s" % (image, done.returncode, done.stderr.strip()[-1500:]))
    port = docker("port", name, "8501/tcp")
    address = next((line.strip() for line in port.stdout.splitlines() if line.startswith("127.0.0.1:")), "")
    if not address:
        raise SetupFailed("the REST port 8501 of %s is not published on 127.0.0.1: %s" % (name, port.stdout + port.stderr))
    return name, "http://" + address


def wait_ready(name: str, base: str, timeout: float) -> "dict[str, Any] | None":
    """Until the model is AVAILABLE: None; the server's own load failure: a ``runtime`` observation;
    the container gone or the timeout reached: SetupFailed with what was seen last."""
    model = SETTINGS["model_name"]
    deadline = time.monotonic() + timeout
    last = "nothing yet"
    while True:
        logs = docker("logs", name)
        failed = next((m for m in LOAD_FAILED.finditer(logs.stdout + logs.stderr) if m.group(1) == model), None)
        if failed is not None:
            return {"kind": "runtime", "error": failed.group(2), "text": failed.group(3).strip(), "stage": "load"}
        state = docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.strip()
        if not state.startswith("running"):
            raise SetupFailed("the container stopped (%s) before the model was available; its log ends:\n%s"
                              % (state or "gone", (logs.stdout + logs.stderr)[-2000:]))
        try:
            status, text = http("GET", "%s/v1/models/%s" % (base, model), timeout=10.0)
            last = "GET /v1/models/%s: HTTP %d %s" % (model, status, text.strip()[:500])
            if status == 200 and any(v.get("state") == "AVAILABLE" for v in json.loads(text).get("model_version_status", [])):
                return None
        except (OSError, ValueError) as exc:
            last = "GET /v1/models/%s: %s" % (model, exc)
        if time.monotonic() > deadline:
            raise SetupFailed("the model was not AVAILABLE after %.0f s; last seen: %s" % (timeout, last))
        time.sleep(0.5)


def flat(value: Any) -> "list[float]":
    if isinstance(value, list):
        return [x for item in value for x in flat(item)]
    return [float(value)]


def shape(value: Any) -> "list[int]":
    return [len(value), *shape(value[0])] if isinstance(value, list) and value else ([0] if isinstance(value, list) else [])


def compare(index: int, got: "dict[str, Any]", want: "dict[str, Any]") -> "dict[str, Any]":
    """The worst output of one reply against the expected numbers (SETTINGS' tolerance)."""
    worst: "dict[str, Any]" = {"kind": "none", "max_abs_diff": 0.0, "bound": 0.0, "request": index}
    for name, expected in sorted(want.items()):
        if name not in got:
            return {"kind": "divergence", "request": index, "max_abs_diff": None, "bound": None,
                    "text": "request %d: the reply has no output %r (it has %s)" % (index, name, sorted(got))}
        if shape(got[name]) != shape(expected):
            return {"kind": "divergence", "request": index, "max_abs_diff": None, "bound": None,
                    "text": "request %d: output %s has shape %s, expected %s" % (index, name, shape(got[name]),
                                                                             shape(expected))}
        g, w = flat(got[name]), flat(expected)
        diff = max((abs(a - b) if a == a and b == b else float("inf") for a, b in zip(g, w)), default=0.0)
        bound = SETTINGS["atol"] + SETTINGS["rtol"] * max((abs(b) for b in w), default=0.0)
        if diff > worst["max_abs_diff"]:
            worst.update(max_abs_diff=diff, bound=bound, output=name)
        if diff > bound:
            worst["kind"] = "divergence"
    return worst


def observe(here: str, image: str, pull: str, timeout: float) -> "dict[str, Any]":
    labels = {"pitfalls.reproducer": "1"}
    lock = owner_lock(labels)
    name = ""
    try:
        name, base = start(here, image, pull, labels)
        failed = wait_ready(name, base, timeout)
        if failed is not None:
            failed.update(image=image, container=name)
            return failed
        with open(os.path.join(here, "expected.json"), encoding="utf-8") as file:
            expected = json.load(file)
        replies: "list[Any]" = []
        worst: "dict[str, Any]" = {"kind": "none", "max_abs_diff": 0.0, "bound": 0.0}
        for index, request in enumerate(SETTINGS["requests"], start=1):
            with open(os.path.join(here, request), "rb") as file:
                body = file.read()
            status, text = http("POST", "%s/v1/models/%s:predict" % (base, SETTINGS["model_name"]), body)
            if status != 200:
                try:
                    message = str(json.loads(text).get("error", text))
                except ValueError:
                    message = text
                return {"kind": "runtime", "error": "HTTP %d" % status, "text": message.strip(), "stage": "predict",
                        "request": index, "image": image, "container": name, "replies": replies}
            outputs = json.loads(text).get("outputs")
            if not isinstance(outputs, dict):  # one output: the columnar reply leaves out its name
                outputs = {next(iter(expected)): outputs}
            replies.append(outputs)
            seen = compare(index, outputs, expected)
            if seen["kind"] == "divergence":
                seen.setdefault("text", "request %d (%s): max |served - expected| = %.6g > atol + rtol * "
                                "max|expected| = %.6g (output %s)%s" % (index, request, seen["max_abs_diff"],
                                                                      seen["bound"], seen.get("output"),
                                                                      SETTINGS.get("divergence_note", "")))
                seen.update(image=image, container=name, replies=replies, expected=expected)
                return seen
            if seen["max_abs_diff"] >= worst["max_abs_diff"]:
                worst = seen
        worst.update(image=image, container=name, replies=replies, expected=expected,
                     text="no finding: every reply within tolerance of expected.json (max |served - expected| = "
                          "%.6g <= %.6g)" % (worst["max_abs_diff"], worst["bound"]))
        return worst
    finally:
        if name:
            docker("rm", "-f", "-v", name)
        release(lock)


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--image", default=SETTINGS["image"], help="the serving image (default: %(default)s)")
    parser.add_argument("--pull", default="missing", choices=("missing", "never", "always"),
                        help="docker run --pull (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=SETTINGS["ready_timeout"],
                        help="seconds to wait for the model to be AVAILABLE (default: %(default)s)")
    args = parser.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        found = observe(here, args.image, args.pull, args.timeout)
    except (SetupFailed, subprocess.TimeoutExpired) as exc:
        print("setup error: %s" % exc)
        print("REPRODUCER-RESULT " + json.dumps({"kind": "broken", "text": str(exc), "image": args.image}))
        return SETUP_ERROR
    return report(found, "TF Serving")


if __name__ == "__main__":
    sys.exit(main())
