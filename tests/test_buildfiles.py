"""advlogits.buildfiles: the build's files on disk. The chapters write their claims into the folder of their run and
the scorecard gathers them in claim order; only the build writes into its own folder, a hand run into one of its
own (byte-identical build files, one printed line); claims of runs with different parameters are not gathered into
one scorecard; the folders of the build, the hand runs and the record, and the papermill call of a chapter.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from advlogits import buildfiles
from advlogits.chapters import claims, verdicts
from advlogits.chapters.claims import CLAIMS
from advlogits.paths import EXECUTED
from advlogits.profiles import resolve

ROOT = Path(__file__).resolve().parents[1]
REPRODUCED = verdicts.outcome("reproduced", (1.0, 0.5, 1.5), 0.0, n_seeds=1, n_images=10)
NOT_REPRODUCED = verdicts.outcome("not reproduced", (-1.0, -1.5, -0.5), 0.0, n_seeds=1, n_images=10)


@pytest.fixture()
def executed(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLOGITS_EXECUTED_DIR", str(tmp_path / "cpu"))
    return tmp_path / "cpu"


def test_chapters_write_and_the_scorecard_gathers_in_claim_order(executed):
    path = buildfiles.write_claims("cpu", "03_sample_confidence", [claims.record("C4", NOT_REPRODUCED, measured={})])
    assert path == executed / "claims" / "03_sample_confidence.json" == buildfiles.claims_dir("cpu") / path.name
    c1 = claims.record("C1", REPRODUCED, measured={"d": -0.5})
    buildfiles.write_claims("cpu", "02_logit_distributions", [claims.record("C2", REPRODUCED, measured={}), c1])
    assert json.loads((executed / "claims" / "02_logit_distributions.json").read_text())[1] == {
        **c1,
        "chapter": "02_logit_distributions",
    }
    gathered = buildfiles.gather("cpu")
    assert [(r["id"], r["chapter"]) for r in gathered] == [
        ("C1", "02_logit_distributions"),
        ("C2", "02_logit_distributions"),
        ("C4", "03_sample_confidence"),
    ]
    path = buildfiles.write_scorecard("cpu")
    card = json.loads(path.read_text())
    assert path == executed / "scorecard.json"
    assert card == gathered  # the round trip keeps every field
    assert [r["id"] for r in card] == ["C1", "C2", "C4"]
    assert card[2]["chapter"] == "03_sample_confidence" and card[2]["holds"] is False
    assert card[0]["measured"] == {"d": -0.5} and card[0]["claim"] == CLAIMS["C1"].claim
    # a chapter that runs again replaces its records, it does not add to them
    buildfiles.write_claims(
        "cpu",
        "03_sample_confidence",
        [claims.record("C4", REPRODUCED, measured={}), claims.record("C5", NOT_REPRODUCED, measured={})],
    )
    card = json.loads(buildfiles.write_scorecard("cpu").read_text())
    assert [(r["id"], r["holds"]) for r in card] == [("C1", True), ("C2", True), ("C4", True), ("C5", False)]
    assert sorted(p.name for p in executed.rglob("*") if p.is_file()) == [
        "02_logit_distributions.json",
        "03_sample_confidence.json",
        "scorecard.json",
    ]  # no temporary files left


def test_gather_without_claims_is_empty(executed):
    assert buildfiles.gather("cpu") == []
    assert json.loads(buildfiles.write_scorecard("cpu").read_text()) == []


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    """A copy of the repository's layout (``_toc.yml``, ``chapters/``) as the working directory's parent, and no
    build variable: a chapter run by hand, as papermill or Jupyter run it from ``chapters/``."""
    monkeypatch.delenv(EXECUTED, raising=False)
    (tmp_path / "_toc.yml").write_text("root: x\n")
    (tmp_path / "chapters").mkdir()
    monkeypatch.chdir(tmp_path / "chapters")
    return tmp_path


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_only_the_build_writes_into_the_build_folder_a_hand_run_has_its_own(repo, monkeypatch):
    assert buildfiles.run_dir("smoke") == repo / "_build" / "hand-runs" / "smoke"
    assert buildfiles.claims_dir("smoke") == repo / "_build" / "hand-runs" / "smoke" / "claims"
    assert not buildfiles.is_build()
    monkeypatch.setenv("ADVLOGITS_EXECUTED_DIR", str(repo / "_build" / "executed" / "smoke"))
    assert buildfiles.is_build() and buildfiles.run_dir("smoke") == repo / "_build" / "executed" / "smoke"
    monkeypatch.setenv("ADVLOGITS_EXECUTED_DIR", "")  # empty is unset
    assert buildfiles.run_dir("smoke") == repo / "_build" / "hand-runs" / "smoke"


def test_a_hand_run_leaves_the_build_claims_and_scorecard_byte_identical(repo, monkeypatch, capsys):
    build = repo / "_build" / "executed" / "smoke"
    with monkeypatch.context() as build_env:  # the build: its folder, and no line on its pages
        build_env.setenv("ADVLOGITS_EXECUTED_DIR", str(build))
        assert (
            buildfiles.write_claims(
                "smoke", "02_logit_distributions", [claims.record("C1", REPRODUCED, measured={"eps": 0.1})]
            )
            == build / "claims" / "02_logit_distributions.json"
        )
        buildfiles.write_claims("smoke", "03_sample_confidence", [claims.record("C4", REPRODUCED, measured={})])
        assert buildfiles.write_scorecard("smoke") == build / "scorecard.json"
    assert capsys.readouterr().out == ""
    before = _files(build)
    assert sorted(before) == [
        "claims/02_logit_distributions.json",
        "claims/03_sample_confidence.json",
        "scorecard.json",
    ]

    # the same chapter by hand with other parameters (another eps: other numbers, another verdict), then the
    # scorecard by hand
    hand = repo / "_build" / "hand-runs" / "smoke"
    path = buildfiles.write_claims(
        "smoke", "02_logit_distributions", [claims.record("C1", NOT_REPRODUCED, measured={"eps": 0.2})]
    )
    card = buildfiles.write_scorecard("smoke")
    assert _files(build) == before, "a hand run changed the build's claims"
    assert (path, card) == (hand / "claims" / "02_logit_distributions.json", hand / "scorecard.json")
    assert [(r["id"], r["verdict"], r["measured"]) for r in json.loads(card.read_text())] == [
        ("C1", "not reproduced", {"eps": 0.2})
    ], "the hand-run scorecard gathers the hand-run claims only"
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines  # one line per write
    assert lines[0] == (
        f"hand run: this chapter's claims are in {hand / 'claims'}/ (the build's claims, in "
        "_build/executed/smoke/, are untouched)"
    )
    assert lines[1].startswith(f"hand run: the scorecard of the claims in {hand / 'claims'}/ is {card} ")


@pytest.mark.slow
def test_the_scorecard_chapter_run_by_hand_writes_beside_the_build(repo, tmp_path):
    """papermill on the scorecard chapter with another parameter and no build variable, in a copy of the repository
    layout: the build's files stay byte-identical, the hand-run scorecard gathers the hand-run claims, and the
    executed notebook shows the one line naming the hand-run folder."""
    (repo / "chapters" / "05_scorecard.ipynb").write_bytes((ROOT / "chapters" / "05_scorecard.ipynb").read_bytes())
    build, hand = repo / "_build" / "executed" / "smoke", repo / "_build" / "hand-runs" / "smoke"
    for folder, decided in ((build, REPRODUCED), (hand, NOT_REPRODUCED)):
        (folder / "claims").mkdir(parents=True)
        (folder / "claims" / "04_distillation.json").write_text(
            json.dumps([{**claims.record("C6", decided, measured={}), "chapter": "04_distillation"}])
        )
    (build / "scorecard.json").write_text((build / "claims" / "04_distillation.json").read_text())
    before = _files(build)
    env = {k: v for k, v in os.environ.items() if k != EXECUTED}
    env |= {"ADVLOGITS_HOME": str(tmp_path / "store"), "JUPYTER_PREFER_ENV_PATH": "1"}
    out = tmp_path / "_build" / "05_scorecard.ipynb"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(repo / "chapters" / "05_scorecard.ipynb"),
            str(out),
            "-k",
            "python3",
            "--cwd",
            str(repo / "chapters"),
            "-p",
            "profile",
            "smoke",
            "-p",
            "eps",
            "0.2",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _files(build) == before, "a hand run changed the build's claims or scorecard"
    card = json.loads((hand / "scorecard.json").read_text())
    assert [(r["id"], r["verdict"]) for r in card] == [("C6", "not reproduced")]
    printed = [
        line
        for cell in nbformat.read(out, as_version=4).cells
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream"
        for line in o["text"].splitlines()
        if line.startswith("hand run:")
    ]
    assert printed == [
        f"hand run: the scorecard of the claims in {hand / 'claims'}/ is {hand / 'scorecard.json'} "
        "(the build's claims, in _build/executed/smoke/, are untouched)"
    ]


def test_claims_record_their_parameters_and_the_scorecard_refuses_a_mix(executed):
    record = {"id": "C1", "verdict": "reproduced"}
    buildfiles.write_claims(resolve("smoke", device="cpu"), "02_logit_distributions", [record])
    written = json.loads((executed / "claims" / "02_logit_distributions.json").read_text())
    assert written[0]["parameters"]["eps"] == resolve("smoke").eps
    assert buildfiles.gather("smoke")[0]["id"] == "C1"
    buildfiles.write_claims(resolve("smoke", device="cpu", eps=0.15), "04_distillation", [dict(record, id="C6")])
    with pytest.raises(
        ValueError,
        match=r"^claims must come from chapters run with the same parameters \(got 02_logit_distributions and "
        r"04_distillation, which differ in alpha, eps, eval_alpha\); run 04_distillation again .* "
        r"or remove .*04_distillation",
    ):
        buildfiles.gather("smoke")
    on_a_gpu = dataclasses.replace(resolve("smoke", device="cpu"), device="cuda")
    buildfiles.write_claims(on_a_gpu, "04_distillation", [dict(record, id="C6")])
    assert [r["id"] for r in buildfiles.gather("smoke")] == ["C1", "C6"], "the device is no parameter of a claim"


def test_the_build_the_hand_runs_and_the_record_each_have_one_folder(repo, monkeypatch):
    assert buildfiles.build_dir("cpu") == repo / "_build" / "executed" / "cpu"
    assert buildfiles.hand_run_dir("cpu") == repo / "_build" / "hand-runs" / "cpu"
    assert buildfiles.build_dir("cpu", root="/r") == Path("/r/_build/executed/cpu")
    assert buildfiles.record_dir("cpu", "/r") == Path("/r/results/cpu")
    assert buildfiles.claims_path("/r/x", "02_a") == Path("/r/x/claims/02_a.json")
    monkeypatch.setenv(EXECUTED, "elsewhere")  # the build says where, relative to the repository
    assert buildfiles.build_dir("cpu") == buildfiles.build_dir("smoke", root="/r") == repo / "elsewhere"
    assert buildfiles.hand_run_dir("cpu") == repo / "_build" / "hand-runs" / "cpu", "the build's alone"


def test_the_papermill_call_of_a_chapter():
    cmd = buildfiles.papermill_command(
        "/r", "04_distillation", "/out", {"profile": "smoke", "seed": 3, "overrides": {"n_eval": "64"}}, flags=("-q",)
    )
    assert cmd == [
        sys.executable,
        "-m",
        "papermill",
        "/r/chapters/04_distillation.ipynb",
        "/out/04_distillation.ipynb",
        "-k",
        "python3",
        "--engine",
        buildfiles.PAPERMILL_ENGINE,
        "--cwd",
        "/r/chapters",
        "-q",
        "-p",
        "profile",
        "smoke",
        "-p",
        "seed",
        "3",
        "-y",
        '{"overrides": {"n_eval": "64"}}',
    ]
