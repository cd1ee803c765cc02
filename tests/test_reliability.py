"""The command line, the store and the build tell the truth, and every path agrees.

A corrupt entry is not "stored" (the plan and a run say so, a run moves it aside and computes it again, every
error names `advlogits store repair`); a removal that failed says so; a file for ``ADVLOGITS_HOME`` and a store
that cannot be written are refused in one line; errors are one line with an exit status (2 bad input, 1 a failed
run, 130 Ctrl-C); a relative path setting means one folder to the command line and to the chapters; a chapter run
from the command line is a hand run and leaves no claims when it fails; the scorecard refuses claims run with
different parameters; estimates come from the same profile only; smaller truths of the command line.

Read-only stores: root bypasses permission bits, so as root a folder is made immutable (``chattr +i``); where
neither works the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import advlogits
from advlogits import cli, pipeline
from advlogits.cli import chapter as chapter_verbs
from advlogits.cli import plan as plan_verbs
from advlogits.fileio import StoreError, read_checked
from advlogits.pipeline import executors
from advlogits.pipeline import plan as plan_module
from advlogits.pipeline.stored import model_key
from advlogits.profiles import resolve
from advlogits.store import Store

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``advlogits argv`` run in this process; an exception escaping `main` (a
    traceback for the user) is returned as status ``"traceback"``."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:
        code = 0 if exit_.code is None else exit_.code
    except BaseException as err:  # noqa: BLE001 - what the user would see as a traceback
        code = f"traceback: {type(err).__name__}"
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, *expected: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("advlogits: "), f"not one line:\n{err}"
    for text in expected:
        assert text in lines[0], f"{text!r} missing from {lines[0]!r}"
    return lines[0]


def smoke():
    return resolve("smoke", device="cpu")


def plant(store: Store, config, seconds=(1.5, 2.0)) -> Path:
    """A stored model entry (small made-up weights) of ``config`` under its key."""
    history = {"epoch": list(range(1, len(seconds) + 1)), "seconds": list(seconds)}
    return store.save_weights(model_key(config), state={"w": torch.arange(64.0)}, config=config, history=history)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` cannot be changed while the block runs: mode 0o555, and as root ``chattr +i`` (root ignores
    modes); skips the test where neither holds."""
    folder.mkdir(parents=True, exist_ok=True)
    mode = folder.stat().st_mode
    immutable = False
    if os.geteuid() == 0:
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("running as root without a working chattr: no folder here is read-only to this process")
        immutable = True
    else:
        folder.chmod(0o555)
    try:
        yield
    finally:
        if immutable:
            subprocess.run([shutil.which("chattr") or "chattr", "-i", str(folder)], check=True)
        folder.chmod(mode)


# ==============================================================================================================
# a corrupt entry is not stored: the plan says so, a run recomputes it, every error names the fix


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_truncated_model_is_corrupt_to_the_plan_and_a_run_moves_it_aside(home, capsys):
    p = smoke()
    store = Store()
    plant(store, p.standard())
    units = plan_module.ordered(plan_module.book_plan(p))
    (unit,) = [u for u in units if u.kind == "model" and u.key == model_key(p.standard())]
    assert plan_module.state(unit, store) == "stored"
    model = store.entry(unit.key) / "model.pt"
    truncate(model)
    assert plan_module.state(unit, store) == "corrupt"

    code, out, err = run_cli(capsys, "plan", "--check", "--profile", "smoke", "--device", "cpu")
    n = len(units)
    assert code == 1 and err == ""
    assert out.startswith(f"{n} units, {n} missing (1 of them corrupt: `advlogits run --profile smoke`"), out
    code, out, _ = run_cli(capsys, "plan", "--profile", "smoke", "--device", "cpu")
    assert code == 0 and any(line.startswith("corrupt ") and unit.key in line for line in out.splitlines())

    spec = executors.PlanSpec(p)
    todo, stored, corrupt = executors.survey(spec, store, repair=True)
    assert [u.id for u in corrupt] == [unit.id] and unit in todo and stored == []
    assert not model.exists() and not store.has_weights(unit.key), "moved aside: it reads as missing"
    aside = list((store.root / "corrupt").rglob("model.pt"))
    assert len(aside) == 1 and aside[0].read_bytes() != b"", "kept for inspection, out of the entries"
    assert plan_module.state(unit, store) == "missing"


def test_errors_about_a_corrupt_file_name_the_command_that_repairs_it(home, capsys):
    p = smoke()
    store = Store()
    plant(store, p.standard())
    model = store.entry(model_key(p.standard())) / "model.pt"
    truncate(model)
    with pytest.raises(StoreError, match=r"corrupt.*Run `advlogits store repair`"):
        read_checked(model)
    code, out, _ = run_cli(capsys, "store", "verify")
    assert code == 1 and "`advlogits store repair`" in out.splitlines()[-1]
    code, out, _ = run_cli(capsys, "store", "repair")
    assert code == 0 and out.splitlines()[-1].startswith("3 corrupt files moved aside"), out
    assert not store.has_weights(model_key(p.standard()))
    code, out, _ = run_cli(capsys, "store", "verify")
    assert code == 0 and out.endswith(", 0 corrupt\n")


# ==============================================================================================================
# a removal that failed says so


def test_store_rm_on_a_read_only_store_fails_and_says_so(home, capsys):
    store = Store()
    plant(store, smoke().standard())
    key = store.keys()[0]
    with read_only(store.root / "entries"), read_only(store.entry(key)):
        code, out, err = run_cli(capsys, "store", "rm", key)
    assert code != 0 and "removed" not in out, (code, out)
    one_error_line(err, key, "not writable")
    assert store.has_weights(key), "the entry is still there and still whole"


# ==============================================================================================================
# ADVLOGITS_HOME naming a file, a store that cannot be written


@pytest.mark.parametrize("argv", [["store", "ls"], ["store", "verify"], ["run", "--profile", "smoke", "--quiet"]])
def test_advlogits_home_naming_a_file_is_refused_in_one_line(home, capsys, monkeypatch, no_compute, argv):
    a_file = home.parent / "a-file"
    a_file.write_text("not a store")
    monkeypatch.setenv("ADVLOGITS_HOME", str(a_file))
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    one_error_line(err, "ADVLOGITS_HOME", str(a_file), "folder")
    assert no_compute == []


def test_run_on_a_read_only_store_is_refused_before_any_compute(home, capsys, no_compute):
    with read_only(home):
        code, out, err = run_cli(capsys, "run", "--profile", "smoke", "--device", "cpu", "--quiet")
    assert code == 2 and out == ""
    one_error_line(err, str(home), "not writable", "ADVLOGITS_HOME")
    assert no_compute == []


# ==============================================================================================================
# one line and an exit status, never a traceback


def test_a_failed_run_is_one_line_and_status_1(home, capsys, monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError("CIFAR-10 is not in /data: download it with make data PROFILE=paper\nTraceback ...")

    monkeypatch.setattr(executors, "run_plan", fails)
    code, out, err = run_cli(capsys, "run", "--profile", "smoke", "--device", "cpu", "--quiet")
    assert code == 1 and out == ""
    one_error_line(err, "CIFAR-10 is not in /data", "--verbose")
    code, _, err = run_cli(capsys, "--verbose", "run", "--profile", "smoke", "--device", "cpu", "--quiet")
    assert code == 1 and "Traceback (most recent call last)" in err, "--verbose shows the traceback"


def test_ctrl_c_is_one_line_and_status_130(home, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(executors, "run_plan", interrupted)
    code, out, err = run_cli(capsys, "run", "--profile", "smoke", "--device", "cpu", "--quiet")
    assert code == 130 and out == ""
    one_error_line(err, "interrupted", "store is valid")


def test_a_ray_client_address_without_the_ray_client_is_refused_before_any_compute(
    home, capsys, no_compute, monkeypatch
):
    monkeypatch.setattr(plan_verbs, "ray_client_installed", lambda: False)
    code, out, err = run_cli(
        capsys, "run", "--profile", "smoke", "--executor", "ray", "--address", "ray://host:10001", "--quiet"
    )
    assert code == 2 and out == ""
    one_error_line(err, "--address", "ray://host:10001", "grpcio", "pip install -e '.[cluster]'", "ray[client]")
    code, out, err = run_cli(capsys, "run", "--profile", "smoke", "--executor", "ray", "--address", "no address")
    assert code == 2
    one_error_line(err, "--address", "'auto'", "host:port")


def test_no_ray_cluster_at_the_address_is_one_line_saying_what_to_do(monkeypatch):
    def init(**kwargs):
        raise ConnectionError("Could not find any running Ray instance.\nPlease specify the one to connect to.")

    fake_ray = types.SimpleNamespace(init=init, __version__="2.60.0")
    with pytest.raises(RuntimeError) as caught:
        executors._start_ray(fake_ray, 2, "auto")
    message = str(caught.value)
    assert "\n" not in message and "no Ray cluster found at address='auto'" in message
    assert "ray start --head" in message and "Could not find any running Ray instance." in message


def test_a_ray_client_address_without_a_cluster_or_without_the_client_is_one_line():
    def times_out(**kwargs):  # what Ray does at ray://host:10001 with no cluster there
        warnings.warn("Ray Client connection timed out. Ensure that the Ray Client port ...", UserWarning, stacklevel=1)
        raise ConnectionError("ray client connection timeout")

    def no_client(**kwargs):
        raise ModuleNotFoundError("No module named 'grpc'")

    with warnings.catch_warnings(record=True) as shown, pytest.raises(RuntimeError) as caught:
        warnings.simplefilter("always")
        executors._start_ray(types.SimpleNamespace(init=times_out, __version__="2.60.0"), 2, "ray://host:10001")
    assert shown == [], "Ray's warning is a second line: the refusal says it"
    assert "no Ray cluster found at address='ray://host:10001' (ray client connection timeout)" in str(caught.value)
    with pytest.raises(RuntimeError) as caught:
        executors._start_ray(types.SimpleNamespace(init=no_client, __version__="2.60.0"), 2, "ray://host:10001")
    assert "pip install -e '.[cluster]'" in str(caught.value) and "ray[client]==2.60.0" in str(caught.value)


def test_a_chapter_on_a_read_only_empty_store_is_one_line_before_papermill(home, capsys, no_compute):
    with read_only(home):
        code, out, err = run_cli(capsys, "chapter", "03", "--profile", "smoke", "--device", "cpu")
    assert code == 2 and out == ""
    one_error_line(err, "not writable", "units are missing")
    assert no_compute == []


def test_a_failed_chapter_is_one_line_naming_the_error(home, capsys, monkeypatch, tmp_path):
    def papermill_fails(cmd, env, **kwargs):
        stderr = "Executing notebook\n" + "\x1b[0;31mTraceback\x1b[0m\n" * 40 + "\x1b[0;31mStoreError\x1b[0m: no"
        return subprocess.CompletedProcess(cmd, 1, stderr=stderr)

    monkeypatch.setattr(chapter_verbs, "subprocess", types.SimpleNamespace(run=papermill_fails, PIPE=subprocess.PIPE))
    code, out, err = run_cli(capsys, "chapter", "05", "--profile", "smoke", "--device", "cpu")
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert lines[0].startswith("hand run of 05_scorecard")
    assert len(lines) == 2 and "chapter 05_scorecard failed: StoreError: no" in lines[1]


# ==============================================================================================================
# one resolution of every path setting


def test_a_relative_advlogits_home_is_one_folder_to_the_command_line_and_the_chapters(home, monkeypatch):
    monkeypatch.setenv("ADVLOGITS_HOME", "relstore")
    monkeypatch.chdir(ROOT)
    from_root = Store().root
    monkeypatch.chdir(ROOT / "chapters")  # where the chapters run
    from_chapters = Store().root
    assert from_root == from_chapters == ROOT / "relstore"
    monkeypatch.setenv("ADVLOGITS_HOME", "~/somewhere")
    assert Store().root == Path.home() / "somewhere"


def test_the_chapter_verb_hands_papermill_absolute_path_settings(home, capsys, monkeypatch):
    calls = []

    def fake_run(cmd, env, **kwargs):
        calls.append(env)
        return subprocess.CompletedProcess(cmd, 0, stderr="")

    monkeypatch.setattr(chapter_verbs, "subprocess", types.SimpleNamespace(run=fake_run, PIPE=subprocess.PIPE))
    monkeypatch.setenv("ADVLOGITS_HOME", "relstore")
    monkeypatch.setenv("ADVLOGITS_DATA", "reldata")
    code, _, _ = run_cli(capsys, "chapter", "05", "--profile", "smoke", "--device", "cpu")
    assert code == 0
    assert calls[0]["ADVLOGITS_HOME"] == str(ROOT / "relstore")
    assert calls[0]["ADVLOGITS_DATA"] == str(ROOT / "reldata")
    from advlogits.paths import resolve_path

    assert resolve_path("x") == ROOT / "x"


# ==============================================================================================================
# the build owns _build/executed


def test_the_chapter_verb_is_a_hand_run_and_a_failed_one_leaves_no_claims(home, capsys, monkeypatch):
    executed = Path(os.environ["ADVLOGITS_EXECUTED_DIR"])
    hand = ROOT / "_build" / "hand-runs" / "smoke"
    claims_file = hand / "claims" / "04_distillation.json"
    seen = []

    def papermill(cmd, env, **kwargs):
        seen.append((cmd, env))
        claims_file.parent.mkdir(parents=True, exist_ok=True)
        claims_file.write_text("[]")  # the chapter wrote its claims, then a later cell failed
        return subprocess.CompletedProcess(cmd, 1, stderr="ValueError: boom")

    monkeypatch.setattr(chapter_verbs, "subprocess", types.SimpleNamespace(run=papermill, PIPE=subprocess.PIPE))
    existed = claims_file.exists()
    backup = claims_file.read_bytes() if existed else None
    try:
        code, _, err = run_cli(capsys, "chapter", "04", "--profile", "smoke", "--device", "cpu")
        assert code == 1 and "ValueError: boom" in err
        cmd, env = seen[0]
        assert cmd[4] == str(hand / "04_distillation.ipynb"), "a hand run, not the build's folder"
        assert "ADVLOGITS_EXECUTED_DIR" not in env
        assert not claims_file.exists(), "a failed chapter leaves no claims"
        assert list(executed.iterdir()) == []
    finally:
        if backup is not None:
            claims_file.parent.mkdir(parents=True, exist_ok=True)
            claims_file.write_bytes(backup)
        else:
            claims_file.unlink(missing_ok=True)


def test_the_makefile_drops_the_claims_of_a_failed_chapter():
    text = (ROOT / "Makefile").read_text()
    rule = text[text.index("$(EXEC_DIR)/%.ipynb:") :]
    rule = rule[: rule.index("\n\n")]
    assert rule.count("rm -f $(EXEC_DIR)/claims/$*.json") == 2, "before the run, and when it fails"


# ==============================================================================================================
# estimates come from the same profile


def test_a_store_of_smoke_runs_gives_no_estimate_for_the_cpu_profile(home, capsys):
    p = smoke()
    store = Store()
    config = p.standard()
    plant(store, config, seconds=(20.0,))
    store.get_or_compute_json(model_key(config), "eval-logits", {"n": 1}, lambda: {"x": 1}, code="c")
    store.get_or_compute_json(model_key(config), "evaluation", {"n": 1}, lambda: {"x": 1}, code="c")
    code, out, _ = run_cli(capsys, "plan", "--profile", "cpu", "--device", "cpu")
    assert code == 0
    estimates = {line.split()[1] for line in out.splitlines()[1:-1] if line.startswith("missing")}
    assert estimates == {"?"}, "nothing of the cpu profile is stored"
    assert "none has an estimate yet (nothing comparable of profile cpu is stored)" in out.splitlines()[-1]
    code, out, _ = run_cli(capsys, "plan", "--profile", "smoke", "--device", "cpu")
    assert any(line.startswith("missing") and line.split()[1] != "?" for line in out.splitlines()[1:-1])


# ==============================================================================================================
# smaller truths


def test_version_and_bare_advlogits_list_the_verbs(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"advlogits {advlogits.__version__}"
    code, out, err = run_cli(capsys)
    assert code == 2
    for verb in ("plan", "run", "store", "chapter", "scorecard"):
        assert verb in err


# What answers without computing: the help of the command and of every verb, --version, and argument errors.
NO_COMPUTE_ARGV = [
    ["--help"],
    [],
    ["--version"],
    *([verb, "--help"] for verb in ("plan", "run", "store", "chapter", "scorecard")),
    *(["store", action, "--help"] for action in ("ls", "show", "verify", "repair", "rm", "gc")),
    ["plan", "--profile", "nope"],
    ["run", "--workers", "0"],
    ["run", "--executor", "serial", "--address", "auto"],
    ["run", "--executor", "ray", "--address", "no address"],
    ["run", "--executor", "serial", "--threads", "100000"],
    ["store"],
    ["chapter"],
]
WITHOUT_TORCH = """
import contextlib, io, json, sys
from advlogits import cli
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            status = cli.main(argv)
        except SystemExit as exit_:
            status = exit_.code
    if "torch" in sys.modules:
        sys.exit(f"advlogits {' '.join(argv)} (exit status {status}) imported torch")
print("no torch")
"""


def test_help_version_and_argument_errors_import_no_torch():
    """They answer at once: torch (about 2 s of imports) is imported by the verbs that compute or read the store."""
    paths = [str(ROOT / "lib"), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, json.dumps(NO_COMPUTE_ARGV)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout == "no torch\n", proc.stderr


def test_the_library_names_import_on_first_use():
    import advlogits

    assert advlogits.resolve("smoke").name == "smoke" and "resolve" in dir(advlogits)
    assert advlogits.get_model is pipeline.get_model
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        advlogits.nope  # noqa: B018 - the attribute access is the test


@pytest.mark.parametrize("argument", [["--eps", "0.2"], ["--seed", "3"], ["--set", "n_eval=2"], ["--device", "cpu"]])
def test_the_scorecard_refuses_what_it_would_ignore(home, capsys, argument):
    code, out, err = run_cli(capsys, "scorecard", "--profile", "smoke", *argument)
    assert code == 2 and out == ""
    one_error_line(err, argument[0])


def test_more_threads_than_cores_is_refused(home, capsys, no_compute):
    too_many = str((os.cpu_count() or 1) + 1)
    code, out, err = run_cli(capsys, "run", "--profile", "smoke", "--executor", "serial", "--threads", too_many)
    assert code == 2
    one_error_line(err, "--threads", "cores", too_many)


def test_gc_after_a_clean_run_names_no_lock_file(home, capsys):
    store = Store()
    key = model_key(smoke().standard())
    plant(store, smoke().standard())
    for i in range(5):
        store.get_or_compute_json(key, "evaluation", {"n": i}, lambda: {"x": 1}, code="c")
    code, out, _ = run_cli(capsys, "store", "gc")
    assert code == 0
    assert out == "0 stale files removed (temporary or never completed), 5 free lock files removed\n"


def test_the_run_summary_says_what_this_run_did():
    report = executors.RunReport(computed={"a": 6.0}, from_store=["b", "c"], by_others=["d"], corrupt=["a"])
    line = plan_verbs.run_summary(report)
    assert "computed 1 units" in line and "2 already stored before this run" in line
    assert "1 stored meanwhile by another process" in line and "1 found corrupt" in line


def test_a_unit_another_process_stored_meanwhile_is_not_counted_as_computed(home):
    p = smoke()
    store = Store()
    (unit,) = [u for u in plan_module.book_plan(p) if u.kind == "model" and u.key == model_key(p.standard())]
    store.writable_entry(unit.key)

    def found_stored(profile, store):  # another run trained it while this one waited on the lock
        return None

    def trains(profile, store):  # trained here: the store logs this process's pid
        store._log(store.entry(unit.key) / "training.log", resumed=False)

    _, here = executors._compute(dataclasses.replace(unit, compute=found_stored), p, store)
    assert here is False, "stored by another process: this one computed nothing"
    _, here = executors._compute(dataclasses.replace(unit, compute=trains), p, store)
    assert here is True
