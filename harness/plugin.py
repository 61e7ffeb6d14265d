"""The pytest plugin: collects scenario files as items, runs variants on targets, writes results.

Every file under ``scenarios/<platform>/...`` becomes one item per target and variant, e.g.
``scenarios/browser/model-loading/asynchronous-loading.py::faulty[tfjs]``.  A faulty item passes
when the runtime showed the symptom; a fixed item passes when the remedy worked.  Targets are
activated lazily, once per test process, and always deactivated at the end of the session.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.artifacts import ArtifactCache
from harness.registry import KNOWN_TARGETS, is_scenario_file, load_scenario, scenario_root
from harness.errors import NotApplicable
from harness.results import PASSING, Record, RunResults, environment, write_run
from harness.scenario import (VARIANTS, Evidence, Outcome, Run, Scenario, VariantResult,
                              Verdict, describe_error, outcome_for)
from harness.targets.base import Target
from harness.taxonomy import PLATFORMS

DEFAULT_RESULTS = "results/latest.json"  # relative to where pytest runs
RECORD_PROPERTY = "pitfalls_record"  # the user property that carries a record's JSON (xdist ships it)


class TargetPool:
    """Targets activated on first use and deactivated together at the end of the session."""

    def __init__(self) -> None:
        self._targets: dict[str, Target] = {}
        self._stack = ExitStack()

    def get(self, name: str) -> Target:
        from harness.targets import target_class

        if name not in self._targets:
            self._targets[name] = self._stack.enter_context(target_class(name)())
        return self._targets[name]

    def close(self) -> None:
        self._targets.clear()
        self._stack.close()


@dataclass
class SessionState:
    pool: TargetPool = field(default_factory=TargetPool)
    cache: ArtifactCache = field(default_factory=ArtifactCache)
    records: list[Record] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: session_workdir())


def session_workdir() -> Path:
    """The session's scratch directory, inside this process's owner work directory (0750, named by
    its random owner id: :mod:`harness.environments.ownership`), the one directory its containers
    may mount."""
    from harness.environments.ownership import run_work_dir

    return Path(tempfile.mkdtemp(prefix="pitfalls-run-", dir=run_work_dir()))


STATE = pytest.StashKey[SessionState]()
RECORD = pytest.StashKey[Record]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pitfalls", "pitfalls: deployment-challenge scenarios")
    group.addoption("--pitfalls-results", default=DEFAULT_RESULTS, metavar="PATH",
                    help=f"where to write the results file (default {DEFAULT_RESULTS}; '' to skip)")
    group.addoption("--pitfalls-target", action="append", choices=sorted(KNOWN_TARGETS), default=[],
                    help="run only scenarios on this target (repeatable)")
    group.addoption("--pitfalls-variant", choices=VARIANTS, default=None,
                    help="run only this variant")
    group.addoption("--pitfalls-shard", default=None, metavar="JSON",
                    help="the shard this run is (JSON, set by `pitfalls run --shard K/N`): recorded in the "
                         "results file's environment")


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    state = SessionState()
    config.stash[STATE] = state
    config.pluginmanager.register(RecordCollector(state), "pitfalls-records")
    for platform in PLATFORMS:
        config.addinivalue_line("markers", f"{platform}: a {platform} scenario")
    for target in KNOWN_TARGETS:
        config.addinivalue_line("markers", f"{target}: a scenario run on the {target} target")
    config.addinivalue_line("markers", "faulty: the faulty variant of a scenario")
    config.addinivalue_line("markers", "fixed: the fixed variant of a scenario")
    config.addinivalue_line("markers", "scenario: a deployment-challenge scenario")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if is_scenario_file(file_path, scenario_root()):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class NotATestModule(pytest.File):
    """What pytest's python plugin gets for a scenario file named on the command line.

    pytest makes a test module of every ``.py`` file given as an argument, whatever its name; for
    scenario files that would import them a second time (and fail with "import file mismatch" when
    two share a base name, e.g. ``…/litert.py``).  :class:`ScenarioFile` collects them instead.
    """

    def collect(self) -> Iterator[pytest.Item]:
        return iter(())


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if is_scenario_file(module_path, scenario_root()):
        return NotATestModule.from_parent(parent, path=module_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        scenario = load_scenario(self.path, scenario_root())
        wanted_targets = self.config.getoption("--pitfalls-target") or list(scenario.targets)
        wanted_variant = self.config.getoption("--pitfalls-variant")
        for target in scenario.targets:
            if target not in wanted_targets:
                continue
            for variant in VARIANTS:
                if wanted_variant and variant != wanted_variant:
                    continue
                item = ScenarioItem.from_parent(self, name=f"{variant}[{target}]", scenario=scenario,
                                                target=target, variant=variant)
                for marker in ("scenario", scenario.platform, target, variant):
                    item.add_marker(marker)
                if scenario.known_gap:
                    item.add_marker(pytest.mark.xfail(strict=True, reason=scenario.known_gap))
                yield item


class ScenarioFailed(Exception):
    """A variant did not behave as its expectation says; carries the record."""

    def __init__(self, record: Record) -> None:
        self.record = record
        super().__init__(record.verdict)


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, target: str, variant: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.target_name = target
        self.variant = variant

    def _record(self, outcome: Outcome, verdict: Verdict, run: Run | None, seconds: float,
                error: BaseException | None, versions: dict[str, str] | None = None) -> Record:
        evidence = run.evidence if run else Evidence(versions=dict(versions or {}))
        if error is not None and evidence.error is None:
            evidence.error = describe_error(error)
        record = Record(
            scenario=self.scenario.id, taxonomy=self.scenario.taxonomy, platform=self.scenario.platform,
            target=self.target_name, variant=self.variant, outcome=outcome,
            expected=self.scenario.expectation(self.variant).describe(), verdict=verdict.detail,
            evidence=evidence, seconds=round(seconds, 3), nodeid=self.nodeid)
        self.stash[RECORD] = record
        return record

    def runtest(self) -> None:
        from harness.targets import target_class

        state = self.config.stash[STATE]
        started = time.perf_counter()
        reason = target_class(self.target_name).unavailable_reason()
        if reason:
            self._record(Outcome.SKIPPED, Verdict(False, reason), None, 0.0, None)
            pytest.skip(f"{self.target_name} not available here: {reason}")
        versions = self.scenario.installed_versions()  # every package the scenario's ranges name
        outside = self.scenario.not_applicable_reason(versions)
        if outside:
            self._record(Outcome.NOT_APPLICABLE, Verdict(False, outside), None, 0.0, None,
                         versions=versions)
            pytest.skip(outside)
        target = state.pool.get(self.target_name)
        workdir = Path(tempfile.mkdtemp(prefix=f"{self.variant}-", dir=state.workdir))
        run = Run(scenario=self.scenario, variant=self.variant, target=target, workdir=workdir,
                  cache=state.cache)
        run.evidence.versions = {**target.versions(), **versions}  # judge() reads the ranges' versions here
        error: BaseException | None = None
        skipped: str | None = None
        try:
            try:
                figures = self.scenario.variant(self.variant)(run)
                for name, value in (figures or {}).items():
                    run.figure(name, value)
            finally:
                run.close()
        except NotApplicable as exc:
            skipped = str(exc)
        except Exception as exc:  # noqa: BLE001 - judged below
            error = exc
        seconds = time.perf_counter() - started
        if skipped is not None:
            self._record(Outcome.SKIPPED, Verdict(False, skipped), run, seconds, None)
            pytest.skip(skipped)
        verdict = self.scenario.expectation(self.variant).judge(VariantResult(error, run.evidence))
        outcome = outcome_for(self.variant, verdict, error)
        record = self._record(outcome, verdict, run, seconds, error)
        if outcome not in (Outcome.REPRODUCED, Outcome.WORKS):
            raise ScenarioFailed(record) from error

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            r = excinfo.value.record
            lines = [f"{r.scenario} [{r.target}] {r.variant} variant: {r.outcome.value}",
                     f"  expected: {r.expected}", f"  verdict:  {r.verdict}"]
            err = r.evidence.error
            if err:
                lines.append(f"  error:    {err.kind}: {err.message[:1500]}")
                lines.append(f"  from:     {err.runtime} {err.source}")
            if r.evidence.figures:
                lines.append(f"  figures:  {r.evidence.figures}")
            if r.outcome is Outcome.ERROR and excinfo.value.__cause__ is not None:
                import traceback

                lines.append("".join(traceback.format_exception(excinfo.value.__cause__))[-4000:])
            return "\n".join(lines)
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.scenario.id} {self.name}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield  # pluggy's result object
    report = outcome.get_result()
    record = item.stash.get(RECORD, None)
    if record is not None and call.when == "call":
        # the codec's plain JSON (a note JSON cannot hold becomes its str()): xdist must serialise it
        report.user_properties.append((RECORD_PROPERTY, record.to_json()))


class RecordCollector:
    """Gathers the records of every report; under xdist the controller gets the workers' reports."""

    def __init__(self, state: SessionState) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == RECORD_PROPERTY:
                record = Record.from_json(value)
                if report.outcome == "skipped" and hasattr(report, "wasxfail"):  # xfailed as stated
                    record = record.as_known_gap()
                self.state.records.append(record)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash[STATE]
    state.pool.close()
    import shutil

    shutil.rmtree(state.workdir, ignore_errors=True)  # the owner's work directory goes at exit (ownership)
    if hasattr(session.config, "workerinput"):
        return  # xdist worker: the controller writes the file
    path = session.config.getoption("--pitfalls-results")
    if path and state.records:
        results_path = Path(path)
        if not results_path.is_absolute():
            results_path = Path(session.config.invocation_params.dir) / results_path
        env = environment()
        shard = session.config.getoption("--pitfalls-shard")
        if shard:
            env["shard"] = json.loads(shard)  # written by harness.shard.shard_environment
        write_run(results_path, RunResults.build(state.records, env))
        session.config.stash[RESULTS_PATH] = results_path


RESULTS_PATH = pytest.StashKey[Path]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    records = config.stash[STATE].records
    if not records:
        return
    from collections import Counter

    from harness.taxonomy import coverage

    tr = terminalreporter
    tr.section("pitfalls")
    counts = Counter(r.outcome.value for r in records)
    tr.write_line("variants: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    covered = coverage({r.taxonomy for r in records if r.outcome in PASSING})
    total = len(covered["covered"]) + len(covered["missing"])
    tr.write_line(f"taxonomy nodes with a passing variant in this run: {len(covered['covered'])}/{total}")
    path = config.stash.get(RESULTS_PATH, None)
    if path:
        tr.write_line(f"results: {path}")


@pytest.fixture(scope="session")
def pitfalls_cache(pytestconfig: pytest.Config) -> ArtifactCache:
    """The session's artifact cache (``$PITFALLS_CACHE`` or ``~/.cache/pitfalls``)."""
    return pytestconfig.stash[STATE].cache


@pytest.fixture(scope="session")
def pitfalls_targets(pytestconfig: pytest.Config) -> TargetPool:
    """The session's target pool: ``pitfalls_targets.get("litert")`` gives an active target."""
    return pytestconfig.stash[STATE].pool


@pytest.fixture(scope="session")
def pitfalls_check(pytestconfig: pytest.Config) -> Any:
    """``pitfalls_check(path, targets=[...], **options) -> CheckReport``: the pre-flight of
    ``pitfalls check`` on the session's cache, for a user's own test suite::

        def test_deploys(pitfalls_check):
            assert pitfalls_check("model.keras", targets=["litert"]).ok
    """
    from harness.check import check

    state = pytestconfig.stash[STATE]

    def run(path: str | Path, **options: Any) -> Any:
        options.setdefault("progress", None)
        options.setdefault("cache", state.cache)
        return check(path, active=state.pool, **options)

    return run
