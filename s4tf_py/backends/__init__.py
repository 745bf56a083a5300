"""Backends turn an ``ir.Function`` into an executable and own the buffers of their device.

Every backend offers the same small interface (:class:`Backend`): ``compile(fn)`` returns a
callable ``exe(inputs, donated) -> outputs``; ``from_host``/``to_host`` move numpy arrays in
and out of device buffers.
"""
from __future__ import annotations

from ..device import Device

_BACKENDS: dict = {}


def get_backend(device: Device):
    """The backend object that runs graphs for ``device`` (created on first use)."""
    key = (device.backend, device.platform, device.ordinal)
    b = _BACKENDS.get(key)
    if b is None:
        if device.backend == "reference":
            from .reference import ReferenceBackend
            b = ReferenceBackend()
        elif device.backend == "llvm":
            from .llvm import LLVMBackend
            b = LLVMBackend()
        else:
            raise RuntimeError(
                f"the {device.backend!r} backend is not part of this build of s4tf_py yet; "
                "use s4.Device('reference') (or leave S4TF_DEVICE unset)")
        _BACKENDS[key] = b
    return b
