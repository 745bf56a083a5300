"""``s4.nn``: layers (``Layer``, ``Dense``), initializers (``s4.nn.initializers``) and
neural-network functions (``s4.nn.functional``)."""
from . import functional, initializers
from .context import is_training, learning_phase
from .layer import Dense, Layer, glorot_uniform

__all__ = ["functional", "initializers", "Layer", "Dense", "glorot_uniform", "learning_phase",
           "is_training"]
