"""Resuming: a run killed mid-training (SIGKILL, a real subprocess) continues from its newest
checkpoint and ends bit for bit like an uninterrupted run: the data order, the dropout keys, the
optimizer state, the step count, the learning-rate schedule, the metrics and the logs are all
restored. Also in-process: fp16 loss-scale state, a crash in the middle of an epoch, and a
finished run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import s4tf_py as s4
from s4tf_py import optimizers, train
from s4tf_py.data import InferenceBatches, TrainingEpochs
from s4tf_py.train import Checkpointer

WORKER = Path(__file__).with_name("_resume_worker.py")


def _cmd(d: Path) -> list[str]:
    return [sys.executable, str(WORKER), str(d / "ckpt"), str(d / "log.jsonl"),
            str(d / "result.json")]


def _log(d: Path) -> list[dict]:
    rows = [json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("time")                       # wall-clock seconds differ, nothing else may
    return rows


def test_a_run_killed_by_sigkill_resumes_and_ends_bit_for_bit_like_an_uninterrupted_one(
        tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    killed.mkdir()
    whole.mkdir()
    # the uninterrupted run goes on the other core meanwhile
    with open(whole / "stderr.txt", "w") as err:
        uninterrupted = subprocess.Popen(_cmd(whole), stdout=subprocess.DEVNULL, stderr=err)
    with open(killed / "stderr.txt", "w") as err:
        proc = subprocess.Popen(_cmd(killed), stdout=subprocess.PIPE, stderr=err, text=True,
                                env=dict(os.environ, STALL_AT="10"))
    seen = 0
    for line in proc.stdout:                  # the run stands still after step 10
        if line.startswith("step "):
            seen = int(line.split()[1])
            if seen == 10:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdout.close()
    assert seen == 10, (killed / "stderr.txt").read_text()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "result.json").exists()
    # checkpoints every 4 steps, the newest 2 kept; epoch 1 (15 steps) was not over
    ckpts = Checkpointer.checkpoints(killed / "ckpt")
    assert [Path(p).name for p in ckpts] == ["step-000000004.safetensors",
                                             "step-000000008.safetensors"]
    newest = 8
    logged = [r for r in _log(killed) if r["event"] == "batch"]
    assert 9 <= len(logged) <= 10             # the log got ahead of the checkpoint

    resumed = subprocess.run(_cmd(killed), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed_from={ckpts[-1]} step={newest}" in resumed.stdout
    assert uninterrupted.wait(timeout=300) == 0, (whole / "stderr.txt").read_text()

    a = json.loads((killed / "result.json").read_text())
    b = json.loads((whole / "result.json").read_text())
    assert a["resumed_from"] == ckpts[-1] and b["resumed_from"] is None
    assert a["steps"] == b["steps"] == 45 and a["traces"] == 1
    # bit for bit: the floats went through JSON as their exact shortest repr
    assert a["final_loss"] == b["final_loss"]
    assert a["last_train_loss"] == b["last_train_loss"]
    assert a["history"] == b["history"]
    assert a["weights"] == b["weights"]
    # every step's loss and learning rate, before and after the kill, in one unbroken log
    assert _log(killed) == _log(whole)
    assert [r["step"] for r in _log(killed) if r["event"] == "batch"] == list(range(1, 46))


# ---- in process ---------------------------------------------------------------------------------

class Crash(Exception):
    pass


class CrashAt(train.Callback):
    def __init__(self, step):
        self.at = step

    def on_batch_end(self, loop):
        if loop.is_training and loop.step == self.at:
            raise Crash()


class MLP(s4.nn.Layer):
    l1: s4.nn.Dense
    l2: s4.nn.Dense

    def __call__(self, x):
        return self.l2(s4.tanh(self.l1(x)))


def _data(n=96):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    y = (x[:, :3].sum(1) > 0).astype(np.int32) + (x[:, 3] > 1).astype(np.int32)
    return x, y


def _run(ckpt, extra_callbacks=(), checkpoint_every=2, **kw):
    x, y = _data()
    model = MLP(l1=s4.nn.Dense(6, 16, seed=0), l2=s4.nn.Dense(16, 3, seed=1))
    loop = train.TrainingLoop(
        training=TrainingEpochs((x, y), batch_size=16, seed=1, prefetch=0),
        validation=InferenceBatches((x[:32], y[:32]), 16, prefetch=0),
        optimizer=lambda m: optimizers.SGD(for_=m, learning_rate=0.1, momentum=0.9),
        loss_function="softmax_cross_entropy", metrics=["accuracy"], progress=False,
        callbacks=list(extra_callbacks), checkpoint_dir=ckpt, checkpoint_every=checkpoint_every, **kw)
    return loop, model


def _fit(ckpt, epochs, crash_at=None, **kw):
    loop, model = _run(ckpt, [CrashAt(crash_at)] if crash_at else (), **kw)
    if crash_at:
        with pytest.raises(Crash):
            loop.fit(model, epochs=epochs)
    else:
        loop.fit(model, epochs=epochs)
    return loop, model


def _weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_fp16_resume_restores_the_loss_scale_and_the_skipped_steps(tmp_path):
    kw = dict(mixed_precision="fp16",
              loss_scale=train.DynamicLossScale(initial=2.0 ** 24, growth_interval=5))
    ref, ref_model = _fit(tmp_path / "ref", 3, **kw)
    assert ref.skipped_steps >= 2                 # 2**24 overflows float16 gradients at first
    _fit(tmp_path / "run", 3, crash_at=7, **kw)      # newest checkpoint: step 6
    loop, model = _fit(tmp_path / "run", 3, **kw)
    assert loop.resumed_from.endswith("step-000000006.safetensors")
    assert loop.skipped_steps == ref.skipped_steps
    assert loop.loss_scale == ref.loss_scale
    assert loop.recorder.batch_losses == ref.recorder.batch_losses
    assert loop.history == ref.history
    for k, v in _weights(ref_model).items():
        np.testing.assert_array_equal(_weights(model)[k], v)


def test_resume_at_an_epoch_boundary_and_after_the_run_finished(tmp_path):
    ref, ref_model = _fit(tmp_path / "ref", 3)
    # 6 batches per epoch, checkpoints at epoch ends only: a crash at step 9 resumes from the
    # end of epoch 1
    _fit(tmp_path / "run", 3, crash_at=9, checkpoint_every=None)
    assert Checkpointer.latest(tmp_path / "run").endswith("step-000000006.safetensors")
    loop, model = _fit(tmp_path / "run", 3)
    assert loop.recorder.batch_losses == ref.recorder.batch_losses
    assert loop.history == ref.history
    for k, v in _weights(ref_model).items():
        np.testing.assert_array_equal(_weights(model)[k], v)
    # the run is complete: fitting again trains nothing and keeps the result
    again, model2 = _fit(tmp_path / "run", 3)
    assert again.step == 18 and again.recorder.batch_losses == ref.recorder.batch_losses
    for k, v in _weights(ref_model).items():
        np.testing.assert_array_equal(_weights(model2)[k], v)
    # ...and more epochs continue it
    more, _ = _fit(tmp_path / "run", 4)
    assert more.step == 24 and len(more.history) == 4


def test_resume_false_starts_over_and_a_foreign_checkpoint_is_refused(tmp_path):
    _fit(tmp_path / "run", 1)
    loop, model = _run(tmp_path / "run")
    loop.fit(model, epochs=1, resume=False)
    assert loop.resumed_from is None and loop.step == 6
    other = tmp_path / "other.safetensors"
    s4.save_training_state(other, model=model, step=3)
    loop, model = _run(tmp_path / "x")
    with pytest.raises(ValueError, match="not written by a TrainingLoop"):
        loop.fit(model, epochs=1, resume=other)
    loop, model = _run(tmp_path / "y", seed=1)
    with pytest.raises(ValueError, match="seed=0, this loop has seed=1"):
        loop.fit(model, epochs=1, resume=Checkpointer.latest(tmp_path / "run"))
