"""A build's scorecard against its profile's committed record (`advlogits.record_check`), and the command line's
``advlogits scorecard --against``: the one line for identical scorecards, an estimate moved within and outside the
record's interval, a changed verdict, a missing and an old-format record; exit statuses 0, 1 and 2.

The record is a copy of the committed ``results/cpu/`` and every "build" is that copy, edited.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from advlogits import cli, record_check

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "results" / "cpu"
ENV = json.loads((RECORD / "environment.json").read_text())
CPU = ENV["cpu"]
N_CLAIMS = len(json.loads((RECORD / "scorecard.json").read_text()))  # the claims of the committed record
ALL = f"{N_CLAIMS} of {N_CLAIMS}"
ALL_BUT_ONE = f"{N_CLAIMS - 1} of {N_CLAIMS}"


@pytest.fixture()
def records() -> list[dict]:
    return json.loads((RECORD / "scorecard.json").read_text())


@pytest.fixture()
def record(tmp_path) -> Path:
    """A copy of the committed cpu record: scorecard.json and environment.json."""
    folder = tmp_path / "results" / "cpu"
    folder.mkdir(parents=True)
    for name in ("scorecard.json", "environment.json"):
        (folder / name).write_bytes((RECORD / name).read_bytes())
    return folder


@pytest.fixture(autouse=True)
def same_cpu(monkeypatch):
    """This machine's CPU is the record's, unless a test says otherwise."""
    monkeypatch.setattr(record_check, "cpu_model", lambda: CPU)


def claim(records: list[dict], cid: str) -> dict:
    return next(r for r in records if r["id"] == cid)


def write(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps(records))
    return path


def n_checks(records: list[dict]) -> int:
    return sum(len(r["checks"]) for r in records)


# ---------------------------------------------------------------------------------------------------------------
# the comparison


def test_identical_scorecards_reproduce_the_record_with_every_estimate_identical(records):
    comparison = record_check.compare(records, copy.deepcopy(records), ENV, cpu=CPU)
    assert comparison.verdicts_match
    assert (
        comparison.line()
        == f"reproduces the record: {len(records)} of {len(records)} verdicts, every estimate identical"
    )
    assert comparison.details() == []
    assert {c.place for c in comparison.checks} == {record_check.IDENTICAL}


def test_an_estimate_moved_within_the_interval_is_counted_with_its_move(records):
    built = copy.deepcopy(records)
    check = claim(built, "C4")["checks"]["AT vs AT'"]
    low, high = check["ci"]
    recorded = check["estimate"]
    check["estimate"] += (high - recorded) / 2  # halfway to the upper bound
    comparison = record_check.compare(built, records, ENV, cpu=CPU)
    line = comparison.line()
    assert comparison.verdicts_match
    total = n_checks(records)
    assert line.startswith(f"reproduces the record: {ALL} verdicts, {total - 1} of {total} estimates identical, ")
    assert "1 within the record's 95% intervals (the largest move: C4 AT vs AT' " in line
    assert f", {(check['estimate'] - recorded) / ((high - low) / 2):.0%} of the half-width)" in line
    assert "outside" not in line
    assert comparison.details() == [
        "C4: verdict reproduced (as recorded); AT vs AT' within: "
        f"{check['estimate']:.3g}, recorded 0.148 [{low:.3g}, {high:.3g}]"
    ]


def test_an_estimate_outside_the_interval_is_named_with_the_recorded_one_and_its_interval(records):
    built = copy.deepcopy(records)
    claim(built, "C5")["checks"]["ST vs ST'"]["estimate"] = 0.5
    comparison = record_check.compare(built, records, ENV, cpu=CPU)
    line = comparison.line()
    assert comparison.verdicts_match, "an estimate that moved does not change a verdict by itself"
    assert line.startswith(f"reproduces the record: {ALL} verdicts, ")
    assert line.endswith("1 outside them (C5 ST vs ST': 0.5, recorded 0.247 [0.0862, 0.336])")
    assert "within" not in line


def test_an_estimate_without_a_recorded_interval_that_moved_lies_outside(records):
    built = copy.deepcopy(records)
    claim(built, "C3")["checks"]["closed form"]["estimate"] = 1e-11  # the record has no interval for it
    line = record_check.compare(built, records, ENV, cpu=CPU).line()
    assert "1 outside them (C3 closed form: 1e-11, recorded 4.16e-12)" in line


def test_a_changed_verdict_of_a_claim_or_a_comparison_is_named(records):
    built = copy.deepcopy(records)
    c8 = claim(built, "C8")
    c8["verdict"] = "reproduced"
    c8["checks"]["AT flattened"]["verdict"] = "reproduced"
    comparison = record_check.compare(built, records, ENV, cpu=CPU)
    assert not comparison.verdicts_match
    total = n_checks(records)
    assert comparison.line() == (
        f"differs from the record: {ALL_BUT_ONE} claims' verdicts and {total - 1} of {total} comparisons' verdicts "
        "match (changed: C8 reproduced, recorded inconclusive; C8 AT flattened reproduced, recorded inconclusive), "
        "every estimate identical"
    )
    assert comparison.details() == [
        "C8: verdict reproduced, recorded inconclusive; AT flattened reproduced, recorded inconclusive"
    ]


def test_a_comparison_whose_verdict_alone_changed_is_a_changed_verdict(records):
    built = copy.deepcopy(records)
    claim(built, "C3")["checks"]["networks: slope above 0"]["verdict"] = "inconclusive"
    comparison = record_check.compare(built, records, ENV, cpu=CPU)
    assert not comparison.verdicts_match
    assert f"{ALL} claims' verdicts" in comparison.line()
    assert "C3 networks: slope above 0 inconclusive, recorded reproduced" in comparison.line()


def test_a_claim_missing_from_the_build_or_new_in_it_is_a_changed_verdict(records):
    built = [r for r in copy.deepcopy(records) if r["id"] != "C7"]
    built.append({"id": "C9", "verdict": "reproduced", "checks": {}})
    comparison = record_check.compare(built, records, ENV, cpu=CPU)
    assert not comparison.verdicts_match
    line = comparison.line()
    assert "C7 missing from this build (recorded not reproduced)" in line
    assert "C9 reproduced, not in the record" in line


def test_the_line_names_the_record_s_cpu_and_commit_and_this_one_where_they_differ(records):
    env = {"cpu": "AMD EPYC", "commit": "dee393fe645e08ab915513ac56dee0b87e6cfbea"}
    other = record_check.compare(records, records, env, cpu="Intel(R) Xeon(R) Platinum 8488C").line()
    assert other.endswith(
        "; the record (commit dee393f) was computed on AMD EPYC, this build on Intel(R) Xeon(R) Platinum 8488C"
    )
    assert record_check.compare(records, records, env, cpu="AMD EPYC").line().endswith("every estimate identical")
    unnamed = record_check.compare(records, records, None, cpu="AMD EPYC").line()  # no environment.json
    assert unnamed.endswith("; the record (commit unknown) was computed on an unnamed CPU, this build on AMD EPYC")


# ---------------------------------------------------------------------------------------------------------------
# reading records, and the build's line


def test_the_build_line_compares_with_the_committed_record(tmp_path, record, records):
    built = write(tmp_path / "scorecard.json", records)
    assert record_check.build_line(built, "cpu", root=tmp_path) == (
        f"reproduces the record: {ALL} verdicts, every estimate identical"
    )


def test_a_profile_without_a_committed_record_gets_a_line_saying_so(tmp_path, records):
    built = write(tmp_path / "scorecard.json", records)
    assert record_check.build_line(built, "smoke", root=tmp_path) == "no committed record for profile smoke"
    assert record_check.record_folder("smoke", tmp_path) == tmp_path / "results" / "smoke"


def test_an_old_format_record_is_refused_in_one_line_that_says_what_to_run(tmp_path, record, records):
    old = [{k: v for k, v in r.items() if k != "checks"} for r in records]
    write(record / "scorecard.json", old)
    built = write(tmp_path / "scorecard.json", records)
    with pytest.raises(record_check.RecordError, match=r"record 0 \(C1\) .* has no 'checks': .*older version") as err:
        record_check.compare_folders(built, record, profile="cpu")
    assert "\n" not in str(err.value) and "make results PROFILE=cpu" in str(err.value)
    line = record_check.build_line(built, "cpu", root=tmp_path)
    assert line.startswith("not compared with the record: record 0 (C1)")


def test_a_record_of_another_profile_or_not_json_is_refused(tmp_path, record, records):
    built = write(tmp_path / "scorecard.json", records)
    with pytest.raises(record_check.RecordError, match="is of profile cpu, not smoke"):
        record_check.compare_folders(built, record, profile="smoke")
    (record / "scorecard.json").write_text("{not json")
    with pytest.raises(record_check.RecordError, match="is not valid JSON"):
        record_check.compare_folders(built, record, profile="cpu")


def test_the_module_prints_the_line_and_exits_0_even_when_a_verdict_changed(tmp_path, record, records, capsys):
    built = copy.deepcopy(records)
    claim(built, "C1")["verdict"] = "not reproduced"
    path = write(tmp_path / "scorecard.json", built)
    assert record_check.main(["--profile", "cpu", "--scorecard", str(path), "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"differs from the record: {ALL_BUT_ONE} claims' verdicts")


# ---------------------------------------------------------------------------------------------------------------
# advlogits scorecard --against


@pytest.fixture()
def executed(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "executed"
    folder.mkdir()
    monkeypatch.setenv("ADVLOGITS_EXECUTED_DIR", str(folder))
    return folder


def against(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(["scorecard", *argv])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_against_exits_0_when_every_verdict_matches(executed, record, records, capsys):
    write(executed / "scorecard.json", records)
    code, out, err = against(capsys, "--profile", "cpu", "--against", str(record))
    assert (code, err) == (0, "")
    assert out == f"reproduces the record: {ALL} verdicts, every estimate identical\n"


def test_against_exits_0_when_only_estimates_moved_and_names_them(executed, record, records, capsys):
    built = copy.deepcopy(records)
    claim(built, "C5")["checks"]["ST vs ST'"]["estimate"] = 0.5
    write(executed / "scorecard.json", built)
    code, out, _ = against(capsys, "--profile", "cpu", "--against", str(record))
    assert code == 0
    assert out.splitlines()[1:] == [
        "  C5: verdict reproduced (as recorded); ST vs ST' outside: 0.5, recorded 0.247 [0.0862, 0.336]"
    ]


def test_against_exits_1_when_a_verdict_changed(executed, record, records, capsys):
    built = copy.deepcopy(records)
    claim(built, "C8")["verdict"] = "reproduced"
    write(executed / "scorecard.json", built)
    code, out, err = against(capsys, "--profile", "cpu", "--against", str(record))
    assert (code, err) == (1, "")
    assert out.startswith(f"differs from the record: {ALL_BUT_ONE} claims' verdicts")
    assert "  C8: verdict reproduced, recorded inconclusive" in out


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing record", "argument --against: no committed record at"),
        ("old record", "has no 'checks': it was written by an older version of the book"),
        ("other profile", "is of profile cpu, not smoke"),
        ("no build", "no scorecard at"),
    ],
)
def test_against_refuses_bad_input_with_status_2_and_one_line(executed, record, records, capsys, case, expected):
    write(executed / "scorecard.json", records)
    profile, folder = "cpu", record
    if case == "missing record":
        folder = record.parent / "nowhere"
    elif case == "old record":
        write(record / "scorecard.json", [{k: v for k, v in r.items() if k != "checks"} for r in records])
    elif case == "other profile":
        profile = "smoke"
    else:
        os.remove(executed / "scorecard.json")
    code, out, err = against(capsys, "--profile", profile, "--against", str(folder))
    assert code == 2 and out == ""
    assert err.startswith("advlogits: error: ") and err.count("\n") == 1 and expected in err, err
