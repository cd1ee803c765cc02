"""The benchmarks of benchmarks/ keep working: each runs in a tiny mode and writes the JSON result the performance
targets are read from (ratios, medians, settings, the machine's load; see benchmarks/README.md).

The benchmarks are scripts (``python -m benchmarks.<name>`` from the repository root), so they are run here
the same way, in a subprocess; their timing helper is also checked directly.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import torch

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
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
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
    assert wall["sleep"] >= 0.05 and cpu["sleep"] < 0.025  # sleeping takes wall time but no CPU time
    assert cpu["spin"] >= 0.05 and wall["spin"] >= 0.05
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
    out = tmp_path / "book.json"
    result, stdout = run_benchmark("book", "--profile", "smoke", "--device", "cpu", "--out", str(out), timeout=1800)
    chapters = {path.stem for path in (ROOT / "chapters").glob("*.ipynb")}
    assert set(result["chapters"]) == chapters
    for run in ("cold", "warm"):
        per_chapter = [t[f"{run}_s"] for t in result["chapters"].values()]
        assert min(per_chapter) > 0
        phases = result["phases"][run]
        assert phases["chapters_s"] == pytest.approx(sum(per_chapter))
        assert phases["setup_s"] + phases["chapters_s"] + phases["site_s"] <= result[f"{run}_s"] + 1e-6
        assert (tmp_path / f"book.{run}.log").read_text().count("==> executing chapters/") == len(chapters)
    assert result["store_files_after_cold"] > 0  # the cold run trained into the empty store ...
    assert result["store_files_added_by_warm"] == 0  # ... and the warm one only read from it
    check_env(result["env"])
    assert "cold s" in stdout
