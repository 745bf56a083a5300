"""Where the data package keeps what it builds (the text corpus), and atomic writes there."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir() -> Path | None:
    """``$S4TF_CACHE_DIR/data`` (default ``~/.cache/s4tf_py/data``), or None when caching is
    disabled with ``S4TF_CACHE_DIR=""``: the convention of the compile cache."""
    d = os.environ.get("S4TF_CACHE_DIR")
    if d is None:
        d = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                         "s4tf_py")
    return Path(d) / "data" if d else None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees a partial file: write a temporary
    file in the same folder, flush it to disk, then rename it over ``path``. Several processes
    may race; the last rename wins and each reader sees one whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
