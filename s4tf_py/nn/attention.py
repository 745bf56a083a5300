"""``MultiHeadAttention`` (Vaswani et al. 2017), batch-first: ``(batch, sequence, features)``.

Computes ``out_proj(concat_h(softmax(q_h k_hᵀ / sqrt(head_size) + mask) v_h))`` with
``q = query_proj(query)``, ``k = key_proj(key)``, ``v = value_proj(value)`` split into
``num_heads`` heads of ``head_size`` consecutive features. With weights copied over (``Dense``
stores ``(in, out)``, PyTorch ``(out, in)``: transpose) it matches
``torch.nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)``::

    E = embedding_size
    query_proj.weight = in_proj_weight[:E].T        query_proj.bias = in_proj_bias[:E]
    key_proj.weight   = in_proj_weight[E:2E].T      ...
    value_proj.weight = in_proj_weight[2E:].T
    out_proj.weight   = out_proj.weight.T           out_proj.bias = out_proj.bias

>>> import s4tf_py as s4
>>> from s4tf_py.nn.attention import MultiHeadAttention
>>> mha = MultiHeadAttention(8, num_heads=2, causal=True, seed=0)
>>> x = s4.random.normal((3, 5, 8), seed=1)
>>> mha(x).shape                                   # self-attention
(3, 5, 8)
>>> y, w = mha(x, s4.random.normal((3, 7, 8), seed=2), causal=False,
...            return_attention_weights=True)      # cross-attention over 7 keys
>>> y.shape, w.shape                               # weights: (batch, heads, queries, keys)
((3, 5, 8), (3, 2, 5, 7))
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as dt
from ..autodiff.structs import no_derivative
from ..errors import DTypeError, ShapeError, op_error
from ..ops import math as _m
from ..ops import nn as _nn
from ..ops import shape as _s
from ..ops._core import to_tensor
from ..ops.contraction import matmul
from ..tensor import Tensor
from .context import is_training
from .layer import Dense, Layer

__all__ = ["MultiHeadAttention"]

_NAME = "MultiHeadAttention"


def _features(proj: Dense) -> int:
    return proj.weight.shape[0]


class MultiHeadAttention(Layer):
    """Multi-head scaled dot-product attention with query/key/value/output projections.

    ``MultiHeadAttention(embedding_size, num_heads=1, *, head_size=None, key_size=None,
    value_size=None, output_size=None, dropout=0.0, causal=False, use_bias=True, seed=None,
    dtype=s4.float32)``: queries have ``embedding_size`` features, keys ``key_size`` and values
    ``value_size`` (both default to ``embedding_size``); each of the ``num_heads`` heads has
    ``head_size`` features (default ``embedding_size // num_heads``, which must then divide);
    the output has ``output_size`` (default ``embedding_size``). Projections are ``s4.nn.Dense``
    layers (Glorot-uniform weights, zero biases; ``seed`` makes them reproducible), or pass
    ``query_proj=``/``key_proj=``/``value_proj=``/``out_proj=`` to build from given layers.

    ``layer(query, key=None, value=None, *, mask=None, causal=None,
    return_attention_weights=False, dropout_key=None)``:

    * ``query`` ``(B, T, embedding_size)``; ``key`` ``(B, S, key_size)`` (default: ``query``,
      self-attention); ``value`` ``(B, S, value_size)`` (default: ``key``).
    * ``mask``: boolean, **True where a query may attend to a key** (Keras' and JAX's
      convention; PyTorch's boolean ``attn_mask`` is the negation), or floating-point, added
      to the scores. Shaped ``(T, S)``, ``(B, T, S)`` or ``(B, num_heads, T, S)`` (or
      broadcasting to it): a padding mask over keys is ``keep[:, None, :]``. A query whose
      keys are all masked attends uniformly instead of producing NaN.
    * ``causal`` (default: the layer's ``causal``): query ``i`` attends to keys ``j <= i``
      (top-left aligned, as ``torch``'s ``is_causal`` and JAX), combined with ``mask``.
    * in the training phase, dropout with probability ``dropout`` on the attention weights
      (key: ``dropout_key``, else the key scope or global key, see ``s4.random.key_scope``).
    * returns ``(B, T, output_size)``, and with ``return_attention_weights=True`` also the
      per-head weights ``(B, num_heads, T, S)`` (before dropout).

    float16/bfloat16 inputs compute the scores and softmax in float32.
    """

    query_proj: Dense
    key_proj: Dense
    value_proj: Dense
    out_proj: Dense
    num_heads: int = no_derivative(default=1)
    head_size: int = no_derivative(default=None)
    dropout: float = no_derivative(default=0.0)
    causal: bool = no_derivative(default=False)

    def __init__(self, embedding_size: int | None = None, num_heads: int = 1, *,
                 head_size: int | None = None, key_size: int | None = None,
                 value_size: int | None = None, output_size: int | None = None,
                 dropout: float = 0.0, causal: bool = False, use_bias: bool = True, seed=None,
                 dtype=dt.float32, query_proj: Dense | None = None,
                 key_proj: Dense | None = None, value_proj: Dense | None = None,
                 out_proj: Dense | None = None):
        num_heads = int(num_heads)
        if num_heads < 1:
            raise ValueError(f"{_NAME}: num_heads must be positive, got {num_heads}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{_NAME}: dropout must be in [0, 1), got {dropout}")
        given = (query_proj, key_proj, value_proj, out_proj)
        if all(p is not None for p in given):
            inner = query_proj.weight.shape[1]
            if inner % num_heads:
                raise ValueError(f"{_NAME}: the projections' {inner} features do not split "
                                 f"into {num_heads} heads")
            head_size = inner // num_heads
            if key_proj.weight.shape[1] != inner or value_proj.weight.shape[1] != inner or \
                    out_proj.weight.shape[0] != inner:
                raise ValueError(f"{_NAME}: the projections disagree on the inner size: query "
                                 f"{query_proj.weight.shape}, key {key_proj.weight.shape}, "
                                 f"value {value_proj.weight.shape}, out "
                                 f"{out_proj.weight.shape}")
        elif any(p is not None for p in given):
            raise TypeError(f"{_NAME}: pass all four projections or none")
        else:
            if embedding_size is None:
                raise TypeError(f"{_NAME} needs embedding_size (or the four projections)")
            e = int(embedding_size)
            if head_size is None:
                if e % num_heads:
                    raise ValueError(f"{_NAME}: embedding_size {e} is not divisible by "
                                     f"num_heads {num_heads}; pass head_size")
                head_size = e // num_heads
            inner = num_heads * int(head_size)

            def dense(i: int, n_in: int, n_out: int) -> Dense:
                # numpy Generator seeds: (seed, i) gives each projection its own stream
                return Dense(n_in, n_out, use_bias=use_bias, dtype=dtype,
                             seed=None if seed is None else (int(seed), i))
            query_proj = dense(0, e, inner)
            key_proj = dense(1, int(key_size or e), inner)
            value_proj = dense(2, int(value_size or e), inner)
            out_proj = dense(3, inner, int(output_size or e))
        self.query_proj, self.key_proj = query_proj, key_proj
        self.value_proj, self.out_proj = value_proj, out_proj
        self.num_heads = num_heads
        self.head_size = int(head_size)
        self.dropout = float(dropout)
        self.causal = bool(causal)

    # ---- checks -------------------------------------------------------------------------------

    @staticmethod
    def _check_input(what: str, x: Tensor, features: int, batch: int | None = None,
                     length: int | None = None) -> None:
        b = "B" if batch is None else str(batch)
        s = "S" if length is None else str(length)
        if x.ndim != 3 or x.shape[-1] != features or (batch is not None and x.shape[0] != batch) \
                or (length is not None and x.shape[1] != length):
            raise op_error(ShapeError, _NAME, f"expects {what} of shape ({b}, "
                                              f"{'T' if what == 'query' else s}, {features}), "
                                              f"got shape {x.shape}", [x])
        if not dt.is_floating(x.dtype):
            raise op_error(DTypeError, _NAME, f"expects a floating-point {what}, got {x.dtype}",
                           [x])

    def _mask(self, mask, b: int, t: int, s: int) -> Tensor:
        mask = to_tensor(mask)
        given = tuple(mask.shape)
        if mask.ndim == 2:
            mask = _s.reshape(mask, (1, 1) + mask.shape)
        elif mask.ndim == 3:
            mask = _s.expand_dims(mask, 1)
        want = (b, self.num_heads, t, s)
        if mask.ndim != 4 or any(m not in (1, w) for m, w in zip(mask.shape, want)):
            raise op_error(ShapeError, _NAME, f"expects a mask of shape (T, S), (B, T, S) or "
                                              f"(B, heads, T, S) broadcasting to {want}, got "
                                              f"shape {given}", [mask])
        return mask

    # ---- the computation ----------------------------------------------------------------------

    def __call__(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None,
                 *, mask=None, causal: bool | None = None,
                 return_attention_weights: bool = False, dropout_key: Tensor | None = None):
        query = to_tensor(query)
        key = query if key is None else to_tensor(key)
        value = key if value is None else to_tensor(value)
        self._check_input("query", query, _features(self.query_proj))
        b, t, _ = query.shape
        self._check_input("key", key, _features(self.key_proj), batch=b)
        s = key.shape[1]
        self._check_input("value", value, _features(self.value_proj), batch=b, length=s)
        h, d = self.num_heads, self.head_size

        def heads(x: Tensor, n: int) -> Tensor:            # (B, n, h*d) -> (B, h, n, d)
            return _s.permute_dims(_s.reshape(x, (b, n, h, d)), (0, 2, 1, 3))

        q = heads(self.query_proj(query), t)
        k = heads(self.key_proj(key), s)
        v = heads(self.value_proj(value), s)
        cdt = dt.float32 if q.dtype in dt.LOW_PRECISION else q.dtype
        q = q.astype(cdt) * (1.0 / math.sqrt(d))     # scaling q costs T*d, the scores T*S
        scores = matmul(q, _s.matrix_transpose(k.astype(cdt)))           # (B, h, T, S)
        allowed = None
        if mask is not None:
            m = self._mask(mask, b, t, s)
            if m.dtype == dt.bool_:
                allowed = m
            else:
                scores = scores + m.astype(cdt)
        if self.causal if causal is None else causal:
            tri = Tensor(np.tril(np.ones((t, s), dtype=bool)), device=scores.device)
            allowed = tri if allowed is None else _m.logical_and(allowed, tri)
        if allowed is not None:
            # the most negative finite value, not -inf: a fully masked row stays finite
            scores = _m.where(allowed, scores, float(np.finfo(cdt).min))
        weights = _nn.softmax(scores, axis=-1)
        probs = weights
        if self.dropout > 0.0 and is_training():
            probs = _nn.dropout(probs, self.dropout, key=dropout_key)
        out = matmul(probs.astype(v.dtype), v)                            # (B, h, T, d)
        out = _s.reshape(_s.permute_dims(out, (0, 2, 1, 3)), (b, t, h * d))
        y = self.out_proj(out)
        return (y, weights) if return_attention_weights else y
