"""Sharded runs and `pitfalls merge`: the split, the merge's refusals, and a real selection as 3 shards."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from crafted import ENV, old_records, write_results
from harness.cli import main
from harness.results import SCHEMA, build_results, load_run
from harness.shard import ShardSpec, default_workers, parse_shard, split

IDS = [f"browser/topic-{i:02d}" for i in range(12)] + [f"server/area/leaf-{i}" for i in range(9)]


def _one_line_error(capsys: pytest.CaptureFixture[str], words: str) -> None:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pitfalls: error:") and words in lines[0], captured.err


# --------------------------------------------------------------------------------------------
# the split


def test_parse_shard() -> None:
    assert parse_shard("2/3") == ShardSpec(2, 3) and str(parse_shard(" 1 / 1 ")) == "1/1"


def test_hash_split_is_deterministic_balanced_and_pinned() -> None:
    a = split(IDS, 3)
    assert a == split(list(reversed(IDS)) + IDS[:4], 3)  # order and repeats do not matter
    assert a.strategy == "hash" and a.expected_seconds is None
    assert sorted(s for shard in a.shards for s in shard) == sorted(IDS)  # each file in exactly one shard
    assert max(map(len, a.shards)) - min(map(len, a.shards)) <= 1
    # sha256, not Python's salted hash(): the same shards on every machine and process
    assert a.shards[0] == ("browser/topic-02", "browser/topic-03", "server/area/leaf-0", "server/area/leaf-3",
                           "server/area/leaf-4", "server/area/leaf-5", "server/area/leaf-8"), a.shards[0]
    assert a.digest == split(IDS, 3).digest != split(IDS, 4).digest


def test_duration_split_packs_longest_first_within_25_percent() -> None:
    rng = random.Random(12)
    for trial in range(20):
        ids = [f"x/file-{i}" for i in range(rng.randint(15, 60))]
        durations = {sid: rng.lognormvariate(1.0, 0.9) for sid in ids}
        s = split(ids, 3, durations)
        assert s.strategy == "durations" and sorted(f for sh in s.shards for f in sh) == sorted(ids)
        loads = [sum(durations[f] for f in sh) for sh in s.shards]
        assert s.expected_seconds == tuple(round(x, 3) for x in loads)
        assert (max(loads) - min(loads)) / max(loads) <= 0.25, (trial, loads)
        assert s == split(list(reversed(ids)), 3, durations)


def test_duration_split_details() -> None:
    durations = {"a": 10.0, "b": 6.0, "c": 5.0, "d": 4.0, "gone": 100.0}
    s = split(["a", "b", "c", "d"], 2, durations)
    # longest first onto the lightest shard: a -> 1 (10), b -> 2 (6), c -> 2 (11), d -> 1 (14)
    assert s.shards == (("a", "d"), ("b", "c")) and s.expected_seconds == (14.0, 11.0)
    # a file the durations do not know costs their median (6.0 here)
    t = split(["a", "b", "e"], 2, durations)
    assert t.expected_seconds == (10.0, 12.0) and t.shards == (("a",), ("b", "e"))
    # durations that know none of the selected files: the hash split
    assert split(["p", "q"], 2, {"other": 1.0}).strategy == "hash"
    assert split(["p"], 3).shards.count(()) == 2  # more shards than files: empty shards


def test_default_workers_from_cores_and_memory() -> None:
    gib = 1024 ** 3
    assert default_workers(2, 24 * gib) == 2  # this machine
    assert default_workers(2, 4 * gib) == 1 and default_workers(1, 64 * gib) == 1
    assert default_workers(16, 14 * gib) == 4 and default_workers(4, 1 * gib) == 1
    assert default_workers(2) in (1, 2)


# --------------------------------------------------------------------------------------------
# merge of crafted files


def _shard_file(path: Path, records: list[dict], index: int, count: int, files: list[str],
                digest: str = "d1", env: dict | None = None) -> Path:
    data = build_results(records, env=dict(env or ENV, shard={
        "index": index, "count": count, "files": files, "durations_from": None, "strategy": "hash",
        "split": digest, "selected": 4, "expected_seconds": None}))
    path.write_text(json.dumps(data))
    return path


def _halves(tmp_path: Path) -> tuple[Path, Path]:
    recs = old_records()
    ids = sorted({r["scenario"] for r in recs})
    a = _shard_file(tmp_path / "a.json", [r for r in recs if r["scenario"] in ids[:2]], 1, 2, ids[:2])
    b = _shard_file(tmp_path / "b.json", [r for r in recs if r["scenario"] in ids[2:]], 2, 2, ids[2:])
    return a, b


def test_merge_joins_shards_and_report_and_diff_read_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _halves(tmp_path)
    out = tmp_path / "m" / "merged.json"
    assert main(["merge", str(a), str(b), "--out", str(out)]) == 0
    merged = load_run(out)
    assert merged.schema == SCHEMA and len(merged.records) == len(old_records())
    assert merged.summary == {"reproduced": 3, "not-reproduced": 1, "works": 2, "broken": 1, "skipped": 1, "error": 0,
                              "not-applicable": 0}
    assert "shard" not in merged.environment and merged.environment["packages"] == ENV["packages"]
    assert [m["shard"] for m in merged.environment["merged_from"]] == ["1/2", "2/2"]
    assert "merged 2 results files, 8 records" in capsys.readouterr().out
    whole = write_results(tmp_path / "whole.json", old_records())
    assert main(["diff", str(whole), str(out)]) == 0
    assert "no scenario changed behaviour" in capsys.readouterr().out
    assert main(["report", str(out), "--out", str(tmp_path / "site")]) == 0
    assert (tmp_path / "site" / "report.html").stat().st_size > 1000


def test_merge_refusals_are_one_line_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _halves(tmp_path)
    out = tmp_path / "merged.json"
    recs = old_records()
    other_env = json.loads(json.dumps(ENV))  # a deep copy, typed Any
    other_env["packages"]["tensorflow"] = "2.20.0"
    newer = _shard_file(tmp_path / "newer.json", json.loads(b.read_text())["records"], 2, 2,
                        load_run(b).environment["shard"]["files"], env=other_env)
    wrong_schema = tmp_path / "v2.json"
    wrong_schema.write_text(json.dumps(dict(json.loads(b.read_text()), schema="pitfalls-results/2")))
    cases = [
        ([str(a)], "merge needs two results files or more"),
        ([str(a), str(wrong_schema)], "has schema 'pitfalls-results/2', expected 'pitfalls-results/1'"),
        ([str(a), str(newer)], "different environment than " + str(a) + " (tensorflow 2.19.0 vs 2.20.0)"),
        ([str(a), str(a)], "is given twice"),
        ([str(a), str(_shard_file(tmp_path / "a2.json", recs[:1], 2, 2, [recs[0]["scenario"]]))],
         f"duplicate record {recs[0]['scenario']} faulty[tfjs] in {a} and"),
        ([str(a), str(_shard_file(tmp_path / "c.json", [], 3, 3, [], digest="d1"))], "of a different split"),
        ([str(a), str(_shard_file(tmp_path / "x.json", [], 1, 2, [], digest="d2"))], "of a different split"),
        ([str(a), str(write_results(tmp_path / "plain.json", recs[4:]))], "is not a shard but"),
        ([str(tmp_path / "missing.json"), str(b)], "results file not found"),
    ]
    for inputs, words in cases:
        assert main(["merge", *inputs, "--out", str(out)]) == 2, words
        _one_line_error(capsys, words)
        assert not out.exists()
    three = [_shard_file(tmp_path / f"s{k}.json", [], k, 3, [], digest="d3") for k in (1, 3)]
    assert main(["merge", *map(str, three), "--out", str(out)]) == 2
    _one_line_error(capsys, "shard 2/3 missing (have 1/3, 3/3); pass every shard's results file")
    assert main(["merge", str(a), str(b), "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "is a directory")
    assert main(["merge", str(a), str(b), "--out", str(a)]) == 2
    _one_line_error(capsys, "is one of the inputs")
    assert not out.exists()
    # told to, it merges different versions and keeps each file's
    assert main(["merge", str(a), str(newer), "--out", str(out), "--allow-different-environments"]) == 0
    sources = load_run(out).environment["merged_from"]
    assert "environment" not in sources[0] and sources[1]["environment"]["packages"]["tensorflow"] == "2.20.0"


def test_merge_reports_files_a_shard_was_given_but_did_not_record(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    recs = old_records()
    a = _shard_file(tmp_path / "a.json", recs[:2], 1, 2, [recs[0]["scenario"]])
    b = _shard_file(tmp_path / "b.json", recs[2:], 2, 2, sorted({r["scenario"] for r in recs[2:]}) + ["server/lost"])
    out = tmp_path / "merged.json"
    assert main(["merge", str(a), str(b), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "pitfalls: warning: server/lost was given to a shard but has no record in any input" in err
    assert len(load_run(out).records) == len(recs)


# --------------------------------------------------------------------------------------------
# bad input to run --shard


@pytest.mark.parametrize("args, words", [
    (["--shard", "0/3"], "--shard 0/3: K must be between 1 and 3"),
    (["--shard", "4/3"], "--shard 4/3: K must be between 1 and 3"),
    (["--shard", "3"], "--shard takes K/N (shard K of N, 1-based), e.g. --shard 2/3, not '3'"),
    (["--shard", "a/b"], "--shard takes K/N"),
    (["--shard", "1/0"], "the number of shards must be 1 or more"),
    (["--durations", "DURATIONS"], "--durations FILE goes with --shard K/N"),
    (["--shard", "1/3", "--durations", "BROKEN"], "--durations: results file"),
    (["--shard", "1/3", "--durations", "NOTRESULTS"], "has schema None, expected 'pitfalls-results/1'"),
    (["--shard", "1/3", "--durations", "EMPTY"], "has no records to take durations from"),
    (["--shard", "1/3", "--durations", "NOFILE"], "--durations: results file not found"),
])
def test_bad_shard_arguments(args: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = {"DURATIONS": write_results(tmp_path / "d.json", old_records()), "BROKEN": tmp_path / "broken.json",
             "NOTRESULTS": tmp_path / "other.json", "EMPTY": write_results(tmp_path / "e.json", []),
             "NOFILE": tmp_path / "nothing.json"}
    files["BROKEN"].write_text('{"schema": "pitfalls-results/1", "records": [')
    files["NOTRESULTS"].write_text('{"tests": []}')
    argv = ["run", "browser/model-loading", *[str(files.get(a, a)) for a in args],
            "--results", str(tmp_path / "out" / "r.json")]
    assert main(argv) == 2
    _one_line_error(capsys, words)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# a real selection: unsharded, then as 3 shards one after another, merged

# six cheap files on two targets (LiteRT and Core ML): the split and the merge are what is tested, so
# no file here starts a browser or a server (four tf.js files cost four Chromium starts per run)
SELECTION = ["mobile/model-conversion/saving-models/coreml",
             "mobile/model-conversion/parsing-converted-models/litert",
             "mobile/model-conversion/parsing-converted-models/coreml",
             "mobile/data-processing/setting-size-shape-of-input-data",
             "mobile/model-conversion/procedure/litert", "mobile/data-processing/procedure"]


MADE_UP_FILE_SECONDS = {"mobile/model-conversion/procedure/litert": 30.0,
                        "mobile/model-conversion/saving-models/coreml": 5.0,
                        "mobile/model-conversion/parsing-converted-models/litert": 4.0,
                        "mobile/model-conversion/parsing-converted-models/coreml": 3.0,
                        "mobile/data-processing/setting-size-shape-of-input-data": 2.0,
                        "mobile/data-processing/procedure": 1.0}
EXPECTED_SHARDS = [("mobile/model-conversion/procedure/litert",),
                   ("mobile/data-processing/procedure", "mobile/data-processing/setting-size-shape-of-input-data",
                    "mobile/model-conversion/saving-models/coreml"),
                   ("mobile/model-conversion/parsing-converted-models/coreml",
                    "mobile/model-conversion/parsing-converted-models/litert")]


def _with_made_up_seconds(results: dict[str, Any], file_seconds: dict[str, float]) -> dict[str, Any]:
    """A results file whose records' ``seconds`` add up to ``file_seconds`` per scenario file."""
    records = results["records"]
    per_file = {sid: sum(1 for r in records if r["scenario"] == sid) for sid in file_seconds}
    assert set(per_file) == {r["scenario"] for r in records} and all(per_file.values()), per_file
    for r in records:
        r["seconds"] = file_seconds[r["scenario"]] / per_file[r["scenario"]]
    return results


def test_three_shards_merged_equal_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = tmp_path / "whole" / "r.json"
    assert main(["run", *SELECTION, "--results", str(whole)]) == 0
    capsys.readouterr()
    one = load_run(whole)
    # the split is fed made-up durations (the measured ones depend on how busy the machine was:
    # under load one LiteRT file took 5.3 s and got a shard to itself); the slow file here is made up
    durations = tmp_path / "durations.json"
    durations.write_text(json.dumps(_with_made_up_seconds(json.loads(whole.read_text()), MADE_UP_FILE_SECONDS)))
    shard_files = []
    for k in (1, 2, 3):
        path = tmp_path / f"shard-{k}" / "r.json"
        assert main(["run", *SELECTION, "--shard", f"{k}/3", "--durations", str(durations),
                     "--results", str(path)]) == 0
        out = capsys.readouterr().out
        n = len(EXPECTED_SHARDS[k - 1])
        assert f"shard {k}/3: {n} of 6 scenario file(s), split by the durations in {durations}" in out, out
        shard_files.append(path)
    shards = [load_run(p) for p in shard_files]
    envs = [s.environment["shard"] for s in shards]
    assert [(e["index"], e["count"], e["strategy"], e["durations_from"]) for e in envs] == \
        [(k, 3, "durations", str(durations)) for k in (1, 2, 3)]
    # greedy packing of 30, 5, 4, 3, 2, 1 s: the slow file alone, then 5+2+1 and 4+3
    assert [tuple(e["files"]) for e in envs] == EXPECTED_SHARDS
    assert [e["expected_seconds"] for e in envs] == [30.0, 8.0, 7.0]
    assert len({e["split"] for e in envs}) == 1
    # every variant of a file in one shard, and the shard ran exactly the files it was given
    for s, e in zip(shards, envs):
        assert {r.scenario for r in s.records} == set(e["files"])
    assert sorted(f for e in envs for f in e["files"]) == sorted(SELECTION)
    merged = tmp_path / "merged.json"
    assert main(["merge", *map(str, shard_files), "--out", str(merged)]) == 0
    m = load_run(merged)
    assert {r.key: r.outcome for r in m.records} == {r.key: r.outcome for r in one.records}
    assert m.summary == one.summary and len(m.records) == len(one.records) == 12
    capsys.readouterr()
    assert main(["diff", str(whole), str(merged)]) == 0
    assert main(["report", str(merged), "--out", str(tmp_path / "site")]) == 0
    assert (tmp_path / "site" / "junit.xml").read_text().count("<testcase") == 12
