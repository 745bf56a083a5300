"""``s4.random``: stateless, splittable random numbers (Threefry-2x32, as JAX).

A key is a ``uint32[2]`` Tensor. Every sampler is a pure function of its key: the same key
always gives the same numbers, because the one source of randomness is the ``threefry2x32``
primitive (Threefry-2x32 with 20 rounds, Salmon et al. 2011, bit-exact with JAX's and
Random123's reference) and everything else is ordinary integer and float ops. Bits, integers,
uniforms and Bernoulli draws are bit-identical on every backend; samplers that go through a
transcendental function (``normal`` through ``erfinv``, ``exponential``, ``gamma``...) agree
across backends to within that function's documented error (a few ulp), because each backend
computes it with its own approximation.

The derivations follow JAX's defaults (``jax_threefry_partitionable=True``), so for the same
seed s4tf_py draws the same bits, uniforms and integers as ``jax.random``:

* ``key(seed)`` is ``[seed >> 32, seed & 0xFFFFFFFF]``;
* ``split(key, n)[i]`` and ``fold_in(key, i)`` are ``threefry(key, (0, i))``;
* ``random_bits(key, shape)`` hashes the flat element index: ``x0 ^ x1`` of
  ``threefry(key, (hi(i), lo(i)))``;
* ``uniform`` puts the top mantissa bits into ``[1, 2)`` and subtracts 1; ``normal`` is
  ``sqrt(2) * erfinv(u)`` for ``u`` uniform on ``(-1, 1)``.

Every sampler takes the key as its first positional argument (JAX style) or as ``key=``, or a
``seed=`` (an int, turned into ``key(seed)``); with neither, the draw comes from the innermost
:func:`key_scope` (see below) or, outside every scope, from a global key that :func:`set_seed`
resets (S4TF's ``Context.local.randomSeed``), split on the host so that graphs never chain
through it::

    >>> import s4tf_py as s4
    >>> k = s4.random.key(0)
    >>> a = s4.random.normal((2, 3), key=k)
    >>> b = s4.random.normal(k, (2, 3))          # the same numbers
    >>> bool(s4.all(a == b))
    True
    >>> s4.random.uniform((4,), seed=1).shape
    (4,)

Randomness inside a compiled step: a key drawn from the global key while ``s4.compile`` traces
its body is a constant of the compiled program (every call would reuse the same dropout mask).
Pass a key tensor as an *input* of the step and draw under ``with s4.random.key_scope(key):``:
samplers without ``key=``/``seed=`` then use ``fold_in(key, 0)``, ``fold_in(key, 1)``, ... in
program order, so one trace serves every step and a fresh key per step gives fresh numbers::

    >>> @s4.compile
    ... def noisy(x, k):
    ...     with s4.random.key_scope(k):
    ...         return x + s4.random.normal(x.shape)
    >>> x = s4.zeros((3,))
    >>> a, b = noisy(x, s4.random.key(1)), noisy(x, s4.random.key(2))
    >>> bool(s4.all(a == noisy(x, s4.random.key(1)))), bool(s4.any(a != b)), noisy.traces
    (True, True, 1)
"""
from __future__ import annotations

import threading
import warnings

import numpy as np

from .. import dtypes as dt
from ..errors import DTypeError, ShapeError, op_error
from ..ir.registry import AVal, define
from ..tensor import Tensor
from ._core import _broadcast_shapes, bind_op, stop_gradient, to_tensor

__all__ = ["key", "PRNGKey", "split", "fold_in", "key_data", "set_seed", "threefry2x32",
           "random_bits", "bits", "uniform", "normal", "bernoulli", "categorical", "gumbel",
           "permutation", "shuffle", "truncated_normal", "randint", "key_scope", "next_key"]

# ---- the primitive ------------------------------------------------------------------------------

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA


def threefry2x32_numpy(k1, k2, x1, x2):
    """Threefry-2x32, 20 rounds, on numpy ``uint32`` arrays (broadcasting); returns two arrays.

    The key schedule and rotation constants are those of Random123 and of JAX's
    ``threefry_2x32``: five groups of four rounds, a key injection after each group.
    """
    shape = np.broadcast_shapes(np.shape(k1), np.shape(k2), np.shape(x1), np.shape(x2))
    u = np.uint32
    k1 = np.broadcast_to(np.asarray(k1, u), shape).ravel()
    k2 = np.broadcast_to(np.asarray(k2, u), shape).ravel()
    x0 = np.array(np.broadcast_to(np.asarray(x1, u), shape)).ravel()
    y0 = np.array(np.broadcast_to(np.asarray(x2, u), shape)).ravel()
    ks = (k1, k2, k1 ^ k2 ^ u(_PARITY))
    with np.errstate(over="ignore"):
        x = [x0 + ks[0], y0 + ks[1]]
        for i in range(5):
            for r in _ROTATIONS[i % 2]:
                x[0] = x[0] + x[1]
                x[1] = (x[1] << u(r)) | (x[1] >> u(32 - r))
                x[1] = x[1] ^ x[0]
            x[0] = x[0] + ks[(i + 1) % 3]
            x[1] = x[1] + ks[(i + 2) % 3] + u(i + 1)
    return x[0].reshape(shape), x[1].reshape(shape)


def _threefry_rule(k1, k2, x1, x2):
    for a in (k1, k2, x1, x2):
        if a.dtype != dt.uint32:
            raise DTypeError("threefry2x32 operands must all be uint32, got "
                             + ", ".join(map(str, (k1, k2, x1, x2))))
    shape = k1.shape
    for a in (k2, x1, x2):
        shape = _broadcast_shapes(shape, a.shape)
        if shape is None:
            raise ShapeError("threefry2x32 operands cannot be broadcast: "
                             + ", ".join(map(str, (k1, k2, x1, x2))))
    out = AVal(shape, dt.uint32, False)
    return (out, out)


THREEFRY2X32 = define(
    "threefry2x32", _threefry_rule, threefry2x32_numpy, multiple_results=True,
    differentiable=False,
    doc="Threefry-2x32 (20 rounds) of counters (x1, x2) under key (k1, k2); all uint32, "
        "broadcast elementwise; two uint32 results.")


def threefry2x32(k1, k2, x1, x2) -> tuple[Tensor, Tensor]:
    """The raw block cipher on uint32 Tensors (elementwise, broadcasting): ``(y1, y2)``."""
    ops = [to_tensor(a) if isinstance(a, Tensor) else to_tensor(np.asarray(a, np.uint32))
           for a in (k1, k2, x1, x2)]
    return bind_op(THREEFRY2X32, ops)


# ---- keys ---------------------------------------------------------------------------------------

def _seed_pair(op, seed) -> np.ndarray:
    if isinstance(seed, Tensor):
        seed = seed.item()
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise op_error(TypeError, op, f"seed must be an int, got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if not -2**63 <= seed < 2**64:
        raise op_error(ValueError, op, f"seed {seed} does not fit in 64 bits")
    return np.array([(seed >> 32) & 0xFFFFFFFF, seed & 0xFFFFFFFF], dtype=np.uint32)


def key(seed: int, *, device=None) -> Tensor:
    """A ``uint32[2]`` key from an integer seed (``[seed >> 32, seed & 0xFFFFFFFF]``, as JAX).

    >>> import s4tf_py as s4
    >>> s4.random.key(42).tolist()
    [0, 42]
    """
    return Tensor(_seed_pair("random.key", seed), device=device)


PRNGKey = key


def _check_key(op, k) -> Tensor:
    if not isinstance(k, Tensor):
        k = to_tensor(np.asarray(k))
    if k.dtype != dt.uint32 or k.shape != (2,):
        raise op_error(DTypeError if k.dtype != dt.uint32 else ShapeError, op,
                       "a key must be a uint32[2] Tensor (from s4.random.key or split); "
                       f"got {k.dtype}{list(k.shape)}", [k])
    return k


def key_data(k) -> Tensor:
    """The key's two uint32 words (keys are already plain uint32[2] Tensors)."""
    return _check_key("random.key_data", k).copy()


def _key_words(op, k):
    from .shape import reshape, slice as _slice
    k = _check_key(op, k)
    return reshape(_slice(k, (0,), (1,)), ()), reshape(_slice(k, (1,), (2,)), ())


def _counters(shape, device):
    """(hi, lo) words of the row-major flat index of every element of ``shape``."""
    from .creation import full, iota
    from .shape import reshape
    n = int(np.prod(shape, dtype=np.int64))
    if n > 2**32:
        hi = reshape(iota((n,), 0, dtype=dt.uint64, device=device), shape)
        return (hi >> 32).astype(dt.uint32), (hi & 0xFFFFFFFF).astype(dt.uint32)
    lo = reshape(iota((n,), 0, dtype=dt.uint32, device=device), shape)
    return full((), 0, dtype=dt.uint32, device=device), lo


def _norm_shape(op, shape) -> tuple[int, ...]:
    """``creation._norm_shape``, with None meaning a scalar."""
    from .creation import _norm_shape as norm
    return () if shape is None else norm(op, shape)


def split(key, num: int = 2) -> Tensor:
    """``num`` new keys (a ``uint32[num, 2]`` Tensor), independent of each other and of ``key``.

    ``split(k, n)[i]`` is ``threefry(k, (0, i))``, as JAX's default (partitionable) split.
    """
    from .shape import stack
    k1, k2 = _key_words("random.split", key)
    shape = _norm_shape("random.split", num)
    hi, lo = _counters(shape, k1.device)
    y1, y2 = bind_op(THREEFRY2X32, [k1, k2, hi, lo])
    return stack([y1, y2], axis=len(shape))


def fold_in(key, data) -> Tensor:
    """A new key from ``key`` and an integer ``data`` (a step number, a layer index...).

    ``fold_in(k, i)`` equals ``split(k, n)[i]`` for any ``n > i``, as in JAX.
    """
    from .shape import stack
    k1, k2 = _key_words("random.fold_in", key)
    if isinstance(data, Tensor):
        if not dt.is_integer(data.dtype) or data.ndim != 0:
            raise op_error(DTypeError, "random.fold_in", "data must be an integer scalar", [data])
        d = data.astype(dt.uint32)
    else:
        d = to_tensor(np.asarray(int(data) & 0xFFFFFFFF, np.uint32), device=k1.device)
    zero = to_tensor(np.zeros((), np.uint32), device=k1.device)
    y1, y2 = bind_op(THREEFRY2X32, [k1, k2, zero, d])
    return stack([y1, y2])


# ---- the global key -----------------------------------------------------------------------------

_GLOBAL = {"key": np.array([0, 0], np.uint32)}


def set_seed(seed: int) -> None:
    """Reset the global key that samplers use when given neither ``key=`` nor ``seed=``."""
    _GLOBAL["key"] = _seed_pair("random.set_seed", seed)


def _next_global_key() -> np.ndarray:
    k = _GLOBAL["key"]
    y1, y2 = threefry2x32_numpy(k[0], k[1], np.zeros(2, np.uint32), np.arange(2, dtype=np.uint32))
    _GLOBAL["key"] = np.array([y1[0], y2[0]], np.uint32)
    return np.array([y1[1], y2[1]], np.uint32)


# ---- key scopes ---------------------------------------------------------------------------------

class _ScopeStack(threading.local):
    def __init__(self):
        self.stack: list[key_scope] = []


_SCOPES = _ScopeStack()


def _depends_on_trace_input(node) -> bool:
    """Whether ``node`` is computed from an abstract leaf (an input of a function being traced).
    Keys are small graphs (a leaf and a few threefry/stack nodes), so the walk is short."""
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.is_abstract:
            return True
        if n.value is None:
            todo.extend(n.inputs)
    return False


class key_scope:
    """``with s4.random.key_scope(key):`` — samplers given neither ``key=`` nor ``seed=`` derive
    their keys from ``key``: the ``i``-th such draw made under this scope (0-based, in program
    order) uses ``fold_in(key, i)``. Outside every scope they use the global key, as before.

    ``key`` is a ``uint32[2]`` key Tensor (or an int seed, meaning ``key(seed)``). Scopes nest
    (the innermost one wins) and are per thread. Because the keys are ordinary graph values
    computed from ``key``, a compiled training step that takes ``key`` as an *argument* and
    enters the scope inside its body traces once and draws fresh numbers for every key it is
    given (same key, same numbers). Layers such as ``s4.nn.Dropout`` draw through this, so::

        @s4.compile
        def step(model, opt, x, y, key):
            with s4.learning_phase("training"), s4.random.key_scope(key):
                ...
        for i in range(steps):
            model, opt, loss = step(model, opt, x, y, s4.random.fold_in(root, i))

    Entering the scope *outside* the compiled function does not work: its key is not an input,
    so the first trace bakes it in; a draw made while tracing from a scope whose key does not
    depend on the traced inputs warns. Do not also use ``key`` for other draws (split it first):
    ``fold_in(key, i)`` equals ``split(key, n)[i]``.

    >>> import s4tf_py as s4
    >>> k = s4.random.key(7)
    >>> with s4.random.key_scope(k) as scope:
    ...     a = s4.random.uniform((2,))
    ...     b = s4.random.uniform((2,))
    >>> bool(s4.all(a == s4.random.uniform((2,), key=s4.random.fold_in(k, 0)))), scope.count
    (True, 2)
    """

    def __init__(self, key):
        if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
            key = Tensor(_seed_pair("random.key_scope", key))
        self.key: Tensor = _check_key("random.key_scope", key)
        #: how many keys this scope has handed out
        self.count: int = 0
        self._warned = False

    def __enter__(self) -> "key_scope":
        _SCOPES.stack.append(self)
        return self

    def __exit__(self, *exc) -> None:
        stack = _SCOPES.stack
        if stack and stack[-1] is self:
            stack.pop()
        else:                       # exited out of order (a generator, a leaked scope)
            stack.remove(self)

    def next_key(self) -> Tensor:
        """The next key of this scope, ``fold_in(self.key, self.count)``; counts it."""
        from ..lazy.compile import is_tracing
        if is_tracing() and not self._warned and not _depends_on_trace_input(self.key._node):
            self._warned = True
            warnings.warn(
                "s4.random.key_scope: a random draw while s4.compile traces a function uses a "
                "scope whose key is not computed from the function's arguments, so the key is "
                "baked into the compiled program and every call draws the same numbers. Pass "
                "the key as an argument and enter key_scope inside the compiled function.",
                UserWarning, stacklevel=4)
        i = self.count
        self.count += 1
        return fold_in(self.key, i)


def next_key() -> Tensor:
    """The key that a sampler called now without ``key=``/``seed=`` would use (and consume):
    the innermost :class:`key_scope`'s next key, or else a fresh split of the global key.
    For code that passes keys on explicitly (``s4.nn.functional.dropout(x, p, key=...)``).

    >>> import s4tf_py as s4
    >>> with s4.random.key_scope(3):
    ...     k = s4.random.next_key()
    >>> bool(s4.all(k == s4.random.fold_in(s4.random.key(3), 0)))
    True
    """
    stack = _SCOPES.stack
    if stack:
        return stack[-1].next_key()
    return to_tensor(_next_global_key())


_UNSET = object()     # marks an argument that was not passed (None can be a value)


def _too_many(op):
    return op_error(TypeError, op, "too many positional arguments (without a key first, pass "
                                   "the rest as keywords)")


def _is_key(x) -> bool:
    return (isinstance(x, Tensor) and x.dtype == dt.uint32 and x.shape == (2,)) or \
        (isinstance(x, np.ndarray) and x.dtype == np.uint32 and x.shape == (2,))


def _resolve(op, key_or_shape, shape, key, seed, default_shape=()):
    """(key Tensor, shape tuple) from the flexible calling conventions."""
    if _is_key(key_or_shape):
        if key is not None:
            raise op_error(TypeError, op, "the key was given twice (positionally and as key=)")
        key, key_or_shape = key_or_shape, None
    if key_or_shape is not None:
        if shape is not None:
            raise op_error(TypeError, op, f"the shape was given twice ({key_or_shape!r} and "
                                          f"shape={shape!r}); pass a key first: {op}(key, shape)")
        shape = key_or_shape
    if key is not None and seed is not None:
        raise op_error(TypeError, op, "pass either key= or seed=, not both")
    if key is None:
        key = to_tensor(_seed_pair(op, seed)) if seed is not None else next_key()
    key = _check_key(op, key)
    return key, (default_shape if shape is None else _norm_shape(op, shape))


def _float_dtype(op, dtype):
    d = dt.canonical(dtype) if dtype is not None else dt.default_float
    if not dt.is_floating(d):
        raise op_error(DTypeError, op, f"needs a floating-point dtype, got {d}")
    return d


# ---- samplers -----------------------------------------------------------------------------------

def _random_bits(k, shape, bit_width):
    k1, k2 = _key_words("random.random_bits", k)
    hi, lo = _counters(shape, k1.device)
    y1, y2 = bind_op(THREEFRY2X32, [k1, k2, hi, lo])
    if bit_width == 64:
        return (y1.astype(dt.uint64) << 32) | y2.astype(dt.uint64)
    b = y1 ^ y2
    if bit_width == 32:
        return b
    return b.astype(dt.canonical(f"uint{bit_width}"))


def random_bits(key_or_shape=None, shape=None, bit_width: int = 32, *, key=None,
                seed=None) -> Tensor:
    """Uniformly random unsigned integers of ``bit_width`` bits (8, 16, 32 or 64)."""
    k, shape = _resolve("random.random_bits", key_or_shape, shape, key, seed)
    if bit_width not in (8, 16, 32, 64):
        raise op_error(ValueError, "random.random_bits",
                       f"bit_width must be 8, 16, 32 or 64, got {bit_width}")
    return _random_bits(k, shape, bit_width)


bits = random_bits

_NMANT = {dt.float16: 10, dt.bfloat16: 7, dt.float32: 23, dt.float64: 52}


def _scalar_in(v, dtype):
    """A Python scalar rounded to ``dtype`` (kept as a Python float), or a Tensor cast to it."""
    if isinstance(v, Tensor):
        return v.astype(dtype)
    return float(np.asarray(v, dtype=dtype))


def _uniform(k, shape, dtype, minval, maxval):
    nbits = np.dtype(dtype).itemsize * 8
    nmant = _NMANT[dtype]
    rng_bits = 8 if nmant < 8 else nbits
    b = _random_bits(k, shape, rng_bits)
    m = b >> (rng_bits - nmant)
    floats = m.astype(dtype) * float(2.0 ** -nmant)       # exact: [0, 1) on a 2**-nmant grid
    lo, hi = _scalar_in(minval, dtype), _scalar_in(maxval, dtype)
    if not isinstance(lo, Tensor) and not isinstance(hi, Tensor):
        span = float(np.asarray(hi, dtype) - np.asarray(lo, dtype))
        r = floats if span == 1.0 else floats * span
        r = r + lo if lo != 0.0 else r
    else:
        r = floats * (hi - lo) + lo
    from .math import maximum
    from .shape import broadcast_to
    r = maximum(lo, r)
    return r if r.shape == shape else broadcast_to(r, shape)


def uniform(key_or_shape=None, shape=None, *, dtype=None, minval=0.0, maxval=1.0, key=None,
            seed=None) -> Tensor:
    """Uniform floats in ``[minval, maxval)``.

    ``uniform(shape, seed=0)``, ``uniform(shape, key=k)`` or ``uniform(k, shape)``.
    """
    op = "random.uniform"
    k, shape = _resolve(op, key_or_shape, shape, key, seed)
    return _uniform(k, shape, _float_dtype(op, dtype), minval, maxval)


def _standard_normal(k, shape, dtype):
    from .math import erfinv
    lo = float(np.nextafter(np.asarray(-1.0, dtype), np.asarray(0.0, dtype)))
    u = _uniform(k, shape, dtype, lo, 1.0)
    return erfinv(u) * float(np.asarray(np.sqrt(2.0), dtype))


def normal(key_or_shape=None, shape=None, *, dtype=None, mean=0.0, stddev=1.0, key=None,
           seed=None) -> Tensor:
    """Normal (Gaussian) samples with ``mean`` and ``stddev`` (``s4.random.normal(shape, seed=..)``)."""
    op = "random.normal"
    k, shape = _resolve(op, key_or_shape, shape, key, seed)
    z = _standard_normal(k, shape, _float_dtype(op, dtype))
    return _affine(z, mean, stddev)


def _affine(z, mean, stddev):
    if isinstance(stddev, Tensor) or stddev != 1.0:
        z = z * stddev
    if isinstance(mean, Tensor) or mean != 0.0:
        z = z + mean
    return z


def truncated_normal(key_or_shape=None, shape=None, *, lower=-2.0, upper=2.0, dtype=None,
                     mean=0.0, stddev=1.0, key=None, seed=None) -> Tensor:
    """Standard normal samples conditioned on ``lower < z < upper`` (default ±2, as TF's
    truncated normal), then scaled by ``stddev`` and shifted by ``mean``."""
    from .math import clip, erf, erfinv, nextafter
    op = "random.truncated_normal"
    k, shape = _resolve(op, key_or_shape, shape, key, seed)
    dtype = _float_dtype(op, dtype)
    sqrt2 = float(np.asarray(np.sqrt(2.0), dtype))
    lo_t = to_tensor(np.asarray(lower, dtype))
    hi_t = to_tensor(np.asarray(upper, dtype))
    a = erf(lo_t / sqrt2)
    b = erf(hi_t / sqrt2)
    u = _uniform(k, shape, dtype, a, b)
    z = erfinv(u) * sqrt2
    z = clip(z, nextafter(stop_gradient(lo_t), float("inf")),
             nextafter(stop_gradient(hi_t), float("-inf")))
    return _affine(z, mean, stddev)


def bernoulli(key_or_p=None, p=_UNSET, shape=None, *, key=None, seed=None) -> Tensor:
    """Booleans that are True with probability ``p`` (shape defaults to ``p``'s shape).

    ``bernoulli(key, p, shape)`` (JAX) or ``bernoulli(p, shape, seed=..)``.
    """
    op = "random.bernoulli"
    if key_or_p is not None and not _is_key(key_or_p):      # bernoulli(p, shape, ...)
        if shape is not None:
            raise _too_many(op)
        key_or_p, p, shape = None, key_or_p, (None if p is _UNSET else p)
    if p is _UNSET:
        p = 0.5
    p_shape = tuple(p.shape) if isinstance(p, Tensor) else np.shape(p)
    k, shape = _resolve(op, key_or_p, shape, key, seed, default_shape=p_shape)
    if _broadcast_shapes(tuple(shape), tuple(p_shape)) != tuple(shape):
        raise op_error(ShapeError, op, f"p of shape {p_shape} does not broadcast to {shape}",
                       [p] if isinstance(p, Tensor) else ())
    dtype = p.dtype if isinstance(p, Tensor) and dt.is_floating(p.dtype) else dt.default_float
    if isinstance(p, Tensor):
        p = p.astype(dtype)
    elif not isinstance(p, (int, float)):
        p = to_tensor(np.asarray(p, dtype))
    from .math import less
    return less(_uniform(k, shape, dtype, 0.0, 1.0), p)


def gumbel(key_or_shape=None, shape=None, *, dtype=None, key=None, seed=None) -> Tensor:
    """Standard Gumbel samples, ``-log(-log(u))``."""
    from .math import log
    op = "random.gumbel"
    k, shape = _resolve(op, key_or_shape, shape, key, seed)
    dtype = _float_dtype(op, dtype)
    tiny = float(dt.finfo(dtype).smallest_normal)
    return -log(-log(_uniform(k, shape, dtype, tiny, 1.0)))


def categorical(key_or_logits=None, logits=None, axis=_UNSET, shape=None, *, key=None,
                seed=None) -> Tensor:
    """Indices drawn from the categorical distributions ``softmax(logits)`` along ``axis``
    (the Gumbel-max trick). ``shape`` (default: the batch shape of ``logits``) may add
    leading sample dimensions."""
    from .reduction import argmax
    from .shape import expand_dims
    op = "random.categorical"
    if key_or_logits is not None and not _is_key(key_or_logits):  # categorical(logits, axis, shape)
        extra, logits, key_or_logits = logits, key_or_logits, None
        if extra is not None:
            if axis is not _UNSET and shape is not None:
                raise _too_many(op)
            if axis is not _UNSET:
                shape = axis
            axis = extra
    if axis is _UNSET:
        axis = -1
    if logits is None:
        raise op_error(TypeError, op, "needs logits")
    logits = to_tensor(logits)
    if not dt.is_floating(logits.dtype):
        logits = logits.astype(dt.default_float)
    if logits.ndim == 0:
        raise op_error(ShapeError, op, "logits must have at least one dimension", [logits])
    from .shape import normalize_axis
    ax = normalize_axis(op, axis, logits.ndim, logits)
    batch = tuple(d for i, d in enumerate(logits.shape) if i != ax)
    k, shape = _resolve(op, key_or_logits, shape, key, seed, default_shape=batch)
    if len(shape) < len(batch) or _broadcast_shapes(shape[len(shape) - len(batch):], batch) \
            != shape[len(shape) - len(batch):]:
        raise op_error(ShapeError, op, f"shape {shape} must end with the batch shape {batch}",
                       [logits])
    prefix = shape[:len(shape) - len(batch)]
    noise_shape = list(shape[len(prefix):])
    noise_shape.insert(ax, logits.shape[ax])
    noise_shape = prefix + tuple(noise_shape)
    from .math import log
    tiny = float(dt.finfo(logits.dtype).smallest_normal)
    g = -log(-log(_uniform(k, noise_shape, logits.dtype, tiny, 1.0)))
    lg = expand_dims(logits, tuple(range(len(prefix)))) if prefix else logits
    return argmax(g + lg, axis=len(prefix) + ax)


def _shuffle_indices(k, n):
    """A random permutation of ``range(n)`` by repeated sorts on random 32-bit keys (JAX's)."""
    from .creation import arange
    from .indexing import argsort, take
    x = arange(n, dtype=dt.default_int, device=k.device)
    rounds = int(np.ceil(3 * np.log(max(1, n)) / np.log(np.iinfo(np.uint32).max)))
    for _ in range(rounds):
        ks = split(k)
        k, sub = ks[0], ks[1]
        x = take(x, argsort(_random_bits(sub, (n,), 32)), axis=0)
    return x


def permutation(key_or_x=None, x=None, axis=_UNSET, *, key=None, seed=None) -> Tensor:
    """A shuffled copy of ``x`` along ``axis``, or a random permutation of ``range(x)`` for an int."""
    from .indexing import take
    from .shape import normalize_axis
    op = "random.permutation"
    if key_or_x is not None and not _is_key(key_or_x):          # permutation(x, axis)
        extra, x, key_or_x = x, key_or_x, None
        if extra is not None:
            if axis is not _UNSET:
                raise _too_many(op)
            axis = extra
    if axis is _UNSET:
        axis = 0
    k, _ = _resolve(op, key_or_x, None, key, seed)
    if x is None:
        raise op_error(TypeError, op, "needs x (an int or a tensor)")
    if isinstance(x, (int, np.integer)):
        if x < 0:
            raise op_error(ValueError, op, f"cannot permute range({x})")
        return _shuffle_indices(k, int(x))
    x = to_tensor(x)
    if x.ndim == 0:
        raise op_error(ShapeError, op, "x must be an int or have at least one dimension", [x])
    ax = normalize_axis(op, axis, x.ndim, x)
    return take(x, _shuffle_indices(k, x.shape[ax]), axis=ax)


def shuffle(key_or_x=None, x=None, axis=_UNSET, *, key=None, seed=None) -> Tensor:
    """``permutation`` of a tensor along ``axis``."""
    return permutation(key_or_x, x, axis, key=key, seed=seed)


def randint(key_or_shape=None, shape=None, minval=_UNSET, maxval=_UNSET, *, dtype=None,
            key=None, seed=None) -> Tensor:
    """Integers uniform in ``[minval, maxval)`` (``maxval`` is required), JAX's algorithm:
    two words of random bits reduced modulo the span. ``minval``/``maxval`` are Python ints.

    ``randint(key, shape, minval, maxval)`` (JAX) or ``randint(shape, minval, maxval, seed=..)``.
    """
    from .math import remainder
    op = "random.randint"
    if key_or_shape is not None and not _is_key(key_or_shape):  # randint(shape, lo, hi, ...)
        if shape is not None:           # the positionals after the shape are minval, maxval
            if minval is not _UNSET:
                if maxval is not _UNSET:
                    raise _too_many(op)
                maxval = minval
            minval = shape
        key_or_shape, shape = None, key_or_shape
    if minval is _UNSET:
        minval = 0
    if maxval is _UNSET:
        maxval = None
    k, shape = _resolve(op, key_or_shape, shape, key, seed)
    dtype = dt.canonical(dtype) if dtype is not None else dt.default_int
    if not dt.is_integer(dtype):
        raise op_error(DTypeError, op, f"needs an integer dtype, got {dtype}")
    if maxval is None:
        raise op_error(TypeError, op, "maxval is required")
    if isinstance(minval, Tensor) or isinstance(maxval, Tensor):
        raise op_error(TypeError, op, "minval and maxval must be Python ints")
    minval, maxval = int(minval), int(maxval)
    info = np.iinfo(dtype)
    out_dtype = dtype
    if info.bits < 32:          # sample in 32 bits so that small types are not biased (as JAX)
        minval = min(max(minval, int(info.min)), int(info.max))
        maxval = min(max(maxval, int(info.min)), int(info.max) + 1)
        dtype, info = dt.int32, np.iinfo(dt.int32)
    nbits = info.bits
    out_of_range = maxval > info.max
    lo = min(max(minval, info.min), info.max)
    hi = min(max(maxval, info.min), info.max)
    mod = 2 ** nbits
    span = (hi - lo) % mod
    if hi <= lo:
        span = 1
    elif out_of_range:
        span = (span + 1) % mod
    ks = split(k)
    if span == 0:      # the span is 2**nbits (the dtype's whole range): the low word is the value
        r = _random_bits(ks[1], shape, nbits).astype(dtype)
        r = r + to_tensor(np.asarray(lo, dtype), device=k.device) if lo != 0 else r
        return r.astype(out_dtype)
    mult = (2 ** (nbits // 2)) % span
    mult = ((mult * mult) % mod) % span
    higher = _random_bits(ks[0], shape, nbits)
    lower = _random_bits(ks[1], shape, nbits)
    udt = higher.dtype
    span_t = to_tensor(np.asarray(span, udt), device=k.device)
    off = remainder(higher, span_t)
    if mult != 1:
        off = off * to_tensor(np.asarray(mult, udt), device=k.device)
    off = remainder(off + remainder(lower, span_t), span_t)
    r = off.astype(dtype)
    r = r + to_tensor(np.asarray(lo, dtype), device=k.device) if lo != 0 else r
    return r.astype(out_dtype)
