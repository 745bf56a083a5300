"""``s4.nn``: neural-network functions (``s4.nn.functional``); layers arrive with the autodiff issue."""
from . import functional

__all__ = ["functional"]
