"""The ``advlogits`` command line (`advlogits.cli`): help on every verb, bad input refused with status 2 and one
line before any compute, the plan with its readable names and cost estimates, a run of a tiny profile, the store
actions, the scorecard and one chapter.

The command line is called in-process through `advlogits.cli.main` (faster), and once each through
``python -m advlogits`` and the installed ``advlogits`` script. Every test has its own ``ADVLOGITS_HOME`` and
``ADVLOGITS_EXECUTED_DIR``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from advlogits import cli, models, pipeline
from advlogits.cli import chapter as chapter_verbs
from advlogits.cli.plan import format_seconds, plan_summary
from advlogits.fileio import read_checked, record_path, write_checked
from advlogits.pipeline import plan as plan_module
from advlogits.pipeline import stored
from advlogits.pipeline.stored import model_key
from advlogits.profiles import resolve
from advlogits.store import Store

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = (
    "01_standard_vs_adversarial",
    "02_logit_distributions",
    "03_sample_confidence",
    "04_distillation",
    "05_scorecard",
)
# the smoke profile shrunk to a run of seconds: one student seed, one sweep radius, few images
TINY = {
    "student_seeds": "100",
    "eps_sweep": "0.1",
    "n_eval": "32",
    "n_autoattack": "8",
    "n_train": "256",
    "n_val": "32",
    "sweep_n_train": "256",
    "student_n_train": "256",
}
TINY_ARGS = [a for key, value in TINY.items() for a in ("--set", f"{key}={value}")]
LINE = re.compile(r"^(stored|missing) +(?:(\d+ s|<1 s|\?) +)?(.+) \[([a-z-]+), ([0-9a-f]{16})\]$")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``advlogits argv`` run in this process."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:
        code = 0 if exit_.code is None else exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def smoke():
    return resolve("smoke", device="cpu")


def plant(store: Store, key: str, config, seconds=(1.5, 2.0)) -> Path:
    """A stored model entry (small made-up weights) of ``config`` under ``key``, trained in ``seconds``."""
    history = {"epoch": list(range(1, len(seconds) + 1)), "seconds": list(seconds)}
    return store.save_weights(key, state={"w": torch.arange(64.0)}, config=config, history=history)


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*")) if path.exists() else []


def parse_plan(out: str) -> tuple[dict[str, tuple[str, str | None, str, str]], list[str], str]:
    """The plan's lines by unit name: (status, estimate, kind, key); the names in order; the summary line (the line
    before it says what the stored units took)."""
    lines = out.splitlines()
    assert lines[0].split() == ["status", "estimate", "unit"]
    assert " stored units took " in lines[-2] or lines[-2].startswith("nothing stored yet"), lines[-2]
    units, names = {}, []
    for line in lines[1:-2]:
        match = LINE.match(line)
        assert match, f"not a plan line: {line!r}"
        status, cost, name, kind, key = match.groups()
        units[name], names = (status, cost, kind, key), [*names, name]
    return units, names, lines[-1]


# ==============================================================================================================
# help


HELP = [
    ([], ["usage: advlogits", "plan", "run", "store", "chapter", "scorecard", "--verbose"]),
    (
        ["plan"],
        [
            "usage: advlogits plan",
            "--profile",
            "smoke",
            "cpu",
            "paper",
            "--device",
            "--seed",
            "--eps",
            "--set",
            "KEY=VALUE",
            "--robustbench",
        ],
    ),
    (
        ["run"],
        [
            "usage: advlogits run",
            "--profile",
            "--device",
            "--seed",
            "--eps",
            "--set",
            "--executor",
            "serial",
            "local",
            "ray",
            "--workers",
            "--threads",
            "--address",
            "--robustbench",
            "--quiet",
        ],
    ),
    (["store"], ["usage: advlogits store", "ls", "show", "verify", "repair", "rm", "gc"]),
    (["store", "ls"], ["usage: advlogits store ls"]),
    (["store", "show"], ["usage: advlogits store show", "key", "unique prefix"]),
    (["store", "verify"], ["usage: advlogits store verify"]),
    (["store", "rm"], ["usage: advlogits store rm", "key", "unique prefix"]),
    (["store", "gc"], ["usage: advlogits store gc"]),
    (["chapter"], ["usage: advlogits chapter", "name", "04_distillation", "--profile", "--set"]),
    (["scorecard"], ["usage: advlogits scorecard", "--profile", "--hand-runs", "--against"]),
]


@pytest.mark.parametrize("verb, expected", HELP, ids=[" ".join(v) or "program" for v, _ in HELP])
def test_help_on_the_program_every_verb_and_every_store_action(home, capsys, no_compute, verb, expected):
    code, out, err = run_cli(capsys, *verb, "--help")
    assert code == 0 and err == ""
    for text in expected:
        assert text in out, f"{text!r} missing from `advlogits {' '.join(verb)} --help`:\n{out}"
    assert "``" not in out and "(default: None)" not in out, "help shows docstring markup or a None default"
    assert files_under(home) == [] and no_compute == []


# ==============================================================================================================
# bad input: status 2, one line on stderr naming the argument and what it accepts, nothing computed


RUN = ["run", "--profile", "smoke", "--device", "cpu", "--executor", "serial", "--quiet"]
BAD = {
    "unknown-verb": (["bogus"], ["'bogus'", "plan", "run", "store", "chapter", "scorecard"]),
    "unknown-profile-plan": (["plan", "--profile", "huge"], ["--profile", "'huge'", "smoke", "cpu", "paper"]),
    "unknown-profile-run": (["run", "--profile", "huge"], ["--profile", "'huge'", "smoke", "cpu", "paper"]),
    "workers-zero": ([*RUN[:5], "--workers", "0"], ["--workers", ">= 1", "got 0"]),
    "workers-not-a-number": ([*RUN[:5], "--workers", "x"], ["--workers", ">= 1", "'x'"]),
    "threads-zero": ([*RUN, "--threads", "0"], ["--threads", ">= 1"]),
    "unknown-executor": ([*RUN[:5], "--executor", "nope"], ["--executor", "'nope'", "serial", "local", "ray"]),
    "address-without-ray-default": ([*RUN[:5], "--address", "auto"], ["--address", "--executor ray"]),
    "address-without-ray-serial": ([*RUN, "--address", "auto"], ["--address", "--executor ray", "serial"]),
    "set-without-equals": ([*RUN, "--set", "n_eval"], ["--set", "KEY=VALUE", "'n_eval'"]),
    "set-without-key": ([*RUN, "--set", "=3"], ["--set", "KEY=VALUE"]),
    "set-unknown-key": ([*RUN, "--set", "bogus=1"], ["--set", "'bogus'", "n_eval", "eps_sweep", "student_seeds"]),
    "set-eps-negative": ([*RUN, "--set", "eps=-1"], ["eps must be", "> 0", "< 1", "-1"]),
    "set-not-a-number": ([*RUN, "--set", "n_eval=many"], ["n_eval", "a number", "'many'"]),
    "eps-negative": ([*RUN, "--eps=-1"], ["eps must be", "> 0", "-1"]),
    "eps-twice": ([*RUN, "--eps", "0.1", "--set", "eps=0.2"], ["--eps", "--set eps", "twice"]),
    "seed-twice": ([*RUN, "--seed", "3", "--set", "seed=4"], ["--seed", "--set seed", "twice"]),
    "unknown-device": ([*RUN[:3], "--device", "tpu"], ["device", "'tpu'", "cpu", "cuda"]),
    "plan-set-unknown-key": (["plan", "--profile", "smoke", "--set", "bogus=1"], ["--set", "'bogus'"]),
    "chapter-set-unknown-key": (["chapter", "05", "--profile", "smoke", "--set", "bogus=1"], ["--set", "'bogus'"]),
    "store-without-action": (["store"], ["action"]),
    "store-show-without-key": (["store", "show"], ["key"]),
    "store-unknown-action": (["store", "list"], ["'list'", "ls", "show", "verify", "rm", "gc"]),
    "chapter-unknown-name": (["chapter", "06_epilogue", "--profile", "smoke"], ["NAME", "'06_epilogue'", *CHAPTERS]),
    "scorecard-missing": (
        ["scorecard", "--profile", "smoke"],
        ["scorecard.json", "chapter 05_scorecard", "--profile smoke"],
    ),
}


def assert_refused(code: int, out: str, err: str, expected: list[str]) -> None:
    assert code == 2, (code, out, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("advlogits: error: "), f"not one error line:\n{err}"
    for text in expected:
        assert text in lines[0], f"{text!r} missing from {lines[0]!r}"


@pytest.mark.parametrize("case", BAD)
def test_bad_input_exits_2_with_one_line_before_any_compute(home, capsys, no_compute, case):
    argv, expected = BAD[case]
    code, out, err = run_cli(capsys, *argv)
    assert_refused(code, out, err, expected)
    assert no_compute == [] and files_under(home) == [], "nothing computed, nothing written"
    if case == "scorecard-missing":
        assert str(Path(os.environ["ADVLOGITS_EXECUTED_DIR"]) / "scorecard.json") in err


def test_store_rm_and_show_refuse_a_key_naming_no_entry_or_several(home, capsys, no_compute):
    store = Store()
    config = smoke().standard()
    plant(store, "ab00000000000001", config)
    plant(store, "ac00000000000002", config)
    before = files_under(home)
    for action in ("rm", "show"):
        code, out, err = run_cli(capsys, "store", action, "ffff")
        assert_refused(code, out, err, ["KEY", "'ffff'", "no entry", "unique prefix"])
        code, out, err = run_cli(capsys, "store", action, "a")
        assert_refused(code, out, err, ["KEY", "'a'", "2 entries", "unique prefix"])
    assert files_under(home) == before and store.keys() == ["ab00000000000001", "ac00000000000002"]
    code, out, _ = run_cli(capsys, "store", "show", "ab")
    assert code == 0 and out.startswith("ab00000000000001: ")


def test_bad_input_through_python_m_advlogits(home, tmp_path):
    paths = [str(ROOT / "lib"), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "advlogits",
            "run",
            "--profile",
            "smoke",
            "--executor",
            "serial",
            "--set",
            "student_seeds=0",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert_refused(proc.returncode, proc.stdout, proc.stderr, ["student_seeds", "disjoint", "[0]"])
    assert files_under(home) == []
    proc = subprocess.run(
        [sys.executable, "-m", "advlogits", "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0 and "usage: advlogits" in proc.stdout


def test_the_installed_advlogits_script(home, tmp_path):
    script = Path(sys.executable).with_name("advlogits")
    if not script.exists():
        pytest.skip(
            f"{script} is not installed: the [project.scripts] entry of pyproject.toml appears after "
            "`pip install -e .` reruns"
        )
    store = Store()
    plant(store, model_key(smoke().standard()), smoke().standard())
    proc = subprocess.run([str(script), "store", "ls"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "standard, cnn-small, fashion-mnist, seed 0" in proc.stdout and "1 entries" in proc.stdout
    proc = subprocess.run([str(script), "plan", "--workers", "2"], capture_output=True, text=True, timeout=120)
    assert_refused(proc.returncode, proc.stdout, proc.stderr, ["--workers"])


# ==============================================================================================================
# plan


def test_plan_lists_every_unit_missing_on_an_empty_store(home, capsys):
    code, out, err = run_cli(capsys, "plan", "--profile", "smoke", "--device", "cpu")
    assert code == 0 and err == ""
    units = plan_module.ordered(plan_module.book_plan(smoke()))
    parsed, names, summary = parse_plan(out)
    assert names == [u.name for u in units], "every unit once, in dependency order, by its readable name"
    assert {v[0] for v in parsed.values()} == {"missing"} and {v[1] for v in parsed.values()} == {"?"}
    for name, kind in [
        ("AT teacher, smoke, seed 0", "model"),
        ("ST teacher, smoke, seed 0", "model"),
        ("AT' (seed baseline), smoke, seed 1", "model"),
        ("KD-AT, smoke, seed 100", "model"),
        ("evaluation of AT teacher, smoke, seed 0", "evaluation"),
        ("gradient-masking checks of KD-AT, smoke, seed 100", "masking"),
    ]:
        assert parsed[name][2] == kind
    assert parsed["AT teacher, smoke, seed 0"][3] == model_key(smoke().adversarial())
    n = len(units)
    assert (
        summary == f"{n} units, {n} missing; none has an estimate yet (nothing comparable of profile smoke is stored)"
    )
    code, out, err = run_cli(capsys, "plan", "--check", "--profile", "smoke", "--device", "cpu")
    assert (code, out, err) == (1, f"{n} units, {n} missing\n", ""), "make execute runs the chapters one by one"
    assert files_under(home) == [], "plan writes nothing"


@pytest.mark.slow
def test_plan_shows_stored_units_and_estimates_missing_ones_from_the_stored_history(home, capsys):
    p = smoke()
    store = Store()
    st = p.standard()
    _, history = pipeline.get_model(st, store=store, device="cpu", progress=False)
    stored.eval_logits(p, st, store=store)
    trained = float(sum(json.loads((store.entry(model_key(st)) / "history.json").read_text())["seconds"]))
    assert trained == pytest.approx(sum(history["seconds"])) and trained > 0
    logits_seconds = store.compute_seconds("eval-logits")
    assert len(logits_seconds) == 1
    at_seconds = (30.0, 12.5)  # a stored AT model of another seed, with a known history
    plant(store, model_key(p.adversarial(seed=7)), p.adversarial(seed=7), seconds=at_seconds)

    code, out, err = run_cli(capsys, "plan", "--profile", "smoke", "--device", "cpu")
    assert code == 0 and err == ""
    parsed, names, summary = parse_plan(out)
    assert parsed["ST teacher, smoke, seed 0"] == ("stored", None, "model", model_key(st))
    assert parsed["eval logits of ST teacher, smoke, seed 0"][:2] == ("stored", None)
    # a missing model of the same config but another seed: the stored model's training time
    assert parsed["ST' (seed baseline), smoke, seed 1"][:2] == ("missing", format_seconds(trained))
    for name in ("AT teacher, smoke, seed 0", "AT' (seed baseline), smoke, seed 1"):
        assert parsed[name][:2] == ("missing", f"{sum(at_seconds):.0f} s")
    assert parsed["KD-AT, smoke, seed 100"][:2] == ("missing", "?"), "a distilled student has no stored kin"
    assert parsed["evaluation of ST teacher, smoke, seed 0"][:2] == ("missing", "?"), "no evaluation computed yet"
    # results: what the same kind of result cost before, from the compute log
    assert parsed["eval logits of ST' (seed baseline), smoke, seed 1"][:2] == (
        "missing",
        format_seconds(logits_seconds[0]),
    )
    assert (format_seconds(0.49), format_seconds(0.99), format_seconds(42.4)) == ("<1 s", "<1 s", "42 s")
    all_units = plan_module.book_plan(p)
    units = {u.name: u for u in all_units}
    assert len(units) == len(all_units), "unit names are unique"
    assert plan_module.estimate_seconds(units["ST' (seed baseline), smoke, seed 1"], store) == trained
    assert plan_module.estimate_seconds(units["AT teacher, smoke, seed 0"], store) == sum(at_seconds)
    missing = [u for u in units.values() if not u.is_stored(store)]
    estimates = [e for e in (plan_module.estimate_seconds(u, store) for u in missing) if e is not None]
    assert len(missing) == len(units) - 2
    assert summary == (
        f"{len(units)} units, {len(missing)} missing; estimated {sum(estimates) / 60:.1f} min for the "
        f"{len(estimates)} missing units with an estimate (one process)"
    )
    assert len(estimates) == sum(1 for v in parsed.values() if v[0] == "missing" and v[1] != "?")


# ==============================================================================================================
# run


@pytest.mark.slow
def test_run_computes_every_unit_then_nothing(home, capsys):
    profile = resolve("smoke", device="cpu", **TINY)
    n = len(plan_module.book_plan(profile))
    code, out, err = run_cli(
        capsys,
        "run",
        "--profile",
        "smoke",
        "--device",
        "cpu",
        "--executor",
        "serial",
        "--threads",
        "1",
        "--quiet",
        *TINY_ARGS,
    )
    assert code == 0, err
    found = re.fullmatch(
        rf"computed {n} units in \d+\.\d min of unit time, \d+\.\d min of wall time on 1 worker, "
        r"busy (\d+)% of it; 0 already stored before this run\n",
        out,
    )
    assert found and 50 <= int(found[1]) <= 100, out
    store = Store()
    assert all(u.is_stored(store) for u in plan_module.book_plan(profile))

    code, out, _ = run_cli(capsys, "plan", "--profile", "smoke", "--device", "cpu", *TINY_ARGS)
    parsed, _, summary = parse_plan(out)
    assert code == 0 and {v[0] for v in parsed.values()} == {"stored"}
    assert summary == f"{n} units, all stored: nothing to compute"
    code, out, _ = run_cli(capsys, "plan", "--check", "--profile", "smoke", "--device", "cpu", *TINY_ARGS)
    assert (code, out) == (0, f"{n} units, all stored\n"), "make execute runs the chapters side by side"

    stamps = {p: p.stat().st_mtime_ns for p in files_under(home) if p.is_file() and "locks" not in p.parts}
    code, out, _ = run_cli(
        capsys, "run", "--profile", "smoke", "--device", "cpu", "--executor", "serial", "--quiet", *TINY_ARGS
    )
    assert code == 0 and out == f"computed 0 units in 0.0 min of unit time; {n} already stored before this run\n"
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps, "the second run rewrote nothing"

    # the store of a real run: readable, healthy; a flipped byte of a model is found and named
    code, out, _ = run_cli(capsys, "store", "ls")
    keys = store.keys()
    assert code == 0 and out.splitlines()[-1] == f"{len(keys)} entries in {home}"
    assert any(line.endswith("adversarial, cnn-small, fashion-mnist, seed 0, eps 0.1") for line in out.splitlines())
    code, out, _ = run_cli(capsys, "store", "verify")
    assert code == 0 and out.endswith(" corrupt\n") and ", 0 corrupt" in out
    model = store.entry(model_key(profile.adversarial())) / "model.pt"
    flip_byte(model)
    code, out, _ = run_cli(capsys, "store", "verify")
    assert code == 1 and f"corrupt: {model}\n" in out and ", 1 corrupt" in out


# ==============================================================================================================
# store


def flip_byte(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture()
def planted(home) -> dict[str, tuple[str, object]]:
    """Three stored models (an ST teacher, an AT seed baseline, a label-corrected shuffled student) with made-up
    weights: key -> (readable name, config)."""
    p = smoke()
    store = Store()
    at = p.adversarial(seed=1)
    student = p.student(teacher=p.adversarial(), targets="shuffle", label_corrected=True, seed=100)
    names = {
        p.standard(): "standard, cnn-small, fashion-mnist, seed 0",
        at: "adversarial, cnn-small, fashion-mnist, seed 1, eps 0.1",
        student: (
            "distilled, cnn-small, fashion-mnist, seed 100, targets label-corrected shuffle of the adversarial teacher"
        ),
    }
    out = {}
    for config, name in names.items():
        plant(store, model_key(config), config)
        out[model_key(config)] = (name, config)
    assert len(out) == 3
    return out


def test_store_ls_names_every_entry_readably(home, capsys, planted):
    store = Store()
    store.get_or_compute_json(next(iter(planted)), "evaluation", {"n": 1}, lambda: {"acc": 0.5}, code="x")
    code, out, err = run_cli(capsys, "store", "ls")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 4 and lines[-1] == f"3 entries in {home}"
    for key, (name, _) in planted.items():
        (line,) = [line for line in lines if line.startswith(key)]
        assert line.endswith(f"  {name}") and "  model  " in line
    first = next(iter(planted))
    assert re.search(r"\b1 results\b", next(line for line in lines if line.startswith(first)))


def test_store_ls_names_a_config_of_another_version_without_failing(home, capsys, planted):
    key = sorted(planted)[0]
    path = Store().entry(key) / "config.json"
    write_checked(path, json.dumps({**json.loads(read_checked(path)), "removed_field": 1}).encode())
    code, out, _ = run_cli(capsys, "store", "ls")
    (line,) = [line for line in out.splitlines() if line.startswith(key)]
    assert code == 0 and line.endswith(
        "a config this version cannot read (TrainConfig.__init__() got an unexpected keyword argument 'removed_field')"
    )


def test_store_ls_on_an_empty_store(home, capsys):
    code, out, _ = run_cli(capsys, "store", "ls")
    assert code == 0 and out == f"0 entries in {home}\n" and files_under(home) == []


def test_store_show_prints_the_config_and_the_files(home, capsys, planted):
    key = next(k for k, (name, _) in planted.items() if name.startswith("distilled"))
    code, out, err = run_cli(capsys, "store", "show", key[:6])
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"{key}: {planted[key][0]}"
    body = out[out.index("{") : out.index("\n}\n") + 2]
    config = json.loads(body)
    assert config["method"] == "distilled" and config["targets"] == "shuffle" and config["seed"] == 100
    assert config["teacher"]["method"] == "adversarial"
    entry = Store().entry(key)
    for name in ("config.json", "history.json", "model.pt"):
        assert f"  {name}  {(entry / name).stat().st_size} bytes" in lines
    assert lines[-1] == "trained in 3.5 s"


def test_store_verify_passes_a_healthy_store_and_names_a_corrupt_model(home, capsys, planted):
    code, out, err = run_cli(capsys, "store", "verify")
    assert code == 0 and out == "9 files checked, 0 corrupt\n" and err == ""
    key = next(iter(planted))
    model = Store().entry(key) / "model.pt"
    flip_byte(model)
    code, out, err = run_cli(capsys, "store", "verify")
    assert code == 1
    assert out.splitlines() == [
        f"corrupt: {model}",
        "9 files checked, 1 corrupt (`advlogits store repair` moves them aside; what needs them computes them again)",
    ]
    code, out, _ = run_cli(capsys, "store", "rm", key)
    assert code == 0 and out == f"removed {key}\n"
    code, out, _ = run_cli(capsys, "store", "verify")
    assert code == 0 and out == "6 files checked, 0 corrupt\n"


def test_store_rm_removes_one_entry(home, capsys, planted):
    keys = sorted(planted)
    target = keys[1]
    prefix = next(target[:i] for i in range(1, 17) if sum(k.startswith(target[:i]) for k in keys) == 1)
    code, out, err = run_cli(capsys, "store", "rm", prefix)
    assert code == 0 and out == f"removed {target}\n" and err == ""
    store = Store()
    assert store.keys() == [k for k in keys if k != target] and not store.entry(target).exists()
    assert all(store.has_weights(k) for k in store.keys())


def test_store_gc_removes_stale_files_and_keeps_good_ones(home, capsys, planted):
    store = Store()
    key, other = sorted(planted)[:2]
    entry = store.entry(key)
    store.get_or_compute_json(key, "evaluation", {"n": 1}, lambda: {"acc": 0.5}, code="x")  # a good result
    (entry / "training.log").write_text('{"pid": 1}\n')
    (entry / "checkpoint.pt").write_bytes(b"a training in progress")
    tmp = entry / ".x.tmp"  # a killed writer's temporary file
    tmp.write_bytes(b"half")
    incomplete = entry / "results" / "evaluation-0123456789abcdef.json"  # data written, record never
    incomplete.write_text('{"acc": 0.7}')
    free = store.root / "locks" / f"{other}.lock"  # a lock nobody holds
    free.parent.mkdir(parents=True, exist_ok=True)
    free.touch()
    held = FileLock(str(store.root / "locks" / f"{key}.lock"))
    result = store.result_path(key, "evaluation", {"n": 1}, ".json", code="x").name
    result_lock = store.root / "locks" / f"{key}.{result}.lock"  # the good result's lock, free once it was stored
    assert result_lock.exists()
    stale = {tmp, incomplete, free, result_lock}
    with held:
        good = {p for p in files_under(home) if p.is_file()} - stale
        code, out, err = run_cli(capsys, "store", "gc")
        assert code == 0 and err == ""
        files = {tmp, incomplete}  # named one by one; free locks (one per unit after any run) are only counted
        assert set(out.splitlines()) == {f"removed {p}" for p in files} | {
            "2 stale files removed (temporary or never completed), 2 free lock files removed"
        }
        assert not any(p.exists() for p in stale)
        assert {p for p in files_under(home) if p.is_file()} == good, "every other file kept, the held lock too"
    assert record_path(entry / "model.pt").exists() and (entry / "compute.log").exists()
    code, out, _ = run_cli(capsys, "store", "verify")
    assert code == 0 and out == "10 files checked, 0 corrupt\n"
    code, out, _ = run_cli(capsys, "store", "gc")
    assert code == 0 and out.splitlines()[-1].startswith("0 stale files removed")


# ==============================================================================================================
# scorecard and chapters


SCORECARD = [
    {
        "id": "C1",
        "claim": "...",
        "verdict": "reproduced",
        "holds": True,
        "estimate": -3.0041,
        "ci": [-3.11, -2.9],
        "threshold": 0.0,
        "chapter": "02_logit_distributions",
    },
    {
        "id": "C6",
        "claim": "...",
        "verdict": "inconclusive",
        "holds": None,
        "estimate": 0.1234,
        "ci": [0.05, 0.2],
        "threshold": 0.1,
        "chapter": "04_distillation",
    },
    {
        "id": "C7",
        "claim": "...",
        "verdict": "not testable",
        "holds": None,
        "estimate": None,
        "ci": None,
        "threshold": 0.5,
        "chapter": "03_sample_confidence",
    },
    {
        "id": "C8",
        "claim": "...",
        "verdict": "not reproduced",
        "holds": False,
        "estimate": 0.125,
        "ci": None,
        "threshold": 0.0,
        "chapter": "04_distillation",
    },
]


def test_scorecard_prints_one_line_per_record(home, capsys):
    executed = Path(os.environ["ADVLOGITS_EXECUTED_DIR"])
    (executed / "scorecard.json").write_text(json.dumps(SCORECARD))
    code, out, err = run_cli(capsys, "scorecard", "--profile", "smoke")
    assert code == 0 and err == ""
    header, *lines = out.splitlines()
    assert header.split()[:2] == ["id", "verdict"] and "[95% CI]" in header and "threshold" in header
    assert [line.split()[0] for line in lines] == ["C1", "C6", "C7", "C8"]
    expected = {  # in each claim's unit, as the scorecard chapter and the README write them
        "C1": ("reproduced", "-3.00 [-3.11, -2.90]", "0.00", "02_logit_distributions"),
        "C6": ("inconclusive", "12.3 points [5.0, 20.0]", "10.0 points", "04_distillation"),
        "C7": ("not testable", "n/a", "50.0 points", "03_sample_confidence"),
        "C8": ("not reproduced", "12.5 points", "0.0 points", "04_distillation"),
    }
    for line in lines:
        verdict, number, threshold, chapter = expected[line.split()[0]]
        assert re.fullmatch(
            rf"C\d +{re.escape(verdict)} +{re.escape(number)} +{re.escape(threshold)} +"
            rf"{chapter}",
            line,
        ), line
    assert files_under(home) == []


def test_chapter_names_resolve_to_one_notebook_and_parameters_reach_papermill(home, capsys, monkeypatch):
    calls = []

    def fake_run(cmd, env, **kwargs):
        calls.append((cmd, env))
        return subprocess.CompletedProcess(cmd, 0, stderr="")

    monkeypatch.setattr(chapter_verbs, "subprocess", types.SimpleNamespace(run=fake_run, PIPE=subprocess.PIPE))
    hand = ROOT / "_build" / "hand-runs" / "smoke"
    for name, chapter in [
        ("05_scorecard", "05_scorecard"),
        ("05", "05_scorecard"),
        ("scorecard", "05_scorecard"),
        ("04", "04_distillation"),
        ("distillation", "04_distillation"),
    ]:
        code, out, err = run_cli(capsys, "chapter", name, "--profile", "smoke", "--device", "cpu")
        assert code == 0 and out == "" and err.startswith(f"hand run of {chapter}")
        cmd, env = calls.pop()
        assert cmd[1:4] == ["-m", "papermill", str(ROOT / "chapters" / f"{chapter}.ipynb")]
        assert cmd[4] == str(hand / f"{chapter}.ipynb"), "a chapter run from the command line is a hand run"
        assert "ADVLOGITS_EXECUTED_DIR" not in env, "the build's folder is the build's alone"
        assert " ".join(cmd).count("-p profile smoke") == 1 and "-p device cpu" in " ".join(cmd)
    run_cli(
        capsys,
        "chapter",
        "05",
        "--profile",
        "smoke",
        "--seed",
        "3",
        "--eps",
        "0.05",
        "--set",
        "n_eval=64",
        "--set",
        "student_seeds=100,101",
    )
    cmd, _ = calls.pop()
    assert "-p seed 3" in " ".join(cmd) and "-p eps 0.05" in " ".join(cmd)
    assert json.loads(cmd[cmd.index("-y") + 1]) == {"overrides": {"n_eval": "64", "student_seeds": "100,101"}}
    assert files_under(home) == []


@pytest.mark.slow
def test_chapter_executes_the_scorecard_chapter_and_the_scorecard_verb_reads_it(home, capsys):
    executed = ROOT / "_build" / "hand-runs" / "smoke"  # `advlogits chapter` is a hand run
    record = dict(SCORECARD[1], criterion="...", statistic="...", n_seeds=3, n_images=500, checks={}, measured={})
    (executed / "claims").mkdir(parents=True, exist_ok=True)
    for stale in (executed / "claims").glob("*.json"):
        stale.unlink()
    (executed / "claims" / "04_distillation.json").write_text(json.dumps([record]))
    code = cli.main(["chapter", "05_scorecard", "--profile", "smoke", "--device", "cpu"])
    assert code == 0
    assert (executed / "05_scorecard.ipynb").exists()
    card = json.loads((executed / "scorecard.json").read_text())
    assert [(r["id"], r["verdict"]) for r in card] == [("C6", "inconclusive")]
    capsys.readouterr()
    code, out, _ = run_cli(capsys, "scorecard", "--profile", "smoke", "--hand-runs")
    assert code == 0
    assert re.fullmatch(
        r"C6 +inconclusive +12\.3 points \[5\.0, 20\.0\] +10\.0 points +04_distillation", out.splitlines()[1]
    )


# ==============================================================================================================
# cases found while writing these tests: a model name RobustBench lacks, a corrupt entry, a device asked twice,
# hardware or an extra that this machine lacks


def test_an_unknown_robustbench_model_is_refused_before_any_compute(home, capsys, no_compute):
    code, out, err = run_cli(capsys, *RUN, *TINY_ARGS, "--robustbench", "NoSuchModel2099")
    assert_refused(code, out, err, ["--robustbench", "'NoSuchModel2099'"])
    assert no_compute == [] and files_under(home) == []


def test_store_ls_still_lists_a_store_with_one_corrupt_config(home, capsys, planted):
    key = sorted(planted)[0]
    flip_byte(Store().entry(key) / "config.json", at=3)
    code, out, err = run_cli(capsys, "store", "ls")
    assert code == 0, err
    assert all(any(line.startswith(k) for line in out.splitlines()) for k in planted)
    assert out.splitlines()[-1] == f"3 entries in {home}"


def test_device_given_twice_is_refused_like_eps_and_seed(home, capsys, no_compute):
    code, out, err = run_cli(capsys, *RUN, "--set", "device=auto")
    assert_refused(code, out, err, ["--device", "--set device", "twice"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here: asking for it is not an error")
def test_cuda_asked_for_where_there_is_none_is_refused_before_any_compute(home, capsys, no_compute):
    code, out, err = run_cli(capsys, "run", "--profile", "smoke", "--device", "cuda", "--executor", "serial")
    assert_refused(code, out, err, ["device", "'cuda'", "CUDA is not available"])
    assert no_compute == [] and files_under(home) == []


def test_the_paper_profile_without_its_extra_names_the_extra(home, capsys, no_compute, monkeypatch):
    def robustbench_missing(name: str, **_: object) -> dict:
        raise ModuleNotFoundError(
            "the paper profile needs RobustBench (the project's [paper] extra), which is not "
            "installed: pip install -e '.[paper]' (or make book PROFILE=paper)"
        )

    monkeypatch.setattr(models, "robustbench_zoo_entry", robustbench_missing)
    code, out, err = run_cli(capsys, "plan", "--profile", "paper")
    assert_refused(code, out, err, ["--profile", "[paper] extra", "pip install -e '.[paper]'"])
    assert no_compute == [] and files_under(home) == []


def test_plan_summary_says_when_everything_is_stored():
    assert plan_summary(12, 0, 0, 0.0) == "12 units, all stored: nothing to compute"
    assert plan_summary(12, 3, 2, 90.0) == (
        "12 units, 3 missing; estimated 1.5 min for the 2 missing units with an estimate (one process)"
    )
