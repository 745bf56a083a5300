"""``s4.nn``: layers (``Layer``, ``Dense``), initializers (``s4.nn.initializers``) and
neural-network functions (``s4.nn.functional``)."""
from . import functional, initializers
from .layer import Dense, Layer, glorot_uniform

__all__ = ["functional", "initializers", "Layer", "Dense", "glorot_uniform"]
