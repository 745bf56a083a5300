"""Errors that name the op, the operands and the user's own file and line.

Every error raised while recording an op carries the location of the first stack frame outside
the s4tf_py package, so the message points at the user's code, never at library internals.
"""
from __future__ import annotations

import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_MODELS_MARKER = os.sep + "s4tf_models" + os.sep


#: files inside the package that are *user-level* programs (their lines are the ones to report)
_USER_FILES = frozenset(_PACKAGE_DIR + name for name in ("demo.py", "cli.py", "__main__.py"))


def _is_internal(filename: str) -> bool:
    return filename.startswith(_PACKAGE_DIR) and filename not in _USER_FILES


def user_location(skip: int = 1) -> tuple[str, int, str] | None:
    """(file, line, function) of the innermost frame that is not inside s4tf_py."""
    f = sys._getframe(skip)
    while f is not None and _is_internal(f.f_code.co_filename):
        f = f.f_back
    if f is None:
        return None
    return (f.f_code.co_filename, f.f_lineno, f.f_code.co_name)


def format_location(loc) -> str:
    if loc is None:
        return "<unknown location>"
    return f"{loc[0]}:{loc[1]} (in {loc[2]})"


class S4TFError(Exception):
    """Base class of s4tf_py's errors."""


class ShapeError(S4TFError, ValueError):
    """Operand shapes that an op cannot combine."""


class DTypeError(S4TFError, TypeError):
    """Operand dtypes that an op cannot take."""


class IRError(S4TFError, ValueError):
    """A malformed IR function (verifier or parser)."""


class ConcretizationError(S4TFError, RuntimeError):
    """The value of a traced (abstract) tensor was needed while tracing."""


class ExecutionError(S4TFError, RuntimeError):
    """An op failed while a graph ran (e.g. a NaN cast to an integer)."""


class CheckpointError(S4TFError, ValueError):
    """A checkpoint that cannot be read (truncated, not safetensors, a directory without one) or
    written; the message names the path and the problem, and ``path`` holds the path."""

    def __init__(self, message: str, path=None):
        super().__init__(message)
        self.path = path


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose names, shapes or dtypes do not fit the model; ``report`` (a
    ``s4tf_py.checkpoint.LoadReport``) lists the missing, unexpected and mismatched keys."""

    def __init__(self, message: str, path=None, report=None):
        super().__init__(message, path)
        self.report = report


def op_error(cls, op: str, message: str, operands=(), loc=None):
    """Build an error of ``cls`` that names the op, its operands and the user's line."""
    from .tensor import describe
    if loc is None:
        loc = user_location(2)
    parts = [f"{op}: {message}"]
    if operands:
        parts.append("  operands: " + ", ".join(describe(o) for o in operands))
    parts.append(f"  at {format_location(loc)}")
    err = cls("\n".join(parts))
    err.op = op
    err.location = loc
    return err
