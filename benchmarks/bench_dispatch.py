"""Calling an already-compiled function: s4.compile'd ``a + b`` on 4 elements vs its peers.

After the first call, ``s4.compile`` finds the executable in its cache by the input signature
and runs it without running the Python body. This measures that per-call path (signature,
cache lookup, executable, result Tensor) against ``jax.jit`` (dispatch + block_until_ready),
PyTorch eager ``a + b`` and numpy ``a + b``, all in one process. The result is read back
(``.numpy()``-free for s4tf_py: the compiled call returns concrete tensors).
"""
from __future__ import annotations

import sys

try:
    from . import _common as C
except ImportError:  # run as a script
    import os
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _common as C

BASELINE = "s4tf_py s4.compile'd a+b"


def run(quick: bool = False, out_dir: str | None = None) -> dict:
    import numpy as np

    import s4tf_py as s4

    K = 50 if quick else 100              # calls per timed batch
    R = 30 if quick else 200
    rows = []

    a_np = np.arange(4, dtype=np.float32)
    b_np = np.ones(4, dtype=np.float32)
    a, b = s4.Tensor(a_np), s4.Tensor(b_np)
    add = s4.compile(lambda x, y: x + y)
    first = add(a, b)
    assert np.array_equal(first.numpy(), a_np + b_np)

    def s4_calls():
        for _ in range(K):
            c = add(a, b)
        return c

    r = C.median_per_op(s4_calls, ops_per_batch=K, repeats=R)
    rows.append({"name": BASELINE, "impl": "s4tf_py", **r, "traces": add.traces})

    jax, why = C.peer("jax")
    if jax is None:
        rows.append({"name": "jax.jit a+b", "impl": "jax", "unavailable": why})
    else:
        import jax.numpy as jnp
        ja, jb = jnp.asarray(a_np), jnp.asarray(b_np)
        jadd = jax.jit(lambda x, y: x + y)
        jadd(ja, jb).block_until_ready()

        def jax_calls():
            for _ in range(K):
                c = jadd(ja, jb)
            c.block_until_ready()
            return c

        r = C.median_per_op(jax_calls, ops_per_batch=K, repeats=R)
        rows.append({"name": "jax.jit a+b", "impl": "jax", **r})

    torch, why = C.peer("torch")
    if torch is None:
        rows.append({"name": "torch eager a+b", "impl": "torch", "unavailable": why})
    else:
        ta, tb = torch.from_numpy(a_np.copy()), torch.from_numpy(b_np.copy())

        def torch_calls():
            for _ in range(K):
                c = ta + tb
            return c

        r = C.median_per_op(torch_calls, ops_per_batch=K, repeats=R)
        rows.append({"name": "torch eager a+b", "impl": "torch", **r})

    def numpy_calls():
        for _ in range(K):
            c = a_np + b_np
        return c

    r = C.median_per_op(numpy_calls, ops_per_batch=K, repeats=R)
    rows.append({"name": "numpy a+b", "impl": "numpy", **r})

    C.add_ratios(rows, BASELINE)
    C.print_table("calling a compiled a + b (float32[4]); lower is better", rows, BASELINE)
    print(f"  the s4tf_py function was traced {add.traces} time(s)")
    payload = {"rows": rows, "quick": quick, "device": str(s4.get_default_device())}
    path = C.write_json("bench_dispatch", payload, out_dir)
    print(f"  wrote {path}")
    return payload


def main(argv=None) -> int:
    return C.main(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
