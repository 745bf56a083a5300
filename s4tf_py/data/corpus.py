"""The embedded text corpus: Python's standard library documentation, as pydoc renders it.

No text data set can be downloaded where this project runs, but every Python installation
carries several MB of real English prose and code examples written by others: the docstrings of
its standard library. :func:`text_corpus` renders the pydoc plain-text pages of a fixed, sorted
list of standard-library modules (:data:`STDLIB_CORPUS_MODULES`, about 4 MB on CPython 3.11)
in a fresh interpreter (``python -S``, hash seed 0, nothing from the caller's environment that
could change the text), drops the parts that describe the machine rather than Python (see
:mod:`s4tf_py.data._pydoc_worker`), and caches the result under the user's cache folder
(``$S4TF_CACHE_DIR/data``, default ``~/.cache/s4tf_py/data``; ``S4TF_CACHE_DIR=""`` turns
caching off), written atomically. The same Python version gives the same bytes on every call
(the cache key holds the Python version, the module list and the renderer's source); later
calls read the cache. ``text_corpus(path)`` reads a user's UTF-8 file or folder instead.

>>> text = text_corpus(modules=["bisect"])
>>> text.splitlines()[:2]
['NAME', '    bisect - Bisection algorithms.']
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from . import _pydoc_worker
from ._cache import atomic_write_bytes, cache_dir
from .text import read_text

#: the standard-library modules whose documentation makes the default corpus (sorted; one a
#: given Python cannot import, such as sqlite3 on a build without it, is left out)
STDLIB_CORPUS_MODULES: tuple[str, ...] = (
    "abc", "argparse", "array", "ast", "asyncio", "base64", "bdb", "binascii", "bisect",
    "builtins", "bz2", "calendar", "cmath", "cmd", "code", "codecs", "codeop", "collections",
    "collections.abc", "colorsys", "concurrent.futures", "configparser", "contextlib",
    "contextvars", "copy", "copyreg", "csv", "dataclasses", "datetime", "decimal", "difflib",
    "dis", "doctest", "email", "email.message", "email.policy", "email.utils", "enum", "filecmp",
    "fileinput", "fnmatch", "fractions", "ftplib", "functools", "gc", "getopt", "gettext", "glob",
    "graphlib", "gzip", "hashlib", "heapq", "hmac", "html", "html.parser", "http", "http.client",
    "http.cookiejar", "http.cookies", "http.server", "imaplib", "importlib", "importlib.abc",
    "importlib.metadata", "importlib.resources", "inspect", "io", "ipaddress", "itertools",
    "json", "json.decoder", "json.encoder", "keyword", "linecache", "locale", "logging",
    "logging.handlers", "lzma", "mailbox", "marshal", "math", "mimetypes", "multiprocessing.pool",
    "numbers", "operator", "optparse", "os", "pathlib", "pdb", "pickle", "pickletools", "pkgutil",
    "plistlib", "poplib", "pprint", "profile", "pstats", "pydoc", "queue", "quopri", "random",
    "re", "reprlib", "runpy", "sched", "secrets", "selectors", "shelve", "shlex", "shutil",
    "signal", "smtplib", "socket", "socketserver", "sqlite3", "stat", "statistics", "string",
    "stringprep", "struct", "subprocess", "symtable", "tabnanny", "tarfile", "tempfile",
    "textwrap", "threading", "time", "timeit", "token", "tokenize", "trace", "traceback",
    "tracemalloc", "types", "typing", "unicodedata", "unittest", "unittest.mock", "urllib.error",
    "urllib.parse", "urllib.request", "urllib.robotparser", "uuid", "warnings", "wave", "weakref",
    "wsgiref.simple_server", "xml.dom.minidom", "xml.etree.ElementTree", "xml.sax",
    "xml.sax.handler", "xmlrpc.client", "zipapp", "zipfile", "zipimport", "zlib", "zoneinfo",
)

#: bump when the rendering changes in a way the worker's source hash would not show
CORPUS_FORMAT = 1

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


def _module_list(modules: Iterable[str] | None) -> list[str]:
    if modules is None:
        return list(STDLIB_CORPUS_MODULES)
    if isinstance(modules, str):
        raise TypeError("modules is a list of module names, not one string")
    names = sorted(set(modules))
    bad = [m for m in names if not isinstance(m, str) or not _NAME.match(m)]
    if bad or not names:
        raise ValueError(f"modules must be a non-empty list of dotted module names; got "
                         f"{bad or names}")
    return names


def _key(names: list[str]) -> str:
    worker = Path(_pydoc_worker.__file__).read_bytes()
    spec = {"format": CORPUS_FORMAT, "python": sys.version, "tag": sys.implementation.cache_tag,
            "platform": sys.platform, "modules": names,
            "worker": hashlib.sha256(worker).hexdigest()}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def corpus_cache_path(modules: Iterable[str] | None = None) -> Path | None:
    """Where :func:`text_corpus` caches the corpus of ``modules`` (None: caching is off,
    ``S4TF_CACHE_DIR=""``)."""
    d = cache_dir()
    return None if d is None else d / f"stdlib-corpus-{_key(_module_list(modules))}.txt"


def build_stdlib_corpus(modules: Iterable[str] | None = None) -> str:
    """Render the corpus now, in a fresh interpreter, without reading or writing the cache."""
    names = _module_list(modules)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONHASHSEED="0", PYTHONUTF8="1", PYTHONIOENCODING="utf-8", TZ="UTC")
    with tempfile.TemporaryDirectory(prefix="s4tf-corpus-") as cwd:
        proc = subprocess.run([sys.executable, "-S", "-s", _pydoc_worker.__file__, *names],
                              cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=900)
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode("utf-8", "replace")[-2000:]
        raise RuntimeError(f"building the text corpus failed (exit status {proc.returncode}):"
                           f"\n{err}")
    return proc.stdout.decode("utf-8")


def text_corpus(path: str | os.PathLike | None = None, *,
                modules: Iterable[str] | None = None, cache: bool = True) -> str:
    """The embedded text corpus (see the module docstring), or the text at ``path``.

    ``path``: a UTF-8 text file or a folder of them (:func:`~s4tf_py.data.read_text`), used
    instead of the standard library. ``modules``: render these modules instead of
    :data:`STDLIB_CORPUS_MODULES` (sorted first, so the order given does not matter).
    ``cache``: read and write the on-disk cache (built once per Python version).
    """
    if path is not None:
        if modules is not None:
            raise ValueError("give either path (your own text) or modules, not both")
        return read_text(path)
    target = corpus_cache_path(modules) if cache else None
    if target is not None:
        try:
            return target.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            pass                                    # not built yet (or damaged): build it
    text = build_stdlib_corpus(modules)
    if target is not None:
        try:
            atomic_write_bytes(target, text.encode("utf-8"))
        except OSError:
            pass                                    # a read-only cache folder: still usable
    return text
