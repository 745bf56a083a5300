"""Run every ratio benchmark in one process: ``python benchmarks/run.py [names] [--quick]``.

``make bench`` and ``s4tf bench`` call this. Results print as tables and land as JSON in
``benchmarks/results/`` (or ``--out DIR``).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

#: name -> module (each has run(quick=, out_dir=))
BENCHMARKS = {
    "record": "bench_record",
    "dispatch": "bench_dispatch",
    "elementwise": "bench_elementwise",
    "matmul": "bench_matmul",
    "mlp": "bench_mlp",
    "lenet": "bench_lenet",
    "rows": "bench_rows",
    "compile": "bench_compile",
    "gemma": "bench_gemma",
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="s4tf bench", description="s4tf_py's ratio benchmarks "
                                 "against numpy, PyTorch and JAX, in one process.")
    ap.add_argument("names", nargs="*", metavar="NAME",
                    help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    ap.add_argument("--out", help="directory for the JSON results (benchmarks/results)")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    t0 = time.perf_counter()
    payloads = {}
    for name in args.names or list(BENCHMARKS):
        mod = importlib.import_module(BENCHMARKS[name])
        payloads[name] = mod.run(quick=args.quick, out_dir=args.out)
    import summary
    summary.print_targets(summary.targets(payloads))
    print(f"\nbenchmarks done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
