"""Every chapter has exercises, each with a hidden solution whose code runs with the chapter and checks itself.

The convention (sphinx-exercise's directives in MyST markdown cells, gated so that the solution holds real code
cells that papermill executes with the chapter):

- an ``## Exercises`` section, the chapter's last;
- each exercise is an ``{exercise}`` directive whose title ends with its difficulty, ``(basic)``,
  ``(intermediate)`` or ``(advanced)``, with a ``:label:`` unique in the book, e.g. ``ex-logits-l2``;
- after it, its solution: a markdown cell opening ``{solution-start} <label>`` with ``:class: dropdown``
  (hidden until the reader opens it), one or more code cells tagged ``solution`` (cell metadata tags), and a
  markdown cell with ``{solution-end}`` (the explanation may precede it in that cell);
- every solution code cell ends with ``assert`` statements that check its answer, so that a wrong solution fails
  the book's build (``make test`` executes every chapter, solutions included, at the smoke profile).

Directive options are read in the ``:key: value`` form (not a YAML block).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
TAG = "solution"

# An opening fence (backticks, tildes or colons, 3 or more) naming a sphinx-exercise directive, and its argument.
DIRECTIVE = re.compile(
    r"^(?P<fence>`{3,}|~{3,}|:{3,})\{(?P<name>exercise|solution|solution-start|solution-end|"
    r"exercise-start|exercise-end)\}[ \t]*(?P<argument>.*?)[ \t]*$"
)
LEVELS = ("(basic)", "(intermediate)", "(advanced)")
OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>.*?)[ \t]*$")


@dataclass
class Event:
    """A directive or a code cell, in notebook order."""

    kind: str  # a directive name, or "code"
    cell: int  # index of the notebook cell
    argument: str = ""
    options: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    source: str = ""


def directives(markdown: str) -> list[tuple[str, str, dict[str, str]]]:
    """The sphinx-exercise directives of a MyST markdown text: (name, argument, options), in order."""
    out, lines = [], markdown.splitlines()
    for i, line in enumerate(lines):
        match = DIRECTIVE.match(line.strip())
        if not match:
            continue
        options = {}
        for option in lines[i + 1 :]:
            parsed = OPTION.match(option.strip())
            if not parsed:
                break
            options[parsed["key"]] = parsed["value"]
        out.append((match["name"], match["argument"], options))
    return out


def events(path: Path) -> list[Event]:
    nb = nbformat.read(path, as_version=4)
    out = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            out += [Event(name, index, argument, options) for name, argument, options in directives(cell.source)]
        elif cell.cell_type == "code":
            out.append(Event("code", index, tags=tuple(cell.metadata.get("tags", [])), source=cell.source))
    return out


def exercise_labels(path: Path) -> list[str]:
    return [e.options.get("label", "") for e in events(path) if e.kind == "exercise"]


def ends_with_assert(source: str) -> bool:
    """True when the cell's last top-level statement is an ``assert``."""
    body = ast.parse(source).body
    return bool(body) and isinstance(body[-1], ast.Assert)


def problems(path: Path) -> list[str]:
    """What breaks the convention in one chapter (empty when it is followed)."""
    found, seq = [], events(path)
    exercises = [e for e in seq if e.kind == "exercise"]
    if not exercises:
        return [f"{path.name} has no {{exercise}} directive: add an Exercises section (see this module's docstring)"]
    labels = [e.options.get("label", "") for e in exercises]
    found += [f"exercise in cell {e.cell} has no :label:" for e in exercises if not e.options.get("label")]
    found += [
        f"exercise {e.options.get('label', '')!r} has no difficulty: end its title with one of {LEVELS}"
        for e in exercises
        if not e.argument.endswith(LEVELS)
    ]
    found += [f"exercise label {label!r} is used twice" for label in {x for x in labels if labels.count(x) > 1}]
    starts = [e for e in seq if e.kind == "solution-start"]
    found += [
        f"solution-start in cell {s.cell} names {s.argument!r}, which is no exercise of this chapter"
        for s in starts
        if s.argument not in labels
    ]
    found += [
        f"a plain {{solution}} directive in cell {e.cell}: use the gated solution-start/solution-end pair, "
        "so that the solution's code is a notebook cell that runs"
        for e in seq
        if e.kind == "solution"
    ]
    for exercise in exercises:
        label = exercise.options.get("label", "")
        mine = [i for i, e in enumerate(seq) if e.kind == "solution-start" and e.argument == label]
        if len(mine) != 1:
            found.append(f"exercise {label!r} needs exactly one {{solution-start}} {label} (found {len(mine)})")
            continue
        i = mine[0]
        start = seq[i]
        if start.cell < exercise.cell or (start.cell == exercise.cell and i < seq.index(exercise)):
            found.append(f"the solution of {label!r} comes before its exercise")
        if "dropdown" not in start.options.get("class", "").split():
            found.append(f"the solution of {label!r} is not hidden: give its solution-start ':class: dropdown'")
        if "hidden" in start.options:
            found.append(f"the solution of {label!r} has :hidden:, which drops it from the book; use a dropdown")
        end = next((j for j in range(i + 1, len(seq)) if seq[j].kind in ("solution-end", "solution-start")), None)
        if end is None or seq[end].kind != "solution-end":
            found.append(f"the solution of {label!r} has no {{solution-end}} before the next solution")
            continue
        code = [e for e in seq[i + 1 : end] if e.kind == "code"]
        found += [
            f"code cell {c.cell} in the solution of {label!r} is not tagged {TAG!r}" for c in code if TAG not in c.tags
        ]
        tagged = [c for c in code if TAG in c.tags]
        if not tagged:
            found.append(f"the solution of {label!r} has no code cell tagged {TAG!r}")
        found += [
            f"solution cell {c.cell} of {label!r} does not end with assert statements checking its answer"
            for c in tagged
            if not ends_with_assert(c.source)
        ]
    inside = set()
    for i, e in enumerate(seq):
        if e.kind == "solution-start":
            end = next((j for j in range(i + 1, len(seq)) if seq[j].kind == "solution-end"), len(seq))
            inside |= {c.cell for c in seq[i + 1 : end] if c.kind == "code"}
    found += [
        f"code cell {e.cell} is tagged {TAG!r} but lies outside every solution"
        for e in seq
        if e.kind == "code" and TAG in e.tags and e.cell not in inside
    ]
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_has_exercises_with_hidden_self_checking_solutions(path):
    assert not problems(path), "\n".join(problems(path))


def test_exercise_labels_are_unique_across_the_book():
    labels = [label for path in CHAPTERS for label in exercise_labels(path)]
    assert len(labels) == len(set(labels)), sorted(x for x in labels if labels.count(x) > 1)


# The checker itself, on small notebooks built here.


def _notebook(tmp_path: Path, *cells: tuple[str, str, list[str]]) -> Path:
    nb = nbformat.v4.new_notebook()
    for kind, source, tags in cells:
        cell = nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, path)
    return path


GOOD = [
    ("md", "## Exercises\n\n````{exercise} Add two numbers (basic)\n:label: ex-a\n\nDo it.\n````", []),
    ("md", "````{solution-start} ex-a\n:class: dropdown\n````", []),
    ("code", "x = 1 + 1\nassert x == 2", ["solution"]),
    ("md", "Because.\n\n````{solution-end}\n````", []),
]


def test_checker_accepts_the_convention(tmp_path):
    assert problems(_notebook(tmp_path, *GOOD)) == []


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c[:0], "has no {exercise}"),
        (lambda c: [c[0], ("md", c[1][1].replace(":class: dropdown\n", ""), [])] + c[2:], "is not hidden"),
        (lambda c: c[:3], "no {solution-end}"),
        (lambda c: [c[0], c[1], ("code", "x = 2", ["solution"]), c[3]], "does not end with assert"),
        (lambda c: [c[0], c[1], ("code", "assert True", []), c[3]], "is not tagged"),
        (lambda c: [c[0], c[1], c[3]], "has no code cell tagged"),
        (lambda c: c + [("code", "assert True", ["solution"])], "outside every solution"),
        (lambda c: [c[0], ("md", c[1][1].replace("ex-a", "ex-b"), [])] + c[2:], "needs exactly one"),
        (lambda c: [("md", c[0][1].replace(" (basic)", ""), [])] + c[1:], "has no difficulty"),
    ],
)
def test_checker_flags_each_broken_rule(tmp_path, change, message):
    assert any(message in p for p in problems(_notebook(tmp_path, *change(list(GOOD))))), message
