"""The reference backend: a numpy interpreter of the IR, the oracle every other backend is tested against."""
from .interpreter import ReferenceBackend, ReferenceExecutable

__all__ = ["ReferenceBackend", "ReferenceExecutable"]
