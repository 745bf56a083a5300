"""Row-wise kernels (float32 [1024, 1024]): softmax, log-softmax, layer norm, RMS norm, and
softmax cross-entropy's loss with its gradient.

On the LLVM backend each is ONE row kernel (the reductions and the ops between them run per
row, in cache-hot passes). Peers in the same process: numpy (forward only), torch eager
(``F.softmax``, ``F.layer_norm``, ``F.cross_entropy`` + ``backward``...), jax.jit.
Ratio = peer time / s4tf_py time (higher is better).
"""
from __future__ import annotations

import sys

import _common as C

BASELINE = "s4tf_py llvm (compiled)"
ROWS, COLS = 1024, 1024
EPS = 1e-6


def _workloads(xp, *, mean, rsqrt, max_, sum_, exp, log):
    """The five workloads written once over an array namespace (numpy, s4tf_py, jax.numpy)."""
    def softmax(x):
        e = exp(x - max_(x, axis=-1, keepdims=True))
        return e / sum_(e, axis=-1, keepdims=True)

    def log_softmax(x):
        z = x - max_(x, axis=-1, keepdims=True)
        return z - log(sum_(exp(z), axis=-1, keepdims=True))

    def layer_norm(x, w, b):
        mu = mean(x, axis=-1, keepdims=True)
        xc = x - mu
        return xc * rsqrt(mean(xc * xc, axis=-1, keepdims=True) + EPS) * w + b

    def rms_norm(x, w):
        return x * rsqrt(mean(x * x, axis=-1, keepdims=True) + EPS) * (1 + w)

    def xent(x, onehot):
        return -mean(sum_(onehot * log_softmax(x), axis=-1))
    return {"softmax": softmax, "log_softmax": log_softmax, "layer_norm": layer_norm,
            "rms_norm": rms_norm, "xent": xent}


def run(quick: bool = False, out_dir: str | None = None) -> dict:
    import numpy as np

    import s4tf_py as s4
    R = 5 if quick else 50
    rng = np.random.default_rng(0)
    x_np = (rng.standard_normal((ROWS, COLS)) * 3).astype(np.float32)
    w_np = rng.standard_normal(COLS).astype(np.float32)
    b_np = rng.standard_normal(COLS).astype(np.float32)
    labels = rng.integers(0, COLS, ROWS)
    onehot_np = np.eye(COLS, dtype=np.float32)[labels]
    args_np = {"softmax": (x_np,), "log_softmax": (x_np,), "layer_norm": (x_np, w_np, b_np),
               "rms_norm": (x_np, w_np), "xent": (x_np, onehot_np)}
    np_fns = _workloads(np, mean=np.mean, rsqrt=lambda v: 1 / np.sqrt(v), max_=np.max,
                        sum_=np.sum, exp=np.exp, log=np.log)
    s4_fns = _workloads(s4, mean=s4.mean, rsqrt=s4.rsqrt, max_=s4.max, sum_=s4.sum,
                        exp=s4.exp, log=s4.log)
    torch, why_torch = C.peer("torch")
    jax, why_jax = C.peer("jax")
    results = {}
    for name in np_fns:
        rows = []
        want = np_fns[name](*args_np[name])
        with s4.default_device(s4.Device("llvm")):
            args = [s4.Tensor(a) for a in args_np[name]]
            if name == "xent":
                f = s4.compile(lambda x, t: s4.value_with_gradient(
                    at=x, of=lambda x: s4_fns["xent"](x, t)))
                out = f(*args)[0]
            else:
                f = s4.compile(s4_fns[name])
                out = f(*args)
            np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-4)
            rows.append({"name": BASELINE, "impl": "s4tf_py",
                         **C.median_per_op(lambda: f(*args), ops_per_batch=1,
                                           repeats=R)})
        if name != "xent":
            rows.append({"name": "numpy (forward)", "impl": "numpy",
                         **C.median_per_op(lambda: np_fns[name](*args_np[name]),
                                           ops_per_batch=1, repeats=R)})
        if torch is None:
            rows.append({"name": "torch eager", "impl": "torch", "unavailable": why_torch})
        else:
            rows.append({"name": "torch eager", "impl": "torch",
                         **C.median_per_op(_torch_fn(torch, name, args_np, labels),
                                           ops_per_batch=1, repeats=R)})
        if jax is None:
            rows.append({"name": "jax.jit", "impl": "jax", "unavailable": why_jax})
        else:
            import jax.numpy as jnp
            jfns = _workloads(jnp, mean=jnp.mean, rsqrt=jax.lax.rsqrt, max_=jnp.max,
                              sum_=jnp.sum, exp=jnp.exp, log=jnp.log)
            jargs = [jnp.asarray(a) for a in args_np[name]]
            jf = jax.jit(jax.value_and_grad(jfns[name]) if name == "xent" else jfns[name])
            jax.block_until_ready(jf(*jargs))
            rows.append({"name": "jax.jit", "impl": "jax",
                         **C.median_per_op(lambda: jax.block_until_ready(jf(*jargs)),
                                           ops_per_batch=1, repeats=R)})
        C.add_ratios(rows, BASELINE)
        what = "loss + gradient" if name == "xent" else "forward"
        C.print_table(f"{name} ({what}), float32[{ROWS}, {COLS}]; lower is better", rows,
                      BASELINE)
        results[name] = rows
    payload = {"workloads": results, "shape": [ROWS, COLS], "quick": quick}
    path = C.write_json("bench_rows", payload, out_dir)
    print(f"  wrote {path}")
    return payload


def _torch_fn(torch, name, args_np, labels):
    import torch.nn.functional as F
    t = [torch.from_numpy(a.copy()) for a in args_np[name]]
    if name == "softmax":
        return lambda: F.softmax(t[0], dim=-1)
    if name == "log_softmax":
        return lambda: F.log_softmax(t[0], dim=-1)
    if name == "layer_norm":
        return lambda: F.layer_norm(t[0], (COLS,), t[1], t[2], eps=EPS)
    if name == "rms_norm":
        return lambda: t[0] * torch.rsqrt((t[0] * t[0]).mean(-1, keepdim=True) + EPS) * (1 + t[1])
    y = torch.from_numpy(labels)

    def xent():
        x = t[0].detach().requires_grad_(True)
        loss = F.cross_entropy(x, y)
        loss.backward()
        return loss, x.grad
    return xent


def main(argv=None) -> int:
    return C.main(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
