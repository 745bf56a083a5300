"""Counters for tracing, caching, compiling and executing, per backend (S4TF's X10 metrics).

>>> import s4tf_py as s4
>>> m = s4.metrics()
>>> sorted(m)[:3]
['backends', 'buffer_donations', 'cache_hits']
"""
from __future__ import annotations

from collections import Counter, defaultdict

#: process-wide counters (``inplace_updates``, ``update_copies``, ``function_traces`` ...)
counters: Counter = Counter()
#: per-backend counters: traces, cache_hits, cache_misses, compile_seconds, execute_seconds
per_backend: defaultdict = defaultdict(Counter)

_KEYS = ("traces", "cache_hits", "cache_misses", "compile_seconds", "execute_seconds")


class Metrics(dict):
    """A snapshot of the counters; ``str()`` renders a table."""

    def __str__(self):
        lines = ["s4tf_py metrics"]
        for k in sorted(self):
            if k == "backends":
                continue
            lines.append(f"  {k:<22} {self[k]}")
        for b, c in sorted(self["backends"].items()):
            lines.append(f"  [{b}]")
            for k in _KEYS:
                v = c.get(k, 0)
                lines.append(f"    {k:<20} {v:.4f}" if isinstance(v, float) else f"    {k:<20} {v}")
        return "\n".join(lines)


def metrics() -> Metrics:
    """Traces, cache hits and misses, compile and execute seconds per backend, and more."""
    m = Metrics()
    for k in ("traces", "cache_hits", "cache_misses", "function_traces", "inplace_updates",
              "update_copies", "buffer_donations", "materializations", "optimized_from_disk"):
        m[k] = counters.get(k, 0)
    m["compile_seconds"] = sum(c.get("compile_seconds", 0.0) for c in per_backend.values())
    #: time spent running compiled functions' Python bodies to trace them
    m["trace_seconds"] = counters.get("trace_seconds", 0.0)
    m["backends"] = {b: {k: c.get(k, 0) for k in _KEYS} for b, c in per_backend.items()}
    return m


def reset_metrics() -> None:
    """Set every counter back to zero."""
    counters.clear()
    per_backend.clear()
