"""Fused elementwise chain ``tanh(a*b+c)*sigmoid(a) - 0.5*b`` (float32) on the LLVM backend.

Peers in the same process: numpy, torch eager, torch.compile is not used (its first-call
compile is minutes on 2 cores), jax.jit. Ratio = peer time / s4tf_py time (higher is better).
The memory-bandwidth floor (read 3 inputs, write 1 output) is printed for reference.
"""
from __future__ import annotations

import sys

import _common as C

BASELINE = "s4tf_py llvm (compiled)"


def _chain(xp_tanh, xp_sigmoid):
    return lambda a, b, c: xp_tanh(a * b + c) * xp_sigmoid(a) - 0.5 * b


def run(quick: bool = False, out_dir: str | None = None) -> dict:
    import numpy as np

    import s4tf_py as s4
    sizes = [10**6] if quick else [10**6, 10**7]
    all_rows = {}
    for n in sizes:
        R = 5 if quick else (30 if n <= 10**6 else 10)
        rng = np.random.default_rng(0)
        a_np, b_np, c_np = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
        rows = []
        with s4.default_device(s4.Device("llvm")):
            a, b, c = s4.Tensor(a_np), s4.Tensor(b_np), s4.Tensor(c_np)
            f = s4.compile(_chain(s4.tanh, s4.sigmoid))
            out = f(a, b, c)
            want = np.tanh(a_np * b_np + c_np) / (1 + np.exp(-a_np)) - 0.5 * b_np
            np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-5)
            r = C.median_per_op(lambda: f(a, b, c), ops_per_batch=1, repeats=R)
        rows.append({"name": BASELINE, "impl": "s4tf_py", **r})

        def np_chain():
            return np.tanh(a_np * b_np + c_np) * (1 / (1 + np.exp(-a_np))) - 0.5 * b_np
        rows.append({"name": "numpy", "impl": "numpy",
                     **C.median_per_op(np_chain, ops_per_batch=1, repeats=R)})
        torch, why = C.peer("torch")
        if torch is None:
            rows.append({"name": "torch eager", "impl": "torch", "unavailable": why})
        else:
            ta, tb, tc = (torch.from_numpy(x.copy()) for x in (a_np, b_np, c_np))
            tf = _chain(torch.tanh, torch.sigmoid)
            rows.append({"name": "torch eager", "impl": "torch",
                         **C.median_per_op(lambda: tf(ta, tb, tc), ops_per_batch=1, repeats=R)})
        jax, why = C.peer("jax")
        if jax is None:
            rows.append({"name": "jax.jit", "impl": "jax", "unavailable": why})
        else:
            import jax.numpy as jnp
            ja, jb, jc = (jnp.asarray(x) for x in (a_np, b_np, c_np))
            jf = jax.jit(_chain(jnp.tanh, jax.nn.sigmoid))
            jf(ja, jb, jc).block_until_ready()
            rows.append({"name": "jax.jit", "impl": "jax",
                         **C.median_per_op(lambda: jf(ja, jb, jc).block_until_ready(),
                                           ops_per_batch=1, repeats=R)})
        C.add_ratios(rows, BASELINE)
        C.print_table(f"fused elementwise chain, float32[{n:.0e}]; lower is better", rows,
                      BASELINE)
        floor_s = 4 * 4 * n / 20e9
        print(f"  memory-bandwidth floor at ~20 GB/s (3 reads + 1 write): {C.fmt_time(floor_s)}")
        all_rows[str(n)] = rows
    payload = {"sizes": all_rows, "quick": quick}
    path = C.write_json("bench_elementwise", payload, out_dir)
    print(f"  wrote {path}")
    return payload


def main(argv=None) -> int:
    return C.main(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
