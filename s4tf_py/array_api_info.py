"""The array API's inspection object (``s4tf_py.__array_namespace_info__()``)."""
from __future__ import annotations

from . import dtypes as dt
from .device import Device, get_default_device


class ArrayNamespaceInfo:
    """What this namespace supports: capabilities, devices and dtypes (array API 2023.12)."""

    def capabilities(self) -> dict:
        # boolean-mask reads have data-dependent shapes: they materialize the mask (supported)
        return {"boolean indexing": True, "data-dependent shapes": True}

    def default_device(self) -> Device:
        return get_default_device()

    def devices(self) -> list[Device]:
        """The devices that work here, the default first."""
        out = [get_default_device()]
        for d in (Device("llvm"), Device("reference")):
            if d not in out and (d.backend == "reference" or _llvm_works()):
                out.append(d)
        return out

    def default_dtypes(self, *, device=None) -> dict:
        return {"real floating": dt.default_float, "integral": dt.default_int,
                "indexing": dt.default_index}

    def dtypes(self, *, device=None, kind=None) -> dict:
        names = {str(d) if d != dt.bool_ else "bool": d for d in dt.ALL_DTYPES
                 if d != dt.bfloat16 and d != dt.float16}
        names["float16"] = dt.float16
        if kind is None:
            return names
        return {k: v for k, v in names.items() if dt.isdtype(v, kind)}


def __array_namespace_info__() -> ArrayNamespaceInfo:
    """Array API namespace inspection."""
    return ArrayNamespaceInfo()


def _llvm_works() -> bool:
    from .device import _host_default
    return _host_default() == Device("llvm")
