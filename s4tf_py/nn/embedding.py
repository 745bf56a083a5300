"""``Embedding``: a lookup table of learned vectors, one per id (S4TF's ``Embedding``).

>>> import s4tf_py as s4
>>> from s4tf_py.nn.embedding import Embedding
>>> emb = Embedding(embeddings=s4.Tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]]))
>>> emb(s4.Tensor([[2, 1], [0, 2]])).tolist()
[[[3.0, 4.0], [1.0, 2.0]], [[0.0, 0.0], [3.0, 4.0]]]
>>> emb.vocabulary_size, emb.embedding_size
(3, 2)
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from .. import random as _random
from ..errors import DTypeError, ShapeError, op_error
from ..ops import indexing as _ix
from ..ops._core import to_tensor
from ..tensor import Tensor
from .layer import Layer

__all__ = ["Embedding"]


class Embedding(Layer):
    """Maps integer ids to rows of ``embeddings`` (``[vocabulary_size, embedding_size]``).

    ``Embedding(vocabulary_size, embedding_size, embeddings_initializer=None, *, seed=None,
    key=None, dtype=s4.float32)`` or ``Embedding(embeddings=table)``. The default initializer
    is S4TF's, uniform on ``[0, 1)`` (drawn from ``key``/``seed``, else the key scope or the
    global key); ``embeddings_initializer(shape, dtype)`` replaces it (e.g. one of
    ``s4.nn.initializers``).

    ``layer(ids)``: ids of any shape and an integer dtype give ``ids.shape + (embedding_size,)``.
    It is a gather (``s4.take(embeddings, ids, axis=0)``), so the gradient is a scatter-add
    into the rows that were looked up (duplicates accumulate).

    **Bad ids.** Ids must lie in ``[0, vocabulary_size)``. Ids whose values are known when the
    layer is called (built from Python or numpy data, or already computed) are checked: an id
    out of range raises ``IndexError`` naming the layer, the id and the vocabulary size.
    Ids that are still lazy (the output of an unevaluated graph) or traced by ``s4.compile``
    cannot be checked without running the graph; there the gather's semantics apply: an id
    ``>= vocabulary_size`` reads the last row, a negative id counts from the end (numpy's rule).
    Floating-point ids raise ``DTypeError``.
    """

    embeddings: Tensor

    def __init__(self, vocabulary_size: int | None = None, embedding_size: int | None = None,
                 embeddings_initializer=None, *, embeddings: Tensor | None = None, seed=None,
                 key=None, dtype=dt.float32):
        if embeddings is None:
            if vocabulary_size is None or embedding_size is None:
                raise TypeError("Embedding needs vocabulary_size and embedding_size "
                                "(or embeddings=)")
            if int(vocabulary_size) < 1 or int(embedding_size) < 1:
                raise ValueError(f"Embedding: vocabulary_size and embedding_size must be "
                                 f"positive, got {vocabulary_size} and {embedding_size}")
            shape = (int(vocabulary_size), int(embedding_size))
            if embeddings_initializer is None:
                embeddings = _random.uniform(shape, dtype=dtype, key=key, seed=seed)
            else:
                embeddings = embeddings_initializer(shape, dtype)
        embeddings = to_tensor(embeddings)
        if embeddings.ndim != 2:
            raise op_error(ShapeError, "Embedding", "expects embeddings of shape "
                           f"(vocabulary_size, embedding_size), got shape {embeddings.shape}",
                           [embeddings])
        self.embeddings = embeddings

    @property
    def vocabulary_size(self) -> int:
        return self.embeddings.shape[0]

    @property
    def embedding_size(self) -> int:
        return self.embeddings.shape[1]

    def __call__(self, ids) -> Tensor:
        if not isinstance(ids, Tensor):
            a = np.asarray(ids)
            if a.dtype.kind in "iu":
                a = a.astype(dt.default_index)
            ids = Tensor(a, device=self.embeddings.device)
        if not dt.is_integer(ids.dtype):
            raise op_error(DTypeError, "Embedding", f"expects integer ids, got {ids.dtype} with "
                                                    f"shape {ids.shape}", [ids])
        n = self.vocabulary_size
        node = ids._node
        if node.value is not None and not node.is_abstract and ids.size:
            v = ids.numpy()          # already computed: checking costs no graph run
            lo, hi = int(v.min()), int(v.max())
            if lo < 0 or hi >= n:
                bad = lo if lo < 0 else hi
                raise op_error(IndexError, "Embedding", f"id {bad} is out of range for a "
                                                        f"vocabulary of {n} (ids of shape "
                                                        f"{ids.shape})", [ids])
        return _ix.take(self.embeddings, ids, axis=0)
