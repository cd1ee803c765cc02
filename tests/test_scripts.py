"""The Makefile's programs in scripts/: the active environment's check, the staged book's configuration and the
kernelspec check, each read as a module from its file (scripts/ is not a package) and checked on made-up input."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
import yaml

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_active_environment_needs_the_core_requirements_and_those_of_the_extras_asked_for():
    check = script("check_active_env")
    requires = [
        "torch<3,>=2.1",
        "numpy>=1.24",
        'pytest>=7.4; extra == "test"',
        "ray[default]>=2.9; extra == 'cluster'",
        'robustbench; python_version >= "3.10" and extra == "paper"',
    ]
    assert check.needed(requires, {"book"}) == ["torch", "numpy"]
    assert check.needed(requires, {"test", "paper"}) == ["torch", "numpy", "pytest", "robustbench"]
    assert check.needed(requires, {"cluster"}) == ["torch", "numpy", "ray"]


def test_the_stamp_is_rewritten_only_when_what_it_records_changed(tmp_path):
    check = script("check_active_env")
    stamp = tmp_path / "env" / "stamp"
    check.write_if_changed(stamp, "python\ntorch==2.14.1\n")
    os.utime(stamp, (0, 0))
    check.write_if_changed(stamp, "python\ntorch==2.14.1\n")
    assert stamp.stat().st_mtime == 0, "the same content leaves the chapters up to date"
    check.write_if_changed(stamp, "python\ntorch==2.15.0\n")
    assert stamp.read_text() == "python\ntorch==2.15.0\n" and stamp.stat().st_mtime > 0
    assert [p.name for p in stamp.parent.iterdir()] == ["stamp"], "no temporary file is left"


def test_an_installed_project_from_another_checkout_is_named(tmp_path):
    check = script("check_active_env")
    problem = check.project_problem(tmp_path / "lib")  # this process imports advlogits from elsewhere
    assert problem is not None and problem.startswith("advlogits comes from ") and str(tmp_path / "lib") in problem
    assert check.project_problem(Path(importlib.util.find_spec("advlogits").origin).parents[1]) is None


def test_the_student_edition_and_the_repository_edit_the_staged_configuration(tmp_path):
    book = script("book_config")
    path = tmp_path / "_config.yml"
    path.write_text(yaml.safe_dump({"title": "Logits", "html": {"favicon": "f.png"}, "sphinx": {}}, sort_keys=False))
    assert book.main([str(path), "repository", "https://github.com/o/r", "dev"]) == 0
    assert book.main([str(path), "student"]) == 0
    config = yaml.safe_load(path.read_text())
    assert config["title"] == "Logits (student edition)"
    assert config["repository"] == {"url": "https://github.com/o/r", "branch": "dev", "path_to_book": ""}
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert config["html"] == {"favicon": "f.png", "use_repository_button": True}
    assert list(config) == ["title", "html", "sphinx", "repository", "launch_buttons"], "keys keep their order"


def test_a_repository_that_is_not_an_address_is_refused_in_one_line(tmp_path, capsys):
    book = script("book_config")
    path = tmp_path / "_config.yml"
    path.write_text("title: Logits\n")
    assert book.main([str(path), "repository", "github.com/o/r", "main"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "error: REPO_URL='github.com/o/r' is not an http(s) address; pass e.g. REPO_URL=https://github.com/OWNER/REPO"
    )
    assert path.read_text() == "title: Logits\n"


@pytest.mark.parametrize(
    ("found", "problem"),
    [
        ("/env/share/jupyter/kernels/python3", None),
        ("/home/me/.local/share/jupyter/kernels/python3", "the python3 kernelspec at /home/me/.local/share/jupyter/"),
        (None, "no python3 kernelspec is installed; run /env/bin/python -m ipykernel install --sys-prefix"),
    ],
)
def test_the_kernel_must_be_the_environments_own(found, problem):
    said = script("check_kernelspec").kernelspec_problem(found, "/env", "/env/bin/python")
    assert said == problem if problem is None else said.startswith(problem)
