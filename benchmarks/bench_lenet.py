"""One training step of LeNet-5 (plain SGD, lr 0.1), batch 128 of 1x28x28 images, float32.

The network: conv 6@5x5 (pad 2), ReLU, 2x2 average pool, conv 16@5x5 (valid), ReLU, 2x2
average pool, flatten (400), dense 120, ReLU, dense 84, ReLU, dense 10, mean softmax
cross-entropy. All implementations start from the same weights and see the same batch.

* s4tf_py (LLVM backend): one ``s4.compile``'d step, ``s4.value_with_gradient`` over the
  parameter list, ``s4.nn.functional.conv2d`` / ``avg_pool2d``. Those are channels-last (input
  NHWC, filter HWIO), so s4tf_py gets the batch as NHWC (for one channel the same bytes as
  NCHW) and the filters as HWIO; its first dense matrix has its 400 rows permuted from the
  (C, H, W) flatten order to (H, W, C), so it computes the same function as the NCHW peers.
* torch eager: ``nn.Conv2d`` / ``nn.AvgPool2d`` / ``nn.Linear``, ``F.cross_entropy``,
  ``torch.optim.SGD``, NCHW.
* ``jax.jit``: ``jax.lax.conv_general_dilated`` (NCHW, OIHW) and ``jax.lax.reduce_window``,
  ``value_and_grad`` and the SGD update in one jitted step, params donated.

Before timing, the first-step loss of every implementation is checked against torch's (1e-4),
and the loss after one update too. Ratio = peer time / s4tf_py time (higher is better).
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
BATCH = 128
LR = 0.1


def make_problem(seed: int = 0):
    """Weights in torch's layouts (conv OIHW, dense (in, out) with the 400 inputs in (C, H, W)
    order), a batch x (128, 1, 28, 28) NCHW and integer labels y (128,), all numpy."""
    import numpy as np
    rng = np.random.default_rng(seed)

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def bias(n):
        return (0.01 * rng.standard_normal(n)).astype(np.float32)

    params = [he((6, 1, 5, 5), 25), bias(6), he((16, 6, 5, 5), 150), bias(16),
              he((400, 120), 400), bias(120), he((120, 84), 120), bias(84),
              he((84, 10), 84), bias(10)]
    x = rng.standard_normal((BATCH, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, BATCH).astype(np.int32)
    return params, x, y


def to_s4_layout(params, x):
    """The same weights and batch in s4tf_py's channels-last conventions (see the docstring)."""
    import numpy as np
    p = list(params)
    p[0] = np.ascontiguousarray(p[0].transpose(2, 3, 1, 0))        # OIHW -> HWIO
    p[2] = np.ascontiguousarray(p[2].transpose(2, 3, 1, 0))
    p[4] = np.ascontiguousarray(                                    # rows (c,h,w) -> (h,w,c)
        p[4].reshape(16, 5, 5, 120).transpose(1, 2, 0, 3).reshape(400, 120))
    return p, np.ascontiguousarray(x.transpose(0, 2, 3, 1))        # NCHW -> NHWC


def make_s4_step(s4):
    """The s4.compile'd step(params, x, y) -> (params, loss), channels-last."""
    F = s4.nn.functional

    def loss_fn(p, x, y):
        h = F.avg_pool2d(s4.relu(F.conv2d(x, p[0], padding=2) + p[1]), 2)
        h = F.avg_pool2d(s4.relu(F.conv2d(h, p[2]) + p[3]), 2)
        h = h.reshape((h.shape[0], 400))
        h = s4.relu(h @ p[4] + p[5])
        h = s4.relu(h @ p[6] + p[7])
        logits = h @ p[8] + p[9]
        onehot = s4.one_hot(y, 10, dtype=s4.float32)
        return -(s4.log_softmax(logits) * onehot).sum(axis=-1).mean()

    def lenet_sgd_step(params, x, y):
        loss, g = s4.value_with_gradient(at=params, of=lambda p: loss_fn(p, x, y))
        return [p - LR * gi for p, gi in zip(params, g)], loss

    return s4.compile(lenet_sgd_step, donate_argnums=(0,))   # as jax.jit below


def make_jax_step(jax):
    """jax.jit'd step(params, x, y) -> (params, loss), NCHW; params donated."""
    import jax.numpy as jnp
    lax = jax.lax

    def pool(h):
        return lax.reduce_window(h, 0.0, lax.add, (1, 1, 2, 2), (1, 1, 2, 2), "VALID") * 0.25

    def conv(h, w, pad):
        return lax.conv_general_dilated(h, w, (1, 1), ((pad, pad), (pad, pad)),
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"))

    def loss_fn(p, x, y):
        h = pool(jax.nn.relu(conv(x, p[0], 2) + p[1][None, :, None, None]))
        h = pool(jax.nn.relu(conv(h, p[2], 0) + p[3][None, :, None, None]))
        h = h.reshape(h.shape[0], 400)
        h = jax.nn.relu(h @ p[4] + p[5])
        h = jax.nn.relu(h @ p[6] + p[7])
        logits = h @ p[8] + p[9]
        onehot = jax.nn.one_hot(y, 10, dtype=jnp.float32)
        return -(jax.nn.log_softmax(logits) * onehot).sum(axis=-1).mean()

    def step(params, x, y):
        loss, g = jax.value_and_grad(loss_fn)(params, x, y)
        return [p - LR * gi for p, gi in zip(params, g)], loss

    return jax.jit(step, donate_argnums=(0,))


def make_torch_model(torch, params_np):
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    with_params = [m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for k, m in enumerate(with_params):
            w, b = params_np[2 * k], params_np[2 * k + 1]
            m.weight.copy_(torch.from_numpy((w if w.ndim == 4 else w.T).copy()))
            m.bias.copy_(torch.from_numpy(b.copy()))
    return model, torch.optim.SGD(model.parameters(), lr=LR)


def run(quick: bool = False, out_dir: str | None = None) -> dict:
    import numpy as np

    import s4tf_py as s4
    R = 10 if quick else 50
    params_np, x_np, y_np = make_problem()
    rows = []
    losses = {}

    torch, why = C.peer("torch")
    if torch is not None:
        import torch.nn.functional as TF
        model, opt = make_torch_model(torch, params_np)
        tx, ty = torch.from_numpy(x_np.copy()), torch.from_numpy(y_np.astype(np.int64))

        def torch_step():
            opt.zero_grad(set_to_none=True)
            loss = TF.cross_entropy(model(tx), ty)
            loss.backward()
            opt.step()
            return loss

        losses["torch"] = [float(torch_step().item()), float(torch_step().item())]

    with s4.default_device(s4.Device("llvm")):
        step = make_s4_step(s4)
        p_s4, x_s4 = to_s4_layout(params_np, x_np)
        x, y = s4.Tensor(x_s4), s4.Tensor(y_np)
        st = [[s4.Tensor(p) for p in p_s4]]
        s4_losses = []
        for _ in range(2):
            st[0], loss = step(st[0], x, y)
            s4_losses.append(float(loss.numpy()))
        losses["s4tf_py"] = s4_losses

        def s4_step():
            st[0], loss = step(st[0], x, y)
            return loss

        r = C.median_per_op(s4_step, ops_per_batch=1, repeats=R)
        final = float(s4_step().numpy())
        assert np.isfinite(final), f"s4tf_py loss became {final}"
    rows.append({"name": BASELINE, "impl": "s4tf_py", **r, "traces": step.traces,
                 "first_losses": s4_losses})

    if torch is None:
        rows.append({"name": "torch eager + optim.SGD", "impl": "torch", "unavailable": why})
    else:
        rows.append({"name": "torch eager + optim.SGD", "impl": "torch",
                     **C.median_per_op(torch_step, ops_per_batch=1, repeats=R),
                     "first_losses": losses["torch"]})

    jax, why = C.peer("jax")
    if jax is None:
        rows.append({"name": "jax.jit (value_and_grad + SGD)", "impl": "jax",
                     "unavailable": why})
    else:
        import jax.numpy as jnp
        jstep = make_jax_step(jax)
        jx, jy = jnp.asarray(x_np), jnp.asarray(y_np)
        jst = [[jnp.asarray(p) for p in params_np]]

        def jax_step():
            jst[0], loss = jstep(jst[0], jx, jy)
            jax.block_until_ready((jst[0], loss))
            return loss

        losses["jax"] = [float(jax_step()), float(jax_step())]
        rows.append({"name": "jax.jit (value_and_grad + SGD)", "impl": "jax",
                     **C.median_per_op(jax_step, ops_per_batch=1, repeats=R),
                     "first_losses": losses["jax"]})

    C.check_losses(losses)

    C.add_ratios(rows, BASELINE)
    C.print_table(f"LeNet-5 training step (SGD), batch {BATCH}x1x28x28, float32; "
                  "lower is better", rows, BASELINE)
    print("  losses at steps 1, 2: " + ", ".join(
        f"{k} {v[0]:.6f} {v[1]:.6f}" for k, v in losses.items()))
    payload = {"rows": rows, "losses": losses, "quick": quick}
    path = C.write_json("bench_lenet", payload, out_dir)
    print(f"  wrote {path}")
    return payload


def main(argv=None) -> int:
    return C.main(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
