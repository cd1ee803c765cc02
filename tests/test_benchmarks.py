"""The benchmarks of benchmarks/ keep working: each runs in a tiny mode and writes the JSON result the performance
targets are read from (ratios, medians, settings, the machine's load; see benchmarks/README.md).

The benchmarks are scripts (``python -m benchmarks.<name>`` from the repository root), so they are run here
the same way, in a subprocess; their timing helper is also checked directly.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
import torch

from advlogits.cli.plan import run_summary
from advlogits.pipeline.executors import RunReport
from advlogits.pipeline.plan import book_plan
from advlogits.profiles import resolve

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def load_common() -> ModuleType:
    """benchmarks/_common.py as a module (the repository root is not on pytest's sys.path)."""
    spec = importlib.util.spec_from_file_location("benchmarks_common", ROOT / "benchmarks" / "_common.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_benchmark(name: str, *args: str, timeout: float = 300) -> tuple[dict, str]:
    """Run ``python -m benchmarks.<name> *args`` from the repository root; return (its JSON file, stdout)."""
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"benchmark {name} failed:\n{proc.stdout}\n{proc.stderr}"
    out = Path(args[args.index("--out") + 1])
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout.splitlines()[0]) == result  # the first printed line is the JSON result
    return result, proc.stdout


def check_env(env: dict) -> None:
    assert env["torch"] == torch.__version__
    assert isinstance(env["threads"], int) and env["threads"] >= 1
    assert len(env["load_avg_start"]) == len(env["load_avg"]) == 3


# ---- the timing helper -----------------------------------------------------------------------------------


def test_interleaved_times_runs_rounds_in_order_and_drops_warmup():
    common = load_common()
    calls: list[str] = []
    syncs: list[int] = []
    runs = {name: (lambda name=name: calls.append(name)) for name in ("ours", "theirs", "bare")}
    timings = common.interleaved_times(runs, repeats=3, warmup=2, sync=lambda: syncs.append(1))
    assert calls == ["ours", "theirs", "bare"] * 5  # 2 warm-up rounds + 3 timed ones, interleaved
    for clock in (timings.wall_s, timings.cpu_s):
        assert {name: len(t) for name, t in clock.items()} == {"ours": 3, "theirs": 3, "bare": 3}
    assert len(syncs) == 2 * len(calls)  # before the clock starts and before it stops, every call


def spin(seconds: float) -> None:
    """Keep the CPU busy for ``seconds`` of this process's CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_interleaved_times_wall_and_cpu_clocks():
    common = load_common()
    timings = common.interleaved_times({"sleep": lambda: time.sleep(0.05), "spin": lambda: spin(0.05)}, repeats=3)
    wall, cpu = timings.medians("wall"), timings.medians("cpu")
    assert wall["sleep"] >= 0.049 and cpu["sleep"] < 0.025  # sleeping takes wall time but no CPU time
    # the process's CPU clock sums its threads' clocks, read on different cores: allow it a few microseconds
    assert cpu["spin"] >= 0.049 and wall["spin"] >= 0.049
    assert wall == {name: statistics.median(t) for name, t in timings.wall_s.items()}
    pairs = [a / b for a, b in zip(timings.wall_s["sleep"], timings.wall_s["spin"])]
    assert timings.ratios("sleep", "spin") == {
        "median_wall": wall["sleep"] / wall["spin"],
        "min_wall": min(timings.wall_s["sleep"]) / min(timings.wall_s["spin"]),
        "median_cpu": cpu["sleep"] / cpu["spin"],
        "paired_rounds": statistics.median(pairs),
    }


def test_interleaved_times_rejects_bad_counts():
    common = load_common()
    with pytest.raises(ValueError, match=r"repeats must be >= 1 and warmup >= 0 \(got repeats=0, warmup=1\)"):
        common.interleaved_times({"a": lambda: None}, repeats=0)


# ---- the benchmarks, in their tiny modes (each a subprocess that imports torch: over 5 s) ------------------


@pytest.mark.slow
def test_attack_throughput_quick_writes_ratios(tmp_path):
    pytest.importorskip(
        "torchattacks",
        reason="the PGD benchmark times torchattacks.PGD, which is not installed: "
        "`make setup` installs it (pip install --no-deps torchattacks==3.5.1)",
    )
    out = tmp_path / "attack_throughput.json"
    result, stdout = run_benchmark("attack_throughput", "--quick", "--device", "cpu", "--out", str(out))
    median = result["median_s"]
    assert set(median) == {"ours", "ours_plain", "torchattacks", "bare"} and min(median.values()) > 0
    assert result["plain_ratio_vs_bare"] == pytest.approx(median["ours_plain"] / median["bare"], rel=1e-12)
    assert result["ratio_vs_torchattacks"] == pytest.approx(median["ours"] / median["torchattacks"], rel=1e-12)
    assert result["ratio_vs_bare"] == pytest.approx(median["ours"] / median["bare"], rel=1e-12)
    cpu, fastest = result["cpu_median_s"], result["min_s"]
    assert result["ratios"]["ratio_vs_bare"]["median_cpu"] == pytest.approx(cpu["ours"] / cpu["bare"], rel=1e-12)
    assert result["ratios"]["ratio_vs_bare"]["min_wall"] == pytest.approx(fastest["ours"] / fastest["bare"], rel=1e-12)
    assert fastest["ours"] == min(result["times_s"]["ours"])
    repeats = result["settings"]["repeats"]
    assert all(len(t) == repeats for t in result["times_s"].values())
    assert median["ours"] == statistics.median(result["times_s"]["ours"])
    for key, at_most in (("ratio_vs_torchattacks", 0.9), ("ratio_vs_bare", 1.05)):
        assert result["targets"][key] == {"at_most": at_most, "met": result[key] <= at_most}
    settings = result["settings"]
    assert (settings["eps"], settings["alpha"], settings["random_start"]) == (0.1, 0.0125, True)
    for who in ("ours", "ours_plain", "torchattacks"):  # every attack stays in the eps-ball
        assert result["sanity"][f"max_perturbation_{who}"] <= settings["eps"] + 1e-6
    check_env(result["env"])
    assert "ratio_vs_torchattacks = " in stdout and "ratio_vs_bare = " in stdout


def test_allocator_quick_compares_both_settings_in_children_that_compute_the_same(tmp_path):
    out = tmp_path / "allocator.json"
    result, stdout = run_benchmark("allocator", "--quick", "--profile", "smoke", "--threads", "1", "--out", str(out))
    children, per_image = result["children"], result["per_image_s"]
    assert set(children) == set(per_image) == {"system", "kept"}
    for setting in ("system", "kept"):
        assert len(children[setting]) == result["settings"]["repeats"] == 1
        for name in ("pgd", "input_gradient", "train_step"):
            assert per_image[setting][name] == children[setting][0][name] > 0
    for name, ratio in result["ratio"].items():
        assert ratio == pytest.approx(per_image["kept"][name] / per_image["system"][name], rel=1e-12)
    assert result["same_results"] is True  # the allocator changes where memory comes from, never a result
    check_env(result["env"])
    assert "same results under both settings: yes" in stdout


def test_make_test_quick_times_a_make_in_a_fresh_clone_of_head(tmp_path):
    out = tmp_path / "make_test.json"
    result, stdout = run_benchmark("make_test", "--quick", "--out", str(out), timeout=120)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result["settings"] == {
        "command": "make --no-print-directory help",
        "commit": head.stdout.strip(),
        "quick": True,
        "log": str(out.with_suffix(".log")),
    }
    assert 0 < result["clone_s"] < result["total_s"]
    assert result["tests"] is None and result["marks"] == []  # `make help` prints no ==> line, runs no test
    assert result["targets"]["total_s"] == {"value": result["total_s"], "at_most": 300.0, "met": True}
    assert "make test      set up, lint, build the book" in out.with_suffix(".log").read_text()  # make ran in the clone
    assert f"total_s = {result['total_s']:.1f} (target <= 300): met" in stdout
    check_env(result["env"])


def test_make_test_reads_pytests_time_and_the_phases_from_makes_output(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    make_test = importlib.import_module("benchmarks.make_test")
    script = tmp_path / "fake.sh"
    script.write_text(
        "echo '==> setting up .venv'\n"
        "echo '==> every test: unit, browser'\n"
        "echo '=========== 896 passed, 3 skipped, 34 warnings in 378.77s (0:06:18) ==========='\n"
        "echo '============================= 32 passed in 45.85s =============================='\n"
    )
    run = make_test.timed_run(["bash", str(script)], cwd=tmp_path, env={}, log=tmp_path / "log")
    assert [m["what"] for m in run["marks"]] == ["setting up .venv", "every test: unit, browser"]
    assert run["tests"] == {"seconds": 378.77, "counts": "896 passed, 3 skipped, 34 warnings"}
    script.write_text("echo '==> a step'; exit 3\n")
    with pytest.raises(SystemExit, match=r"(?s)failed with exit code 3;.*Last lines:\n==> a step"):
        make_test.timed_run(["bash", str(script)], cwd=tmp_path, env={}, log=tmp_path / "log")


def test_the_makefile_exports_the_allocator_settings_the_benchmark_measures():
    makefile = (ROOT / "Makefile").read_text()
    kept = {}
    for line in makefile.splitlines():
        if line.startswith("export MALLOC_"):
            name, value = line.removeprefix("export ").split("?=")
            kept[name.strip()] = value.strip()
    source = (ROOT / "benchmarks" / "allocator.py").read_text()
    assert kept and all(f'"{name}": "{value}"' in source for name, value in kept.items())
    assert len(kept) == source.count('"MALLOC_')


@pytest.mark.slow
def test_train_epoch_quick_writes_epoch_times(tmp_path):
    out = tmp_path / "train_epoch.json"
    result, stdout = run_benchmark("train_epoch", "--quick", "--device", "cpu", "--out", str(out))
    settings = result["settings"]
    assert settings["epoch_size"] == 60_000 and settings["scale"] == 60_000 / settings["n_train"]
    per_epoch = result["seconds_per_epoch"]
    assert set(per_epoch) == {"standard", "adversarial", "distilled"}
    for name, seconds in per_epoch.items():
        assert seconds == pytest.approx(statistics.median(result["times_s"][name]) * settings["scale"], rel=1e-12)
    ratio = per_epoch["distilled"] / per_epoch["standard"]
    assert result["ratio_distilled_vs_standard"] == pytest.approx(ratio, rel=1e-12)
    assert result["ratios_distilled_vs_standard"]["median_wall"] == pytest.approx(ratio, rel=1e-12)
    assert result["targets"]["ratio_distilled_vs_standard"] == {"at_most": 1.1, "met": ratio <= 1.1}
    assert result["teacher_logits_s"] > 0
    check_env(result["env"])
    assert "distilled / standard = " in stdout


@pytest.mark.bench
def test_book_smoke_times_every_chapter_cold_and_warm(tmp_path):
    """At the smoke profile, with the plan computed first by two local workers (make's PLAN_WORKERS): the chapters
    then find every unit stored, and the warm run adds nothing."""
    out = tmp_path / "book.json"
    result, stdout = run_benchmark(
        "book", "--profile", "smoke", "--device", "cpu", "--plan-workers", "2", "--out", str(out), timeout=1800
    )
    chapters = {path.stem for path in (ROOT / "chapters").glob("*.ipynb")}
    assert set(result["chapters"]) == chapters
    for run in ("cold", "warm"):
        per_chapter = [t[f"{run}_s"] for t in result["chapters"].values()]
        assert min(per_chapter) > 0
        phases = result["phases"][run]
        assert phases["chapters_sum_s"] == pytest.approx(sum(per_chapter))
        assert phases["setup_s"] + phases["chapters_s"] + phases["site_s"] == pytest.approx(result[f"{run}_s"])
        log = (tmp_path / f"book.{run}.log").read_text()
        assert log.count("==> executing chapters/") == len(chapters)
        # every unit is stored (after the plan, or from the cold run): the chapters run side by side
        if (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) > 1:
            assert re.search(r"all stored: the chapters run \d+ at a time", log), log[:2000]
            assert max(per_chapter) <= phases["chapters_s"] < phases["chapters_sum_s"], "chapters overlapped"
    assert result["store_files_after_cold"] > 0  # the cold run trained into the empty store ...
    assert result["store_files_added_by_warm"] == 0  # ... and the warm one only read from it
    assert result["plan"] == {"workers": 2, "executor": "local"} and result["phases"]["cold"]["plan_s"] > 0
    assert result["phases"]["cold"]["plan_unit_s"] > 0 and 0 < result["phases"]["cold"]["plan_busy"] <= 1
    assert result["phases"]["warm"]["plan_busy"] is None, "the warm run's plan found everything stored"
    assert "computing the plan" in (tmp_path / "book.cold.log").read_text()
    assert "plain_cold_s" not in result and "ratio_plan_vs_plain" not in result, "no build without the plan"
    check_env(result["env"])
    assert "cold s" in stdout


def test_book_prints_its_json_first_and_writes_every_field_without_building(tmp_path, monkeypatch, capsys):
    """The book benchmark's output contract (JSON as the first stdout line, the same as the file, every target),
    checked with its two builds replaced by fixed timings: `make test` runs this, the real builds are `make bench`."""
    monkeypatch.syspath_prepend(str(ROOT))
    book = importlib.import_module("benchmarks.book")
    times = {"cold": 150.0, "warm": 30.0}
    commands = []

    def fake_make(*, work, log, plan_workers=None, **kwargs):
        commands.append(plan_workers)
        run = work.name
        log.write_text("fake\n")
        return book.BuildTime(
            total_s=times[run],
            setup_s=5.0,
            chapters={"01_x": times[run] - 15.0},
            chapters_wall_s=times[run] - 15.0,
            site_s=10.0,
            store_files=7,
            plan_s=40.0,
            plan_unit_s=64.0,
            plan_busy=0.8,
        )

    monkeypatch.setattr(book, "timed_make", fake_make)
    timed = []  # the bare loops are timed for real in the test of `bare_costs`; here no pass is counted to price
    monkeypatch.setattr(book, "bare_costs", lambda archs, *, profile, cores: timed.append(cores) or {})
    out = tmp_path / "book.json"
    book.main(["--profile", "smoke", "--plan-workers", "2", "--plan-executor", "ray", "--out", str(out)])
    assert timed == [os.cpu_count() or 1], "the floor's loops timed before the builds, one per core"
    stdout = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert json.loads(stdout.splitlines()[0]) == result, "the first printed line is the JSON result"
    assert result["cold_s"] == 150.0 and result["warm_s"] == 30.0 and commands == [2, 2]
    assert result["plan"] == {"workers": 2, "executor": "ray"}
    assert result["phases"]["cold"]["plan_s"] == 40.0 and result["store_files_added_by_warm"] == 0
    assert result["targets"]["warm_s"] == {"value": 30.0, "at_most": 40.0, "met": True}
    assert result["targets"]["cold_s"] == {"value": 150.0, "at_most": 2100.0, "met": True}
    assert result["targets"]["floor.ratio_cold"]["value"] is None  # no pass was counted: the builds were faked
    assert "warm_s = 30.00 (target <= 40): met" in stdout
    assert "floor.ratio_cold: not measured in this run" in stdout
    assert "took 40.0 s of the cold run, its workers busy 80% of it" in stdout
    assert result["phases"]["cold"]["plan_busy"] == 0.8 and result["phases"]["cold"]["plan_unit_s"] == 64.0
    line = run_summary(RunReport(computed={"a": 30.0, "b": 34.0}, wall_s=40.0, workers=2))
    match = book._PLAN_DONE.match(line)  # what the build's log holds is what the benchmark reads
    assert match and (match["unit_min"], match["busy"]) == ("1.1", "80"), line
    book.main(["--profile", "smoke", "--out", str(out)])  # the Makefile's default: one worker per core
    assert commands[-2:] == [None, None] and "one per core" in capsys.readouterr().out


def test_book_targets_read_nested_fields_and_say_not_met(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    book = importlib.import_module("benchmarks.book")
    result = {"cold_s": 2200.0, "floor": {"ratio_cold": 1.05}, "warm_s": 40.0}
    assert {k: t["met"] for k, t in book.targets(result).items()} == {
        "cold_s": False,
        "floor.ratio_cold": True,
        "warm_s": True,
    }
    assert book.target_line("cold_s", book.targets(result)["cold_s"]).endswith("NOT met")


def test_book_floor_is_every_counted_pass_at_its_bare_cost_over_the_cores(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    book = importlib.import_module("benchmarks.book")
    costs = {"cnn-small": {"input_gradient": 1e-3, "parameter_gradient": 8e-4, "forward": 2e-4}}
    late = {"input_gradient": 1e-5, "parameter_gradient": 9e-4, "forward": 1e-6}
    timed_now = []
    monkeypatch.setattr(
        book, "bare_costs", lambda archs, profile, cores: {a: late for a in archs if not timed_now.append((a, cores))}
    )
    counted = {
        "cnn-small": {"input_gradient": 1000, "parameter_gradient": 3000, "forward": 500},
        "linear": {"input_gradient": 0, "parameter_gradient": 100, "forward": 4000},
    }
    floor = book.compute_floor(counted, costs=costs, profile="smoke", cores=2)
    assert timed_now == [("cnn-small", 2), ("linear", 2)], "every counted architecture timed again, on every core"
    # each kind at the faster of its two timings; the architecture timed only after the builds at that timing
    assert floor["per_image_s"] == {
        "cnn-small": {"input_gradient": 1e-5, "parameter_gradient": 8e-4, "forward": 1e-6},
        "linear": late,
    }
    assert floor["per_image_s_before"] == costs and floor["per_image_s_after"] == {"cnn-small": late, "linear": late}
    assert floor["serial_s"] == pytest.approx(1000 * 1e-5 + 3000 * 8e-4 + 500 * 1e-6 + 100 * 9e-4 + 4000 * 1e-6)
    assert floor["floor_s"] == pytest.approx(floor["serial_s"] / 2) and floor["passes"] == counted
    assert book.compute_floor({}, costs=costs, profile="smoke", cores=2) is None


def test_book_bare_passes_cost_something_per_image_at_the_books_batch_sizes(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    book = importlib.import_module("benchmarks.book")
    costs = book.per_image_seconds("linear", profile="smoke", repeats=2)
    assert set(costs) == {"input_gradient", "parameter_gradient", "forward"} and min(costs.values()) > 0
    in_children = book.bare_costs(["linear"], profile="smoke", cores=2)  # under the Makefile's allocator settings
    assert set(in_children) == {"linear"} and set(in_children["linear"]) == set(costs)
    assert min(in_children["linear"].values()) > 0
    assert "cnn-small" in book.plan_archs("smoke") and "linear" in book.plan_archs("smoke")


def test_book_bare_costs_time_one_loop_per_core_at_once_and_average_them(monkeypatch):
    """The floor's loops run together, as the build's workers do: their timing windows must overlap (a child that
    ran alone would time an idle machine's loop), and each kind's cost is the children's mean."""
    monkeypatch.syspath_prepend(str(ROOT))
    book = importlib.import_module("benchmarks.book")
    seen = {}

    def children(windows):
        def run(module, args, *, n, env, what):
            seen.update(module=module, args=args, n=n, allocator={k: env[k] for k in book.KEPT})
            first = {"input_gradient": 1.0, "parameter_gradient": 2.0, "forward": 3.0}
            costs = [first, {kind: 2 * cost for kind, cost in first.items()}]
            return [{"per_image_s": {"cnn-small": c}, "window": w} for c, w in zip(costs, windows)]

        return run

    monkeypatch.setattr(book, "run_children", children([[0.0, 10.0], [5.0, 12.0]]))
    costs = book.bare_costs(["cnn-small"], profile="cpu", cores=2)
    assert costs == {"cnn-small": {"input_gradient": 1.5, "parameter_gradient": 3.0, "forward": 4.5}}
    assert seen["n"] == 2 and seen["args"][seen["args"].index("--bare-children") + 1] == "2"
    assert seen["allocator"] == {k: os.environ.get(k, v) for k, v in book.KEPT.items()}
    monkeypatch.setattr(book, "run_children", children([[0.0, 4.0], [5.0, 12.0]]))
    with pytest.raises(RuntimeError, match=r"the 2 children timing the bare passes did not run at once"):
        book.bare_costs(["cnn-small"], profile="cpu", cores=2)


def test_book_refuses_a_build_without_plan_workers():
    for bad in ("0", "-1"):
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.book", "--plan-workers", bad], cwd=ROOT, capture_output=True, text=True
        )
        assert proc.returncode == 2 and f"argument --plan-workers: must be an integer >= 1 (got {bad})" in proc.stderr


# ---- the GPU check (benchmarks/gpu/): its tiny CPU run, its failure records, its pricing ------------------------

GPU_MEASUREMENTS = {
    "inference_fp32",
    "standard_fp32",
    "standard_bf16",
    "adversarial_fp32",
    "adversarial_bf16",
    "pgd_fp32",
    "autoattack_fast_fp32",
}
GPU_COMPILED = {"standard_bf16_compile", "adversarial_bf16_compile"}


def load_gpu_check(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/gpu/ as a package (it imports benchmarks._common, so the repository root goes on sys.path)."""
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("benchmarks.gpu")


def paper_units() -> Counter:
    return Counter(unit.kind for unit in book_plan(resolve("paper", device="cpu")))


@pytest.mark.slow
def test_gpu_check_quick_on_the_cpu_writes_the_whole_contract(tmp_path):
    out = tmp_path / "gpu.json"
    result, stdout = run_benchmark("gpu", "--quick", "--device", "cpu", "--threads", "1", "--out", str(out))
    for field in ("device", "measurements", "not_measured", "bf16_agreement", "paper_estimate", "env"):
        assert field in result, field
    assert result["device"]["type"] == "cpu" and result["settings"]["tiny"]
    measurements = result["measurements"]
    assert GPU_MEASUREMENTS <= set(measurements)
    for name, entry in measurements.items():
        assert entry["images_per_s"] > 0 and entry["seconds"] > 0, name
        assert entry["images_per_s"] == pytest.approx(entry["images"] / entry["seconds"], rel=1e-12)
        assert "peak_memory_mb" in entry and entry["peak_memory_mb"] is None  # only a CUDA device has one
    assert measurements["adversarial_fp32"]["pgd_steps"] == 2 and measurements["pgd_fp32"]["steps"] == 2
    assert 0 <= measurements["autoattack_fast_fp32"]["robust_fraction"] <= 1
    for name in GPU_COMPILED:  # not tried on a CPU by default, and said so
        assert name not in measurements and result["not_measured"][name].startswith("skipped: ")
    for data, agreement in result["bf16_agreement"].items():
        assert 0 <= agreement["top1_agreement"] <= 1, data
        assert 0 <= agreement["mean_abs_logit_diff"] < float("inf"), data
    assert "synthetic-cifar10" in result["bf16_agreement"]

    estimate, units = result["paper_estimate"], paper_units()
    assert estimate["profile"] == "paper" and estimate["units"] == sum(units.values())
    assert {kind: k["units"] for kind, k in estimate["per_kind"].items()} == dict(units)  # every kind, every unit
    assert estimate["hours"] == pytest.approx(sum(k["hours"] for k in estimate["per_kind"].values()), rel=1e-9)
    assert 0 < estimate["hours_low"] <= estimate["hours"]
    assert all(k["hours"] > 0 for k in estimate["per_kind"].values())
    rates = estimate["rates"]
    assert min(rates["training_images_per_s"].values()) > 0 and rates["inference_images_per_s"] > 0
    assert rates["pgd_step_s_per_image"] > 0 and rates["apgd_run_s_per_image"] > 0
    check_env(result["env"])
    assert "GPU-hours" in stdout


def test_gpu_check_records_a_failing_compile_instead_of_raising(monkeypatch):
    gpu = load_gpu_check(monkeypatch)
    not_measured: dict[str, str] = {}
    said: list[str] = []
    with gpu.guarded("standard_bf16_compile", not_measured, said.append):
        raise RuntimeError("Cannot find a working triton\ninstallation")
    assert not_measured == {"standard_bf16_compile": "failed: RuntimeError: Cannot find a working triton installation"}
    assert len(said) == 1 and "standard_bf16_compile FAILED" in said[0]


def fake_measurements() -> dict[str, dict]:
    """Rates of the shape the GPU check measures (images per second; the PGD and AutoAttack details it records)."""

    def rate(value: float, **extra: object) -> dict:
        return {"images_per_s": value, "peak_memory_mb": None, "seconds": 1.0, "images": int(value), **extra}

    return {
        "inference_fp32": rate(40_000),
        "standard_fp32": rate(6_000),
        "standard_bf16": rate(12_000),
        "adversarial_fp32": rate(600, pgd_steps=10),
        "adversarial_bf16": rate(1_200, pgd_steps=10),
        "pgd_fp32": rate(1_500, steps=20),
        "autoattack_fast_fp32": rate(200, robust_fraction=0.0),
    }


def test_gpu_paper_estimate_prices_every_unit_from_the_rates(monkeypatch):
    gpu = load_gpu_check(monkeypatch)
    paper = resolve("paper", device="cpu")
    measurements = fake_measurements()
    estimate = gpu.paper_estimate(paper, measurements)
    assert {kind: k["units"] for kind, k in estimate["per_kind"].items()} == dict(paper_units())
    # training: every full-size ResNet model pays epochs x 50,000 images at its method's bf16 rate, plus validation
    models = [u.config for u in book_plan(paper) if u.kind == "model"]
    floor = (
        sum(c.epochs * 50_000 / (1_200 if c.method == "adversarial" else 12_000) for c in models if c.arch != "linear")
        / 3600
    )
    assert floor < estimate["per_kind"]["model"]["hours"] < 1.05 * floor
    # twice as fast everywhere: half the hours
    doubled = {name: {**m, "images_per_s": 2 * m["images_per_s"]} for name, m in measurements.items()}
    assert gpu.paper_estimate(paper, doubled)["hours"] == pytest.approx(estimate["hours"] / 2, rel=1e-9)
    # AutoAttack's survivors make the measured batch dearer, not the price of one APGD run
    survivors = {
        **measurements,
        "autoattack_fast_fp32": {**measurements["autoattack_fast_fp32"], "images_per_s": 20, "robust_fraction": 1.0},
    }
    assert gpu.paper_estimate(paper, survivors)["rates"]["apgd_run_s_per_image"] == pytest.approx(1 / 200)
    # a compiled rate that was not measured falls back to the uncompiled one, and says so
    compiled = resolve("paper", device="cpu", compile=True)
    fallback = gpu.paper_estimate(compiled, measurements)
    assert fallback["hours"] == pytest.approx(estimate["hours"], rel=1e-9)
    assert any("standard_bf16_compile not measured" in n for n in fallback["notes"])
    # without AutoAttack, an APGD run is priced as 100 PGD steps
    without = {k: v for k, v in measurements.items() if k != "autoattack_fast_fp32"}
    assert gpu.paper_estimate(paper, without)["rates"]["apgd_run_s_per_image"] == pytest.approx(100 / 1_500 / 20)


def test_help_states_each_default_once_and_never_none():
    parser = load_common().base_parser("A benchmark.", name="example")
    parser.add_argument("--flag", action="store_true", help="a switch")
    parser.add_argument("--workers", type=int, default=0, help="how many (0: none)")
    text = " ".join(parser.format_help().split())
    assert "(default: cpu)" in text and "how many (0: none) (default: 0)" in text
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "one per core) (default" not in text  # --threads says in its help what leaving it out means
