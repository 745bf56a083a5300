"""Contractions: ``dot_general`` (the one primitive), matmul / ``@``, tensordot, vecdot, einsum.

``dot_general`` follows XLA: operands list batch dimensions and contracting dimensions; the
result is ``batch dims, lhs free dims, rhs free dims``. Everything else is written with it, so
the backends need one contraction lowering (BLAS on CPU, ``stablehlo.dot_general`` on XLA).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..errors import ShapeError, op_error
from ..ir.registry import AVal, define
from ..tensor import Tensor, wrap
from ._core import contiguous, _broadcast_shapes, bind_op, operand_nodes, to_tensor
from .shape import broadcast_to, expand_dims, normalize_axis, permute_dims, reshape, squeeze


def _dot_rule(a, b, *, lhs_contract, rhs_contract, lhs_batch, rhs_batch, preferred=None):
    if a.dtype != b.dtype:
        raise ShapeError(f"dot_general operands must share a dtype, got {a} and {b}")
    if len(lhs_contract) != len(rhs_contract) or len(lhs_batch) != len(rhs_batch):
        raise ShapeError("dot_general: contracting/batch dimension lists differ in length")
    for i, j in zip(lhs_contract, rhs_contract):
        if a.shape[i] != b.shape[j]:
            raise ShapeError(f"contracting dimensions differ: {a} axis {i} vs {b} axis {j}")
    for i, j in zip(lhs_batch, rhs_batch):
        if a.shape[i] != b.shape[j]:
            raise ShapeError(f"batch dimensions differ: {a} axis {i} vs {b} axis {j}")
    used_a = set(lhs_contract) | set(lhs_batch)
    used_b = set(rhs_contract) | set(rhs_batch)
    shape = tuple(a.shape[i] for i in lhs_batch)
    shape += tuple(d for i, d in enumerate(a.shape) if i not in used_a)
    shape += tuple(d for i, d in enumerate(b.shape) if i not in used_b)
    return AVal(shape, preferred or a.dtype, False)


def _dot_impl(a, b, *, lhs_contract, rhs_contract, lhs_batch, rhs_batch, preferred=None):
    out_dtype = preferred or a.dtype
    if a.dtype in dt.LOW_PRECISION:
        a, b = a.astype(np.float32), b.astype(np.float32)
    free_a = [i for i in range(a.ndim) if i not in lhs_contract and i not in lhs_batch]
    free_b = [i for i in range(b.ndim) if i not in rhs_contract and i not in rhs_batch]
    A = np.transpose(a, list(lhs_batch) + free_a + list(lhs_contract))
    B = np.transpose(b, list(rhs_batch) + list(rhs_contract) + free_b)
    nb = int(np.prod([a.shape[i] for i in lhs_batch], dtype=np.int64))
    m = int(np.prod([a.shape[i] for i in free_a], dtype=np.int64))
    k = int(np.prod([a.shape[i] for i in lhs_contract], dtype=np.int64))
    n = int(np.prod([b.shape[i] for i in free_b], dtype=np.int64))
    r = np.matmul(A.reshape(nb, m, k), B.reshape(nb, k, n))
    shape = [a.shape[i] for i in lhs_batch] + [a.shape[i] for i in free_a] + [b.shape[i] for i in free_b]
    return contiguous(r.reshape(shape).astype(out_dtype, copy=False))


DOT_GENERAL = define("dot_general", _dot_rule, _dot_impl,
                     doc="XLA's DotGeneral: batch dims, then lhs free, then rhs free dims.")


def dot_general(a, b, contracting, batch=((), ()), *, preferred_element_type=None) -> Tensor:
    """``dot_general(a, b, ((lhs_c, rhs_c)), ((lhs_b, rhs_b)))`` as in ``jax.lax``."""
    (na, nb), dtype, weak = operand_nodes("dot_general", a, b)
    params = (("lhs_contract", tuple(contracting[0])), ("rhs_contract", tuple(contracting[1])),
              ("lhs_batch", tuple(batch[0])), ("rhs_batch", tuple(batch[1])))
    if preferred_element_type is not None:
        params += (("preferred", dt.canonical(preferred_element_type)),)
    return bind_op(DOT_GENERAL, [wrap(na), wrap(nb)], params)


def matmul(x1, x2, /) -> Tensor:
    """Matrix product with numpy's rules: 1-D operands are promoted and the axis removed,
    leading (batch) dimensions broadcast."""
    (na, nb), dtype, weak = operand_nodes("matmul", x1, x2)
    a, b = wrap(na), wrap(nb)
    if a.ndim == 0 or b.ndim == 0:
        raise op_error(ShapeError, "matmul", "operands must be at least 1-D (use * for scalars)",
                       [x1, x2])
    squeeze_a = a.ndim == 1
    squeeze_b = b.ndim == 1
    if squeeze_a:
        a = reshape(a, (1, a.shape[0]))
    if squeeze_b:
        b = reshape(b, (b.shape[0], 1))
    if a.shape[-1] != b.shape[-2]:
        raise op_error(ShapeError, "matmul",
                       f"inner dimensions differ: {tuple(x1.shape)} @ {tuple(x2.shape)} "
                       f"({a.shape[-1]} != {b.shape[-2]})", [x1, x2])
    batch_a, batch_b = a.shape[:-2], b.shape[:-2]
    if batch_a != batch_b:
        batch = _broadcast_shapes(batch_a, batch_b)
        if batch is None:
            raise op_error(ShapeError, "matmul",
                           f"batch dimensions {batch_a} and {batch_b} cannot be broadcast", [x1, x2])
        if not batch_b and len(batch_a):     # (..., m, k) @ (k, n): fold batch into m, no copy
            r = dot_general(a, b, ((a.ndim - 1,), (0,)))
            return _finish(r, squeeze_a, squeeze_b)
        a = broadcast_to(a, batch + a.shape[-2:])
        b = broadcast_to(b, batch + b.shape[-2:])
    nbatch = a.ndim - 2
    bd = tuple(range(nbatch))
    r = dot_general(a, b, ((nbatch + 1,), (nbatch,)), (bd, bd))
    return _finish(r, squeeze_a, squeeze_b)


def _finish(r, squeeze_a, squeeze_b):
    if squeeze_a:
        r = squeeze(r, r.ndim - 2 if not squeeze_b else r.ndim - 2)
    if squeeze_b:
        r = squeeze(r, r.ndim - 1)
    return r


def tensordot(x1, x2, /, *, axes=2) -> Tensor:
    """Sum products over the last ``axes`` of ``x1`` and the first of ``x2`` (or explicit lists)."""
    x1, x2 = to_tensor(x1), to_tensor(x2)
    if isinstance(axes, int):
        ca = tuple(range(x1.ndim - axes, x1.ndim))
        cb = tuple(range(axes))
    else:
        ca = tuple(normalize_axis("tensordot", a, x1.ndim, x1) for a in axes[0])
        cb = tuple(normalize_axis("tensordot", a, x2.ndim, x2) for a in axes[1])
    return dot_general(x1, x2, (ca, cb))


def vecdot(x1, x2, /, *, axis=-1) -> Tensor:
    from .reduction import sum as _sum
    return _sum(to_tensor(x1) * to_tensor(x2), axis=axis)


def outer(x1, x2, /) -> Tensor:
    return dot_general(to_tensor(x1), to_tensor(x2), ((), ()))


def einsum(subscripts: str, *operands) -> Tensor:
    """Einstein summation (explicit ``->`` or implicit output), lowered to ``dot_general``.

    >>> import s4tf_py as s4
    >>> s4.einsum("ij,jk->ik", s4.ones((2, 3)), s4.ones((3, 4))).shape
    (2, 4)
    """
    from .reduction import sum as _sum
    from .creation import eye
    ops = [to_tensor(o) for o in operands]
    spec = subscripts.replace(" ", "")
    if "->" in spec:
        lhs, out = spec.split("->")
    else:
        lhs = spec
        letters = lhs.replace(",", "").replace("...", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
        if "..." in lhs:
            out = "..." + out
    ins = lhs.split(",")
    if len(ins) != len(ops):
        raise op_error(ValueError, "einsum", f"{len(ins)} operand specs for {len(ops)} operands", ops)
    # expand ellipses into unused capital letters
    if "..." in lhs or "..." in out:
        spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in spec]
        ell_nd = 0
        for s, o in zip(ins, ops):
            if "..." in s:
                ell_nd = max(ell_nd, o.ndim - (len(s) - 3))
        ell = "".join(spare[:ell_nd])
        new_ins = []
        for s, o in zip(ins, ops):
            if "..." in s:
                k = o.ndim - (len(s) - 3)
                s = s.replace("...", ell[ell_nd - k:])
            new_ins.append(s)
        ins = new_ins
        out = out.replace("...", ell)
    sizes: dict = {}
    for s, o in zip(ins, ops):
        if len(s) != o.ndim:
            raise op_error(ShapeError, "einsum", f"spec {s!r} does not match shape {o.shape}", ops)
        for c, d in zip(s, o.shape):
            if sizes.get(c, d) != d and d != 1 and sizes[c] != 1:
                raise op_error(ShapeError, "einsum", f"index {c!r} has sizes {sizes[c]} and {d}", ops)
            sizes[c] = d if sizes.get(c, 1) == 1 else sizes[c]
    # repeated index within one operand: take the diagonal
    terms = []
    for s, o in zip(ins, ops):
        while len(set(s)) < len(s):
            c = next(ch for ch in s if s.count(ch) > 1)
            i = s.index(c)
            j = s.index(c, i + 1)
            mask = eye(o.shape[i], dtype=o.dtype, device=o.device)
            shape = [1] * o.ndim
            shape[i], shape[j] = o.shape[i], o.shape[j]
            o = _sum(o * reshape(mask, shape), axis=j)
            s = s[:j] + s[j + 1:]
        terms.append((s, o))
    # sum out indices used by only one term and absent from the output
    def others(k):
        return "".join(t[0] for idx, t in enumerate(terms) if idx != k) + out

    for k in range(len(terms)):
        s, o = terms[k]
        drop = [i for i, c in enumerate(s) if c not in others(k)]
        if drop:
            o = _sum(o, axis=tuple(drop))
            s = "".join(c for i, c in enumerate(s) if i not in drop)
        terms[k] = (s, o)
    s, o = terms[0]
    for k in range(1, len(terms)):
        s2, o2 = terms[k]
        rest = "".join(t[0] for t in terms[k + 1:]) + out
        shared = [c for c in s if c in s2]
        batch = [c for c in shared if c in rest]
        contract = [c for c in shared if c not in rest]
        # broadcast size-1 dims against each other for batch letters
        for c in batch:
            i, j = s.index(c), s2.index(c)
            if o.shape[i] != o2.shape[j]:
                if o.shape[i] == 1:
                    shp = list(o.shape); shp[i] = o2.shape[j]; o = broadcast_to(o, shp)
                else:
                    shp = list(o2.shape); shp[j] = o.shape[i]; o2 = broadcast_to(o2, shp)
        o = dot_general(o, o2, (tuple(s.index(c) for c in contract), tuple(s2.index(c) for c in contract)),
                        (tuple(s.index(c) for c in batch), tuple(s2.index(c) for c in batch)))
        s = "".join(batch) + "".join(c for c in s if c not in shared) + \
            "".join(c for c in s2 if c not in shared)
    extra = [i for i, c in enumerate(s) if c not in out]
    if extra:
        o = _sum(o, axis=tuple(extra))
        s = "".join(c for c in s if c in out)
    if sorted(s) != sorted(out):
        raise op_error(ValueError, "einsum", f"output {out!r} names an index not in the inputs", ops)
    perm = tuple(s.index(c) for c in out)
    return permute_dims(o, perm) if perm != tuple(range(len(perm))) else o


_DOCS = {
    vecdot: "Dot product of vectors along ``axis`` (array API ``vecdot``).",
    outer: "Outer product: every element of ``x1`` times every element of ``x2``.",
}
for _f, _d in _DOCS.items():
    _f.__doc__ = _d


# ---- derivatives ------------------------------------------------------------------------------

def _dot_transpose(ct, a, b, *, lhs_contract, rhs_contract, lhs_batch, rhs_batch):
    """Cotangent of the lhs ``a`` of ``dot_general(a, b)`` given the output cotangent ``ct``."""
    nb = len(lhs_batch)
    free_a = [i for i in range(a.ndim) if i not in lhs_contract and i not in lhs_batch]
    free_b = [i for i in range(b.ndim) if i not in rhs_contract and i not in rhs_batch]
    ct_free_b = tuple(range(nb + len(free_a), ct.ndim))
    r = dot_general(ct, b, (ct_free_b, tuple(free_b)), (tuple(range(nb)), tuple(rhs_batch)))
    # r: [batch..., free_a..., b's contract dims in increasing b order]
    b_contract_sorted = sorted(rhs_contract)
    pos = {}
    for k, d in enumerate(lhs_batch):
        pos[d] = k
    for k, d in enumerate(free_a):
        pos[d] = nb + k
    for k, bd in enumerate(b_contract_sorted):
        pos[lhs_contract[list(rhs_contract).index(bd)]] = nb + len(free_a) + k
    # r's axis pos[d] holds a's axis d: move it back to d
    inv = [pos[d] for d in range(a.ndim)]
    return permute_dims(r, inv) if inv != list(range(a.ndim)) else r


def _derivatives():
    from ..ir.registry import defjvp, defvjp

    def vjp(ct, a, b, *, out, lhs_contract, rhs_contract, lhs_batch, rhs_batch, preferred=None):
        dims = dict(lhs_contract=lhs_contract, rhs_contract=rhs_contract,
                    lhs_batch=lhs_batch, rhs_batch=rhs_batch)
        ct = ct.astype(a.dtype) if ct.dtype != a.dtype else ct
        ca = _dot_transpose(ct, a, b, **dims)
        # the rhs is the lhs of the swapped product, whose output is [batch, free_b, free_a]
        nb = len(lhs_batch)
        na = a.ndim - len(lhs_contract) - nb
        nbf = b.ndim - len(rhs_contract) - nb
        perm = list(range(nb)) + list(range(nb + na, nb + na + nbf)) + list(range(nb, nb + na))
        ct_swapped = permute_dims(ct, perm) if perm != list(range(ct.ndim)) else ct
        cb = _dot_transpose(ct_swapped, b, a, lhs_contract=rhs_contract, rhs_contract=lhs_contract,
                            lhs_batch=rhs_batch, rhs_batch=lhs_batch)
        return ca, cb

    def jvp(ts, a, b, *, out, **p):
        ta, tb = ts
        r = None
        if ta is not None:
            r = bind_op(DOT_GENERAL, [ta, b], tuple(p.items()))
        if tb is not None:
            t = bind_op(DOT_GENERAL, [a, tb], tuple(p.items()))
            r = t if r is None else r + t
        return r
    defvjp(DOT_GENERAL, vjp)
    defjvp(DOT_GENERAL, jvp)


_derivatives()
