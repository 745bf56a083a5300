"""A small training run for tests/train/test_resume.py, run as a subprocess:

    python _resume_worker.py CHECKPOINT_DIR LOG_PATH RESULT_PATH

An MLP with dropout on part of the digits data, through TrainingLoop with checkpoints every 4
steps, a learning-rate schedule, metrics and a JSON-lines log. With STALL_AT=k in the
environment the run stops still after training step k (printing "step k" first), so the parent
can SIGKILL it there, in the middle of an epoch. Running it again with the same directory
resumes from the newest checkpoint. At the end it writes the final loss, the history and a
digest of the weights to RESULT_PATH.
"""
import hashlib
import json
import os
import sys
import time

import numpy as np

import s4tf_py as s4
from s4tf_py import optimizers, train
from s4tf_py.data import InferenceBatches, TrainingEpochs, digits, train_validation_split
from s4tf_py.nn.dropout import Dropout


class MLP(s4.nn.Layer):
    l1: s4.nn.Dense
    drop: Dropout
    l2: s4.nn.Dense

    def __call__(self, x):
        return self.l2(self.drop(s4.relu(self.l1(x))))


class Pace(train.Callback):
    """Reports each step on stdout (the parent watches it); stalls at step STALL_AT."""

    def on_fit_start(self, loop):
        print(f"start resumed_from={loop.resumed_from} step={loop.step}", flush=True)

    def on_batch_end(self, loop):
        if loop.is_training:
            print(f"step {loop.step}", flush=True)
            if loop.step == int(os.environ.get("STALL_AT", -1)):
                time.sleep(300)                  # until the parent kills us


def main(ckpt_dir: str, log_path: str, result_path: str) -> None:
    d = digits()
    x, y = d.images.reshape(-1, 64)[:640], d.labels[:640]
    train_set, valid_set = train_validation_split((x, y), 0.25, seed=0)
    model = MLP(l1=s4.nn.Dense(64, 32, seed=0), drop=Dropout(probability=0.2),
                l2=s4.nn.Dense(32, 10, seed=1))
    loop = train.TrainingLoop(
        training=TrainingEpochs(train_set, batch_size=32, seed=3),
        validation=InferenceBatches(valid_set, batch_size=64),
        optimizer=lambda m: optimizers.Adam(for_=m, learning_rate=3e-3),
        loss_function="softmax_cross_entropy", metrics=["accuracy"],
        callbacks=[Pace(), train.JSONLinesLogger(log_path),
                   train.LRScheduler(optimizers.CosineDecay(3e-3, decay_steps=45))],
        checkpoint_dir=ckpt_dir, checkpoint_every=4, keep_checkpoints=2, seed=5,
        progress=False)
    model = loop.fit(model, epochs=3)
    digest = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(t.numpy()).tobytes())
    result = {"resumed_from": loop.resumed_from, "final_loss": loop.last_step_loss,
              "last_train_loss": loop.recorder.batch_losses[-1],
              "history": loop.history, "weights": digest.hexdigest(), "steps": loop.step,
              "traces": loop.train_step.traces}
    with open(result_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
