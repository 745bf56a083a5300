"""Shared helpers of the optimizer tests: a small problem, torch twins, numpy views."""
from __future__ import annotations

import numpy as np

import s4tf_py as s4

SHAPES = {"w": (3, 4), "b": (4,)}


def initial_params(seed: int = 0, dtype=np.float64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(shape).astype(dtype) for k, shape in SHAPES.items()}


def grad_sequence(steps: int, seed: int = 1, dtype=np.float64) -> list[dict[str, np.ndarray]]:
    """Gradients whose size changes a lot from step to step (so AMSGrad's maximum and AdaMax's
    infinity norm matter), with a few exact zeros."""
    rng = np.random.default_rng(seed)
    scales = [1.0, 3.0, 0.1, 2.0, 0.01, 1.5, 0.5, 4.0, 0.2, 1.0, 0.05, 2.5]
    out = []
    for k in range(steps):
        g = {}
        for name, shape in SHAPES.items():
            x = rng.standard_normal(shape) * scales[k % len(scales)]
            x[rng.random(shape) < 0.15] = 0.0
            g[name] = x.astype(dtype)
        out.append(g)
    return out


def to_s4(d: dict[str, np.ndarray]) -> dict[str, s4.Tensor]:
    return {k: s4.Tensor(v) for k, v in d.items()}


def to_np(d) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in d.items()}
