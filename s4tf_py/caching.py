"""Where s4tf_py keeps what it builds once and reuses (compiled kernels, the text corpus,
tokenized data): ``S4TF_CACHE_DIR``, by default ``$XDG_CACHE_HOME/s4tf_py`` (or
``~/.cache/s4tf_py``); ``S4TF_CACHE_DIR=""`` turns every cache off.

>>> import os, s4tf_py.caching as caching
>>> os.environ["S4TF_CACHE_DIR"] = "/tmp/s4tf-example"
>>> caching.cache_root()
'/tmp/s4tf-example'
>>> del os.environ["S4TF_CACHE_DIR"]
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path


def cache_root() -> str | None:
    """The cache directory, or None when caching is disabled (``S4TF_CACHE_DIR=""``)."""
    d = os.environ.get("S4TF_CACHE_DIR")
    if d is None:
        d = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                         "s4tf_py")
    return d or None


def atomic_write_bytes(path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees a partial file: a temporary file
    in the same folder, flushed to disk (``durable``: fsync'd, so that a crash right after
    cannot leave a renamed but empty file), then renamed over ``path`` (several processes may
    race; the last rename wins and each reader sees one whole file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)                    # mkstemp's 0600 is for the temporary name only
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


_code_digest: list = []


def code_digest() -> str:
    """A digest of s4tf_py's installed source files (their paths, sizes and modification
    times; computed once per process): part of the key of every cache entry that the library's
    own code produced, so an edited or upgraded s4tf_py never reads an older one's entries."""
    if not _code_digest:
        from . import __version__
        here = os.path.dirname(os.path.abspath(__file__))
        h = hashlib.sha256(__version__.encode())
        stack = [here]
        while stack:
            with os.scandir(stack.pop()) as it:
                for entry in sorted(it, key=lambda e: e.name):
                    if entry.is_dir() and entry.name != "__pycache__":
                        stack.append(entry.path)
                    elif entry.name.endswith(".py"):
                        st = entry.stat()
                        h.update(f"{entry.path}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        _code_digest.append(h.hexdigest())
    return _code_digest[0]


def load_entry(kind: str, key: str, loads):
    """``loads(bytes)`` of the entry ``key`` under ``<cache root>/<kind>/``, or None when caching
    is off, there is no such entry, or it cannot be read back (a damaged entry is ignored and
    will be written again)."""
    root = cache_root()
    if not root:
        return None
    path = Path(root, kind, key)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        return loads(data)
    except Exception as e:  # noqa: BLE001 - any damage means: build it again
        warnings.warn(f"s4tf_py: ignoring an unreadable cache entry {path} ({e})", RuntimeWarning,
                      stacklevel=2)
        return None


def store_entry(kind: str, key: str, data: bytes) -> None:
    """Write ``data`` as entry ``key`` under ``<cache root>/<kind>/`` (atomically); a cache that
    cannot be written is a warning, not an error."""
    root = cache_root()
    if not root:
        return
    try:
        # not fsync'd: an entry a crash damaged fails to load and is rebuilt (load_entry)
        atomic_write_bytes(Path(root, kind, key), data, durable=False)
    except OSError as e:
        warnings.warn(f"s4tf_py: could not write the cache at {root} ({e})", RuntimeWarning,
                      stacklevel=2)
