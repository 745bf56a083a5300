"""The tutorial's code blocks run, and every module's docstring examples pass (doctest)."""
from __future__ import annotations

import doctest
import importlib
import pathlib
import pkgutil
import re

import pytest

import s4tf_py

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _blocks(path):
    text = path.read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_tutorial_code_blocks_run_in_order():
    blocks = _blocks(ROOT / "docs" / "tutorial.md")
    assert len(blocks) >= 8, "the tutorial lost its examples"
    namespace: dict = {"__name__": "tutorial"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"docs/tutorial.md[block {i}]", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the message is the point
            pytest.fail(f"tutorial block {i} failed: {type(e).__name__}: {e}\n{code}")


def test_readme_code_blocks_run_in_order():
    blocks = _blocks(ROOT / "README.md")
    assert len(blocks) >= 4, "the README lost its tour"
    namespace: dict = {"__name__": "readme"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"README.md[block {i}]", "exec"), namespace)


def _modules():
    for m in pkgutil.walk_packages(s4tf_py.__path__, "s4tf_py."):
        if m.name.endswith("__main__") or ".demo" in m.name or m.name.endswith(".cli"):
            continue
        yield m.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in finder.find(mod, name):
        runner.run(t)
    res = runner.summarize(verbose=False)
    assert res.failed == 0, f"{res.failed} docstring example(s) failed in {name}"
