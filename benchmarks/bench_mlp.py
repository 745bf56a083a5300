"""One training step of an MLP 784-512-512-10 (ReLU, softmax cross-entropy, Adam), batch 128.

Everything is float32 and starts from the same initial weights. s4tf_py (LLVM backend) runs
one ``s4.compile``'d step: ``s4.value_with_gradient`` of the mean cross-entropy (``s4.one_hot``,
``s4.log_softmax``, ``s4.relu``) over the parameters held as a Python list of tensors, then the
Adam update (lr 1e-3, b1 0.9, b2 0.999, eps 1e-8, bias correction by the step count, which is
passed as a Python float, so it does not retrace). The step returns new params, m, v and the
loss, and the timed loop feeds them back in. Peers in the same process: torch eager
(``nn.Linear`` layers, ``F.cross_entropy``, ``torch.optim.Adam``) and ``jax.jit`` of
``value_and_grad`` plus a hand-written Adam step (params and state donated). Before timing, the
first-step loss of every implementation is checked against torch's (1e-4), and the loss after
one update too (so the optimizer agrees). Ratio = peer time / s4tf_py time (higher is better).
"""
from __future__ import annotations

import sys

try:
    from . import _common as C
except ImportError:  # run as a script
    import os
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _common as C

BASELINE = "s4tf_py llvm (compiled step)"
SIZES = (784, 512, 512, 10)
BATCH = 128
LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8


def make_problem(seed: int = 0):
    """Initial params [W1, b1, W2, b2, W3, b3] (W: (in, out), He init, small random biases), a
    batch x (128, 784) and integer labels y (128,), all numpy."""
    import numpy as np
    rng = np.random.default_rng(seed)
    params = []
    for i, o in zip(SIZES[:-1], SIZES[1:]):
        params.append((rng.standard_normal((i, o)) * np.sqrt(2.0 / i)).astype(np.float32))
        params.append((0.01 * rng.standard_normal(o)).astype(np.float32))
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCH).astype(np.int32)
    return params, x, y


def make_s4_step(s4):
    """The s4.compile'd step(params, m, v, x, y, t: float) -> (params, m, v, loss)."""
    def loss_fn(p, x, y):
        h = x
        for i in range(0, len(p) - 2, 2):
            h = s4.relu(h @ p[i] + p[i + 1])
        logits = h @ p[-2] + p[-1]
        onehot = s4.one_hot(y, SIZES[-1], dtype=s4.float32)
        return -(s4.log_softmax(logits) * onehot).sum(axis=-1).mean()

    def mlp_adam_step(params, m, v, x, y, t):
        loss, g = s4.value_with_gradient(at=params, of=lambda p: loss_fn(p, x, y))
        m = [B1 * mi + (1 - B1) * gi for mi, gi in zip(m, g)]
        v = [B2 * vi + (1 - B2) * gi * gi for vi, gi in zip(v, g)]
        c1 = 1 - B1 ** t
        c2 = 1 - B2 ** t
        params = [p - LR * (mi / c1) / (s4.sqrt(vi / c2) + EPS)
                  for p, mi, vi in zip(params, m, v)]
        return params, m, v, loss

    return s4.compile(mlp_adam_step, donate_argnums=(0, 1, 2))   # as jax.jit below


def make_jax_step(jax):
    """jax.jit'd step(params, m, v, x, y, t) -> (params, m, v, loss); params, m, v donated."""
    import jax.numpy as jnp

    def loss_fn(p, x, y):
        h = x
        for i in range(0, len(p) - 2, 2):
            h = jax.nn.relu(h @ p[i] + p[i + 1])
        logits = h @ p[-2] + p[-1]
        onehot = jax.nn.one_hot(y, SIZES[-1], dtype=jnp.float32)
        return -(jax.nn.log_softmax(logits) * onehot).sum(axis=-1).mean()

    def step(params, m, v, x, y, t):
        loss, g = jax.value_and_grad(loss_fn)(params, x, y)
        m = [B1 * mi + (1 - B1) * gi for mi, gi in zip(m, g)]
        v = [B2 * vi + (1 - B2) * gi * gi for vi, gi in zip(v, g)]
        c1 = 1 - B1 ** t
        c2 = 1 - B2 ** t
        params = [p - LR * (mi / c1) / (jnp.sqrt(vi / c2) + EPS)
                  for p, mi, vi in zip(params, m, v)]
        return params, m, v, loss

    return jax.jit(step, donate_argnums=(0, 1, 2))


def make_torch_model(torch, params_np):
    """nn.Sequential of nn.Linear/ReLU holding the same weights, and its Adam optimizer."""
    nn = torch.nn
    layers = []
    for k in range(0, len(params_np), 2):
        w, b = params_np[k], params_np[k + 1]
        lin = nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(b.copy()))
        layers.append(lin)
        if k + 2 < len(params_np):
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(B1, B2), eps=EPS)
    return model, opt


def run(quick: bool = False, out_dir: str | None = None) -> dict:
    import numpy as np

    import s4tf_py as s4
    R = 20 if quick else 100
    params_np, x_np, y_np = make_problem()
    rows = []
    losses = {}

    # torch first: its losses are the reference
    torch, why = C.peer("torch")
    if torch is not None:
        import torch.nn.functional as F
        model, opt = make_torch_model(torch, params_np)
        tx, ty = torch.from_numpy(x_np.copy()), torch.from_numpy(y_np.astype(np.int64))

        def torch_step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(tx), ty)
            loss.backward()
            opt.step()
            return loss

        losses["torch"] = [float(torch_step().item()), float(torch_step().item())]

    # s4tf_py
    with s4.default_device(s4.Device("llvm")):
        step = make_s4_step(s4)
        x, y = s4.Tensor(x_np), s4.Tensor(y_np)
        P = [s4.Tensor(p) for p in params_np]
        st = [P, [s4.zeros_like(p) for p in P], [s4.zeros_like(p) for p in P], 0]
        s4_losses = []
        for _ in range(2):
            st[3] += 1
            st[0], st[1], st[2], loss = step(st[0], st[1], st[2], x, y, float(st[3]))
            s4_losses.append(float(loss.numpy()))
        losses["s4tf_py"] = s4_losses

        def s4_step():
            st[3] += 1
            st[0], st[1], st[2], loss = step(st[0], st[1], st[2], x, y, float(st[3]))
            return loss

        r = C.median_per_op(s4_step, ops_per_batch=1, repeats=R)
        final = float(s4_step().numpy())
        assert np.isfinite(final), f"s4tf_py loss became {final} after {st[3]} steps"
    rows.append({"name": BASELINE, "impl": "s4tf_py", **r, "traces": step.traces,
                 "first_losses": s4_losses})

    if torch is None:
        rows.append({"name": "torch eager + optim.Adam", "impl": "torch", "unavailable": why})
    else:
        rows.append({"name": "torch eager + optim.Adam", "impl": "torch",
                     **C.median_per_op(torch_step, ops_per_batch=1, repeats=R),
                     "first_losses": losses["torch"]})

    jax, why = C.peer("jax")
    if jax is None:
        rows.append({"name": "jax.jit (value_and_grad + Adam)", "impl": "jax",
                     "unavailable": why})
    else:
        import jax.numpy as jnp
        jstep = make_jax_step(jax)
        jx, jy = jnp.asarray(x_np), jnp.asarray(y_np)
        jst = [[jnp.asarray(p) for p in params_np], [jnp.zeros_like(p) for p in params_np],
               [jnp.zeros_like(p) for p in params_np], 0]

        def jax_step():
            jst[3] += 1
            jst[0], jst[1], jst[2], loss = jstep(jst[0], jst[1], jst[2], jx, jy, float(jst[3]))
            jax.block_until_ready((jst[0], jst[1], jst[2], loss))
            return loss

        losses["jax"] = [float(jax_step()), float(jax_step())]
        rows.append({"name": "jax.jit (value_and_grad + Adam)", "impl": "jax",
                     **C.median_per_op(jax_step, ops_per_batch=1, repeats=R),
                     "first_losses": losses["jax"]})

    C.check_losses(losses)

    C.add_ratios(rows, BASELINE)
    C.print_table(f"MLP {'-'.join(map(str, SIZES))} training step (Adam), batch {BATCH}, "
                  "float32; lower is better", rows, BASELINE)
    print("  losses at steps 1, 2: " + ", ".join(
        f"{k} {v[0]:.6f} {v[1]:.6f}" for k, v in losses.items()))
    payload = {"rows": rows, "losses": losses, "quick": quick}
    path = C.write_json("bench_mlp", payload, out_dir)
    print(f"  wrote {path}")
    return payload


def main(argv=None) -> int:
    return C.main(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
