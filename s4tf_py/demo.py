"""``make demo`` / ``s4tf demo`` / ``python -m s4tf_py.demo``: train the tiny Gemma 3, then talk.

The default demo trains ``gemma3-tiny`` (6 layers, d=256, 6M parameters, the embedded
1,024-piece tokenizer) from scratch on the embedded text corpus — Python's standard-library
documentation, rendered once and cached, nothing downloaded — for a time budget (default 2.5
minutes) with :func:`s4tf_models.gemma.train.train`: AdamW, warmup + cosine learning rate,
gradient clipping, one ``s4.compile``'d training step, a progress bar, and the held-out loss
every 25 steps. Then it continues a few prompts, printing each token as it is produced. Every
line it prints says what it is doing; the loss falls from ln(1024) ≈ 6.9 (a uniform guess) to
about 4 within the budget on a 2-core CPU.

``s4tf demo --mlp`` (or any of the MLP's options, ``--epochs`` / ``--hidden``) runs the first
demo instead: a 64-32-10 multilayer perceptron (an ``s4.nn.Layer`` of two ``Dense`` layers)
learns scikit-learn's embedded handwritten digits; the gradient comes from
``s4.value_with_gradient`` at the model (an ``MLP.TangentVector``) and the update is
``model.move(along=-lr * grad)``, the whole SGD step one function compiled with ``s4.compile``.
Each epoch prints the loss, the train and held-out accuracy and the step rate; the last line is
the held-out accuracy.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import s4tf_py as s4

INPUTS, HIDDEN, CLASSES = 64, 32, 10


def load_digits_split(seed: int = 0, held_out: float = 0.2):
    """(x_train, y_train, x_test, y_test): pixels scaled to [0, 1], labels int32."""
    from sklearn.datasets import load_digits
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * held_out))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


class MLP(s4.nn.Layer):
    """Two dense layers with a ReLU between them; its TangentVector is synthesized."""

    hidden: s4.nn.Dense
    output: s4.nn.Dense

    def __call__(self, x):
        return self.output(s4.relu(self.hidden(x)))


def make_model(seed: int = 0, hidden: int = HIDDEN) -> MLP:
    """A freshly initialized model (Glorot-uniform weights, zero biases)."""
    return MLP(hidden=s4.nn.Dense(INPUTS, hidden, seed=seed + 1),
               output=s4.nn.Dense(hidden, CLASSES, seed=seed + 2))


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy of integer labels."""
    onehot = s4.one_hot(labels, CLASSES, dtype=logits.dtype)
    return -(onehot * s4.log_softmax(logits)).sum() / logits.shape[0]


def train_step(model: MLP, x, labels, lr):
    """One SGD step: the gradient comes from automatic differentiation. Returns (model, loss)."""
    loss, grad = s4.value_with_gradient(at=model, of=lambda m: cross_entropy(m(x), labels))
    model.move(along=grad * -lr)
    return model, loss


def evaluate(model: MLP, x, labels):
    """(mean loss, number correct) over a whole split."""
    logits = model(x)
    correct = (s4.argmax(logits, axis=-1) == labels).astype(s4.int32).sum()
    return cross_entropy(logits, labels), correct


def train(epochs: int = 30, batch_size: int = 32, lr: float = 0.1, seed: int = 0,
          hidden: int = HIDDEN, out=sys.stdout) -> float:
    """Train and print progress; returns the final held-out accuracy."""
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    model = make_model(seed, hidden)
    step = s4.compile(train_step, donate_argnums=0)   # the weights are updated in place
    evaluate_c = s4.compile(evaluate)
    xtr, ytr = s4.Tensor(x_train), s4.Tensor(y_train)
    xte, yte = s4.Tensor(x_test), s4.Tensor(y_test)
    steps_per_epoch = len(x_train) // batch_size        # a fixed batch shape: one executable
    rng = np.random.default_rng(seed + 2)

    def p(*a):
        print(*a, file=out, flush=True)

    p(f"s4tf_py demo: a {INPUTS}-{hidden}-{CLASSES} MLP on scikit-learn's digits "
      f"({len(x_train)} train / {len(x_test)} held-out images), SGD lr={lr}, "
      f"batch {batch_size}, {epochs} epochs, device {s4.get_default_device()}")
    t_start = time.perf_counter()
    total_steps = 0
    acc_test = 0.0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x_train))
        t0 = time.perf_counter()
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            model, loss = step(model, s4.Tensor(x_train[idx]), s4.Tensor(y_train[idx]), lr)
        s4.barrier()
        dt = time.perf_counter() - t0
        total_steps += steps_per_epoch
        loss_tr, correct_tr = evaluate_c(model, xtr, ytr)
        loss_te, correct_te = evaluate_c(model, xte, yte)
        acc_train = correct_tr.item() / len(x_train)
        acc_test = correct_te.item() / len(x_test)
        p(f"epoch {epoch:3d}/{epochs}  loss {loss_tr.item():.4f}  train acc {acc_train:.4f}  "
          f"held-out loss {loss_te.item():.4f}  held-out acc {acc_test:.4f}  "
          f"{steps_per_epoch / dt:7.0f} steps/s")
    elapsed = time.perf_counter() - t_start
    p(f"trained {total_steps} steps in {elapsed:.1f} s; the step was traced {step.traces} "
      f"time(s) and every other call ran its cached executable")
    n_right = int(round(acc_test * len(x_test)))
    p(f"held-out accuracy: {acc_test:.4f} ({n_right}/{len(x_test)})")
    return acc_test


#: the Gemma demo's prompts (the corpus is Python documentation)
PROMPTS = ("Return the", "class ", "    def ")


def gemma_demo(minutes: float = 2.5, *, steps: int | None = None, seq_len: int = 128,
               batch_size: int = 8, lr: float = 3e-3, bf16: bool = False, seed: int = 0,
               prompts=PROMPTS, max_new_tokens: int = 80, out=sys.stdout):
    """Train ``gemma3-tiny`` on the embedded corpus for ``minutes`` (or ``steps``), then
    stream a continuation of each prompt. Returns the :class:`~s4tf_models.gemma.train.
    TrainResult`."""
    from s4tf_models.gemma.train import TrainOptions, generate_text, train

    def p(*a):
        print(*a, file=out, flush=True)

    budget = None if minutes is None or minutes <= 0 else 60.0 * minutes
    if budget is None and steps is None:
        raise ValueError("gemma_demo: give minutes > 0 or steps")
    p(f"s4tf_py demo: training the tiny Gemma 3 from scratch on the embedded text corpus "
      f"(Python's standard-library documentation), "
      + (f"for {minutes:g} minutes" if budget else f"for {steps} steps")
      + f", on {s4.get_default_device()}; then generating text with it.")
    p("The loss starts near ln(1024) = 6.93 (a uniform guess over the 1,024 tokens) and falls "
      "as the model learns.")
    options = TrainOptions(
        preset="gemma3-tiny", steps=steps or 2000, seq_len=seq_len, batch_size=batch_size,
        lr=lr, bf16=bf16, seed=seed, time_budget=budget, eval_every=25, eval_batches=4,
        warmup_steps=min(20, (steps or 2000) // 10) if steps else None,
        sample_prompt=None, log_every=10)
    result = train(options, stream=out)
    curve = [h for h in result.history if h["valid_loss"] is not None]
    if curve:
        p("held-out loss by step: " + "  ".join(f"{h['step']}: {h['valid_loss']:.2f}"
                                                for h in curve))
    p("")
    p(f"generating (temperature 0.7, top-k 40, {max_new_tokens} tokens per prompt), token by "
      "token:")
    for i, prompt in enumerate(prompts):
        p(f"--- prompt {i + 1}: {prompt!r}")
        out.write(prompt)
        out.flush()
        generate_text(result.model, result.tokenizer, prompt, max_new_tokens,
                      temperature=0.7, top_k=40, seed=seed + i, stream=out)
        out.write("\n")
        out.flush()
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="s4tf demo", description="Train the tiny Gemma 3 on the embedded text corpus for "
        "a few minutes and generate text with it (default), or, with --mlp, train a 64-32-10 "
        "MLP on scikit-learn's digits with automatic differentiation and an s4.compile'd SGD "
        "step.")
    ap.add_argument("--mlp", action="store_true",
                    help="run the MLP demo on the digits instead (its options: --epochs, "
                         "--hidden, --batch-size, --lr, --seed)")
    g = ap.add_argument_group("the Gemma demo")
    g.add_argument("--minutes", type=float, default=2.5,
                   help="training time budget in minutes (2.5; 0 with --steps for a fixed "
                        "number of steps)")
    g.add_argument("--steps", type=int, default=None,
                   help="train this many steps (with the budget: at most this many)")
    g.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (128)")
    g.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision")
    g.add_argument("--prompt", action="append", help="a prompt to continue (repeatable)")
    g.add_argument("--max-new-tokens", type=int, default=80, help="tokens per prompt (80)")
    m = ap.add_argument_group("the MLP demo (--mlp; --epochs or --hidden select it too)")
    m.add_argument("--epochs", type=int, default=None, help="passes over the training set (30)")
    m.add_argument("--hidden", type=int, default=None, help="hidden units (32)")
    c = ap.add_argument_group("both")
    c.add_argument("--batch-size", type=int, default=None,
                   help="samples per step (Gemma: 8 sequences; MLP: 32 images)")
    c.add_argument("--lr", type=float, default=None,
                   help="learning rate (Gemma: AdamW peak 3e-3; MLP: SGD 0.1)")
    c.add_argument("--seed", type=int, default=0, help="initialization and data seed (0)")
    args = ap.parse_args(argv)
    if args.mlp or args.epochs is not None or args.hidden is not None:
        epochs = 30 if args.epochs is None else args.epochs
        hidden = HIDDEN if args.hidden is None else args.hidden
        batch = 32 if args.batch_size is None else args.batch_size
        if epochs < 1 or batch < 1 or hidden < 1:
            ap.error("--epochs, --batch-size and --hidden must be positive")
        train(epochs=epochs, batch_size=batch, lr=0.1 if args.lr is None else args.lr,
              seed=args.seed, hidden=hidden)
        return 0
    batch = 8 if args.batch_size is None else args.batch_size
    if batch < 1 or args.seq_len < 1 or (args.steps is not None and args.steps < 1):
        ap.error("--batch-size, --seq-len and --steps must be positive")
    if args.minutes <= 0 and args.steps is None:
        ap.error("--minutes 0 needs --steps")
    gemma_demo(args.minutes, steps=args.steps, seq_len=args.seq_len, batch_size=batch,
               lr=3e-3 if args.lr is None else args.lr, bf16=args.bf16, seed=args.seed,
               prompts=tuple(args.prompt) if args.prompt else PROMPTS,
               max_new_tokens=args.max_new_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
