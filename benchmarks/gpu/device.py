"""The GPU check's view of the machine: a clock for progress lines and the time budget, timing between device
synchronisations, peak GPU memory, what torch.compile built, the device and its software, and a guard that
records a measurement's failure instead of losing the run."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from benchmarks._common import synchronizer


class Clock:
    """Seconds since the run began, for progress lines and the time budget."""

    def __init__(self) -> None:
        self.began = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.began

    def say(self, message: str) -> None:
        print(f"[gpu-check {self.elapsed():6.1f} s] {message}", file=sys.stderr, flush=True)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device: torch.device) -> float | None:
    """Peak GPU memory allocated since the last `reset_peak`, in MiB (None off CUDA)."""
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def compiled_graphs() -> int | None:
    """How many graphs torch.compile has built in this process (None if torch does not say)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return None
    return int(counters["stats"]["unique_graphs"])


def timed(device: torch.device, run: Callable[[], Any]) -> tuple[float, Any]:
    """(wall seconds, result) of ``run()``, between two synchronisations of ``device``."""
    sync = synchronizer(device)
    sync()
    began = time.perf_counter()
    out = run()
    sync()
    return time.perf_counter() - began, out


def record(images: int, seconds: float, device: torch.device, **extra: Any) -> dict[str, Any]:
    """One measurement's entry: images per second, peak memory, seconds and how it was made."""
    return {
        "images_per_s": images / seconds,
        "peak_memory_mb": peak_mb(device),
        "seconds": seconds,
        "images": images,
        **extra,
    }


@contextlib.contextmanager
def guarded(name: str, not_measured: dict[str, str], say: Callable[[str], None]) -> Iterator[None]:
    """Run a measurement that may fail for want of something outside this project (torch.compile's Triton or C
    compiler, the AutoAttack package): a failure is recorded in ``not_measured[name]``, and
    the run goes on, instead of losing every other number of a run on a lent GPU."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - whatever torch.compile raises (no Triton, no compiler, ...)
        text = " ".join(f"{type(error).__name__}: {error}".split())
        not_measured[name] = f"failed: {text[:600]}"
        say(f"  {name} FAILED ({text[:200]}); recorded in not_measured")
        with contextlib.suppress(Exception):
            torch._dynamo.reset()


def describe_device(device: torch.device) -> dict[str, Any]:
    """The device the check ran on: a GPU's name, memory, compute capability and count, or the CPU's."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {
            "type": "cuda",
            "name": props.name,
            "memory_gb": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count,
            "count": torch.cuda.device_count(),
        }
    return {"type": device.type, "name": platform.processor() or platform.machine(), "cores": os.cpu_count()}


def gpu_environment() -> dict[str, Any]:
    """What the GPU numbers depend on beyond `environment`: CUDA, cuDNN, Triton, TF32."""
    triton = None
    with contextlib.suppress(Exception):
        import triton as triton_module

        triton = triton_module.__version__
    return {
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "triton": triton,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }
