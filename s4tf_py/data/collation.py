"""Collation: many samples of one structure → one batch of the same structure.

A *sample* is a leaf (a numpy array, a scalar, a string, anything ``np.asarray`` takes) or a
tuple, named tuple, list or dict of samples, nested freely. Collating a sequence of samples
stacks each leaf along a new leading axis and keeps the structure (dict key order included):

>>> import numpy as np
>>> batch = collate([(np.zeros(3), 1), (np.ones(3), 2)])
>>> batch[0].shape, batch[1].tolist()
((2, 3), [1, 2])
>>> collate([{"x": 1.5, "name": "a"}, {"x": 2.5, "name": "b"}])["name"].tolist()
['a', 'b']

:func:`to_tensors` turns a collated batch into ``s4.Tensor`` values on a device.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

from ..errors import ShapeError


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _path_str(path: tuple) -> str:
    if not path:
        return "the sample"
    return "field " + "".join(f"[{p!r}]" for p in path)


def map_structure(fn: Callable[[Any], Any], structure: Any) -> Any:
    """Apply ``fn`` to every leaf of a nested tuple / named tuple / list / dict structure.

    >>> map_structure(lambda v: v * 10, {"a": (1, 2), "b": [3]})
    {'a': (10, 20), 'b': [30]}
    """
    if isinstance(structure, dict):
        return {k: map_structure(fn, v) for k, v in structure.items()}
    if _is_namedtuple(structure):
        return type(structure)(*(map_structure(fn, v) for v in structure))
    if isinstance(structure, tuple):
        return tuple(map_structure(fn, v) for v in structure)
    if isinstance(structure, list):
        return [map_structure(fn, v) for v in structure]
    return fn(structure)


def leaves(structure: Any) -> list:
    """The leaves of a nested structure, in order (dicts in their insertion order).

    >>> leaves({"b": (1, 2), "a": [3]})
    [1, 2, 3]
    """
    out: list = []
    map_structure(out.append, structure)
    return out


def _collate(items: Sequence, path: tuple) -> Any:
    first = items[0]
    if isinstance(first, dict):
        keys = list(first)
        for i, it in enumerate(items):
            if not isinstance(it, dict) or set(it) != set(keys):
                got = sorted(map(str, it)) if isinstance(it, dict) else type(it).__name__
                raise ValueError(f"cannot collate: {_path_str(path)} of sample {i} is {got}, "
                                 f"but sample 0 has keys {sorted(map(str, keys))}")
        return {k: _collate([it[k] for it in items], path + (k,)) for k in keys}
    if isinstance(first, (tuple, list)):
        n = len(first)
        for i, it in enumerate(items):
            if type(it) is not type(first) or len(it) != n:
                raise ValueError(
                    f"cannot collate: {_path_str(path)} of sample {i} is a "
                    f"{type(it).__name__} of length {len(it) if hasattr(it, '__len__') else '?'}"
                    f", but sample 0 has a {type(first).__name__} of length {n}")
        cols = [_collate([it[j] for it in items], path + (j,)) for j in range(n)]
        if _is_namedtuple(first):
            return type(first)(*cols)
        return tuple(cols) if isinstance(first, tuple) else cols
    arrays = [np.asarray(it) for it in items]
    shape = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.shape != shape:
            raise ShapeError(
                f"cannot collate: {_path_str(path)} of sample {i} has shape {a.shape}, but "
                f"sample 0 has shape {shape}; make the samples one size (resize images, or "
                f"cut or pad sequences) before batching")
    return np.stack(arrays)


def collate(samples: Sequence) -> Any:
    """Stack a sequence of same-structured samples into one batch (see the module docstring).

    A :class:`~s4tf_py.data.Sampling` of a dataset that gathers batches itself (an
    :class:`~s4tf_py.data.ArrayDataset`, say) is collated by that dataset's ``take`` in one
    vectorized step; anything else sample by sample.

    >>> collate([[1, 2], [3, 4], [5, 6]])
    [array([1, 3, 5]), array([2, 4, 6])]
    """
    collated = getattr(samples, "collated", None)
    if callable(collated):
        return collated()
    items = list(samples)
    if not items:
        raise ValueError("cannot collate an empty sequence of samples")
    return _collate(items, ())


def to_tensors(batch: Any, device=None, *, float_dtype=None) -> Any:
    """A batch with each numeric numpy leaf turned into an ``s4.Tensor`` on ``device``.

    ``float_dtype`` (e.g. ``s4.bfloat16``) casts the floating-point leaves; integer leaves
    (labels, token ids) keep their dtype; string leaves stay numpy arrays.

    >>> import numpy as np, s4tf_py as s4
    >>> x, y = to_tensors((np.ones((2, 3), np.float32), np.array([1, 0], np.int32)),
    ...                   s4.Device("reference"))
    >>> type(x).__name__, x.shape, y.dtype, x.device
    ('Tensor', (2, 3), dtype('int32'), Device('reference'))
    """
    from ..tensor import Tensor

    def convert(v):
        if isinstance(v, Tensor):
            out = v
            if float_dtype is not None and np.dtype(out.dtype).kind == "f":
                out = out.astype(float_dtype)
            return out.to(device) if device is not None else out
        a = np.asarray(v)
        if a.dtype.kind not in "biuf":
            return v
        dtype = float_dtype if (float_dtype is not None and a.dtype.kind == "f") else None
        return Tensor(a, dtype=dtype, device=device)

    return map_structure(convert, batch)
