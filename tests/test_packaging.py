"""The packaging conventions: compatible ranges in pyproject.toml, exact versions in one lock, the same pins
everywhere they are written, RobustBench only in the ``paper`` extra, and a set-up that installs from the lock
(or, with USE_ACTIVE_ENV=1, checks the active environment and installs nothing).

The package metadata is built here from a copy of the project with setuptools' PEP 517 hook, exactly what
``pip install -e .`` reads, so the checks do not depend on what happens to be installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import PathDistribution
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from advlogits import models
from advlogits._compat import import_robustbench_utils

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
MAKEFILE = ROOT / "Makefile"
PINNED_DOCS = ("README.md", "book/how_to_run.md", "environment.yml", "Makefile")
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="the set-up tests run GNU make")


def lock_pins() -> dict[str, set[str]]:
    """The versions the lock pins, by canonical name: one, or one per Python range or platform (with markers)."""
    pins: dict[str, set[str]] = {}
    for line in LOCK.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            req = Requirement(line)
            assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "==", f"not a pin: {line!r}"
            pins.setdefault(canonicalize_name(req.name), set()).add(next(iter(req.specifier)).version)
    return pins


def make(*args: str) -> subprocess.CompletedProcess:
    """``make ARGS`` in the repository root, outside any make that runs these tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )


def make_dry_run(*args: str) -> str:
    """What ``make -n ARGS`` would run."""
    out = make("-n", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def metadata(tmp_path_factory) -> PathDistribution:
    """The metadata setuptools builds for ``pip install -e .``, from a copy of pyproject.toml, README.md and lib/."""
    pytest.importorskip("setuptools", reason="building the package metadata needs setuptools")
    src = tmp_path_factory.mktemp("project")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "lib", src / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out_dir = src / "metadata"
    out_dir.mkdir()
    build = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta; "
            "print(build_meta.prepare_metadata_for_build_wheel(sys.argv[1]))",
            str(out_dir),
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    return PathDistribution(out_dir / build.stdout.strip().splitlines()[-1])


def requirements(dist: PathDistribution) -> dict[str | None, list[Requirement]]:
    """The requirements of ``dist`` by extra (None: the core dependencies)."""
    by_extra: dict[str | None, list[Requirement]] = {}
    for line in dist.requires or []:
        req = Requirement(line)
        extra = re.search(r"extra == ['\"]([\w.-]+)['\"]", str(req.marker or ""))
        by_extra.setdefault(extra and extra.group(1), []).append(req)
    return by_extra


# ---- pyproject.toml: ranges, and RobustBench only in the paper extra --------------------------------------


def test_the_core_dependencies_leave_robustbench_to_the_paper_extra(metadata):
    reqs = requirements(metadata)
    core = {canonicalize_name(r.name): r for r in reqs[None]}
    assert "robustbench" not in core and "setuptools" not in core
    assert {canonicalize_name(r.name) for r in reqs["paper"]} == {"robustbench", "setuptools"}
    assert "pandas" in core  # the chapters' tables
    assert {"book", "test", "cluster", "paper"} <= set(metadata.metadata.get_all("Provides-Extra"))


def test_the_cluster_extra_installs_the_ray_client(metadata):
    """``advlogits run --executor ray --address ray://host:10001``, the documented Ray Client address, needs grpcio."""
    (ray,) = [r for r in requirements(metadata)["cluster"] if canonicalize_name(r.name) == "ray"]
    assert "client" in ray.extras, f"the cluster extra asks for {ray}, without the Ray client"
    assert "grpcio" in lock_pins(), f"{LOCK.name} lacks grpcio, which ray[client] needs: run `make lock`"


def test_the_metadata_holds_ranges_not_exact_versions(metadata):
    for reqs in requirements(metadata).values():
        for req in reqs:
            assert not any(s.operator in ("==", "===") for s in req.specifier), f"an exact pin in pyproject: {req}"
    core = {canonicalize_name(r.name): r for r in requirements(metadata)[None]}
    assert core["pyautoattack"].specifier.contains("0.2.0") and not core["pyautoattack"].specifier.contains("1.0")


# ---- the lock ----------------------------------------------------------------------------------------------


def test_every_dependency_of_every_extra_is_pinned_in_the_lock_within_its_range(metadata):
    pins = lock_pins()
    for extra, reqs in requirements(metadata).items():
        for req in reqs:
            name = canonicalize_name(req.name)
            assert name in pins, f"{req} ({extra or 'core'}) is not in {LOCK.name}: run `make lock`"
            for version in pins[name]:
                assert req.specifier.contains(version, prereleases=True), (
                    f"{LOCK.name} pins {name}=={version}, outside {req} ({extra or 'core'}): run `make lock`"
                )


def test_the_lock_keeps_to_the_bounds_of_lock_constraints_and_make_lock_passes_them():
    """Each bound of requirements/lock_constraints.txt holds in the lock, has its reason written above it, and
    reaches `make lock`'s resolver; a bound the lock breaks, or one no resolver sees, fails here."""
    constraints = LOCK.with_name("lock_constraints.txt")
    lines = constraints.read_text().splitlines()
    bounds = [(i, Requirement(line)) for i, line in enumerate(lines) if line.strip() and not line.startswith("#")]
    assert bounds, f"{constraints.name} holds no bound"
    pins = lock_pins()
    for i, req in bounds:
        assert i > 0 and lines[i - 1].startswith("#"), f"{req} in {constraints.name} has no reason above it"
        name = canonicalize_name(req.name)
        assert name in pins, f"{constraints.name} bounds {name}, which {LOCK.name} does not hold"
        for version in pins[name]:
            assert req.specifier.contains(version), (
                f"{LOCK.name} pins {name}=={version}, outside {req}: run `make lock`"
            )
    lock_recipe = make_dry_run("lock", "VPY=python3")
    assert "--constraint requirements/lock_constraints.txt" in lock_recipe, lock_recipe


def test_torch_is_pinned_alike_in_the_lock_the_makefile_and_the_docs():
    pins = lock_pins()
    torch_pins = re.search(r"^TORCH_PINS := (.+)$", MAKEFILE.read_text(), re.M).group(1).split()
    assert [f"{name}=={version}" for name in ("torch", "torchvision") for version in pins[name]] == torch_pins
    for doc in PINNED_DOCS:
        found = re.findall(r"\b(torch|torchvision)==([\w.+]+)", (ROOT / doc).read_text())
        assert {"torch", "torchvision"} <= {name for name, _ in found}, f"{doc} names no PyTorch pins"
        for name, version in found:
            assert {version} == pins[name], f"{doc} says {name}=={version}, the lock {pins[name]}"


def test_environment_yml_installs_from_the_lock_with_its_pins_and_nodejs(metadata):
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert any(re.fullmatch(r"nodejs([<>=].*)?", d.replace(" ", "")) for d in conda), conda
    assert "-c requirements/lock.txt" in pip
    pins = lock_pins()
    exact = [p.split("==") for p in pip if "==" in p]
    assert exact and all(pins[canonicalize_name(name)] == {version} for name, version in exact), exact
    python = next(d for d in conda if d.startswith("python=")).removeprefix("python=")
    assert SpecifierSet(metadata.metadata["Requires-Python"]).contains(python + ".0"), python
    locked_for = re.search(r"Python >= ([\d.]+)", LOCK.read_text().splitlines()[1]).group(1)
    assert Version(locked_for) <= Version(python), f"environment.yml has Python {python}, the lock {locked_for} on"


# ---- the Makefile's set-up ---------------------------------------------------------------------------------


@needs_make
@pytest.mark.parametrize(
    ("installer", "install"),
    [
        ("uv", r"bin/python requirements/uv_install\.py"),
        ("pip", r"bin/python -m pip install --disable-pip-version-check"),
    ],
)
def test_the_setup_installs_from_the_lock_and_adds_the_paper_extra_where_needed(tmp_path, installer, install):
    venv = str(tmp_path / "venv")  # a venv that does not exist: make shows every step of its set-up
    book = make_dry_run("setup", f"VENV={venv}", f"INSTALLER={installer}")
    assert re.search(rf"{install} -c requirements/lock\.txt -e '\.\[book,test,cluster\]'", book), book
    assert re.search(rf"{install} --no-deps torchattacks==", book), book
    assert ("'uv==" in book) == (installer == "uv"), "uv is installed into the venv only to install with it"
    assert "[paper]" not in book
    paper = make_dry_run("setup", "PROFILE=paper", f"VENV={venv}", f"INSTALLER={installer}")
    assert re.search(rf"{install} -c requirements/lock\.txt -e '\.\[paper\]'", paper), paper
    prerequisites = re.search(r"^test: (.*)$", MAKEFILE.read_text(), re.M).group(1)
    assert "$(PAPER_STAMP)" in prerequisites.split()  # the tests load RobustBench models


@needs_make
def test_an_unknown_installer_is_refused_before_anything_runs(tmp_path):
    out = make("-n", "setup", f"VENV={tmp_path / 'venv'}", "INSTALLER=conda")
    assert out.returncode != 0 and out.stdout == ""
    assert "INSTALLER=conda is neither uv nor pip" in out.stderr and "INSTALLER=pip" in out.stderr


def _uv_install():
    spec = importlib.util.spec_from_file_location("uv_install", ROOT / "requirements" / "uv_install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_uv_is_handed_the_index_settings_pip_obeys():
    uv_install = _uv_install()
    listing = "\n".join(
        [
            ":env:.find-links='/opt/wheels'",
            ":env:.default-timeout='180'",
            "global.find-links='/ignored/by/pip/too'",  # PIP_FIND_LINKS wins over the file, as in pip
            "global.extra-index-url='file:///a/simple https://b.example/simple'",
            "global.index-url='https://global.example/simple'",
            "install.index-url='https://install.example/simple'",  # [install] wins over [global]
            "global.constraint='/etc/pins.txt'",
            "global.cert='/etc/ca.pem'",
            "global.no-index='false'",
            "user.bogus='a line pip config list does not write'",
        ]
    )
    settings = uv_install.pip_settings(listing)
    assert settings["find-links"] == "/opt/wheels" and settings["index-url"] == "https://install.example/simple"
    args, env = uv_install.uv_arguments(settings)
    assert args == [
        "--index-strategy",
        "unsafe-best-match",
        "--index-url",
        "https://install.example/simple",
        "--extra-index-url",
        "file:///a/simple",
        "--extra-index-url",
        "https://b.example/simple",
        "--find-links",
        "/opt/wheels",
        "--constraint",
        "/etc/pins.txt",
    ]
    assert env == {"SSL_CERT_FILE": "/etc/ca.pem", "UV_HTTP_TIMEOUT": "180"}
    no_index, _ = uv_install.uv_arguments(uv_install.pip_settings(":env:.no-index='1'\nglobal.find-links='/w'"))
    assert no_index == ["--index-strategy", "unsafe-best-match", "--find-links", "/w", "--no-index"]
    assert uv_install.uv_arguments({}) == (["--index-strategy", "unsafe-best-match"], {})


@needs_make
def test_the_active_environment_is_checked_not_installed_into(tmp_path):
    for args in (["USE_ACTIVE_ENV=1"], ["VENV="]):
        commands = make_dry_run("setup", *args, f"PYTHON={sys.executable}", f"ENV_DIR={tmp_path}")
        assert "pip install" not in commands and "-m venv" not in commands, commands
    ok = make("setup", "USE_ACTIVE_ENV=1", f"PYTHON={sys.executable}", f"ENV_DIR={tmp_path}")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / ".advlogits-setup.stamp").read_text().startswith(sys.executable + "\n")


@needs_make
def test_an_active_environment_without_the_project_is_refused_with_the_command_to_fix_it(tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    out = make("setup", "USE_ACTIVE_ENV=1", f"PYTHON={bare}/bin/python", f"ENV_DIR={tmp_path}")
    assert out.returncode != 0
    assert "advlogits is not installed" in out.stderr
    assert "pip install -c requirements/lock.txt -e '.[book]'" in out.stderr


# ---- the paper extra missing -------------------------------------------------------------------------------


@pytest.fixture
def robustbench_unimported():
    """RobustBench's modules out of sys.modules during the test (imported afresh), put back afterwards."""

    def ours(name: str) -> bool:
        return name == "robustbench" or name.startswith("robustbench.")

    saved = {name: module for name, module in sys.modules.items() if ours(name)}
    for name in saved:
        del sys.modules[name]
    yield
    for name in [name for name in sys.modules if ours(name)]:  # what a failed import left half-done
        del sys.modules[name]
    sys.modules.update(saved)


@pytest.mark.parametrize("missing", ["robustbench", "pkg_resources"])  # RobustBench, or a package it imports
def test_robustbench_missing_names_the_paper_extra(monkeypatch, robustbench_unimported, missing):
    with monkeypatch.context() as patch:  # undone here, before robustbench_unimported puts RobustBench back
        patch.setitem(sys.modules, missing, None)  # `import` of it now fails as if it were not installed
        with pytest.raises(
            ModuleNotFoundError,
            match=r"the paper profile needs RobustBench \(the project's "
            r"\[paper\] extra\).* pip install -e '\.\[paper\]'",
        ):
            import_robustbench_utils()
        with pytest.raises(ModuleNotFoundError, match=r"\[paper\]"):
            models.robustbench_zoo_entry("Ding2020MMA")


def _has_distribution(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_a_robustbench_package_of_another_distribution_is_not_the_paper_extra(monkeypatch):
    """torchattacks ships a robustbench/ package of its own: importable, but not RobustBench. The check reads the
    installed distributions, so it refuses that package with the command that installs the extra."""
    from advlogits import _compat

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(_compat.importlib.metadata, "version", missing)
    with pytest.raises(ModuleNotFoundError, match=r"needs RobustBench \(the project's \[paper\] extra\).*\.\[paper\]"):
        _compat.import_robustbench_utils()


def test_robustbench_imports_after_a_failed_plain_import_of_it():
    """`import robustbench` without the autoattack alias fails half-way (pytest.importorskip does that); the
    library's import must still hand back a working robustbench.utils afterwards, in the same process."""
    if not _has_distribution("robustbench"):
        pytest.skip("the paper extra is not installed: pip install -e '.[paper]'")
    code = (
        "import sys\n"
        "sys.modules['autoattack'] = None  # as where only pyautoattack is installed\n"
        "try:\n"
        "    import robustbench\n"
        "except ModuleNotFoundError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('robustbench imported without autoattack: the test proves nothing')\n"
        "del sys.modules['autoattack']\n"
        "from advlogits._compat import import_robustbench_utils\n"
        "print(import_robustbench_utils().load_model.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("load_model")
