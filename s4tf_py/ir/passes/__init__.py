"""Graph-to-graph passes over ``ir.Function`` and the default pipeline."""
from __future__ import annotations


def optimize(fn):
    """The default pipeline the executable cache runs before handing a function to a backend."""
    return fn
