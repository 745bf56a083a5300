"""The embedded text corpus: built from the standard library's pydoc pages, deterministic,
cached atomically under S4TF_CACHE_DIR, replaceable by the user's own text."""
from __future__ import annotations

import os
import re
import sys

import pytest

import s4tf_py.data.corpus as corpus
from s4tf_py.data import DataFormatError, STDLIB_CORPUS_MODULES, text_corpus

SMALL = ["os", "json", "collections", "textwrap"]


def test_module_list_is_fixed_and_sorted():
    assert list(STDLIB_CORPUS_MODULES) == sorted(set(STDLIB_CORPUS_MODULES))
    assert len(STDLIB_CORPUS_MODULES) > 100


def test_the_default_corpus_is_several_mb_of_real_text_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("S4TF_CACHE_DIR", str(tmp_path))
    text = text_corpus()
    assert len(text.encode("utf-8")) > 2_500_000
    for phrase in ("Return a new", "json", "class OrderedDict", "If the optional"):
        assert phrase in text
    words = re.findall(r"[a-z]+", text)
    assert len(set(words)) > 5_000                         # real, varied English and code
    assert text.count("NAME\n") >= len(STDLIB_CORPUS_MODULES) - 3
    path = corpus.corpus_cache_path()
    assert path.parent == tmp_path / "data" and path.is_file()
    assert path.read_bytes() == text.encode("utf-8")
    assert [p.name for p in path.parent.iterdir()] == [path.name]    # no temporary files left

    def no_build(*a, **k):
        raise AssertionError("the second call must read the cache, not build")
    monkeypatch.setattr(corpus, "build_stdlib_corpus", no_build)
    assert text_corpus() == text


def test_same_bytes_whatever_the_callers_state(tmp_path, monkeypatch):
    monkeypatch.setenv("S4TF_CACHE_DIR", str(tmp_path / "one"))
    monkeypatch.setenv("S4TF_PROBE_SECRET", "do-not-leak-7f3a")
    monkeypatch.setenv("PYTHONHASHSEED", "12345")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "json.py").write_text("raise SystemExit('shadowed')\n")   # cwd must not shadow
    first = text_corpus(modules=SMALL)
    monkeypatch.setenv("S4TF_CACHE_DIR", str(tmp_path / "two"))
    monkeypatch.setenv("PYTHONHASHSEED", "999")
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    second = text_corpus(modules=list(reversed(SMALL)))       # order given does not matter
    assert first == second and len(first) > 50_000
    assert "do-not-leak-7f3a" not in first                     # os.environ is not rendered
    for machine_specific in (sys.prefix, sys.base_prefix, os.path.expanduser("~"),
                             str(tmp_path)):
        assert machine_specific not in first
    assert not re.search(r"at 0x[0-9a-f]{6,}", first)         # no memory addresses
    assert not re.search(r"^(FILE|DATA|MODULE REFERENCE)$", first, flags=re.M)
    assert "NAME\n    json\n\nDESCRIPTION\n    JSON (JavaScript Object Notation)" in first


def test_cache_can_be_disabled_and_user_text_replaces_the_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("S4TF_CACHE_DIR", "")
    assert corpus.corpus_cache_path(["bisect"]) is None
    assert text_corpus(modules=["bisect"]).startswith("NAME\n    bisect")
    own = tmp_path / "mine"
    own.mkdir()
    (own / "a.txt").write_text("my own text\n", encoding="utf-8")
    assert text_corpus(own) == "my own text\n"
    assert text_corpus(own / "a.txt") == "my own text\n"
    with pytest.raises(DataFormatError, match="no such file or folder"):
        text_corpus(tmp_path / "missing")
    with pytest.raises(ValueError, match="module names"):
        text_corpus(modules=["os; rm -rf /"])
    with pytest.raises(ValueError, match="not both"):
        text_corpus(own, modules=["os"])


def test_a_damaged_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("S4TF_CACHE_DIR", str(tmp_path))
    path = corpus.corpus_cache_path(["bisect"])
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xfe broken")
    text = text_corpus(modules=["bisect"])
    assert text.startswith("NAME\n    bisect") and path.read_bytes() == text.encode("utf-8")
