"""The targets table: every benchmark's ratio against the peer its target names.

``run.py`` prints it after the individual tables (``make bench``); it reads the payloads the
benchmarks return (the same dicts they write as JSON). Ratio = peer time / s4tf_py time, so
above 1 means s4tf_py is faster; a target is met when the ratio reaches it.
"""
from __future__ import annotations


def _median(rows, prefix):
    for r in rows:
        if r["name"].startswith(prefix) and "median_s" in r:
            return r["median_s"]
    return None


def _s4(rows):
    return next((r["median_s"] for r in rows if r["name"].startswith("s4tf_py") and
                 "median_s" in r), None)


def _line(workload, s4, peer_name, peer, target):
    ratio = None if s4 is None or peer is None else peer / s4
    met = None if ratio is None else ratio >= target
    return {"workload": workload, "s4tf_py_s": s4, "peer": peer_name, "peer_s": peer,
            "ratio": ratio, "target": target, "met": met}


def targets(payloads: dict) -> list[dict]:
    """One line per target of the LLVM backend's issue (and the Gemma issue's), from whichever
    benchmarks ran."""
    out = []
    p = payloads.get("elementwise")
    if p:
        for size, target in (("1000000", 1.5), ("10000000", 2.0)):
            rows = p["sizes"].get(size)
            if rows:
                out.append(_line(f"fused chain {int(size):.0e}", _s4(rows), "jax.jit",
                                 _median(rows, "jax.jit"), target))
    p = payloads.get("matmul")
    if p:
        for size, rows in p["sizes"].items():
            peers = [(r["median_s"], r["name"]) for r in rows
                     if not r["name"].startswith("s4tf_py") and "median_s" in r]
            best = min(peers) if peers else (None, "-")
            out.append(_line(f"matmul {size}", _s4(rows), f"best ({best[1]})", best[0], 0.95))
    p = payloads.get("mlp")
    if p:
        rows = p["rows"]
        out.append(_line("MLP Adam step", _s4(rows), "jax.jit", _median(rows, "jax.jit"), 1.2))
        out.append(_line("MLP Adam step", _s4(rows), "torch eager",
                         _median(rows, "torch eager"), 1.7))
    p = payloads.get("lenet")
    if p:
        rows = p["rows"]
        out.append(_line("LeNet-5 SGD step", _s4(rows), "torch eager",
                         _median(rows, "torch eager"), 1.2))
    p = payloads.get("dispatch")
    if p:
        rows = p["rows"]
        out.append(_line("compiled a+b dispatch", _s4(rows), "jax.jit",
                         _median(rows, "jax.jit"), 1.0))
    p = payloads.get("compile")
    if p:
        for key, what in (("mlp_cold", "cold compile, MLP"), ("lenet_cold", "cold compile, LeNet")):
            rows = p["tables"].get(key)
            if rows:
                out.append(_line(what, _s4(rows), "jax.jit", _median(rows, "jax.jit"), 1.0))
        for key, what in (("mlp_warm", "warm process ready, MLP"),
                          ("lenet_warm", "warm process ready, LeNet")):
            rows = p["tables"].get(key)
            s4row = next((r for r in rows or [] if r["name"].startswith("s4tf_py")), None)
            if s4row and s4row.get("samples") and "ready_s" in s4row["samples"][0]:
                import statistics
                ready = statistics.median(x["ready_s"] for x in s4row["samples"])
                # an absolute target: 50 ms, written as the ratio 0.050 s / ready
                out.append(_line(what, ready, "50 ms budget", 0.050, 1.0))
    p = payloads.get("gemma")
    if p:
        out.append(_line("Gemma 3 tiny train step", _s4(p["train"]), "torch eager",
                         _median(p["train"], "torch eager"), 1.5))
        out.append(_line("Gemma 3 tiny greedy decode", _s4(p["decode"]), "jax.jit generate",
                         _median(p["decode"], "jax.jit"), 1.0))
        rows = p["compile"].get("cold")
        if rows:
            out.append(_line("cold compile, Gemma step", _s4(rows), "jax.jit",
                             _median(rows, "jax.jit"), 1.0))
        s4row = next((r for r in p["compile"].get("warm") or []
                      if r["name"].startswith("s4tf_py")), None)
        if s4row and s4row.get("samples") and "ready_s" in s4row["samples"][0]:
            import statistics
            ready = statistics.median(x["ready_s"] for x in s4row["samples"])
            out.append(_line("warm process ready, Gemma step", ready, "200 ms budget", 0.200,
                             1.0))
    return out


def print_targets(lines: list[dict]) -> None:
    if not lines:
        return
    from _common import fmt_time
    print("\ntargets (ratio = peer time / s4tf_py time; met when ratio >= target)")
    w = max(len(x["workload"]) for x in lines) + 2
    pw = max(len(x["peer"]) for x in lines) + 2
    print(f"  {'workload':{w}}{'s4tf_py':>10}  {'peer':{pw}}{'peer time':>10}{'ratio':>8}"
          f"{'target':>8}  met")
    for x in lines:
        ratio = "-" if x["ratio"] is None else f"{x['ratio']:.2f}x"
        met = "?" if x["met"] is None else ("yes" if x["met"] else "NO")
        print(f"  {x['workload']:{w}}{fmt_time(x['s4tf_py_s']):>10}  {x['peer']:{pw}}"
              f"{fmt_time(x['peer_s']):>10}{ratio:>8}{x['target']:>7.2f}x  {met}")
