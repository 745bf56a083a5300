"""Shared helpers for the ratio benchmarks: timing, peers, the table and the JSON record.

Every benchmark measures s4tf_py and its peers (numpy, PyTorch, JAX) in the same process, one
after another, and reports ratios ``peer / s4tf_py`` (above 1: s4tf_py is faster). A peer that
is not installed is reported as such, never silently left out.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.environ.get("S4TF_BENCH_RESULTS", os.path.join(HERE, "results"))


def peer(name: str):
    """(module, None) if ``name`` imports, else (None, reason)."""
    try:
        if name == "torch":
            import torch
            return torch, None
        if name == "jax":
            import jax
            import jax.numpy  # noqa: F401
            jax.config.update("jax_platforms", "cpu")
            return jax, None
        if name == "numpy":
            import numpy
            return numpy, None
    except Exception as e:  # noqa: BLE001 - any failure to import means "not available"
        return None, f"{name} is not installed ({type(e).__name__}: {e}); `make bench` " \
                     "installs it (pip install -e '.[bench]')"
    raise ValueError(name)


def median_per_op(batch, *, ops_per_batch: int, repeats: int, warmup: int = 3,
                  setup=None, teardown=None) -> dict:
    """Time ``batch()`` ``repeats`` times; per-op seconds = batch time / ``ops_per_batch``.

    ``setup()`` (untimed) runs before every batch and its result is passed to ``batch``;
    ``teardown(result)`` (untimed) runs after. The garbage collector is off while timing.
    """
    samples = []
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for i in range(warmup + repeats):
            state = setup() if setup is not None else None
            t0 = time.perf_counter_ns()
            out = batch(state) if setup is not None else batch()
            t1 = time.perf_counter_ns()
            if teardown is not None:
                teardown(out)
            del out, state
            if i >= warmup:
                samples.append((t1 - t0) / 1e9 / ops_per_batch)
    finally:
        if was_enabled:
            gc.enable()
    return {"median_s": statistics.median(samples), "min_s": min(samples),
            "p90_s": sorted(samples)[int(0.9 * (len(samples) - 1))], "repeats": repeats,
            "ops_per_batch": ops_per_batch}


def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.2f} us"
    return f"{s * 1e3:.2f} ms"


def print_table(title: str, rows: list[dict], baseline: str) -> None:
    """rows: {"name", "impl", "median_s" or "unavailable"}; ratios against ``baseline``."""
    base = next((r["median_s"] for r in rows if r["name"] == baseline and "median_s" in r), None)
    print(f"\n{title}")
    w = max(len(r["name"]) for r in rows) + 2
    print(f"  {'':{w}}{'median per op':>15}{'ratio (peer/s4tf_py)':>24}")
    for r in rows:
        if "median_s" in r:
            ratio = "" if base is None or r["name"] == baseline else \
                f"{r['median_s'] / base:.2f}x"
            print(f"  {r['name']:{w}}{fmt_time(r['median_s']):>15}{ratio:>24}")
        else:
            print(f"  {r['name']:{w}}{'unavailable':>15}    {r['unavailable']}")


def environment() -> dict:
    import numpy
    env = {"python": sys.version.split()[0], "platform": platform.platform(),
           "machine": platform.machine(), "cpus": os.cpu_count(), "numpy": numpy.__version__}
    for name in ("torch", "jax", "jaxlib"):
        mod = sys.modules.get(name)
        if mod is not None:
            env[name] = getattr(mod, "__version__", "?")
    import s4tf_py
    env["s4tf_py"] = s4tf_py.__version__
    return env


def write_json(name: str, payload: dict, out_dir: str | None = None) -> str:
    out_dir = out_dir or RESULTS_DIR
    os.makedirs(out_dir, exist_ok=True)
    payload = dict(payload)
    payload.setdefault("benchmark", name)
    payload["environment"] = environment()
    payload["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.write("\n")
    return path


def add_ratios(rows: list[dict], baseline: str) -> None:
    base = next((r["median_s"] for r in rows if r["name"] == baseline and "median_s" in r), None)
    for r in rows:
        if base is not None and "median_s" in r:
            r["ratio_vs_s4tf_py"] = r["median_s"] / base


def check_losses(losses: dict, reference: str = "torch") -> None:
    """Every implementation's losses at steps 1 and 2 agree with the reference's: step 1 is the
    loss at the shared initial weights, step 2 after one update (a looser bound)."""
    if reference not in losses:
        return
    ref = losses[reference]
    for impl, ls in losses.items():
        if abs(ls[0] - ref[0]) > 1e-4 or abs(ls[1] - ref[1]) > 1e-3 * max(1.0, abs(ref[1])):
            raise AssertionError(f"{impl} losses {ls} disagree with {reference}'s {ref}")


# ---- fresh processes (compile benchmarks) ----------------------------------------------------

def spawn_child(script: str, args: list, cache_dir: str, mark: str) -> dict:
    """Run ``script --child *args`` in a fresh Python with its own compile caches under
    ``cache_dir`` (s4tf_py's and jax's); returns the JSON the child printed after ``mark``,
    or ``{"error", "stderr"}``."""
    import subprocess
    env = dict(os.environ)
    # Python's own bytecode cache on, as a user has it (some shells export
    # PYTHONDONTWRITEBYTECODE, which made every fresh process compile s4tf_py's sources: an
    # editable install has no .pyc from pip, jax's site-packages copy does)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["S4TF_CACHE_DIR"] = os.path.join(cache_dir, "s4tf")
    env["JAX_COMPILATION_CACHE_DIR"] = os.path.join(cache_dir, "jax")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    proc = subprocess.run([sys.executable, os.path.abspath(script), "--child", *args],
                          env=env, capture_output=True, text=True, timeout=600, cwd=HERE)
    lines = [l for l in proc.stdout.splitlines() if l.startswith(mark)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return {"error": f"child exited {proc.returncode}: {tail}", "stderr": proc.stderr[-4000:]}
    return json.loads(lines[-1][len(mark):])


def llvm_cache_stats():
    """The LLVM backend's disk-cache hits and misses in this process (informational)."""
    try:
        from s4tf_py.backends.llvm import cache
        return dict(cache.stats)
    except Exception as e:  # noqa: BLE001 - the stats are informational
        return f"unavailable ({type(e).__name__}: {e})"


def summarize_runs(samples: list[dict], key: str) -> dict:
    """Median and min of ``key`` over the children's results, or why they have none."""
    bad = [s for s in samples if key not in s]
    if bad:
        e = bad[0]
        return {"unavailable": e.get("unavailable") or f"FAILED: {e.get('error')}",
                "stderr": e.get("stderr", "")}
    vals = [s[key] for s in samples]
    return {"median_s": statistics.median(vals), "min_s": min(vals), "runs": len(vals),
            "samples": samples}


def main(run, doc: str, argv=None) -> int:
    """The command line every benchmark module shares: ``[--quick] [--out DIR]``."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    ap.add_argument("--out", help="directory for the JSON result (benchmarks/results)")
    args = ap.parse_args(argv)
    run(quick=args.quick, out_dir=args.out)
    return 0
