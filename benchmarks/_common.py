"""What the benchmarks share: interleaved timing, the machine's description, and writing the result.

Timings are wall-clock seconds from ``time.perf_counter`` (the number the performance targets are about), with the
process's CPU seconds from ``time.process_time`` beside them. On a shared machine the load changes while a
benchmark runs, so the contenders are timed in interleaved rounds (A, B, C, A, B, C, ...) and compared by
their medians: a burst of load then hits every contender alike instead of one of them. Beside the ratio of
medians (the headline number), ``Timings.ratios`` gives the ratio of the fastest calls (load only adds time),
of median CPU times (less disturbed by other processes, since time spent descheduled does not count) and the
median of per-round ratios; when these disagree, the machine's load, not the code, decides the headline.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advlogits.profiles import PROFILES

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "_build" / "bench"  # where `make bench` collects the JSON files
Clock = Literal["wall", "cpu"]
Stat = Literal["median", "min"]
QUICK_HELP = "a tiny run that only checks that the benchmark works (its numbers mean nothing)"


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for ``device``'s queued work (a no-op on the CPU, where calls are synchronous)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


@dataclass(frozen=True)
class Timings:
    """Seconds of every timed call of every run, on two clocks, listed in round order."""

    wall_s: dict[str, list[float]]  # wall-clock time (time.perf_counter)
    cpu_s: dict[str, list[float]]  # CPU time of this process, all threads together (time.process_time)

    def medians(self, clock: Clock = "wall") -> dict[str, float]:
        """The median seconds of each run on ``clock``."""
        return {name: statistics.median(values) for name, values in self._clock(clock).items()}

    def minimums(self, clock: Clock = "wall") -> dict[str, float]:
        """The fastest call of each run on ``clock`` (load only adds time: the best guess at an idle machine)."""
        return {name: min(values) for name, values in self._clock(clock).items()}

    def ratio(self, a: str, b: str, clock: Clock = "wall", *, stat: Stat = "median") -> float:
        """Run ``a``'s median (or minimum) divided by run ``b``'s (below 1: ``a`` is faster)."""
        summary = self.medians(clock) if stat == "median" else self.minimums(clock)
        return summary[a] / summary[b]

    def ratios(self, a: str, b: str) -> dict[str, float]:
        """``a`` / ``b`` four ways: median and minimum wall time, median CPU time, and median of per-round ratios."""
        return {
            "median_wall": self.ratio(a, b),
            "min_wall": self.ratio(a, b, stat="min"),
            "median_cpu": self.ratio(a, b, "cpu"),
            "paired_rounds": self.paired_ratio(a, b),
        }

    def paired_ratio(self, a: str, b: str) -> float:
        """Median over rounds of a's wall time over b's in the same round (neighbours share the machine's load)."""
        return statistics.median(x / y for x, y in zip(self.wall_s[a], self.wall_s[b]))

    def _clock(self, clock: Clock) -> dict[str, list[float]]:
        return self.wall_s if clock == "wall" else self.cpu_s


def interleaved_times(
    runs: Mapping[str, Callable[[], object]],
    *,
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] = lambda: None,
) -> Timings:
    """Time ``repeats`` rounds after ``warmup`` untimed ones; every round calls each run once, in the mapping's order.

    ``sync`` is called before the clocks start and before they stop, so queued device work is counted where it
    belongs.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0 (got repeats={repeats}, warmup={warmup})")
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(warmup + repeats):
        for name, run in runs.items():
            sync()
            wall_began, cpu_began = time.perf_counter(), time.process_time()
            run()
            sync()
            wall_s, cpu_s = time.perf_counter() - wall_began, time.process_time() - cpu_began
            if round_ >= warmup:
                wall[name].append(wall_s)
                cpu[name].append(cpu_s)
    return Timings(wall_s=wall, cpu_s=cpu)


# make's variables of a parent make (`make bench`): a make that a benchmark starts would take its flags over
PARENT_MAKE_VARS = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "MAKE_TERMOUT", "MAKE_TERMERR")


def environment_outside_make() -> dict[str, str]:
    """This process's environment without a parent make's variables, for a make that a benchmark starts."""
    return {k: v for k, v in os.environ.items() if k not in PARENT_MAKE_VARS}


def run_time_stamped(
    command: list[str],
    *,
    env: Mapping[str, str],
    log: Path,
    on_line: Callable[[float, str], None],
    cwd: Path | None = None,
    header: str = "",
) -> float:
    """Run ``command``, writing each output line to ``log`` with its second since the start, and handing it to
    ``on_line(seconds, line)``; return the total seconds. A failure raises SystemExit with the output's last lines."""
    tail: deque[str] = deque(maxlen=40)
    log.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with (
        log.open("w") as out,
        subprocess.Popen(
            command, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as proc,
    ):
        out.write(header)
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.perf_counter() - began
            out.write(f"{now:9.2f}  {line}")
            tail.append(line)
            on_line(now, line)
        returncode = proc.wait()
    if returncode != 0:
        raise SystemExit(
            f"`{' '.join(command)}` failed with exit code {returncode}; its output is in {log}. "
            f"Last lines:\n{''.join(tail)}"
        )
    return time.perf_counter() - began


def load_average() -> list[float]:
    """The machine's load average over 1, 5 and 15 minutes (runnable processes; compare with the core count)."""
    return [round(v, 2) for v in os.getloadavg()]


def environment(*, load_avg_start: list[float]) -> dict[str, Any]:
    """What the numbers depend on: torch version, thread counts, CPU count, the load average at start and end."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "load_avg_start": load_avg_start,
        "load_avg": load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {text})")
    return value


class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except None and False: a help text says itself what leaving a flag out means."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def base_parser(description: str | None, *, name: str) -> argparse.ArgumentParser:
    """An argument parser with the flags every benchmark takes: --profile, --device, --out, --threads."""
    parser = argparse.ArgumentParser(
        description=(description or "").split("\n\n")[0], formatter_class=_DefaultsHelpFormatter
    )
    parser.add_argument("--profile", default="cpu", choices=PROFILES, help="the book's run profile to measure")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    parser.add_argument("--out", type=Path, default=OUT_DIR / f"{name}.json", help="where to write the JSON result")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch's intra-op threads (default: torch's own choice, one per core)",
    )
    return parser


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` (None keeps torch's default)."""
    if threads is not None:
        torch.set_num_threads(threads)


def write_result(result: dict[str, Any], out: Path, summary: list[str]) -> None:
    """Write ``result`` as JSON to ``out``, then print it as one JSON line followed by the human summary."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, separators=(",", ":")))
    for line in summary:
        print(line)
    print(f"(written to {out})")
    sys.stdout.flush()


def verdict(value: float, target: float) -> str:
    """ "met" or "NOT met" for a ratio that must be at most ``target``."""
    return "met" if value <= target else "NOT met"


def median_per_image(run: Callable[[], object], *, images: int, rounds: int) -> float:
    """Seconds per image of ``run`` (which processes ``images`` images): the median of ``rounds`` timed calls after
    one untimed warm-up."""
    run()
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        run()
        times.append((time.perf_counter() - began) / images)
    return statistics.median(times)


def bare_passes(
    model: nn.Module, batches: Mapping[str, tuple[Tensor, Tensor]], *, optimizer: torch.optim.Optimizer | None = None
) -> dict[str, Callable[[], Tensor | None]]:
    """One bare pass of ``model`` (in eval mode between calls) per kind of `advlogits.passes.KINDS` that ``batches``
    gives an (x, y) batch for, with nothing else around it:

    * ``input_gradient``: forward, cross-entropy and its gradient with respect to the input (an attack's step;
      returns the gradient);
    * ``parameter_gradient``: a training step in train mode, backward to the parameters and ``optimizer``'s step;
    * ``forward``: a forward pass without gradients (inference).
    """

    def input_gradient() -> Tensor:
        x, y = batches["input_gradient"]
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
        return grad

    def parameter_gradient() -> None:
        x, y = batches["parameter_gradient"]
        model.train()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        model.eval()

    def forward() -> None:
        with torch.no_grad():
            model(batches["forward"][0])

    runs = {"input_gradient": input_gradient, "parameter_gradient": parameter_gradient, "forward": forward}
    if "parameter_gradient" in batches and optimizer is None:
        raise ValueError("optimizer must be given for a parameter_gradient batch (got None)")
    return {kind: runs[kind] for kind in batches}


def run_children(module: str, args: list[str], *, n: int, env: Mapping[str, str], what: str) -> list[dict[str, Any]]:
    """Run ``n`` copies of ``python -m <module> <args>`` at once, from the repository root with ``env``; return the
    JSON of each one's last stdout line. A failing child raises RuntimeError naming ``what`` it was doing, with the
    end of its stderr (the others are waited for first)."""
    command = [sys.executable, "-m", module, *args]
    procs = [
        subprocess.Popen(
            command, env=dict(env), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(n)
    ]
    done = [(proc, *proc.communicate()) for proc in procs]
    for proc, _, err in done:
        if proc.returncode != 0:
            raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{err[-2000:]}")
    return [json.loads(out.strip().splitlines()[-1]) for _, out, _ in done]


def run_child(module: str, args: list[str], *, env: Mapping[str, str], what: str) -> dict[str, Any]:
    """Run ``python -m <module> <args>`` from the repository root with ``env``; return the JSON of its last stdout
    line. A failing child raises RuntimeError naming ``what`` it was doing, with the end of its stderr."""
    return run_children(module, args, n=1, env=env, what=what)[0]
