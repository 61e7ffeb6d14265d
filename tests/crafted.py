"""Crafted results files for the tests of the command line, the reports and the diff; a fake clock.

No scenario runs: the records are written by hand in the ``pitfalls-results/1`` schema, with the
kind of evidence real runs record (runtime error texts, figures, versions).
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.results import build_results

ENV = {"python": "3.11.7", "platform": "Linux-test", "machine": "x86_64", "cpus": 2,
       "packages": {"tensorflow": "2.19.0", "tensorflowjs": "4.22.0", "ai-edge-litert": "2.3.0"}}
ASYNC = "browser/model-loading/asynchronous-loading"
LITERT = "mobile/general-questions/entire-procedure-of-deployment/litert"
COREML = "mobile/general-questions/entire-procedure-of-deployment/coreml"
SERVER = "server/general-questions/entire-procedure-of-deployment"
PREDICT_ERROR = "m.predict is not a function"


def record(scenario: str, target: str, variant: str, outcome: str, *, figures: dict[str, float] | None = None,
           error: str | None = None, verdict: str = "", expected: str = "") -> dict[str, Any]:
    taxonomy = scenario.rsplit("/", 1)[0] if scenario.endswith(("/litert", "/coreml")) else scenario
    return {
        "scenario": scenario, "taxonomy": taxonomy, "platform": scenario.split("/")[0], "target": target,
        "variant": variant, "outcome": outcome, "expected": expected or f"{variant} expectation",
        "verdict": verdict or f"{variant} {outcome}",
        "evidence": {
            "error": ({"type": "RuntimeFailure", "runtime": target, "kind": "TypeError", "message": error,
                       "source": "page error event"} if error else None),
            "figures": figures or {}, "notes": {"backend": "cpu"}, "texts": ["console: model loaded"],
            "versions": {"tensorflowjs": "4.22.0"} if target == "tfjs" else {"tensorflow": "2.19.0"},
        },
        "seconds": 1.25, "nodeid": f"scenarios/{scenario}.py::{variant}[{target}]",
    }


def old_records() -> list[dict[str, Any]]:
    return [
        record(ASYNC, "tfjs", "faulty", "reproduced", error=PREDICT_ERROR,
               verdict="runtime error matched 'predict is not a function'"),
        record(ASYNC, "tfjs", "fixed", "works", figures={"max_abs_diff": 2.0e-7, "predict_ms": 3.2, "load_ms": 40.0}),
        record(LITERT, "litert", "faulty", "reproduced", error="Cannot set tensor: Dimension mismatch."),
        record(LITERT, "litert", "fixed", "works",
               figures={"max_abs_diff": 1.0e-6, "tflite_bytes": 4096.0, "invoke_ms": 0.4}),
        record(COREML, "coreml", "faulty", "reproduced", error="Only a single concrete function is supported."),
        record(COREML, "coreml", "fixed", "skipped", figures={"mlpackage_bytes": 9216.0},
               verdict="Core ML prediction needs macOS"),
        record(SERVER, "tfserving", "faulty", "not-reproduced", verdict="expected an error, but none was raised"),
        record(SERVER, "tfserving", "fixed", "broken", error="Servable not found for request"),
    ]


def new_records() -> list[dict[str, Any]]:
    """The same catalog after a (pretend) converter upgrade: a regression, an improvement, drifts."""
    records = {(r["scenario"], r["target"], r["variant"]): r for r in copy.deepcopy(old_records())}
    records[(ASYNC, "tfjs", "faulty")]["evidence"]["error"]["message"] = "m.predict is not a function (new wording)"
    records[(ASYNC, "tfjs", "fixed")]["evidence"]["figures"]["predict_ms"] = 9.9  # latency up 209 %
    records[(LITERT, "litert", "fixed")].update(outcome="broken", verdict="max_abs_diff = 0.3 violates <= 0.0001")
    records[(LITERT, "litert", "fixed")]["evidence"]["figures"]["max_abs_diff"] = 0.3
    records[(SERVER, "tfserving", "faulty")].update(outcome="reproduced", verdict="runtime error matched")
    return list(records.values())


def write_results(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_results(records, env=ENV), indent=1), encoding="utf-8")
    return path


DEMO_ID = "mobile/data-extraction/demo"
DEMO_SCENARIO = '''"""A demo scenario for the harness's own tests; it never enters the real catalog."""

from harness.scenario import Figure, Raises, Run, Scenario, succeeds

BROKEN_DOCUMENT = "{'rgba': true}"  # single quotes: not JSON


def faulty(run: Run) -> None:
    import json

    json.loads(BROKEN_DOCUMENT)


def fixed(run: Run) -> dict[str, float]:
    import json

    return {"max_abs_diff": abs(json.loads('{"x": 0.5}')["x"] - 0.5), "parse_ms": 0.01}


SCENARIO = Scenario(
    title="Demo: a document with single quotes is not JSON",
    targets=("coreml",),
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Expecting property name enclosed in double quotes"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-9)),
    cause="The parser follows RFC 8259, which only allows double quotes.",
    fix="Write the document with double quotes.",
    references=("https://docs.python.org/3/library/json.html",),
    KNOWN_GAP
)
'''


def demo_scenario_source(known_gap: str | None = None) -> str:
    return DEMO_SCENARIO.replace("KNOWN_GAP", f"known_gap={known_gap!r}," if known_gap else "")


def write_scenario_tree(root: Path, files: dict[str, str] | None = None) -> Path:
    """A scenarios/ tree under ``root`` holding the demo scenario (or ``files``: id -> source)."""
    tree = root / "scenarios"
    for scenario_id, source in (files or {DEMO_ID: demo_scenario_source()}).items():
        path = tree / f"{scenario_id}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return tree


class FakeClock:
    """Made-up time: it moves only when a wait sleeps (:meth:`sleep`) or a timed path runs
    (:meth:`path`), so that no test's verdict depends on how fast or busy the machine is."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.calls: list[str] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def path(self, name: str, durations: list[float]) -> Callable[[], None]:
        """A timed path whose calls take ``durations`` in turn (the last one repeats); calls are logged."""
        queue = list(durations)

        def run() -> None:
            self.calls.append(name)
            self.now += queue.pop(0) if len(queue) > 1 else queue[0]
        return run


def run_to_the_end(argv: list[str], *, timeout: float, what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` with text output captured; a timeout fails saying what it waited for and
    the last lines the command printed (e.g. the variant a catalog run was on), not only its argv.

    ``timeout`` bounds a hang on a busy machine; it is no timed assertion.
    """
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as expired:
        def text(part: str | bytes | None) -> str:
            return part.decode(errors="replace") if isinstance(part, bytes) else part or ""
        tail = "\n".join((text(expired.stdout) + text(expired.stderr)).splitlines()[-20:])
        raise AssertionError(f"{what} had not finished after {timeout:.0f}s; its last output:\n{tail}") from None
