"""`make publish`: the Makefile's own recipe pushes a site to the gh-pages branch of a repository, with .nojekyll.

The remote is a bare repository in a temporary folder and ghp-import runs in temporary clones of it
(PUBLISH_FROM), so this repository's branches are never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = {
    "GIT_AUTHOR_NAME": "advlogits tests",
    "GIT_AUTHOR_EMAIL": "tests@advlogits.invalid",
    "GIT_COMMITTER_NAME": "advlogits tests",
    "GIT_COMMITTER_EMAIL": "tests@advlogits.invalid",
}
# the make that runs `make test` must not pass its flags (jobserver, -n) to the make run here
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("MAKE")}, **NAME}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True, env=ENV).stdout


def publish(site: Path, remote: Path, clone: Path) -> subprocess.CompletedProcess:
    """`make publish` as a user runs it, with the venv running these tests."""
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(ROOT),
            "publish",
            f"VENV={sys.prefix}",
            f"PUBLISH_SITE={site}",
            f"PUBLISH_REMOTE={remote}",
            f"PUBLISH_FROM={clone}",
        ],
        capture_output=True,
        text=True,
        env=ENV,
    )


def site(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_publish_pushes_the_site_with_nojekyll_to_gh_pages_and_replaces_it_on_the_next_publish(tmp_path):
    branches = git("-C", str(ROOT), "for-each-ref", "refs/heads")
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote))
    first = site(tmp_path / "site1", {"index.html": "<p>one</p>", "chapters/a.html": "a", "_static/x.css": "x"})
    git("clone", "-q", str(remote), str(tmp_path / "clone1"))
    done = publish(first, remote, tmp_path / "clone1")
    assert done.returncode == 0, done.stdout + done.stderr
    files = git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "gh-pages").split()
    assert sorted(files) == [".nojekyll", "_static/x.css", "chapters/a.html", "index.html"]
    assert git("--git-dir", str(remote), "show", "gh-pages:index.html") == "<p>one</p>"
    assert "The book, built from commit " in git("--git-dir", str(remote), "log", "-1", "--format=%s", "gh-pages")

    # a second publish from a fresh clone replaces the site: pages that are gone from it are gone from the branch
    second = site(tmp_path / "site2", {"index.html": "<p>two</p>", "chapters/b.html": "b"})
    git("clone", "-q", str(remote), str(tmp_path / "clone2"))
    done = publish(second, remote, tmp_path / "clone2")
    assert done.returncode == 0, done.stdout + done.stderr
    files = git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "gh-pages").split()
    assert sorted(files) == [".nojekyll", "chapters/b.html", "index.html"]
    assert git("--git-dir", str(remote), "show", "gh-pages:index.html") == "<p>two</p>"
    assert git("-C", str(ROOT), "for-each-ref", "refs/heads") == branches  # this repository is untouched


def test_publish_without_a_built_site_names_the_build_command(tmp_path):
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote))
    done = publish(tmp_path / "no-site", remote, tmp_path)
    assert done.returncode != 0
    assert f"error: no site at {tmp_path / 'no-site'}/index.html: build it first with `make book`" in done.stderr
    assert "gh-pages" not in git("--git-dir", str(remote), "branch", "--list")
