"""Gemma 3 (tiny): training-step tokens/s, greedy-decode tokens/s and the step's compile time.

The model is ``GemmaConfig.preset("gemma3-tiny")``: vocab 1024, d 256, 6 layers, 4 heads, 1
kv head, head_dim 64, ffn 1024, window 64, every 6th layer global, float32. Every
implementation starts from the same weights: transformers' ``Gemma3ForCausalLM`` random init
(seed 0), copied into s4tf_py (``load_state``) and into a hand-written JAX Gemma 3
(``_jax_gemma.py``). Before timing, the JAX logits are checked against transformers' (max
abs < 1e-4).

1. Training step, batch 4 x seq 256 (1,024 tokens a step) of random token ids, the mean
   next-token softmax cross-entropy in float32, AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8,
   weight decay 0.01 on every parameter):

   * s4tf_py (LLVM backend): ``s4.compile(step, donate_argnums=(0, 1))`` of
     ``s4.value_with_gradient`` of ``losses.softmax_cross_entropy(model(x), y)`` and
     ``opt.update(model, along=g)`` with ``s4tf_py.optimizers.AdamW``.
   * torch eager: transformers' ``Gemma3ForCausalLM`` (``attn_implementation="eager"``),
     ``F.cross_entropy`` on its logits, ``torch.optim.AdamW``.
   * ``jax.jit`` of ``value_and_grad`` and a hand-written AdamW, params and moments donated.

   The losses at steps 1 and 2 must agree with torch's (``check_losses``).

2. Greedy decode, batch 1, a 32-token prompt, 128 new tokens, KV cache; the time of the whole
   call (prefill + 127 decode steps, tokens back on the host):

   * s4tf_py: ``model.generate(prompt, max_new_tokens=128, stop_tokens=[])``.
   * transformers: ``generate`` (greedy, ``use_cache=True``, eager attention,
     ``pad_token_id=0``, ``min_new_tokens=max_new_tokens`` so it never stops early).
   * JAX: one ``jax.jit`` program: prefill into a preallocated KV cache, then
     ``lax.fori_loop`` over the decode steps (``dynamic_update_slice``).

   The three must produce the same tokens; where they differ, the first difference must be a
   near-tie (transformers' logits of the two tokens within 1e-3), else the benchmark fails.
   (The random-init model's greedy output is repetitive, so the check is weaker than it
   sounds; the distinct-token count is printed.)

3. Compile time of the training step, each measurement a fresh Python process (this file with
   ``--child``), as ``bench_compile``: cold (empty ``S4TF_CACHE_DIR``, empty jax persistent
   cache) and warm (a second process with the cache the first one filled): the first call
   timed from its start to its loss being back on the host; for s4tf_py also "ready" (trace +
   compile or load, before the step first runs).

Tokens/s = tokens / median seconds. Ratio = peer time / s4tf_py time (above 1: s4tf_py is
faster). ``--quick``: fewer repetitions and one compile run instead of two.
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

PRESET = "gemma3-tiny"
BATCH, SEQ = 4, 256
LR, WD = 1e-3, 0.01
PROMPT, NEW_TOKENS = 32, 128
TRAIN_BASE = "s4tf_py llvm (compiled step)"
DECODE_BASE = "s4tf_py llvm (model.generate)"
MARK = "BENCH_GEMMA_RESULT "


# ---- shared pieces -----------------------------------------------------------------------------

def hf_config() -> dict:
    """transformers' ``config.json`` dict of the benchmark's Gemma 3."""
    from s4tf_models.gemma import GemmaConfig
    return GemmaConfig.preset(PRESET).to_hf()


def make_hf_model(torch, state: dict | None = None, seed: int = 0):
    """transformers' ``Gemma3ForCausalLM`` (eager attention), its random init from ``seed``,
    or ``state`` (numpy arrays by name) loaded into it."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig
    d = {k: v for k, v in hf_config().items() if k not in ("architectures", "model_type")}
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(Gemma3TextConfig(**d, attn_implementation="eager"))
    if state is not None:
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(torch.from_numpy(state[n]))
    return model


def hf_state(model) -> dict:
    """Parameters by transformers' names as numpy copies (the tied output weight once)."""
    return {n: p.detach().numpy().copy() for n, p in model.named_parameters()}


def make_batch(seed: int = 0):
    """Inputs ``x`` and next-token targets ``y``, int32 ``[BATCH, SEQ]``."""
    import numpy as np
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, 1024, (BATCH, SEQ + 1)).astype(np.int32)
    return np.ascontiguousarray(ids[:, :-1]), np.ascontiguousarray(ids[:, 1:])


def make_prompt(seed: int = 1):
    import numpy as np
    return np.random.default_rng(seed).integers(3, 1024, (1, PROMPT)).astype(np.int32)


def make_s4_model(s4, state: dict):
    from s4tf_models.gemma import GemmaConfig, GemmaForCausalLM
    model = GemmaForCausalLM(GemmaConfig.preset(PRESET), seed=0)
    model.load_state(state)
    return model


def make_s4_step(s4):
    """The s4.compile'd ``step(model, opt, x, y) -> (model, opt, loss)``, model and optimizer
    donated."""
    from s4tf_py import losses

    def gemma_train_step(model, opt, x, y):
        loss, g = s4.value_with_gradient(
            at=model, of=lambda m: losses.softmax_cross_entropy(m(x).astype(s4.float32), y))
        opt.update(model, along=g)
        return model, opt, loss

    return s4.compile(gemma_train_step, donate_argnums=(0, 1))


def make_s4_opt(s4, model):
    import s4tf_py.optimizers as optimizers
    return optimizers.AdamW(for_=model, learning_rate=LR, beta1=0.9, beta2=0.999, epsilon=1e-8,
                            weight_decay=WD)


def _jax_setup(jax, state: dict):
    import jax.numpy as jnp

    import _jax_gemma as JG
    cfg = JG.Config.from_hf(hf_config())
    return JG, cfg, jax.tree_util.tree_map(jnp.asarray, JG.params_from_hf(state, cfg))


# ---- 1. training -------------------------------------------------------------------------------

def _train(state, x_np, y_np, repeats, warmup, hf_check):
    import numpy as np

    import s4tf_py as s4
    rows, losses = [], {}
    tokens = BATCH * SEQ

    torch, why_torch = C.peer("torch")
    if torch is not None:
        import torch.nn.functional as F
        model = make_hf_model(torch, state).train()
        opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8,
                                weight_decay=WD)
        tx, ty = torch.from_numpy(x_np.astype(np.int64)), torch.from_numpy(y_np.astype(np.int64))

        def torch_step():
            opt.zero_grad(set_to_none=True)
            logits = model(input_ids=tx, use_cache=False).logits
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), ty.reshape(-1))
            loss.backward()
            opt.step()
            return loss

        losses["torch"] = [float(torch_step().item()), float(torch_step().item())]

    with s4.default_device(s4.Device("llvm")):
        step = make_s4_step(s4)
        m = make_s4_model(s4, state)
        st = [m, make_s4_opt(s4, m)]
        x, y = s4.Tensor(x_np), s4.Tensor(y_np)
        t0 = time.perf_counter()
        s4_losses = []
        for _ in range(2):
            st[0], st[1], loss = step(st[0], st[1], x, y)
            s4_losses.append(float(loss.numpy()))
            if len(s4_losses) == 1:
                first_call = time.perf_counter() - t0
        losses["s4tf_py"] = s4_losses

        def s4_step():
            st[0], st[1], loss = step(st[0], st[1], x, y)
            loss.numpy()
            return loss

        r = C.median_per_op(s4_step, ops_per_batch=1, repeats=repeats, warmup=warmup)
        final = float(s4_step().numpy())
        assert np.isfinite(final), f"s4tf_py loss became {final}"
    rows.append({"name": TRAIN_BASE, "impl": "s4tf_py", **r, "traces": step.traces,
                 "first_call_s": first_call, "first_losses": s4_losses})

    if torch is None:
        rows.append({"name": "torch eager + optim.AdamW", "impl": "torch",
                     "unavailable": why_torch})
    else:
        rows.append({"name": "torch eager + optim.AdamW", "impl": "torch",
                     **C.median_per_op(torch_step, ops_per_batch=1, repeats=repeats,
                                       warmup=warmup),
                     "threads": torch.get_num_threads(), "first_losses": losses["torch"]})
        del model, opt

    jax, why = C.peer("jax")
    if jax is None:
        rows.append({"name": "jax.jit (value_and_grad + AdamW)", "impl": "jax",
                     "unavailable": why})
    else:
        import jax.numpy as jnp
        JG, cfg, params = _jax_setup(jax, state)
        err = None
        if hf_check is not None:                    # the hand-written model is transformers'
            want = hf_check(x_np)
            fwd = jax.jit(lambda p, ids: JG.forward(cfg, p, ids))
            got = np.asarray(fwd(params, jnp.asarray(x_np)))
            err = float(np.abs(got - want).max())
            if not err < 1e-4:
                raise AssertionError(f"JAX Gemma logits differ from transformers' by {err}")
            print(f"  JAX Gemma logits vs transformers': max abs difference {err:.2e}")
        jstep = JG.make_train_step(cfg, lr=LR, wd=WD)
        zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, params)  # noqa: E731
        jst = [params, zeros(), zeros(), 0]
        jx, jy = jnp.asarray(x_np), jnp.asarray(y_np)

        def jax_step():
            jst[3] += 1
            jst[0], jst[1], jst[2], loss = jstep(jst[0], jst[1], jst[2], jx, jy, float(jst[3]))
            jax.block_until_ready((jst[0], jst[1], jst[2], loss))
            return loss

        t0 = time.perf_counter()
        losses["jax"] = [float(jax_step())]
        first_call = time.perf_counter() - t0
        losses["jax"].append(float(jax_step()))
        rows.append({"name": "jax.jit (value_and_grad + AdamW)", "impl": "jax",
                     **C.median_per_op(jax_step, ops_per_batch=1, repeats=repeats,
                                       warmup=warmup),
                     "first_call_s": first_call, "logits_max_abs_vs_transformers": err,
                     "first_losses": losses["jax"]})

    C.check_losses(losses)
    for r in rows:
        if "median_s" in r:
            r["tokens_per_s"] = tokens / r["median_s"]
    C.add_ratios(rows, TRAIN_BASE)
    return rows, losses


# ---- 2. decoding -------------------------------------------------------------------------------

def _decode(state, prompt_np, repeats, warmup):
    import numpy as np

    import s4tf_py as s4
    rows, tokens = [], {}

    with s4.default_device(s4.Device("llvm")):
        m = make_s4_model(s4, state)

        def s4_gen():
            return m.generate(prompt_np, max_new_tokens=NEW_TOKENS, stop_tokens=[]).numpy()

        t0 = time.perf_counter()
        tokens["s4tf_py"] = s4_gen()[:, PROMPT:]
        first_call = time.perf_counter() - t0
        r = C.median_per_op(s4_gen, ops_per_batch=NEW_TOKENS, repeats=repeats, warmup=warmup)
    rows.append({"name": DECODE_BASE, "impl": "s4tf_py", **r, "first_call_s": first_call})

    torch, why = C.peer("torch")
    hf = None
    if torch is None:
        rows.append({"name": "transformers generate (eager)", "impl": "torch",
                     "unavailable": why})
    else:
        hf = make_hf_model(torch, state).eval()
        tp = torch.from_numpy(prompt_np.astype(np.int64))

        def hf_gen():
            with torch.no_grad():
                return hf.generate(tp, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                   do_sample=False, use_cache=True, pad_token_id=0).numpy()

        tokens["transformers"] = hf_gen()[:, PROMPT:]
        rows.append({"name": "transformers generate (eager)", "impl": "torch",
                     **C.median_per_op(hf_gen, ops_per_batch=NEW_TOKENS, repeats=repeats,
                                       warmup=warmup), "threads": torch.get_num_threads()})

    jax, why = C.peer("jax")
    if jax is None:
        rows.append({"name": "jax.jit generate (fori_loop)", "impl": "jax", "unavailable": why})
    else:
        import jax.numpy as jnp
        JG, cfg, params = _jax_setup(jax, state)
        gen = JG.make_generate(cfg, NEW_TOKENS)
        jp = jnp.asarray(prompt_np)

        def jax_gen():
            return np.asarray(gen(params, jp))          # the tokens back on the host

        t0 = time.perf_counter()
        tokens["jax"] = jax_gen()
        first_call = time.perf_counter() - t0
        rows.append({"name": "jax.jit generate (fori_loop)", "impl": "jax",
                     **C.median_per_op(jax_gen, ops_per_batch=NEW_TOKENS, repeats=repeats,
                                       warmup=warmup), "first_call_s": first_call})

    agreement = _check_tokens(tokens, prompt_np, hf, torch)
    for r in rows:
        if "median_s" in r:
            r["tokens_per_s"] = 1.0 / r["median_s"]
    C.add_ratios(rows, DECODE_BASE)
    return rows, tokens, agreement


def _check_tokens(tokens: dict, prompt_np, hf, torch) -> dict:
    """Every implementation's tokens against s4tf_py's. A difference must start at a near-tie
    of transformers' logits (the two tokens within 1e-3 at the first differing step)."""
    import numpy as np
    ref = tokens["s4tf_py"]
    out = {"distinct_tokens": int(len(np.unique(ref))), "diverged": {}}
    for impl, toks in tokens.items():
        if impl == "s4tf_py":
            continue
        diff = np.nonzero(toks[0] != ref[0])[0]
        if diff.size == 0:
            continue
        k = int(diff[0])
        a, b = int(ref[0, k]), int(toks[0, k])
        info = {"first_step": k, "s4tf_py": a, impl: b}
        if hf is not None:
            seq = np.concatenate([prompt_np[0], ref[0, :k]])[None].astype(np.int64)
            with torch.no_grad():
                logits = hf(torch.from_numpy(seq)).logits[0, -1].numpy()
            gap = float(abs(logits[a] - logits[b]))
            info["transformers_logit_gap"] = gap
            if gap > 1e-3:
                why = (" (transformers' min_new_tokens suppresses eos)"
                       if 1 in (a, b) and impl == "transformers" else "")
                raise AssertionError(f"greedy tokens of {impl} differ from s4tf_py's at step "
                                     f"{k} ({b} vs {a}), not a tie: logit gap {gap:.2e}{why}")
        out["diverged"][impl] = info
    return out


# ---- 3. compile time (child processes) ---------------------------------------------------------

def _child_s4(folder: str) -> dict:
    t0 = time.perf_counter()
    import numpy as np

    import s4tf_py as s4
    from s4tf_models import gemma
    import_s = time.perf_counter() - t0
    data = np.load(os.path.join(folder, "batch.npz"))
    with s4.default_device(s4.Device("llvm")):
        model = gemma.load(os.path.join(folder, "checkpoint"))
        opt = make_s4_opt(s4, model)
        step = make_s4_step(s4)
        x, y = s4.Tensor(data["x"]), s4.Tensor(data["y"])
        for t in [x, y] + [p for _, p in model.named_parameters()]:
            t.numpy()                                   # concrete before the clock starts
        s4.reset_metrics()
        t1 = time.perf_counter()
        model, opt, loss = step(model, opt, x, y)
        loss = float(loss.numpy())
        first_s = time.perf_counter() - t1
        mt = s4.metrics()
        ready_s = mt["trace_seconds"] + mt["compile_seconds"]
        t2 = time.perf_counter()
        model, opt, loss2 = step(model, opt, x, y)
        loss2.numpy()
        second_s = time.perf_counter() - t2
    res = {"import_s": import_s, "first_call_s": first_s, "second_call_s": second_s,
           "ready_s": ready_s, "loss": loss, "traces": step.traces}
    res["llvm_cache_stats"] = C.llvm_cache_stats()
    return res


def _child_jax(folder: str) -> dict:
    t0 = time.perf_counter()
    import numpy as np
    jax, why = C.peer("jax")
    if jax is None:
        return {"unavailable": why}
    import jax.numpy as jnp

    import _jax_gemma as JG
    import_s = time.perf_counter() - t0
    from safetensors.numpy import load_file
    state = {}
    ck = os.path.join(folder, "checkpoint")
    for f in sorted(os.listdir(ck)):
        if f.endswith(".safetensors"):
            state.update(load_file(os.path.join(ck, f)))
    with open(os.path.join(ck, "config.json")) as f:
        cfg = JG.Config.from_hf(json.load(f))
    data = np.load(os.path.join(folder, "batch.npz"))
    step = JG.make_train_step(cfg, lr=LR, wd=WD)

    def make_args():
        p = jax.tree_util.tree_map(jnp.asarray, JG.params_from_hf(state, cfg))
        z = lambda: jax.tree_util.tree_map(jnp.zeros_like, p)  # noqa: E731
        return p, z(), z(), jnp.asarray(data["x"]), jnp.asarray(data["y"]), 1.0
    args, args2 = make_args(), make_args()                      # the step donates its params
    jax.block_until_ready((args, args2))
    t1 = time.perf_counter()
    out = step(*args)
    loss = float(out[-1])
    first_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    jax.block_until_ready(step(*args2))
    second_s = time.perf_counter() - t2
    return {"import_s": import_s, "first_call_s": first_s, "second_call_s": second_s,
            "loss": loss}


def _child(impl: str, folder: str) -> int:
    if impl == "import":                     # warms Python's bytecode caches only
        import jax  # noqa: F401

        import s4tf_py  # noqa: F401
        from s4tf_models import gemma  # noqa: F401
        res = {}
    else:
        res = _child_s4(folder) if impl == "s4" else _child_jax(folder)
    print(MARK + json.dumps(res), flush=True)
    return 0


def _spawn(impl: str, folder: str, cache_dir: str) -> dict:
    return C.spawn_child(__file__, [impl, folder], cache_dir, MARK)


def _compile(state, x_np, y_np, n_runs: int) -> dict:
    import numpy as np
    work = tempfile.mkdtemp(prefix="s4tf-bench-gemma-")
    try:
        import s4tf_py as s4
        with s4.default_device(s4.Device("llvm")):
            make_s4_model(s4, state).save(os.path.join(work, "checkpoint"))
        np.savez(os.path.join(work, "batch.npz"), x=x_np, y=y_np)
        d = tempfile.mkdtemp(prefix="s4tf-bench-gemma-pyc-")
        try:
            _spawn("import", work, d)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        impls = {"s4": "s4tf_py llvm", "jax": "jax.jit"}
        raw = {i: {"cold": [], "warm": []} for i in impls}
        for _ in range(n_runs):
            for impl in impls:
                d = tempfile.mkdtemp(prefix=f"s4tf-bench-gemma-{impl}-")
                try:
                    raw[impl]["cold"].append(_spawn(impl, work, d))
                    raw[impl]["warm"].append(_spawn(impl, work, d))
                finally:
                    shutil.rmtree(d, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tables = {}
    for phase in ("cold", "warm"):
        rows = [{"name": f"{name} {phase}", "impl": impl,
                 **C.summarize_runs(raw[impl][phase], "first_call_s")} for impl, name in impls.items()]
        C.add_ratios(rows, f"{impls['s4']} {phase}")
        tables[phase] = rows
    ls = [s["loss"] for i in impls for p in ("cold", "warm") for s in raw[i][p] if "loss" in s]
    if ls and max(ls) - min(ls) > 1e-4:
        raise AssertionError(f"first-step losses of the compile runs disagree: {ls}")
    return tables


# ---- the benchmark -----------------------------------------------------------------------------

def _print_tokens_table(title, rows, base):
    C.print_table(title, rows, base)
    for r in rows:
        if "tokens_per_s" in r:
            print(f"    {r['name']}: {r['tokens_per_s']:,.0f} tokens/s")


def run(quick: bool = False, out_dir: str | None = None) -> dict:
    import numpy as np

    load = os.getloadavg()
    print(f"\nGemma 3 tiny ({PRESET}); load average at the start {load[0]:.2f} on "
          f"{os.cpu_count()} cpus (timings on a loaded machine are noisy)")
    torch, _ = C.peer("torch")
    x_np, y_np = make_batch()
    prompt_np = make_prompt()
    if torch is not None:
        hf0 = make_hf_model(torch).eval()
        state = hf_state(hf0)

        def hf_check(ids):
            with torch.no_grad():
                return hf0(torch.from_numpy(ids.astype(np.int64)), use_cache=False).logits.numpy()
        weights = "transformers Gemma3ForCausalLM random init (torch seed 0)"
    else:                          # no transformers: s4tf_py's own init, shared by the peers
        import s4tf_py as s4
        from s4tf_models.gemma import GemmaConfig, GemmaForCausalLM
        with s4.default_device(s4.Device("llvm")):
            state = {n: p.numpy().copy() for n, p in
                     GemmaForCausalLM(GemmaConfig.preset(PRESET), seed=0).named_parameters()}
        hf_check = None
        weights = "s4tf_py GemmaForCausalLM random init (seed 0): torch is not installed"

    train_rows, losses = _train(state, x_np, y_np, repeats=2 if quick else 6,
                                warmup=1, hf_check=hf_check)
    _print_tokens_table(f"Gemma 3 tiny training step (AdamW), batch {BATCH} x seq {SEQ} = "
                        f"{BATCH * SEQ} tokens, float32; lower is better", train_rows,
                        TRAIN_BASE)
    print("  losses at steps 1, 2: " + ", ".join(
        f"{k} {v[0]:.6f} {v[1]:.6f}" for k, v in losses.items()))

    decode_rows, tokens, agreement = _decode(state, prompt_np, repeats=1 if quick else 3,
                                             warmup=1)
    _print_tokens_table(f"Gemma 3 tiny greedy decode, batch 1, {PROMPT}-token prompt, "
                        f"{NEW_TOKENS} new tokens, KV cache; time per new token (whole "
                        "generate call / 128); lower is better", decode_rows, DECODE_BASE)
    verdict = ("all implementations agree" if not agreement["diverged"] else
               f"DIVERGE at a near-tie: {agreement['diverged']}")
    print(f"  tokens: {verdict}; {agreement['distinct_tokens']} distinct tokens in s4tf_py's "
          f"{NEW_TOKENS}")

    n_runs = 1 if quick else 2
    tables = _compile(state, x_np, y_np, n_runs)
    for phase, what in (("cold", "empty caches"), ("warm", "disk cache filled by an earlier "
                                                          "process")):
        rows = tables[phase]
        C.print_table(f"Gemma training step: first call, trace + compile + run, fresh process, "
                      f"{what}; median of {n_runs}", rows, f"s4tf_py llvm {phase}")
        for r in rows:
            if "samples" in r:
                s = r["samples"]
                second = statistics.median(x["second_call_s"] for x in s)
                extra = f"second call {C.fmt_time(second)}"
                if "ready_s" in s[0]:
                    extra += (f", ready (trace + compile/load) "
                              f"{C.fmt_time(statistics.median(x['ready_s'] for x in s))}")
                extra += f", import {C.fmt_time(statistics.median(x['import_s'] for x in s))}"
                extra += f", loss {s[0]['loss']:.6f}"
                print(f"    {r['name']}: {extra}")

    payload = {"quick": quick, "config": hf_config(), "weights": weights,
               "loadavg_start": load, "loadavg_end": os.getloadavg(),
               "train": train_rows, "losses": losses, "decode": decode_rows,
               "decode_tokens": {k: v.tolist() for k, v in tokens.items()},
               "decode_agreement": agreement, "compile": tables,
               "tokens_per_train_step": BATCH * SEQ, "new_tokens": NEW_TOKENS}
    path = C.write_json("bench_gemma", payload, out_dir)
    print(f"  wrote {path}")
    return payload


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    ap.add_argument("--out", help="directory for the JSON result (benchmarks/results)")
    ap.add_argument("--child", nargs=2, metavar=("IMPL", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child(*args.child)
    run(quick=args.quick, out_dir=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
