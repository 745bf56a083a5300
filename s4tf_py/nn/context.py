"""The learning phase (S4TF's ``Context.local.learningPhase``): ``"inference"`` by default,
``"training"`` inside ``with s4.learning_phase("training"):``. Dropout, batch normalization
and friends read it when they are called; a compiled function traces once per phase.

>>> import s4tf_py as s4
>>> s4.learning_phase()
'inference'
>>> with s4.learning_phase("training"):
...     s4.learning_phase(), s4.nn.is_training()
('training', True)
>>> s4.learning_phase()
'inference'
"""
from __future__ import annotations

import threading

PHASES = ("training", "inference")


class _Local(threading.local):
    phase = "inference"          # every thread starts in inference (a class default: cheap)


_local = _Local()


def _current() -> str:
    return _local.phase


class _PhaseScope:
    """``with learning_phase(phase):`` sets the phase for this thread, then restores it."""

    def __init__(self, phase: str):
        if phase not in PHASES:
            raise ValueError(f"learning_phase: unknown phase {phase!r}; use 'training' or "
                             "'inference'")
        self.phase = phase
        self._saved: list = []

    def __enter__(self) -> str:
        self._saved.append(_current())
        _local.phase = self.phase
        return self.phase

    def __exit__(self, *exc) -> None:
        _local.phase = self._saved.pop()


def learning_phase(phase: str | None = None):
    """The current learning phase, or (given ``phase``) a context manager that sets it."""
    if phase is None:
        return _current()
    return _PhaseScope(phase)


def is_training() -> bool:
    """Whether the current learning phase is ``"training"``."""
    return _current() == "training"


def _register() -> None:
    from ..lazy.compile import TRACE_CONTEXT
    if _current not in TRACE_CONTEXT:
        TRACE_CONTEXT.append(_current)


_register()
