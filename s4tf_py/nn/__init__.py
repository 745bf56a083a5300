"""``s4.nn``: layers (``Layer``, ``Dense``) and neural-network functions (``s4.nn.functional``)."""
from . import functional
from .layer import Dense, Layer, glorot_uniform

__all__ = ["functional", "Layer", "Dense", "glorot_uniform"]
