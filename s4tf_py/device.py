"""Devices: which backend computes a Tensor's value.

``s4.Device("reference")`` is the numpy interpreter (the correctness oracle); ``"llvm"`` and
``"xla"`` are the compiling backends. The default is ``S4TF_DEVICE`` when set (``llvm``,
``reference``, ``xla:gpu:0``...), else ``llvm`` when it works on this host (its C runtime is
built and llvmlite finds a native target), else ``reference``; :func:`default_device` changes
it for a block.

Example:
    >>> import s4tf_py as s4
    >>> with s4.default_device(s4.Device("reference")):
    ...     s4.ones((2,)).device
    Device('reference')
"""
from __future__ import annotations

import contextlib
import os
import threading

KINDS = ("reference", "llvm", "xla")


class Device:
    """A place where tensors live and graphs run: ``Device(kind, kind=platform, ordinal=0)``.

    ``Device("xla", kind="gpu", ordinal=0)`` names an accelerator; the first argument is the
    backend, ``kind`` the PJRT platform for XLA (``"cpu"`` or ``"gpu"``).
    """

    __slots__ = ("backend", "platform", "ordinal", "_key", "__weakref__")

    #: one object per device: equality and hashing are identity (C speed: a compiled
    #: function's cache key holds the device of every argument)
    _interned: dict = {}

    def __new__(cls, backend: str = "reference", kind: str | None = None, ordinal: int = 0):
        if backend not in KINDS:
            raise ValueError(f"unknown device {backend!r}; expected one of {', '.join(KINDS)}")
        if kind is not None and backend != "xla":
            raise ValueError(f"Device({backend!r}) takes no kind=; only 'xla' has platforms")
        key = (backend, kind or "cpu", int(ordinal))
        self = cls._interned.get(key)
        if self is None:
            self = object.__new__(cls)
            self.backend, self.platform, self.ordinal = key
            self._key = key
            cls._interned[key] = self
        return self

    def __reduce__(self):
        return (Device, (self.backend, self.platform if self.backend == "xla" else None,
                         self.ordinal))

    def __repr__(self):
        if self.backend == "xla":
            return f"Device('xla', kind={self.platform!r}, ordinal={self.ordinal})"
        return f"Device({self.backend!r})"


def _host_default() -> Device:
    """``llvm`` when its runtime and llvmlite's native target work here, else ``reference``."""
    try:
        from . import runtime
        if runtime.available():
            from .backends.llvm import jit
            jit.target_machine()
            return Device("llvm")
    except Exception:  # noqa: BLE001 - any failure to set LLVM up means: use the interpreter
        pass
    return Device("reference")


def _parse_env() -> Device:
    spec = os.environ.get("S4TF_DEVICE", "").strip()
    if not spec:
        return _host_default()
    parts = spec.split(":")
    try:
        if parts[0] == "xla":
            return Device("xla", kind=parts[1] if len(parts) > 1 else None,
                          ordinal=int(parts[2]) if len(parts) > 2 else 0)
        return Device(parts[0])
    except ValueError as e:
        raise ValueError(f"S4TF_DEVICE={spec!r} is not a device: {e}") from None


class _State(threading.local):
    def __init__(self):
        self.stack: list[Device] = []


_state = _State()
_process_default: Device | None = None


def get_default_device() -> Device:
    """The device new tensors are placed on."""
    global _process_default
    if _state.stack:
        return _state.stack[-1]
    if _process_default is None:
        _process_default = _parse_env()
    return _process_default


@contextlib.contextmanager
def default_device(device: Device):
    """Place tensors created inside the block on ``device``."""
    if not isinstance(device, Device):
        raise TypeError(f"default_device expects an s4.Device, got {type(device).__name__}")
    _state.stack.append(device)
    try:
        yield device
    finally:
        _state.stack.pop()
