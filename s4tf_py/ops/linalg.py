"""Linear algebra (``s4.linalg``): the array API linalg extension plus S4TF's decompositions.

Primitives (each batched over leading dimensions): ``cholesky``, ``triangular_solve``, ``lu``
(partial pivoting), ``qr``, ``svd`` and ``eigh``. Everything else (solve, inv, det, slogdet,
pinv, norms, rank...) is composed from them and the ordinary ops, so it differentiates and
compiles like any other program.

Numerics follow the compiling backends rather than raising: a matrix that is not positive
definite gives a NaN Cholesky factor, a singular one gives infinite or NaN solves, as with
XLA and JAX. Integer inputs are computed in the default float; float16/bfloat16 in float32.

>>> import s4tf_py as s4
>>> a = s4.Tensor([[4.0, 2.0], [2.0, 3.0]])
>>> s4.linalg.cholesky(a).tolist()
[[2.0, 0.0], [1.0, 1.4142135381698608]]
>>> round(s4.linalg.det(a).item(), 4)
8.0
"""
from __future__ import annotations

import builtins
from typing import NamedTuple

import numpy as np

from .. import dtypes as dt
from ..errors import DTypeError, ShapeError, op_error
from ..ir.registry import AVal, define
from ..tensor import Tensor
from ._core import _broadcast_shapes, bind_op, to_tensor
from .contraction import matmul, outer, tensordot, vecdot
from .shape import matrix_transpose

__all__ = [
    "cholesky", "triangular_solve", "lu", "lu_factor", "qr", "svd", "svdvals", "eigh",
    "eigvalsh", "solve", "inv", "det", "slogdet", "matrix_norm", "vector_norm", "norm",
    "matrix_rank", "pinv", "trace", "diagonal", "cross", "matrix_power", "matmul", "tensordot",
    "vecdot", "outer", "matrix_transpose", "QRResult", "SVDResult", "SlogdetResult",
    "EighResult",
]


class QRResult(NamedTuple):
    Q: Tensor
    R: Tensor


class SVDResult(NamedTuple):
    U: Tensor
    S: Tensor
    Vh: Tensor


class SlogdetResult(NamedTuple):
    sign: Tensor
    logabsdet: Tensor


class EighResult(NamedTuple):
    eigenvalues: Tensor
    eigenvectors: Tensor


# ---- helpers for impls ------------------------------------------------------------------------

def _as_compute(*xs):
    """Arrays in the precision the impl computes in (float32 for float16/bfloat16)."""
    d = xs[0].dtype
    if d in dt.LOW_PRECISION:
        return d, [x.astype(np.float32) for x in xs]
    return d, list(xs)


def _matrix_rule(op, x, square=True):
    if x.ndim < 2:
        raise ShapeError(f"{op} needs a matrix (or a batch of them), got {x}")
    if square and x.shape[-1] != x.shape[-2]:
        raise ShapeError(f"{op} needs square matrices, got {x}")
    if not dt.is_floating(x.dtype):
        raise DTypeError(f"{op} needs floating-point matrices, got {x}")


# ---- cholesky ----------------------------------------------------------------------------------

def _cholesky_rule(x):
    _matrix_rule("cholesky", x)
    return AVal(x.shape, x.dtype, False)


def _cholesky_impl(x):
    d, (a,) = _as_compute(x)
    try:
        r = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:          # some matrix of the batch is not positive definite
        flat = a.reshape((-1,) + a.shape[-2:])
        r = np.empty_like(flat)
        for i, m in enumerate(flat):
            try:
                r[i] = np.linalg.cholesky(m)
            except np.linalg.LinAlgError:
                r[i] = np.nan
        r = r.reshape(a.shape)
    return np.ascontiguousarray(r.astype(d))


CHOLESKY = define("cholesky", _cholesky_rule, _cholesky_impl,
                  doc="Lower Cholesky factor L (x = L L^T) of each matrix, reading its lower "
                      "triangle; NaN where a matrix is not positive definite.")


# ---- triangular_solve -------------------------------------------------------------------------

def _trsolve_rule(a, b, *, left_side, lower, transpose_a, unit_diagonal):
    _matrix_rule("triangular_solve", a)
    if b.ndim < 2 or b.dtype != a.dtype:
        raise ShapeError(f"triangular_solve: the right-hand side must be a {a.dtype} matrix "
                         f"(or batch), got {b}")
    m = a.shape[-1]
    k = b.shape[-2] if left_side else b.shape[-1]
    if k != m or a.shape[:-2] != b.shape[:-2]:
        raise ShapeError(f"triangular_solve: {a} does not fit the right-hand side {b} "
                         f"({'left' if left_side else 'right'} side)")
    return AVal(b.shape, b.dtype, False)


def _substitute(a, b, lower, unit):
    """Solve a x = b for triangular a (batched, b (..., m, n)) by substitution."""
    m = a.shape[-1]
    x = np.zeros(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + b.shape[-2:], b.dtype)
    order = range(m) if lower else range(m - 1, -1, -1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in order:
            done = builtins.slice(0, i) if lower else builtins.slice(i + 1, m)
            s = b[..., i, :] - np.matmul(a[..., i:i + 1, done], x[..., done, :])[..., 0, :]
            x[..., i, :] = s if unit else s / a[..., i, i, None]
    return x


def _trsolve_impl(a, b, *, left_side, lower, transpose_a, unit_diagonal):
    d, (a, b) = _as_compute(a, b)
    if left_side:                       # op(a) x = b
        at = np.swapaxes(a, -1, -2) if transpose_a else a
        x = _substitute(at, b, lower != transpose_a, unit_diagonal)
    else:                               # x op(a) = b  <=>  op(a)^T x^T = b^T
        at = a if transpose_a else np.swapaxes(a, -1, -2)
        x = np.swapaxes(_substitute(at, np.swapaxes(b, -1, -2), lower == transpose_a,
                                    unit_diagonal), -1, -2)
    return np.ascontiguousarray(x.astype(d))


TRIANGULAR_SOLVE = define(
    "triangular_solve", _trsolve_rule, _trsolve_impl,
    doc="Solve op(a) x = b (left_side) or x op(a) = b for triangular a (lower or upper, "
        "op = transpose if transpose_a; unit_diagonal ignores a's diagonal).")


# ---- lu ----------------------------------------------------------------------------------------

def _lu_rule(x):
    _matrix_rule("lu", x, square=False)
    m, n = x.shape[-2:]
    k = builtins.min(m, n)
    batch = x.shape[:-2]
    return (AVal(x.shape, x.dtype, False), AVal(batch + (k,), dt.int32, False),
            AVal(batch + (m,), dt.int32, False))


def _lu_impl(x):
    d, (a,) = _as_compute(x)
    m, n = a.shape[-2:]
    k = builtins.min(m, n)
    batch = a.shape[:-2]
    A = np.array(a.reshape((-1, m, n)), copy=True)
    nb = A.shape[0]
    piv = np.zeros((nb, k), np.int32)
    perm = np.tile(np.arange(m, dtype=np.int32), (nb, 1))
    rows = np.arange(nb)
    for j in range(k):
        p = j + np.argmax(np.abs(A[:, j:, j]), axis=1)
        piv[:, j] = p
        A[rows, j], A[rows, p] = A[rows, p], A[rows, j].copy()
        perm[rows, j], perm[rows, p] = perm[rows, p], perm[rows, j].copy()
        pivot = A[:, j, j]
        nz = pivot != 0                 # as LAPACK getrf: a zero pivot column is left alone
        scale = np.where(nz, pivot, 1)
        A[:, j + 1:, j] = np.where(nz[:, None], A[:, j + 1:, j] / scale[:, None], A[:, j + 1:, j])
        A[:, j + 1:, j + 1:] -= A[:, j + 1:, j:j + 1] * A[:, j:j + 1, j + 1:]
    return (np.ascontiguousarray(A.reshape(a.shape).astype(d)), piv.reshape(batch + (k,)),
            perm.reshape(batch + (m,)))


LU = define("lu", _lu_rule, _lu_impl, multiple_results=True,
            doc="LU decomposition with partial pivoting: (lu, pivots, permutation); "
                "x[..., permutation, :] = L @ U with L unit lower (below lu's diagonal) and U "
                "upper; pivots[i] is the row swapped with row i (0-based, as LAPACK getrf).")


# ---- qr, svd, eigh ---------------------------------------------------------------------------

def _qr_rule(x, *, full_matrices):
    _matrix_rule("qr", x, square=False)
    m, n = x.shape[-2:]
    k = m if full_matrices else builtins.min(m, n)
    b = x.shape[:-2]
    return (AVal(b + (m, k), x.dtype, False), AVal(b + (k, n), x.dtype, False))


def _qr_impl(x, *, full_matrices):
    d, (a,) = _as_compute(x)
    q, r = np.linalg.qr(a, mode="complete" if full_matrices else "reduced")
    return np.ascontiguousarray(q.astype(d)), np.ascontiguousarray(r.astype(d))


QR = define("qr", _qr_rule, _qr_impl, multiple_results=True,
            doc="QR decomposition (Householder): q (m, m or k) orthonormal, r (m or k, n) upper.")


def _svd_rule(x, *, full_matrices):
    _matrix_rule("svd", x, square=False)
    m, n = x.shape[-2:]
    k = builtins.min(m, n)
    b = x.shape[:-2]
    return (AVal(b + ((m, m) if full_matrices else (m, k)), x.dtype, False),
            AVal(b + (k,), x.dtype, False),
            AVal(b + ((n, n) if full_matrices else (k, n)), x.dtype, False))


def _svd_impl(x, *, full_matrices):
    d, (a,) = _as_compute(x)
    u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
    return tuple(np.ascontiguousarray(v.astype(d)) for v in (u, s, vh))


SVD = define("svd", _svd_rule, _svd_impl, multiple_results=True,
             doc="Singular value decomposition x = u diag(s) vh, s descending.")


def _eigh_rule(x, *, lower):
    _matrix_rule("eigh", x)
    return (AVal(x.shape[:-1], x.dtype, False), AVal(x.shape, x.dtype, False))


def _eigh_impl(x, *, lower):
    d, (a,) = _as_compute(x)
    w, v = np.linalg.eigh(a, UPLO="L" if lower else "U")
    return np.ascontiguousarray(w.astype(d)), np.ascontiguousarray(v.astype(d))


EIGH = define("eigh", _eigh_rule, _eigh_impl, multiple_results=True,
              doc="Eigenvalues (ascending) and eigenvectors of symmetric matrices, reading the "
                  "lower (or upper) triangle.")


# ---- user-facing ------------------------------------------------------------------------------

def _float_matrix(op, x, square=True, min_ndim=2) -> Tensor:
    x = to_tensor(x)
    if not dt.is_floating(x.dtype):
        x = x.astype(dt.default_float)
    if x.ndim < min_ndim:
        raise op_error(ShapeError, op, f"needs at least {min_ndim} dimensions, got shape "
                                       f"{x.shape}", [x])
    if square and x.shape[-1] != x.shape[-2]:
        raise op_error(ShapeError, op, f"needs square matrices, got shape {x.shape}", [x])
    return x


def _broadcast_batch(op, a, b, core_a=2, core_b=2):
    from .shape import broadcast_to
    ba, bb = a.shape[:a.ndim - core_a], b.shape[:b.ndim - core_b]
    if ba == bb:
        return a, b
    batch = _broadcast_shapes(ba, bb)
    if batch is None:
        raise op_error(ShapeError, op, f"batch dimensions {ba} and {bb} cannot be broadcast",
                       [a, b])
    return (broadcast_to(a, batch + a.shape[a.ndim - core_a:]),
            broadcast_to(b, batch + b.shape[b.ndim - core_b:]))


def cholesky(x, /, *, upper=False) -> Tensor:
    """Cholesky factor of symmetric positive-definite matrices: lower ``L`` with ``x = L L^T``
    (``upper=True``: ``U = L^T`` with ``x = U^T U``)."""
    x = _float_matrix("cholesky", x)
    lo = bind_op(CHOLESKY, [x])
    return matrix_transpose(lo) if upper else lo


def triangular_solve(a, b, /, *, left_side=True, lower=True, transpose_a=False,
                     unit_diagonal=False) -> Tensor:
    """Solve ``op(a) @ x = b`` (``left_side``) or ``x @ op(a) = b`` for triangular ``a``.

    ``op(a)`` is ``a.T`` when ``transpose_a``; only the ``lower`` (or upper) triangle of ``a``
    is read. ``b`` may be a vector (for ``left_side``). Batch dimensions broadcast. Defaults
    follow TensorFlow's ``matrix_triangular_solve`` (left side, lower).
    """
    from .shape import expand_dims, squeeze
    op = "triangular_solve"
    a = _float_matrix(op, a)
    b = to_tensor(b)
    if b.dtype != a.dtype:
        d = dt.result_type(a, b) if dt.is_floating(b.dtype) else a.dtype
        a, b = a.astype(d), b.astype(d)
    vector = b.ndim == 1
    if vector:
        b = expand_dims(b, -1 if left_side else 0)
    a, b = _broadcast_batch(op, a, b)
    x = bind_op(TRIANGULAR_SOLVE, [a, b], (("left_side", bool(left_side)), ("lower", bool(lower)),
                                          ("transpose_a", bool(transpose_a)),
                                          ("unit_diagonal", bool(unit_diagonal))))
    return squeeze(x, -1 if left_side else -2) if vector else x


def lu_factor(x, /) -> tuple[Tensor, Tensor]:
    """``(lu, pivots)`` as scipy's ``lu_factor``: ``L`` (unit diagonal) below and ``U`` on and
    above the diagonal of ``lu``; row ``i`` was swapped with row ``pivots[i]``."""
    x = _float_matrix("lu_factor", x, square=False)
    lu_, piv, _ = bind_op(LU, [x])
    return lu_, piv


def lu(x, /) -> tuple[Tensor, Tensor, Tensor]:
    """``(p, l, u)`` with ``x = p @ l @ u`` (scipy's ``lu``): ``p`` a permutation matrix,
    ``l`` unit lower triangular (m, k), ``u`` upper triangular (k, n)."""
    from .creation import eye, tril, triu
    from .shape import slice as _slice
    x = _float_matrix("lu", x, square=False)
    lu_, _, perm = bind_op(LU, [x])
    m, n = x.shape[-2:]
    k = builtins.min(m, n)
    lower = _slice(lu_, (0,) * x.ndim, x.shape[:-1] + (k,))
    upper = _slice(lu_, (0,) * x.ndim, x.shape[:-2] + (k, n))
    l_ = tril(lower, k=-1) + eye(m, k, dtype=x.dtype, device=x.device)
    u_ = triu(upper)
    # a where-built mask, not one_hot's float cast: the permutation depends on x through
    # integers, which the derivative treats as constants (a cast would be diagnosed)
    p = matrix_transpose(_perm_matrix(perm, m, x.dtype))
    return p, l_, u_


def qr(x, /, *, mode="reduced") -> QRResult:
    """``(Q, R)`` with ``x = Q @ R``; ``mode`` "reduced" (Q is (m, k)) or "complete" (m, m)."""
    if mode not in ("reduced", "complete"):
        raise op_error(ValueError, "qr", f"mode must be 'reduced' or 'complete', got {mode!r}")
    x = _float_matrix("qr", x, square=False)
    q, r = bind_op(QR, [x], (("full_matrices", mode == "complete"),))
    return QRResult(q, r)


def svd(x, /, *, full_matrices=True) -> SVDResult:
    """``(U, S, Vh)`` with ``x = U @ diag(S) @ Vh`` and ``S`` descending."""
    x = _float_matrix("svd", x, square=False)
    u, s, vh = bind_op(SVD, [x], (("full_matrices", bool(full_matrices)),))
    return SVDResult(u, s, vh)


def svdvals(x, /) -> Tensor:
    """The singular values, descending."""
    return svd(x, full_matrices=False).S


def eigh(x, /, *, lower=True) -> EighResult:
    """Eigenvalues (ascending) and eigenvectors (columns) of symmetric matrices."""
    x = _float_matrix("eigh", x)
    w, v = bind_op(EIGH, [x], (("lower", bool(lower)),))
    return EighResult(w, v)


def eigvalsh(x, /, *, lower=True) -> Tensor:
    """The eigenvalues of symmetric matrices, ascending."""
    return eigh(x, lower=lower).eigenvalues


def diagonal(x, /, *, offset=0) -> Tensor:
    """The ``offset``-th diagonal of the last two axes (array API ``linalg.diagonal``)."""
    from .indexing import take
    from .shape import reshape
    x = to_tensor(x)
    if x.ndim < 2:
        raise op_error(ShapeError, "diagonal", f"needs at least 2 dimensions, got {x.shape}", [x])
    n, m = x.shape[-2:]
    offset = int(offset)
    length = builtins.max(0, builtins.min(n, m - offset) if offset >= 0 else
                          builtins.min(n + offset, m))
    start = offset if offset >= 0 else -offset * m
    idx = np.arange(length, dtype=np.int32) * (m + 1) + start
    flat = reshape(x, x.shape[:-2] + (n * m,))
    return take(flat, Tensor(idx, device=x.device), axis=-1)


def trace(x, /, *, offset=0, dtype=None) -> Tensor:
    """Sum of the ``offset``-th diagonal of the last two axes."""
    from .reduction import sum as _sum
    return _sum(diagonal(x, offset=offset), axis=-1, dtype=dtype)


def _lu_solve(lu_, perm, b):
    """Solve with a factorization: rows of b (..., m, k) permuted, then L and U substitutions."""
    from .indexing import take_along_axis
    from .shape import expand_dims
    pb = take_along_axis(b, expand_dims(perm, -1), axis=-2)
    y = triangular_solve(lu_, pb, lower=True, unit_diagonal=True)
    return triangular_solve(lu_, y, lower=False)


def solve(x1, x2, /) -> Tensor:
    """``x`` with ``x1 @ x = x2`` (LU with partial pivoting). ``x2`` is (..., M, K), or (M,) for
    one vector; batch dimensions broadcast."""
    from .shape import expand_dims, squeeze
    op = "solve"
    a = _float_matrix(op, x1)
    b = to_tensor(x2)
    if b.dtype != a.dtype:
        d = dt.result_type(a, b) if dt.is_floating(b.dtype) else a.dtype
        a, b = a.astype(d), b.astype(d)
    vector = b.ndim == 1
    if vector:
        b = expand_dims(b, -1)
    if b.ndim < 2 or b.shape[-2] != a.shape[-1]:
        raise op_error(ShapeError, op, f"cannot solve {a.shape} systems for right-hand sides of "
                                       f"shape {to_tensor(x2).shape}", [x1, x2])
    a, b = _broadcast_batch(op, a, b)
    lu_, _, perm = bind_op(LU, [a])
    x = _lu_solve(lu_, perm, b)
    return squeeze(x, -1) if vector else x


def inv(x, /) -> Tensor:
    """The inverse of each square matrix (infinite or NaN entries for a singular one)."""
    from .creation import eye
    from .shape import broadcast_to
    x = _float_matrix("inv", x)
    n = x.shape[-1]
    return solve(x, broadcast_to(eye(n, dtype=x.dtype, device=x.device), x.shape))


def _lu_parts(op, x):
    from .creation import arange
    from .math import not_equal, remainder, where
    from .reduction import sum as _sum
    x = _float_matrix(op, x)
    lu_, piv, _ = bind_op(LU, [x])
    d = diagonal(lu_)
    swaps = _sum(not_equal(piv, arange(x.shape[-1], dtype=dt.int32, device=x.device)),
                 axis=-1)
    parity = where(remainder(swaps, 2) == 0, 1.0, -1.0).astype(x.dtype)
    return d, parity


def det(x, /) -> Tensor:
    """The determinant of each square matrix (product of U's diagonal times the swap parity)."""
    from .reduction import prod
    d, parity = _lu_parts("det", x)
    return prod(d, axis=-1) * parity


def slogdet(x, /) -> SlogdetResult:
    """``(sign, log|det|)``; a singular matrix gives sign 0 and -inf."""
    from .math import abs as _abs, log, sign
    from .reduction import prod, sum as _sum
    d, parity = _lu_parts("slogdet", x)
    return SlogdetResult(prod(sign(d), axis=-1) * parity, _sum(log(_abs(d)), axis=-1))


def matrix_power(x, n: int, /) -> Tensor:
    """``x`` multiplied by itself ``n`` times (``n < 0`` inverts first; ``n = 0`` the identity)."""
    from .creation import eye
    from .shape import broadcast_to
    x = _float_matrix("matrix_power", x) if n < 0 else to_tensor(x)
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise op_error(ShapeError, "matrix_power", f"needs square matrices, got {x.shape}", [x])
    n = int(n)
    if n == 0:
        return broadcast_to(eye(x.shape[-1], dtype=x.dtype, device=x.device), x.shape)
    if n < 0:
        x, n = inv(x), -n
    result = None
    while n:
        if n & 1:
            result = x if result is None else matmul(result, x)
        n >>= 1
        if n:
            x = matmul(x, x)
    return result


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2) -> Tensor:  # noqa: A002
    """The ``ord``-norm of vectors along ``axis`` (all axes when None): ``(sum |x|^ord)^(1/ord)``,
    ``inf``/``-inf`` the largest/smallest ``|x|``, 0 the number of non-zeros."""
    from .math import abs as _abs, not_equal, pow as _pow, sqrt
    from .reduction import max as _max, min as _min, sum as _sum
    x = to_tensor(x)
    if not dt.is_floating(x.dtype):
        x = x.astype(dt.default_float)
    a = _abs(x)
    if ord == float("inf"):
        return _max(a, axis=axis, keepdims=keepdims)
    if ord == float("-inf"):
        return _min(a, axis=axis, keepdims=keepdims)
    if ord == 0:
        return _sum(not_equal(x, 0.0).astype(x.dtype), axis=axis, keepdims=keepdims)
    if ord == 2:
        return sqrt(_sum(x * x, axis=axis, keepdims=keepdims))
    if ord == 1:
        return _sum(a, axis=axis, keepdims=keepdims)
    p = float(ord)
    return _pow(_sum(_pow(a, p), axis=axis, keepdims=keepdims), 1.0 / p)


def matrix_norm(x, /, *, keepdims=False, ord="fro") -> Tensor:  # noqa: A002
    """Norms of the matrices in the last two axes: "fro", "nuc", 1, -1, 2, -2, inf, -inf."""
    from .math import abs as _abs, sqrt
    from .reduction import max as _max, min as _min, sum as _sum
    from .shape import reshape
    x = _float_matrix("matrix_norm", x, square=False)
    inf = float("inf")
    if ord == "fro":
        r = sqrt(_sum(x * x, axis=(-2, -1)))
    elif ord == "nuc":
        r = _sum(svdvals(x), axis=-1)
    elif ord in (2, -2):
        s = svdvals(x)
        r = _max(s, axis=-1) if ord == 2 else _min(s, axis=-1)
    elif ord in (1, -1):
        c = _sum(_abs(x), axis=-2)
        r = _max(c, axis=-1) if ord == 1 else _min(c, axis=-1)
    elif ord in (inf, -inf):
        c = _sum(_abs(x), axis=-1)
        r = _max(c, axis=-1) if ord == inf else _min(c, axis=-1)
    else:
        raise op_error(ValueError, "matrix_norm", f"unsupported ord {ord!r}", [x])
    return reshape(r, r.shape + (1, 1)) if keepdims else r


def norm(x, /, ord=None, axis=None, keepdims=False) -> Tensor:  # noqa: A002
    """numpy's ``linalg.norm``: a vector norm, or a matrix norm when ``axis`` names two axes
    (or ``x`` is 2-D, ``axis`` is None and ``ord`` is given)."""
    from .shape import moveaxis, normalize_axis, reshape
    x = to_tensor(x)
    if axis is None:
        if ord is None or x.ndim == 1:
            return vector_norm(x, keepdims=keepdims, ord=2 if ord is None else ord)
        if x.ndim != 2:
            raise op_error(ValueError, "norm", f"ord={ord!r} needs a vector, a matrix or axis=",
                           [x])
        axis = (0, 1)
    if isinstance(axis, (int, np.integer)) or len(axis) == 1:
        return vector_norm(x, axis=axis, keepdims=keepdims, ord=2 if ord is None else ord)
    a0, a1 = (normalize_axis("norm", a, x.ndim, x) for a in axis)
    r = matrix_norm(moveaxis(x, (a0, a1), (-2, -1)), ord="fro" if ord is None else ord)
    if keepdims:
        r = reshape(r, tuple(1 if i in (a0, a1) else d for i, d in enumerate(x.shape)))
    return r


def _default_rtol(x):
    return builtins.max(x.shape[-2:]) * dt.finfo(x.dtype).eps


def matrix_rank(x, /, *, rtol=None) -> Tensor:
    """The number of singular values above ``rtol * largest`` (default ``max(m, n) * eps``)."""
    from .math import greater
    from .reduction import max as _max, sum as _sum
    x = _float_matrix("matrix_rank", x, square=False)
    s = svdvals(x)
    tol = (_default_rtol(x) if rtol is None else rtol) * _max(s, axis=-1, keepdims=True)
    return _sum(greater(s, tol).astype(dt.int32), axis=-1)


def pinv(x, /, *, rtol=None) -> Tensor:
    """The Moore-Penrose pseudo-inverse (singular values below ``rtol * largest`` dropped)."""
    from .math import greater, where
    from .reduction import max as _max
    from .shape import expand_dims
    x = _float_matrix("pinv", x, square=False)
    u, s, vh = svd(x, full_matrices=False)
    tol = (_default_rtol(x) if rtol is None else rtol) * _max(s, axis=-1, keepdims=True)
    keep = greater(s, tol)
    s_inv = where(keep, 1.0 / where(keep, s, 1.0), 0.0)
    return matmul(matrix_transpose(vh) * expand_dims(s_inv, -2), matrix_transpose(u))


def cross(x1, x2, /, *, axis=-1) -> Tensor:
    """Cross product of 3-vectors along ``axis`` (broadcasting the other axes)."""
    from .shape import broadcast_arrays, concatenate, normalize_axis, slice_axis
    a, b = broadcast_arrays(to_tensor(x1), to_tensor(x2))
    ax = normalize_axis("cross", axis, a.ndim, a)
    if a.shape[ax] != 3:
        raise op_error(ShapeError, "cross", f"axis {axis} must have size 3, got {a.shape}",
                       [x1, x2])
    a0, a1, a2 = (slice_axis(a, ax, i, i + 1) for i in range(3))
    b0, b1, b2 = (slice_axis(b, ax, i, i + 1) for i in range(3))
    return concatenate([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=ax)


# ---- derivatives ------------------------------------------------------------------------------
#
# Written with ordinary ops (matmul, triangular_solve, tril...), so the derivatives of the
# decompositions are programs again and differentiate to any order. All rules are batched over
# the leading dimensions. Assumptions, as in JAX/TF/torch:
#
# * cholesky, eigh read one triangle of their input: the derivative is that of the function of
#   that triangle (the tangent of the other triangle is zero, the cotangent lands on the read
#   triangle only).
# * lu: the derivative of the packed factors for fixed pivots (De Hoog, Anderssen and Lukas, as
#   JAX's lu_jvp); the pivots and permutation are integers and carry none.
# * qr: full rank (R invertible). For ``mode="complete"`` of a tall matrix the trailing columns of
#   Q are only defined up to a rotation of the orthogonal complement: their derivative is the
#   minimal one (Q2^T dQ2 = 0), so every function invariant to that choice (Q R, Q^T Q, R, the
#   projector Q1 Q1^T...) differentiates exactly.
# * svd: distinct, non-zero singular values (the derivative of U and V diverges as two singular
#   values meet); signs of the singular vectors are gauge, so only sign-invariant functions of
#   U and Vh are meaningful to differentiate. Trailing columns of U (or rows of Vh) of
#   ``full_matrices=True`` get the minimal derivative, as for qr.
# * eigh: distinct eigenvalues (same caveats for the eigenvectors' signs).

def _mT(x):
    return matrix_transpose(x)


def _eye_like(x, n=None):
    from .creation import eye
    return eye(n or x.shape[-1], dtype=x.dtype, device=x.device)


def _diag_embed(v):
    """(..., n) -> (..., n, n) with ``v`` on the diagonal."""
    from .shape import expand_dims
    return expand_dims(v, -2) * _eye_like(v, v.shape[-1])


def _diag_part(x):
    """(..., n, n) -> (..., n): the diagonal (as a masked sum, differentiable)."""
    from .reduction import sum as _sum
    return _sum(x * _eye_like(x), axis=-1)


def _sym_from_triangle(t, lower):
    """The symmetric matrix a function reading one triangle of its input sees for ``t``:
    ``tril(t) + tril(t, -1)^T`` (or the upper analogue)."""
    from .creation import tril, triu
    if lower:
        return tril(t) + _mT(tril(t, k=-1))
    return triu(t) + _mT(triu(t, k=1))


def _onto_triangle(g, lower):
    """The transpose of :func:`_sym_from_triangle`: a cotangent of the symmetric matrix moved
    onto the triangle that was read."""
    from .creation import tril, triu
    if lower:
        return tril(g) + tril(_mT(g), k=-1)
    return triu(g) + triu(_mT(g), k=1)


def _tri_mask(x, lower, unit):
    from .creation import tril, triu
    k = (-1 if lower else 1) if unit else 0
    return tril(x, k=k) if lower else triu(x, k=k)


def _phi(x):
    """Lower triangle with the diagonal halved (the Cholesky derivative's projection)."""
    from .creation import tril
    return tril(x) - 0.5 * x * _eye_like(x)


def _inv_gaps(s, squared):
    """F[i, j] = 1 / (s_j - s_i) (or 1 / (s_j^2 - s_i^2)) off the diagonal, 0 on it."""
    from .math import where
    from .shape import expand_dims
    from .creation import eye
    row, col = expand_dims(s, -1), expand_dims(s, -2)
    d = col * col - row * row if squared else col - row
    n = s.shape[-1]
    on_diag = eye(n, dtype=dt.bool_, device=s.device)
    return where(on_diag, 0.0, 1.0 / where(on_diag, 1.0, d))


def _complement_jvp(q1, q2, dq1):
    """Minimal derivative of the trailing orthonormal columns ``q2``: -Q1 dQ1^T Q2."""
    return -matmul(q1, matmul(_mT(dq1), q2))


def _lu_factors(lu_, m, n):
    """``l`` (m, m) unit lower and ``u`` (n, n) upper, padded with identity blocks."""
    from .creation import eye, tril, triu
    from .shape import pad as _pad
    from .shape import slice as _slice
    k = builtins.min(m, n)
    nd = lu_.ndim
    lo = tril(_slice(lu_, (0,) * nd, lu_.shape[:-1] + (k,)), k=-1)
    if m > k:
        lo = _pad(lo, [(0, 0)] * (nd - 1) + [(0, m - k)])
    lo = lo + eye(m, dtype=lu_.dtype, device=lu_.device)
    up = triu(_slice(lu_, (0,) * nd, lu_.shape[:-2] + (k, n)))
    if n > k:
        up = _pad(up, [(0, 0)] * (nd - 2) + [(0, n - k), (0, 0)])
        up = up + _pad(eye(n - k, dtype=lu_.dtype, device=lu_.device), [(k, 0), (k, 0)])
    return lo, up


def _perm_matrix(perm, m, dtype):
    """P with P[i, j] = 1 where perm[i] == j, so P @ x == x[perm]."""
    from .creation import iota
    from .math import equal, where
    from .shape import expand_dims
    hot = equal(expand_dims(perm, -1), iota((m,), 0, dtype=perm.dtype, device=perm.device))
    return where(hot, 1.0, 0.0).astype(dtype)


def _derivatives():
    from ..ir.registry import defjvp, defvjp
    from .creation import tril, triu
    from .shape import concatenate, slice_axis

    # -- cholesky: dL = L Phi(L^-1 dA L^-T), dA symmetric from the lower triangle read
    def cholesky_jvp(ts, x, *, out):
        if ts[0] is None:
            return None
        lo = out
        da = _sym_from_triangle(ts[0], True)
        y = triangular_solve(lo, da, lower=True)
        xm = triangular_solve(lo, y, left_side=False, lower=True, transpose_a=True)
        return matmul(lo, _phi(xm))

    def cholesky_vjp(ct, x, *, out):
        lo = out
        p = _phi(matmul(_mT(lo), ct))
        z = triangular_solve(lo, p, lower=True, transpose_a=True)
        s = triangular_solve(lo, z, left_side=False, lower=True)
        return (_onto_triangle(0.5 * (s + _mT(s)), True),)
    defvjp(CHOLESKY, cholesky_vjp)
    defjvp(CHOLESKY, cholesky_jvp)

    # -- triangular_solve: op(A) X = B  =>  dX = op(A)^-1 (dB - op(dA) X)   (left side)
    #                      X op(A) = B  =>  dX = (dB - X op(dA)) op(A)^-1   (right side)
    def trsolve_jvp(ts, a, b, *, out, left_side, lower, transpose_a, unit_diagonal):
        ta, tb = ts
        rhs = tb
        if ta is not None:
            da = _tri_mask(ta, lower, unit_diagonal)
            da = _mT(da) if transpose_a else da
            corr = matmul(da, out) if left_side else matmul(out, da)
            rhs = -corr if rhs is None else rhs - corr
        if rhs is None:
            return None
        return triangular_solve(a, rhs, left_side=left_side, lower=lower,
                                transpose_a=transpose_a, unit_diagonal=unit_diagonal)

    def trsolve_vjp(ct, a, b, *, out, left_side, lower, transpose_a, unit_diagonal):
        cb = triangular_solve(a, ct, left_side=left_side, lower=lower,
                              transpose_a=not transpose_a, unit_diagonal=unit_diagonal)
        if left_side:
            g = matmul(out, _mT(cb)) if transpose_a else matmul(cb, _mT(out))
        else:
            g = matmul(_mT(cb), out) if transpose_a else matmul(_mT(out), cb)
        return -_tri_mask(g, lower, unit_diagonal), cb
    defvjp(TRIANGULAR_SOLVE, trsolve_vjp)
    defjvp(TRIANGULAR_SOLVE, trsolve_jvp)

    # -- lu (fixed pivots): with X = P dA, W = l^-1 X u^-1,
    #    d(lu) = l tril(W, -1) + triu(W) u      (l, u padded to square with identity blocks)
    def lu_jvp(ts, x, *, out):
        if ts[0] is None:
            return None
        lu_, _, perm = out
        m, n = x.shape[-2:]
        lo, up = _lu_factors(lu_, m, n)
        xp = matmul(_perm_matrix(perm, m, x.dtype), ts[0])
        w = triangular_solve(lo, xp, lower=True, unit_diagonal=True)
        w = triangular_solve(up, w, left_side=False, lower=False)
        return matmul(lo, tril(w, k=-1)) + matmul(triu(w), up), None, None

    def lu_vjp(ct, x, *, out):
        lu_, _, perm = out
        m, n = x.shape[-2:]
        lo, up = _lu_factors(lu_, m, n)
        g = ct[0]
        gw = tril(matmul(_mT(lo), g), k=-1) + triu(matmul(g, _mT(up)))
        gw = triangular_solve(up, gw, left_side=False, lower=False, transpose_a=True)
        gx = triangular_solve(lo, gw, lower=True, transpose_a=True, unit_diagonal=True)
        return (matmul(_mT(_perm_matrix(perm, m, x.dtype)), gx),)
    defvjp(LU, lu_vjp)
    defjvp(LU, lu_jvp)

    # -- qr (full rank). For m >= n with Q (m, n), R (n, n):
    #    Xr = dA R^-1, C = Q^T Xr, Om = tril(C, -1) - tril(C, -1)^T (skew),
    #    dQ = Q (Om - C) + Xr, dR = (C - Om) R.
    #    m < n: A = [X Y] with X square; dR2 = Q^T dY - Om R2.
    def qr_jvp(ts, x, *, out, full_matrices):
        if ts[0] is None:
            return None
        q, r = out
        da = ts[0]
        m, n = x.shape[-2:]
        k = builtins.min(m, n)
        q1 = slice_axis(q, -1, 0, k)
        r1 = slice_axis(r, -2, 0, k)                # (k, n)
        r11 = slice_axis(r1, -1, 0, k)              # (k, k)
        dx = slice_axis(da, -1, 0, k)
        xr = triangular_solve(r11, dx, left_side=False, lower=False)
        c = matmul(_mT(q1), xr)
        lc = tril(c, k=-1)
        om = lc - _mT(lc)
        dq1 = matmul(q1, om - c) + xr
        dr = matmul(c - om, r11)
        if n > k:
            dr2 = matmul(_mT(q1), slice_axis(da, -1, k, n)) - matmul(om, slice_axis(r1, -1, k, n))
            dr = concatenate([dr, dr2], axis=-1)
        dq = dq1
        if q.shape[-1] > k:                         # complete, tall: Q = [Q1 Q2], R = [R1; 0]
            q2 = slice_axis(q, -1, k, m)
            dq = concatenate([dq1, _complement_jvp(q1, q2, dq1)], axis=-1)
            from .creation import zeros
            dr = concatenate([dr, zeros(r.shape[:-2] + (m - k, n), dtype=r.dtype,
                                        device=r.device)], axis=-2)
        return dq, dr

    def qr_vjp(ct, x, *, out, full_matrices):
        q, r = out
        gq, gr = ct
        m, n = x.shape[-2:]
        k = builtins.min(m, n)
        q1 = slice_axis(q, -1, 0, k)
        gq1 = slice_axis(gq, -1, 0, k)
        if q.shape[-1] > k:                         # the minimal derivative of Q2
            q2 = slice_axis(q, -1, k, m)
            gq1 = gq1 - matmul(q2, matmul(_mT(slice_axis(gq, -1, k, m)), q1))
        r1 = slice_axis(r, -2, 0, k)
        gr1 = slice_axis(gr, -2, 0, k)
        r11 = slice_axis(r1, -1, 0, k)
        gr11 = slice_axis(gr1, -1, 0, k)
        mm = matmul(_mT(q1), gq1)
        nn = matmul(gr11, _mT(r11))
        k_om = mm - nn
        if n > k:
            r2 = slice_axis(r1, -1, k, n)
            gr2 = slice_axis(gr1, -1, k, n)
            k_om = k_om - matmul(gr2, _mT(r2))
        gc = tril(k_om - _mT(k_om), k=-1) + nn - mm
        gxr = gq1 + matmul(q1, gc)
        gx = triangular_solve(r11, gxr, left_side=False, lower=False, transpose_a=True)
        if n > k:
            gx = concatenate([gx, matmul(q1, gr2)], axis=-1)
        return (gx,)
    defvjp(QR, qr_vjp)
    defjvp(QR, qr_jvp)

    # -- svd (distinct non-zero singular values). With dP = U^T dA V, F_ij = 1/(s_j^2 - s_i^2):
    #    ds = diag(dP), dU = U [F o (dP S + S dP^T)] + (I - U U^T) dA V S^-1   (m > n),
    #    dV = V [F o (S dP + dP^T S)] + (I - V V^T) dA^T U S^-1                (n > m).
    def svd_parts(out, m, n):
        u, s, vh = out
        k = builtins.min(m, n)
        u1 = slice_axis(u, -1, 0, k)
        v1 = _mT(slice_axis(vh, -2, 0, k))
        return u, s, vh, k, u1, v1

    def svd_jvp(ts, x, *, out, full_matrices):
        if ts[0] is None:
            return None
        from .shape import expand_dims
        da = ts[0]
        m, n = x.shape[-2:]
        u, s, vh, k, u1, v1 = svd_parts(out, m, n)
        dp = matmul(_mT(u1), matmul(da, v1))
        ds = _diag_part(dp)
        f = _inv_gaps(s, True)
        srow = expand_dims(s, -2)                   # multiplies columns: X S
        scol = expand_dims(s, -1)                   # multiplies rows:    S X
        du = matmul(u1, f * (dp * srow + scol * _mT(dp)))
        dv = matmul(v1, f * (scol * dp + _mT(dp) * srow))
        if m > k:
            dav = matmul(da, v1)
            du = du + (dav - matmul(u1, matmul(_mT(u1), dav))) / srow
        if n > k:
            dau = matmul(_mT(da), u1)
            dv = dv + (dau - matmul(v1, matmul(_mT(v1), dau))) / srow
        if u.shape[-1] > k:
            du = concatenate([du, _complement_jvp(u1, slice_axis(u, -1, k, m), du)], axis=-1)
        if vh.shape[-2] > k:
            v2 = _mT(slice_axis(vh, -2, k, n))
            dv = concatenate([dv, _complement_jvp(v1, v2, dv)], axis=-1)
        return du, ds, _mT(dv)

    def svd_vjp(ct, x, *, out, full_matrices):
        from .shape import expand_dims
        gu, gs, gvh = ct
        m, n = x.shape[-2:]
        u, s, vh, k, u1, v1 = svd_parts(out, m, n)
        gu1 = slice_axis(gu, -1, 0, k)
        gv = _mT(gvh)
        gv1 = slice_axis(gv, -1, 0, k)
        if u.shape[-1] > k:
            u2 = slice_axis(u, -1, k, m)
            gu1 = gu1 - matmul(u2, matmul(_mT(slice_axis(gu, -1, k, m)), u1))
        if vh.shape[-2] > k:
            v2 = _mT(slice_axis(vh, -2, k, n))
            gv1 = gv1 - matmul(v2, matmul(_mT(slice_axis(gv, -1, k, n)), v1))
        f = _inv_gaps(s, True)
        srow = expand_dims(s, -2)
        scol = expand_dims(s, -1)
        j = f * matmul(_mT(u1), gu1)
        kk = f * matmul(_mT(v1), gv1)
        gp = (j + _mT(j)) * srow + scol * (kk + _mT(kk)) + _diag_embed(gs)
        ga = matmul(u1, matmul(gp, _mT(v1)))
        if m > k:
            t = gu1 / srow
            ga = ga + matmul(t - matmul(u1, matmul(_mT(u1), t)), _mT(v1))
        if n > k:
            t = gv1 / srow
            ga = ga + matmul(u1, _mT(t - matmul(v1, matmul(_mT(v1), t))))
        return (ga,)
    defvjp(SVD, svd_vjp)
    defjvp(SVD, svd_jvp)

    # -- eigh (distinct eigenvalues), dA symmetric from the triangle read:
    #    dw = diag(V^T dA V), dV = V [F o (V^T dA V)] with F_ij = 1/(w_j - w_i)
    def eigh_jvp(ts, x, *, out, lower):
        if ts[0] is None:
            return None
        w, v = out
        da = _sym_from_triangle(ts[0], lower)
        dp = matmul(_mT(v), matmul(da, v))
        return _diag_part(dp), matmul(v, _inv_gaps(w, False) * dp)

    def eigh_vjp(ct, x, *, out, lower):
        w, v = out
        gw, gv = ct
        inner = _diag_embed(gw) + _inv_gaps(w, False) * matmul(_mT(v), gv)
        g = matmul(v, matmul(inner, _mT(v)))
        return (_onto_triangle(g, lower),)
    defvjp(EIGH, eigh_vjp)
    defjvp(EIGH, eigh_jvp)


_derivatives()
