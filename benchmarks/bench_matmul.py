"""Square matmul ``a @ b`` (float32) on the LLVM backend, n = 256 ... 2048.

s4tf_py runs ``s4.compile(lambda a, b: a @ b)`` (the compiled call returns concrete tensors,
so the timing includes the product). Peers in the same process: numpy ``a @ b`` (its BLAS),
torch eager ``a @ b`` and ``jax.jit`` (with ``block_until_ready``). Ratio = peer time /
s4tf_py time (higher is better). GFLOP/s (2 n^3 flops per product) is printed per row.
"""
from __future__ import annotations

import sys

try:
    from . import _common as C
except ImportError:  # run as a script
    import os
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _common as C

BASELINE = "s4tf_py llvm (compiled)"


def _repeats(n: int, quick: bool) -> int:
    if quick:
        return 10
    return {256: 30, 512: 20, 1024: 10}.get(n, 5)


def _matmul(a, b):
    return a @ b


def run(quick: bool = False, out_dir: str | None = None) -> dict:
    import numpy as np

    import s4tf_py as s4
    sizes = [256, 512] if quick else [256, 512, 1024, 2048]
    all_rows = {}
    for n in sizes:
        R = _repeats(n, quick)
        rng = np.random.default_rng(0)
        a_np, b_np = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
        want = a_np.astype(np.float64) @ b_np.astype(np.float64)
        # a wrong product is off by O(sqrt(n)); float32 rounding is far below this
        atol = 1e-3 * np.sqrt(n)
        rows = []
        with s4.default_device(s4.Device("llvm")):
            a, b = s4.Tensor(a_np), s4.Tensor(b_np)
            f = s4.compile(_matmul)
            out = f(a, b)
            np.testing.assert_allclose(out.numpy(), want, rtol=0, atol=atol)
            r = C.median_per_op(lambda: f(a, b), ops_per_batch=1, repeats=R)
        rows.append({"name": BASELINE, "impl": "s4tf_py", **r, "traces": f.traces})

        np.testing.assert_allclose(a_np @ b_np, want, rtol=0, atol=atol)
        rows.append({"name": "numpy", "impl": "numpy",
                     **C.median_per_op(lambda: a_np @ b_np, ops_per_batch=1, repeats=R)})
        torch, why = C.peer("torch")
        if torch is None:
            rows.append({"name": "torch eager", "impl": "torch", "unavailable": why})
        else:
            ta, tb = torch.from_numpy(a_np.copy()), torch.from_numpy(b_np.copy())
            np.testing.assert_allclose((ta @ tb).numpy(), want, rtol=0, atol=atol)
            rows.append({"name": "torch eager", "impl": "torch",
                         **C.median_per_op(lambda: ta @ tb, ops_per_batch=1, repeats=R)})
        jax, why = C.peer("jax")
        if jax is None:
            rows.append({"name": "jax.jit", "impl": "jax", "unavailable": why})
        else:
            import jax.numpy as jnp
            ja, jb = jnp.asarray(a_np), jnp.asarray(b_np)
            jf = jax.jit(_matmul)
            np.testing.assert_allclose(np.asarray(jf(ja, jb).block_until_ready()), want,
                                       rtol=0, atol=atol)
            rows.append({"name": "jax.jit", "impl": "jax",
                         **C.median_per_op(lambda: jf(ja, jb).block_until_ready(),
                                           ops_per_batch=1, repeats=R)})
        flops = 2.0 * n ** 3
        for r in rows:
            if "median_s" in r:
                r["gflops"] = flops / r["median_s"] / 1e9
        C.add_ratios(rows, BASELINE)
        C.print_table(f"matmul float32[{n},{n}] @ float32[{n},{n}]; lower is better", rows,
                      BASELINE)
        w = max(len(r["name"]) for r in rows) + 2
        for r in rows:
            if "gflops" in r:
                print(f"  {r['name']:{w}}{r['gflops']:>12.1f} GFLOP/s")
        all_rows[str(n)] = rows
    payload = {"sizes": all_rows, "quick": quick}
    path = C.write_json("bench_matmul", payload, out_dir)
    print(f"  wrote {path}")
    return payload


def main(argv=None) -> int:
    return C.main(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
