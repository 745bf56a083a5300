"""Where the data package keeps what it builds (the text corpus), and atomic writes there."""
from __future__ import annotations

from pathlib import Path

from ..caching import atomic_write_bytes, cache_root

__all__ = ["atomic_write_bytes", "cache_dir"]


def cache_dir() -> Path | None:
    """``<cache root>/data`` (see :mod:`s4tf_py.caching`), or None when caching is disabled
    with ``S4TF_CACHE_DIR=""``."""
    d = cache_root()
    return Path(d) / "data" if d else None
