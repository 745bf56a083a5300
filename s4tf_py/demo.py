"""``make demo`` / ``s4tf demo`` / ``python -m s4tf_py.demo``: train a small MLP on real data.

A 64-32-10 multilayer perceptron (an ``s4.nn.Layer`` of two ``Dense`` layers) learns
scikit-learn's embedded handwritten digits (1,797 8x8 images, shipped inside scikit-learn:
nothing is downloaded). The gradient comes from ``s4.value_with_gradient`` at the model (an
``MLP.TangentVector``) and the update is ``model.move(along=-lr * grad)``; the whole SGD step —
forward, backward and update — is one function compiled with ``s4.compile``, so the Python
body runs once and every later step runs the cached executable. Each epoch prints the loss, the train and held-out accuracy and the step rate; the
last line is the held-out accuracy.
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="s4tf demo", description="Train a 64-32-10 MLP on scikit-learn's digits with "
        "automatic differentiation and an s4.compile'd SGD step.")
    ap.add_argument("--epochs", type=int, default=30, help="passes over the training set (30)")
    ap.add_argument("--batch-size", type=int, default=32, help="images per step (32)")
    ap.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (0.1)")
    ap.add_argument("--hidden", type=int, default=HIDDEN, help="hidden units (32)")
    ap.add_argument("--seed", type=int, default=0, help="data split and init seed (0)")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.hidden < 1:
        ap.error("--epochs, --batch-size and --hidden must be positive")
    train(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
          hidden=args.hidden)
    return 0


if __name__ == "__main__":
    sys.exit(main())
