"""Compile time of the MLP (Adam) and LeNet-5 (SGD) training steps: cold and warm, per process.

Every measurement is a fresh Python process (this file run with ``--child``), so no in-memory
cache survives from an earlier one. In the child: the framework's import (numpy included) is
timed on its own; then the problem and its inputs are built (untimed: the inputs are already
device arrays / concrete tensors); then the first call of the step is timed from its start to
its result being ready (s4tf_py: the compiled call returns concrete tensors and the loss is read
back; jax: ``block_until_ready``). The first call includes tracing, compiling and one run of the
step; the second call (the steady-state step) is printed for scale.

* cold: ``S4TF_CACHE_DIR`` (s4tf_py's on-disk object cache) is a new empty temporary
  directory; jax's persistent compilation cache (``JAX_COMPILATION_CACHE_DIR``, with
  ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0`` so every executable is stored) also points
  at a new empty directory. Both write their caches during this run.
* warm: a second fresh process with the directory the cold process filled. s4tf_py still
  traces and generates its LLVM IR and loads the object files from disk; jax still traces and
  lowers and loads the XLA executable from its persistent cache.

Median over 1 (``--quick``) or 3 runs, each with its own new directories. The two models and
steps are those of ``bench_mlp`` and ``bench_lenet``. Ratio = peer time / s4tf_py time.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

try:
    from . import _common as C
except ImportError:  # run as a script
    import _common as C

MODELS = ("mlp", "lenet")
MARK = "BENCH_COMPILE_RESULT "


# ---- the child process ---------------------------------------------------------------------

def _child_s4(model: str) -> dict:
    t0 = time.perf_counter()
    import numpy as np

    import s4tf_py as s4
    import_s = time.perf_counter() - t0
    try:
        res = _s4_first_calls(s4, np, model)
    except Exception as e:  # noqa: BLE001 - reported in the table, with its traceback in JSON
        import traceback
        return {"import_s": import_s, "error": f"{type(e).__name__}: {e}",
                "stderr": traceback.format_exc()[-4000:]}
    res["import_s"] = import_s
    return res


def _s4_first_calls(s4, np, model: str) -> dict:
    with s4.default_device(s4.Device("llvm")):
        if model == "mlp":
            import bench_mlp as B
            params_np, x_np, y_np = B.make_problem()
            step = B.make_s4_step(s4)
            P = [s4.Tensor(p) for p in params_np]
            args = (P, [s4.zeros_like(p) for p in P], [s4.zeros_like(p) for p in P],
                    s4.Tensor(x_np), s4.Tensor(y_np), 1.0)
        else:
            import bench_lenet as B
            params_np, x_np, y_np = B.make_problem()
            p_s4, x_s4 = B.to_s4_layout(params_np, x_np)
            step = B.make_s4_step(s4)
            args = ([s4.Tensor(p) for p in p_s4], s4.Tensor(x_s4), s4.Tensor(y_np))
        for t in args:                              # inputs concrete before the clock starts
            if isinstance(t, s4.Tensor):
                t.numpy()
        for t in args[0]:
            t.numpy()
        s4.reset_metrics()
        t1 = time.perf_counter()
        out = step(*args)
        loss = float(np.asarray(out[-1].numpy()))
        first_s = time.perf_counter() - t1
        # the step donates its parameters (and optimizer state): feed its results back
        args = ((out[0], out[1], out[2]) + tuple(args[3:]) if model == "mlp"
                else (out[0],) + tuple(args[1:]))
        t2 = time.perf_counter()
        out2 = step(*args)
        float(np.asarray(out2[-1].numpy()))
        second_s = time.perf_counter() - t2
    m = s4.metrics()
    # "ready": the executable exists (trace + optimize + compile or load), before it first runs
    res = {"first_call_s": first_s, "second_call_s": second_s, "loss": loss,
           "traces": step.traces, "ready_s": m["trace_seconds"] + m["compile_seconds"]}
    res["llvm_cache_stats"] = C.llvm_cache_stats()
    return res


def _child_jax(model: str) -> dict:
    t0 = time.perf_counter()
    import numpy as np  # noqa: F401
    jax, why = C.peer("jax")
    if jax is None:
        return {"unavailable": why}
    import jax.numpy as jnp
    import_s = time.perf_counter() - t0
    if model == "mlp":
        import bench_mlp as B
        params_np, x_np, y_np = B.make_problem()
        step = B.make_jax_step(jax)

        def make_args():
            return ([jnp.asarray(p) for p in params_np], [jnp.zeros_like(p) for p in params_np],
                    [jnp.zeros_like(p) for p in params_np], jnp.asarray(x_np),
                    jnp.asarray(y_np), 1.0)
    else:
        import bench_lenet as B
        params_np, x_np, y_np = B.make_problem()
        step = B.make_jax_step(jax)

        def make_args():
            return ([jnp.asarray(p) for p in params_np], jnp.asarray(x_np), jnp.asarray(y_np))
    args = make_args()
    args2 = make_args()                             # the step donates its params
    jax.block_until_ready((args, args2))
    t1 = time.perf_counter()
    out = step(*args)
    jax.block_until_ready(out)
    first_s = time.perf_counter() - t1
    loss = float(out[-1])
    t2 = time.perf_counter()
    jax.block_until_ready(step(*args2))
    second_s = time.perf_counter() - t2
    return {"import_s": import_s, "first_call_s": first_s, "second_call_s": second_s,
            "loss": loss}


def _child(impl: str, model: str) -> int:
    res = _child_s4(model) if impl == "s4" else _child_jax(model)
    print(MARK + json.dumps(res), flush=True)
    return 0


# ---- the parent ----------------------------------------------------------------------------

def _spawn(impl: str, model: str, cache_dir: str) -> dict:
    res = C.spawn_child(__file__, [impl, model], cache_dir, MARK)
    if "error" in res:
        return res
    # what the process left in the cache directories (for the warm run to find)
    for sub in ("s4tf", "jax"):
        p = os.path.join(cache_dir, sub)
        res[f"{sub}_cache_files"] = len(os.listdir(p)) if os.path.isdir(p) else 0
    return res


def run(quick: bool = False, out_dir: str | None = None) -> dict:
    import numpy as np  # noqa: F401  (C.environment needs it)

    import s4tf_py  # noqa: F401
    n_runs = 1 if quick else 3
    impls = {"s4": "s4tf_py llvm", "jax": "jax.jit"}
    modules = {"s4": "s4tf_py", "jax": "jax"}
    raw = {m: {i: {"cold": [], "warm": []} for i in impls} for m in MODELS}
    # one untimed child per framework first, so that Python's bytecode caches exist
    for impl in impls:
        d = tempfile.mkdtemp(prefix=f"s4tf-bench-compile-pyc-{impl}-")
        try:
            _spawn(impl, MODELS[0], d)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    for _ in range(n_runs):
        for model in MODELS:
            for impl in impls:
                d = tempfile.mkdtemp(prefix=f"s4tf-bench-compile-{impl}-{model}-")
                try:
                    raw[model][impl]["cold"].append(_spawn(impl, model, d))
                    raw[model][impl]["warm"].append(_spawn(impl, model, d))
                finally:
                    shutil.rmtree(d, ignore_errors=True)

    payload = {"quick": quick, "runs": n_runs, "tables": {}}
    for model in MODELS:
        for phase in ("cold", "warm"):
            base = f"{impls['s4']} {phase}"
            rows = [{"name": f"{name} {phase}", "impl": impl,
                     **C.summarize_runs(raw[model][impl][phase], "first_call_s")}
                    for impl, name in impls.items()]
            C.add_ratios(rows, base)
            what = ("empty caches" if phase == "cold" else
                    "disk cache filled by an earlier process")
            C.print_table(f"{model} step: first call, trace + compile + run, fresh process, "
                          f"{what}; median of {n_runs}", rows, base)
            for r in rows:
                if "samples" in r:
                    s = r["samples"]
                    extra = f"second call {C.fmt_time(statistics.median(x['second_call_s'] for x in s))}"
                    if "ready_s" in s[0]:
                        ready = statistics.median(x["ready_s"] for x in s)
                        extra += (f", ready (trace + compile/load, before the first run) "
                                  f"{C.fmt_time(ready)}")
                    extra += f", loss {s[0]['loss']:.6f}"
                    if "llvm_cache_stats" in s[0]:
                        extra += f", llvm disk cache {s[0]['llvm_cache_stats']}"
                    key = "s4tf_cache_files" if r["impl"] == "s4" else "jax_cache_files"
                    extra += f", {s[0][key]} files in its cache dir after the run"
                    print(f"    {r['name']}: {extra}")
            payload["tables"][f"{model}_{phase}"] = rows
        # the two compiled steps must compute the same first loss (cold and warm alike)
        ls = {(i, p): s["loss"] for i in impls for p in ("cold", "warm")
              for s in raw[model][i][p] if "loss" in s}
        if ls and max(ls.values()) - min(ls.values()) > 1e-4:
            raise AssertionError(f"{model}: first-step losses disagree: {ls}")

    rows = []
    for impl in impls:
        samples = [s for m in MODELS for p in ("cold", "warm") for s in raw[m][impl][p]]
        rows.append({"name": f"import {modules[impl]} (+ numpy)", "impl": impl,
                     **C.summarize_runs(samples, "import_s")})
    base = rows[0]["name"]
    C.add_ratios(rows, base)
    C.print_table(f"import time in a fresh process; median of {len(samples)}", rows, base)
    payload["tables"]["import"] = rows
    path = C.write_json("bench_compile", payload, out_dir)
    print(f"  wrote {path}")
    return payload


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--child", nargs=2, metavar=("IMPL", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child(*args.child)
    run(quick=args.quick, out_dir=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
