"""Store keys follow the code that computes, not its prose: `advlogits.codekey` and the keyed modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from advlogits.codekey import code_text
from advlogits.pipeline import stored

KEYED = sorted({Path(m.__file__) for m in stored.MODEL_SOURCES + stored.RESULT_SOURCES}, key=str)


def test_prose_is_not_code():
    base = code_text('"""Doc."""\ndef f(x):\n    """Adds one."""\n    return x + 1\n')
    assert base == code_text("def f(x):\n    return x + 1  # one more\n"), "docstrings and comments"
    raising = 'def f(x):\n    if x < 0:\n        raise ValueError(f"x={x} is negative")\n    return x\n'
    assert code_text(raising) == code_text(raising.replace("is negative", "must be >= 0"))
    failing = 'def f(x):\n    check_int("x", x, at_least=0, hint="a count")\n    fail("x", "odd", x)\n    return x\n'
    assert code_text(failing) == code_text(failing.replace("a count", "how many").replace('"odd"', '"even"'))
    logging = 'def f(x):\n    log.info("got %s", x)\n    return g(x, desc="training")\n'
    assert code_text(logging) == code_text(logging.replace("got", "read").replace("training", "epochs"))


@pytest.mark.parametrize(
    ("source", "edited"),
    [
        ("def f(x):\n    return x + 1\n", "def f(x):\n    return x - 1\n"),
        ("def f(x):\n    return x * 0.5\n", "def f(x):\n    return x * 0.25\n"),
        ('def f(x):\n    return load(x, split="train")\n', 'def f(x):\n    return load(x, split="test")\n'),
        ("def f(x):\n    return g(x, hint=1)\n", "def f(x):\n    return g(x, hint=2)\n"),
    ],
)
def test_operations_are_code(source, edited):
    assert code_text(source) != code_text(edited)


def _edit_prose(source: str) -> str:
    """The module with a docstring, a comment and an error message edited (each must exist)."""
    first_doc = re.search(r'"""[A-Z]', source)
    assert first_doc, "a docstring to edit"
    edited = source[: first_doc.end() - 1] + "Edited. " + source[first_doc.end() - 1 :]
    edited = edited.replace("\n# ", "\n# edited: ", 1)
    message = re.search(r'fail\(\s*"[^"]+",\s*"', edited) or re.search(r'raise \w+\(\s*f?"', edited)
    if message is None:  # a module that raises nothing
        return edited
    return edited[: message.end()] + "edited: " + edited[message.end() :]


@pytest.mark.parametrize("path", KEYED, ids=lambda p: p.stem)
def test_editing_prose_in_a_keyed_module_keeps_its_key(path):
    source = path.read_text()
    edited = _edit_prose(source)
    assert edited != source
    assert code_text(edited) == code_text(source)


@pytest.mark.parametrize("path", KEYED, ids=lambda p: p.stem)
def test_editing_an_operation_in_a_keyed_module_changes_its_key(path):
    source = path.read_text()
    returned = next(n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Return) and n.value)
    lines = source.splitlines(keepends=True)
    line = lines[returned.lineno - 1]
    lines[returned.lineno - 1] = line[: returned.col_offset] + "-" + line[returned.col_offset :]  # negate it
    assert code_text("".join(lines)) != code_text(source)


def test_the_pass_counter_is_in_no_key():
    from advlogits import passes

    assert passes not in stored.MODEL_SOURCES + stored.RESULT_SOURCES
