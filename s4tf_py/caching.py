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

import os
import tempfile
from pathlib import Path


def cache_root() -> str | None:
    """The cache directory, or None when caching is disabled (``S4TF_CACHE_DIR=""``)."""
    d = os.environ.get("S4TF_CACHE_DIR")
    if d is None:
        d = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                         "s4tf_py")
    return d or None


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees a partial file: a temporary file
    in the same folder, flushed to disk, then renamed over ``path`` (several processes may
    race; the last rename wins and each reader sees one whole file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)                    # mkstemp's 0600 is for the temporary name only
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
