"""The Ray executor on two hosts, really: a Ray head and a Ray worker node in two network namespaces of this machine.

Each namespace holds its loopback and one end of a veth pair, with an address that exists only there (10.213.0.1/30
for the head, 10.213.0.2/30 for the worker node), no other route and no IPv6: a process inside reaches the other
namespace and itself, nothing else. Each node has its own ADVLOGITS_HOME, TMPDIR and Ray folder (``--temp-dir``)
and shares only the file system's code and data with the other, as two machines with one image would. From the
head's namespace, ``advlogits run --executor ray --address`` computes the smoke plan; the head's store must equal a
serial run's file for file (tests/helpers.py, `store_differences`), while the worker node, which computed units in
stores of their own, keeps none of them. The nodes' processes are found by their namespace (``ip netns pids``), so
the teardown stops exactly the processes this test started, and removes the namespaces, whatever happened.

Skipped, with the reason, where this machine cannot make network namespaces (not root, no ``ip``, no netns support)
or Ray is not installed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from advlogits import profiles
from advlogits.pipeline.executors import PlanSpec

from helpers import SMOKE, store_differences

PREFIX = 30  # a /30: two addresses, the head's and the worker node's
HEAD_IP, WORKER_IP = "10.213.0.1", "10.213.0.2"
GCS_PORT = 6379
OUTSIDE = "192.0.2.1"  # TEST-NET-1: an address outside the two namespaces, which no process inside may reach
OBJECT_STORE_BYTES = 200 * 1024**2  # each node's Ray object store (the smoke store is about 40 MB)
RUN_TIMEOUT_S = 900
# How long a node's processes get to exit after SIGTERM before SIGKILL: the head's GCS server, raylet, monitor and
# runtime-env agent outlast a SIGTERM by ten seconds and more; the worker node's processes exit at once.
STOP_WAIT_S = 2.0
# Ray's sockets live in its --temp-dir, several folders deep, and a socket's path has at most 107 bytes: the nodes'
# folders go under /tmp, not under pytest's long temporary paths.
SHORT_ROOT = "/tmp"
Completed = subprocess.CompletedProcess


@dataclass(frozen=True)
class Node:
    """One Ray node: its network namespace, its address there and its folders."""

    netns: str
    ip: str
    folder: Path

    @property
    def home(self) -> Path:  # ADVLOGITS_HOME
        return self.folder / "home"

    @property
    def tmp(self) -> Path:  # TMPDIR: where a Ray task computes its unit in a store of its own
        return self.folder / "tmp"

    @property
    def ray_dir(self) -> Path:  # Ray's --temp-dir: its session's sockets and logs (a short path: see SHORT_ROOT)
        return self.folder / "r"

    @property
    def pids(self) -> Path:  # ADVLOGITS_RAY_WORKER_PIDS: one marker per unit while it runs on this node
        return self.folder / "pids"

    def env(self, token: str) -> dict[str, str]:
        """The environment of this node's processes: its own folders, the cluster's token, no usage reports."""
        return {
            **os.environ,
            "ADVLOGITS_HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "ADVLOGITS_RAY_WORKER_PIDS": str(self.pids),
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": token,
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    def run(
        self, cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """Run ``cmd`` inside this node's namespace, its output captured."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *cmd], env=env, capture_output=True, text=True, timeout=timeout
        )

    def processes(self) -> list[int]:
        """Every process in this node's namespace: only those this test started there."""
        out = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


def _must(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed: {(proc.stderr or proc.stdout).strip()}")


def _without_ipv6(netns: str) -> None:
    """No IPv6 in ``netns`` (its link-local addresses would be addresses of their own); nothing to do on a kernel
    without IPv6."""
    for scope in ("default", "all"):
        setting = f"/proc/sys/net/ipv6/conf/{scope}/disable_ipv6"
        _must(_ip("netns", "exec", netns, "sh", "-c", f"[ ! -e {setting} ] || echo 1 > {setting}"), "no IPv6")


def _stop(node: Node) -> list[int]:
    """Stop every process of the node's namespace: SIGTERM, then SIGKILL for those still there after a while; the
    processes left (none, unless a kill failed)."""
    pids = node.processes()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline and (pids := node.processes()):
            time.sleep(0.1)
        if not pids:
            break
    return pids


@contextlib.contextmanager
def two_namespaces(problems: list[str]) -> Iterator[tuple[Node, Node]]:
    """A head and a worker node in two fresh network namespaces joined by a veth pair (see the module), their folders
    in a fresh folder of `SHORT_ROOT`; skips the test when the namespaces cannot be made. On leaving, every process
    in them is stopped, they are deleted and so is the folder; what could not be is appended to ``problems``."""
    if sys.platform != "linux":
        pytest.skip("network namespaces are Linux's")
    if os.geteuid() != 0:
        pytest.skip("making network namespaces (ip netns add) needs root")
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2) to make network namespaces with")
    tag = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
    folder = Path(tempfile.mkdtemp(prefix="al2h-", dir=SHORT_ROOT if Path(SHORT_ROOT).is_dir() else None))
    head = Node(f"advlogits-head-{tag}", HEAD_IP, folder / "h")
    worker = Node(f"advlogits-worker-{tag}", WORKER_IP, folder / "w")
    made: list[Node] = []
    try:
        for node in (head, worker):
            added = _ip("netns", "add", node.netns)
            if added.returncode != 0:
                pytest.skip(f"this machine cannot make a network namespace: {added.stderr.strip()}")
            made.append(node)
        # the pair is made inside the namespaces (its ends never exist outside them); names of at most 15 characters
        pair = _ip("-n", head.netns, "link", "add", f"ah{tag}", "type", "veth", "peer", "name", f"aw{tag}", "netns",
                   worker.netns)  # fmt: skip
        if pair.returncode != 0:
            pytest.skip(f"this machine cannot make a veth pair between network namespaces: {pair.stderr.strip()}")
        for node, link in ((head, f"ah{tag}"), (worker, f"aw{tag}")):
            _without_ipv6(node.netns)
            _must(_ip("-n", node.netns, "link", "set", "lo", "up"), "loopback up")
            _must(_ip("-n", node.netns, "addr", "add", f"{node.ip}/{PREFIX}", "dev", link), "address")
            _must(_ip("-n", node.netns, "link", "set", link, "up"), "veth up")
            for sub in (node.home.parent, node.tmp, node.ray_dir, node.pids):
                sub.mkdir(parents=True, exist_ok=True)
        yield head, worker
    finally:
        for node in reversed(made):
            if left := _stop(node):
                problems.append(f"processes {left} of {node.netns} would not stop")
            if (deleted := _ip("netns", "delete", node.netns)).returncode != 0:
                problems.append(f"{node.netns} could not be deleted: {deleted.stderr.strip()}")
        shutil.rmtree(folder, ignore_errors=True)


def _addresses(node: Node) -> set[str]:
    out = _ip("-n", node.netns, "-o", "addr", "show").stdout
    return {line.split()[3] for line in out.splitlines()}


def _routes(node: Node) -> list[str]:
    return [line.split()[0] for line in _ip("-n", node.netns, "route", "show").stdout.splitlines()] + [
        line.split()[0] for line in _ip("-n", node.netns, "-6", "route", "show").stdout.splitlines()
    ]


def _ray(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())", *args]


def _start_ray(head: Node, worker: Node, token: str) -> None:
    common = ["--num-gpus", "0", "--num-cpus", "1", "--object-store-memory", str(OBJECT_STORE_BYTES)]
    common += ["--disable-usage-stats"]
    started = head.run(
        _ray("start", "--head", "--node-ip-address", head.ip, "--port", str(GCS_PORT), "--include-dashboard", "false",
             "--temp-dir", str(head.ray_dir), *common),
        env=head.env(token),
    )  # fmt: skip
    _must(started, f"ray start --head in {head.netns}")
    joined = worker.run(
        _ray("start", "--address", f"{head.ip}:{GCS_PORT}", "--node-ip-address", worker.ip,
             "--temp-dir", str(worker.ray_dir), *common),
        env=worker.env(token),
    )  # fmt: skip
    _must(joined, f"ray start --address in {worker.netns}")


class Watcher(threading.Thread):
    """Notes, while the plan runs, every unit marker and every unit store that appears in the worker node's folders:
    the proof that units ran on that node."""

    def __init__(self, node: Node) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.units: set[str] = set()  # ids of the units seen running there
        self.stores: set[str] = set()  # names of the unit stores seen there
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for marker in self.node.pids.glob("*.unit"):
                with contextlib.suppress(FileNotFoundError):  # its unit finished meanwhile
                    self.units.add(marker.read_text())
            self.stores |= {p.name for p in self.node.tmp.glob("advlogits-unit-*")}
            time.sleep(0.05)


def _left_over(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.whole_book
def test_the_smoke_plan_on_a_head_and_a_worker_node_in_two_network_namespaces(smoke_serial_store):
    pytest.importorskip("ray", reason="the Ray executor needs the cluster extra (pip install 'advlogits[cluster]')")
    token = secrets.token_hex(32)  # the cluster's own: no other Ray process can join it
    problems: list[str] = []
    with two_namespaces(problems) as (head, worker):
        for node in (head, worker):
            assert _addresses(node) == {"127.0.0.1/8", f"{node.ip}/{PREFIX}"}, "loopback and one address, no IPv6"
            assert _routes(node) == [f"10.213.0.0/{PREFIX}"], "no route but to the other namespace"
            probe = node.run([sys.executable, "-c", f"import socket; socket.create_connection(({OUTSIDE!r}, 9), 2)"])
            assert probe.returncode != 0 and "Network is unreachable" in probe.stderr, probe.stderr[-300:]
        _start_ray(head, worker, token)
        watcher = Watcher(worker)
        watcher.start()
        try:
            run = head.run(
                [sys.executable, "-m", "advlogits", "run", "--profile", SMOKE, "--device", "cpu", "--executor", "ray",
                 "--address", f"{head.ip}:{GCS_PORT}", "--workers", "2", "--quiet"],
                env=head.env(token),
                timeout=RUN_TIMEOUT_S,
            )  # fmt: skip
        finally:
            watcher.done.set()
            watcher.join(timeout=5)
        assert run.returncode == 0, run.stderr[-4000:]
        n_units = len(PlanSpec(profiles.resolve(SMOKE, device="cpu")).units())
        assert run.stdout.startswith(f"computed {n_units} units"), run.stdout
        assert watcher.units and watcher.stores, "units ran on the worker node, each in a store of its own"
        assert store_differences(head.home, smoke_serial_store) == [], "the head's store is the serial run's"
        assert not worker.home.exists(), "the worker node's ADVLOGITS_HOME was never used"
        assert _left_over(worker.tmp) == [] and _left_over(worker.pids) == [], "nothing outlives the worker's tasks"
        assert not [p for p in _left_over(worker.ray_dir) if "advlogits" in p], "no unit store among Ray's files"
    assert problems == [], "both nodes stopped, both namespaces deleted"
    assert not {head.netns, worker.netns} & set(_ip("netns", "list").stdout.split())
