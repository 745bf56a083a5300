"""Renders the text corpus in a fresh interpreter (run by :mod:`s4tf_py.data.corpus`).

``python -S -s _pydoc_worker.py MODULE...`` writes, as UTF-8 on stdout, the pydoc plain-text
documentation of each module, in the order given, with the parts that depend on the machine
rather than on Python removed: the sections DATA (values, such as ``os.environ``), FILE (the
install path), MODULE REFERENCE (a URL), PACKAGE CONTENTS and SUBMODULES (what happens to be
on disk or imported), memory addresses (``at 0x7f...``) and trailing spaces. A module that
cannot be imported (a build without ``sqlite3``, say) is left out; its name goes to stderr.

It runs as a script in its own process so that nothing the caller has imported, patched or
set in the environment can change the result; it imports nothing from s4tf_py.
"""
import sys

#: sections of pydoc's module page that are left out, and why (see the module docstring)
DROPPED_SECTIONS = frozenset({"DATA", "FILE", "MODULE REFERENCE", "PACKAGE CONTENTS",
                              "SUBMODULES"})


def clean(page: str) -> str:
    """Drop the machine-dependent sections of one pydoc page and normalize it."""
    import re
    out = []
    keep = True
    for line in page.split("\n"):
        if line and not line[0].isspace():          # a section heading (bodies are indented)
            keep = line.strip() not in DROPPED_SECTIONS
        if keep:
            out.append(line.rstrip())
    text = "\n".join(out).strip("\n")
    text = re.sub(r"\bat 0x[0-9a-fA-F]+", "at 0x...", text)
    return re.sub(r"\n{3,}", "\n\n", text) + "\n"


def render(names):
    """The cleaned pages of the importable modules in ``names``, and the names left out."""
    import importlib
    import pydoc
    import warnings
    pages, missing = [], []
    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                module = importlib.import_module(name)
            except Exception:  # noqa: BLE001 - ImportError, or a module that fails on import
                missing.append(name)
                continue
            pages.append(clean(pydoc.plaintext.document(module)))
    return pages, missing


def main(argv):
    pages, missing = render(argv)
    for name in missing:
        print(f"left out (cannot import): {name}", file=sys.stderr)
    sys.stdout.buffer.write("\n".join(pages).encode("utf-8"))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    import os                # already loaded by the interpreter's startup, from the stdlib
    _here = os.path.dirname(os.path.abspath(__file__))
    # this folder's files (text.py, errors.py, ...) must not shadow the standard library
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    sys.exit(main(sys.argv[1:]))
