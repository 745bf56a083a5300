"""The callbacks that come with s4.train: progress bar (plain lines and tqdm), statistics
recorder, CSV and JSON-lines logs, LR scheduler, checkpointer, early stopping, loss curve."""
from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import pytest

import s4tf_py as s4
from s4tf_py import losses, optimizers, train
from s4tf_py.data import InferenceBatches, TrainingEpochs
from s4tf_py.train import (Callback, Checkpointer, CSVLogger, EarlyStopping, JSONLinesLogger,
                           LossCurve, LRScheduler, ProgressBar, StatisticsRecorder)


def data(n_train=64, n_valid=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_valid, 8)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def loop_for(callbacks=(), *, epochs_data=None, lr=0.1, **kw):
    train_set, valid_set = epochs_data or data()
    kw.setdefault("progress", False)
    kw.setdefault("metrics", ["accuracy"])
    return train.TrainingLoop(
        training=TrainingEpochs(train_set, batch_size=16, seed=0, prefetch=0),
        validation=InferenceBatches(valid_set, 16, prefetch=0),
        optimizer=lambda m: optimizers.SGD(for_=m, learning_rate=lr),
        loss_function=losses.softmax_cross_entropy, callbacks=list(callbacks), **kw)


def model():
    return s4.nn.Dense(8, 2, seed=0)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_writes_plain_lines_when_not_on_a_terminal():
    out = io.StringIO()
    loop = loop_for([ProgressBar(file=out, lines_per_epoch=2)])
    loop.fit(model(), epochs=2)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 * (2 + 1)                   # 2 progress lines + 1 summary, per epoch
    assert lines[0].startswith("epoch 1/2 step 2/4 (global 2) loss ")
    assert "samples/s" in lines[0] and "ETA 0:00:0" in lines[0]
    assert lines[2].startswith("epoch 1/2 done in ")
    for key in ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy"):
        assert key in lines[2]
    assert "ETA fit" in lines[2]
    assert lines[-1].startswith("epoch 2/2 done in ")


def test_progress_bar_draws_a_tqdm_bar_on_a_terminal():
    out = Terminal()
    loop = loop_for([ProgressBar(file=out)])
    loop.fit(model(), epochs=1)
    text = out.getvalue()
    assert "epoch 1/1" in text and "4/4" in text and "batch" in text
    assert "loss=" in text and "samples_per_s=" in text
    assert "epoch 1/1 done in" in text


def test_the_loop_adds_a_progress_bar_unless_told_not_to(capsys):
    loop_for(progress=True).fit(model(), epochs=1)
    assert "epoch 1/1 done in" in capsys.readouterr().out
    loop_for(progress=False).fit(model(), epochs=1)
    assert capsys.readouterr().out == ""


def test_statistics_recorder_measures_each_phase_like_a_hand_written_loop():
    loop = loop_for(metrics=["accuracy", "mcc"])
    m = loop.fit(model(), epochs=1)
    rec = loop.recorder
    assert isinstance(rec, StatisticsRecorder) and len(rec.batch_losses) == 4
    h = loop.history[0]
    assert h["train_loss"] == pytest.approx(np.mean(rec.batch_losses), rel=1e-12)
    # validation after the epoch, by hand
    _, (xv, yv) = data()
    logits = m(s4.Tensor(xv))
    pred = logits.numpy().argmax(1)
    assert h["valid_accuracy"] == pytest.approx((pred == yv).mean())
    per_batch = [losses.softmax_cross_entropy(m(s4.Tensor(xv[i:i + 16])),
                                              s4.Tensor(yv[i:i + 16])).item()
                 for i in range(0, 32, 16)]
    assert h["valid_loss"] == pytest.approx(np.mean(per_batch), rel=1e-5)
    assert -1.0 <= h["valid_matthews_correlation"] <= 1.0
    with pytest.raises(ValueError, match="metrics= or a StatisticsRecorder"):
        loop_for([StatisticsRecorder()], metrics=["accuracy"])


def test_csv_and_json_lines_logs(tmp_path):
    csv_path, jsonl = tmp_path / "log.csv", tmp_path / "metrics.jsonl"
    loop = loop_for([CSVLogger(csv_path), JSONLinesLogger(jsonl, every_n_steps=2)])
    loop.fit(model(), epochs=3)
    rows = list(csv.DictReader(open(csv_path)))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["valid_accuracy"]) == pytest.approx(loop.history[-1]["valid_accuracy"])
    assert float(rows[0]["train_loss"]) == loop.history[0]["train_loss"]
    records = [json.loads(line) for line in open(jsonl)]
    batches = [r for r in records if r["event"] == "batch"]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert [r["step"] for r in batches] == [2, 4, 6, 8, 10, 12]
    assert [r["loss"] for r in batches] == loop.recorder.batch_losses[1::2]
    assert batches[0]["learning_rate"] == pytest.approx(0.1) and "time" in batches[0]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    # a new fit starts both files over
    loop.fit(model(), epochs=1)
    assert len(list(csv.DictReader(open(csv_path)))) == 1
    assert sum(1 for _ in open(jsonl)) == 2 + 1


def test_lr_scheduler_follows_an_optimizer_schedule_without_recompiling():
    sched = optimizers.WarmupCosineDecay(peak_value=0.2, warmup_steps=3, decay_steps=12)
    loop = loop_for([LRScheduler(sched)])
    loop.fit(model(), epochs=3)
    assert loop.recorder.learning_rates == pytest.approx([sched(k) for k in range(12)],
                                                         rel=1e-6, abs=1e-9)
    assert loop.train_step.traces == 1
    by_epoch = loop_for([LRScheduler(lambda e: 0.1 / (e + 1), by="epoch")])
    by_epoch.fit(model(), epochs=2)
    assert by_epoch.recorder.learning_rates == pytest.approx([0.1] * 4 + [0.05] * 4)
    with pytest.raises(ValueError, match="by must be 'step' or 'epoch'"):
        LRScheduler(sched, by="batch")


def test_checkpointer_saves_every_n_steps_keeps_the_last_k_and_they_load(tmp_path):
    ck = Checkpointer(tmp_path / "ckpt", every_n_steps=3, keep=2)
    loop = loop_for([ck])
    m = loop.fit(model(), epochs=2)                    # 8 steps: at 3, 4 (epoch), 6, 8
    assert [os.path.basename(p) for p in ck.saved] == [
        "step-000000003.safetensors", "step-000000004.safetensors",
        "step-000000006.safetensors", "step-000000008.safetensors"]
    files = Checkpointer.checkpoints(tmp_path / "ckpt")
    assert [os.path.basename(p) for p in files] == ["step-000000006.safetensors",
                                                    "step-000000008.safetensors"]
    assert not [f for f in os.listdir(tmp_path / "ckpt") if f.endswith(".tmp")]
    fresh = model()
    opt = optimizers.SGD(for_=fresh, learning_rate=0.5)
    state = s4.load_training_state(files[-1], model=fresh, optimizer=opt)
    assert state.step == 8 and opt.step == 8 and opt.learning_rate == 0.1
    np.testing.assert_array_equal(fresh.weight.numpy(), m.weight.numpy())
    # the loop's shortcut adds one
    loop2 = loop_for(checkpoint_dir=tmp_path / "c2", checkpoint_every=2, keep_checkpoints=1)
    loop2.fit(model(), epochs=1)
    assert [os.path.basename(p) for p in Checkpointer.checkpoints(tmp_path / "c2")] == [
        "step-000000004.safetensors"]


class Feed(Callback):
    """Puts a made-up validation score into loop.logs at each epoch's end."""

    order = 25

    def __init__(self, values):
        self.values = values

    def on_epoch_end(self, loop):
        loop.logs["score"] = self.values[loop.epoch_index]


def test_early_stopping_stops_after_patience_epochs_and_restores_the_best():
    seen = []

    class Keep(Callback):
        def on_epoch_end(self, loop):
            seen.append(loop.model.weight.numpy().copy())

    stop = EarlyStopping(monitor="score", patience=2, mode="min", restore_best=True)
    loop = loop_for([Feed([3.0, 1.0, 2.0, 1.5, 0.1, 0.1]), stop, Keep()])
    m = loop.fit(model(), epochs=6)
    assert len(loop.history) == 4 and stop.best == 1.0 and stop.best_epoch == 1
    assert stop.stopped_epoch == 3 and "did not improve for 2 epoch" in loop.stop_reason
    np.testing.assert_array_equal(m.weight.numpy(), seen[1])
    # auto mode: accuracies go up
    assert EarlyStopping(monitor="valid_accuracy").mode == "max"
    with pytest.raises(KeyError, match="loop.logs has no 'nope'"):
        loop_for([EarlyStopping(monitor="nope")]).fit(model(), epochs=1)


def test_loss_curve_writes_a_png_at_the_end_of_fit(tmp_path):
    import matplotlib  # the test extra installs it: the PNG must really be drawn
    path = tmp_path / "plots" / "loss.png"
    loop = loop_for([LossCurve(path, title="dense")])
    loop.fit(model(), epochs=3)
    data_ = path.read_bytes()
    assert data_[:8] == b"\x89PNG\r\n\x1a\n" and len(data_) > 5000
    assert matplotlib.get_backend() is not None
    from matplotlib.image import imread
    img = imread(path)
    assert img.shape[:2] == (400, 700)
    assert img[..., :3].std() > 0.05                  # not a blank canvas


def test_a_callback_error_propagates_and_closes_the_bar():
    out = Terminal()
    bar = ProgressBar(file=out)

    class Boom(Callback):
        def on_batch_end(self, loop):
            if loop.step == 2:
                raise RuntimeError("boom")

    loop = loop_for([bar, Boom()])
    with pytest.raises(RuntimeError, match="boom"):
        loop.fit(model(), epochs=1)
    assert bar._bar is None
