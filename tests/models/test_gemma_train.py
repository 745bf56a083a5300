"""Training Gemma (s4tf_models.gemma.train), `s4tf train gemma` / `s4tf generate gemma`, and the
Gemma demo: the loss falls on the embedded corpus, runs resume bit for bit, the CLI writes a
Hugging Face folder and streams generated text.

Everything runs on small settings: a 2-layer, d=64 variant of ``gemma3-tiny`` in process, the
real ``gemma3-tiny`` preset (short sequences, batch 2) through the command line.
"""
from __future__ import annotations

import doctest
import importlib
import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import s4tf_py as s4
from s4tf_models import gemma

gt = importlib.import_module("s4tf_models.gemma.train")   # the module, whatever the package exports

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: gemma3-tiny shrunk for fast tests (the embedded tokenizer's 1,024-piece vocabulary)
MICRO = gemma.GemmaConfig.preset("gemma3-tiny").replace(
    num_layers=2, hidden_size=64, intermediate_size=128, num_heads=2, num_kv_heads=1,
    head_dim=32, sliding_window=16, query_pre_attn_scalar=32)

QUIET = dict(config=MICRO, seq_len=32, batch_size=8, sample_prompt=None, progress=False)


def s4tf(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "s4tf_py", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


# ---- pieces -----------------------------------------------------------------------------------

def test_next_token_loss_is_float32_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 3, 16)).astype(np.float32) * 3
    y = rng.integers(0, 16, (2, 3))
    lp = logits - logits.max(-1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    want = -np.take_along_axis(lp, y[..., None], -1).mean()
    low = gt.next_token_loss(s4.Tensor(logits).astype(s4.bfloat16),
                             s4.Tensor(y.astype(np.int32)))
    assert low.dtype == s4.float32                           # bf16 logits, float32 loss
    assert abs(gt.next_token_loss(s4.Tensor(logits), s4.Tensor(y.astype(np.int32))).item()
               - want) < 1e-5


def test_token_ids_are_cached_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("S4TF_CACHE_DIR", str(tmp_path))
    tok = gemma.Tokenizer.embedded()
    text = "def f(x):\n    return x + 1\n" * 20
    ids = gt.corpus_token_ids(text, tok)
    files = list((tmp_path / "gemma").iterdir())
    assert [f.suffix for f in files] == [".npy"]           # no temporary file left behind
    assert ids.dtype == np.uint16 and tok.decode(ids) == text

    def boom(*a, **k):
        raise AssertionError("encoded again instead of reading the cache")
    monkeypatch.setattr(tok, "encode", boom)
    again = gt.corpus_token_ids(text, tok)
    np.testing.assert_array_equal(again, ids)
    files[0].write_bytes(b"damaged")                         # a bad file is re-encoded
    monkeypatch.undo()
    monkeypatch.setenv("S4TF_CACHE_DIR", str(tmp_path))
    np.testing.assert_array_equal(gt.corpus_token_ids(text, tok), ids)


def test_windows_start_with_bos_and_hold_out_a_tail():
    tokens = np.arange(10, 110)
    train_w, valid_w = gt.token_windows(tokens, seq_len=9, bos_id=2, validation_fraction=0.25)
    assert len(train_w) + len(valid_w) == 100 // 9
    x, y = train_w.take([0, 1])
    assert (x[:, 0] == 2).all() and (x[:, 1:] == y[:, :-1]).all()
    assert x[1, 1] == 19                                     # contiguous blocks of 9
    vx, _ = valid_w.take([0])
    assert vx[0, 1] > x.max()                                # validation is the tail
    with pytest.raises(ValueError, match="at least 2"):
        gt.token_windows(np.arange(5), seq_len=8, bos_id=2)


def test_step_epochs_run_exact_steps_and_index_by_step():
    se = gt.StepEpochs(np.arange(50), batch_size=4, total_steps=30, every=8, seed=3)
    stretches = [list(se[k]) for k in range(len(se))]
    assert [len(s) for s in stretches] == [8, 8, 8, 6]
    flat = [b for s in stretches for b in s]
    for step, b in enumerate(flat):                          # a batch is a function of its step
        np.testing.assert_array_equal(b, se.batch_indices(step))
    first_pass = np.concatenate(flat[:12])                   # 12 batches = one pass of 48
    assert len(set(first_pass.tolist())) == 48
    seen = []
    se2 = gt.StepEpochs(np.arange(50), batch_size=4, total_steps=30, every=8, seed=3,
                        transform=lambda b, step: seen.append(step) or b)
    list(se2[1])
    assert seen == list(range(8, 16))


def test_errors_name_the_choices_and_the_missing_path(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'gemma9'.*gemma3-tiny"):
        gt.train(preset="gemma9", steps=1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gt.train(steps=1, data=str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        gt.train(steps=0)


# ---- training -----------------------------------------------------------------------------------

def test_a_few_steps_lower_the_loss_on_the_embedded_corpus():
    out = io.StringIO()
    r = gt.train(steps=24, eval_every=12, lr=3e-3, stream=out, **QUIET)
    assert r.steps == 24 and len(r.losses) == 24
    assert abs(r.losses[0] - math.log(1024)) < 0.15          # a uniform guess at first
    assert np.mean(r.losses[-6:]) < r.losses[0] - 1.0
    valid = [h["valid_loss"] for h in r.history]
    assert len(valid) == 2 and valid[1] < valid[0] < math.log(1024) - 0.5
    text = out.getvalue()
    assert "the embedded corpus" in text and "held-out loss" in text


def test_bf16_mixed_precision_trains(tmp_path):
    r = gt.train(steps=6, eval_every=6, bf16=True, **QUIET, stream=io.StringIO(),
                 out=str(tmp_path / "m"))
    assert all(math.isfinite(v) for v in r.losses) and r.losses[-1] < r.losses[0]
    m = gemma.load(tmp_path / "m")                            # float32 master weights saved
    assert m.model.embed_tokens.weight.dtype == s4.float32
    # the same run in float32: bf16 activations (8 significant bits) follow it closely, and
    # are not the float32 run itself
    f32 = gt.train(steps=6, eval_every=6, **QUIET, stream=io.StringIO())
    gaps = np.abs(np.array(r.losses) - np.array(f32.losses))
    assert gaps.max() < 0.01, (r.losses, f32.losses)
    assert gaps.max() > 0


class Killed(Exception):
    pass


class _KillAt(s4.train.Callback):
    """Kills the run after step ``step`` (after the Checkpointer, whose order is 100)."""

    order = 200

    def __init__(self, step):
        self.at = step

    def on_batch_end(self, loop):
        if loop.is_training and loop.step == self.at:
            raise Killed()


def test_resume_from_a_checkpoint_ends_bit_for_bit_like_an_uninterrupted_run(tmp_path):
    opts = dict(QUIET, steps=8, eval_every=4, checkpoint_every=2)
    whole = gt.train(checkpoint_dir=str(tmp_path / "a"), stream=io.StringIO(), **opts)
    with pytest.raises(Killed):
        gt.train(checkpoint_dir=str(tmp_path / "b"), stream=io.StringIO(),
                 callbacks=[_KillAt(6)], **opts)
    assert json.loads((tmp_path / "b" / "run.json").read_text())["steps"] == 8
    log = io.StringIO()
    rest = gt.train(checkpoint_dir=str(tmp_path / "b"), stream=log, **opts)
    assert rest.resumed_from.endswith("step-000000006.safetensors") and rest.steps == 8
    assert len(rest.losses) == 2 and rest.losses == whole.losses[6:]
    assert "resumed from" in log.getvalue()
    from s4tf_py.checkpoint import state_dict
    for (name, a), (_, b) in zip(state_dict(whole.model).items(),
                                 state_dict(rest.model).items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    with pytest.raises(ValueError, match="other options.*lr"):
        gt.train(checkpoint_dir=str(tmp_path / "b"), stream=io.StringIO(),
                 **dict(opts, lr=1e-3))


def test_user_text_file(tmp_path):
    f = tmp_path / "poem.txt"
    f.write_text("the quick brown fox jumps over the lazy dog\n" * 200, encoding="utf-8")
    r = gt.train(data=str(f), steps=4, eval_every=4, **dict(QUIET, seq_len=16, batch_size=4),
                 stream=io.StringIO())
    assert r.losses[-1] < r.losses[0]


# ---- the command line and the demo ---------------------------------------------------------------

def test_cli_train_writes_a_folder_and_generate_streams_from_it(tmp_path):
    out = tmp_path / "run"
    r = s4tf("train", "gemma", "--preset", "gemma3-tiny", "--steps", "3", "--seq-len", "16",
             "--batch-size", "2", "--eval-every", "2", "--out", str(out),
             "--sample-tokens", "6")
    assert r.returncode == 0, r.stderr
    assert "held-out loss" in r.stdout and "sample:" in r.stdout
    assert {"config.json", "model.safetensors", "tokenizer.model"} <= set(os.listdir(out))
    assert (out / "checkpoints" / "step-000000003.safetensors").is_file()
    model = gemma.load(out)
    assert model.config == gemma.GemmaConfig.preset("gemma3-tiny")

    g = s4tf("generate", "gemma", "--checkpoint", str(out), "--prompt", "Return the",
             "--max-new-tokens", "8", "--temperature", "0")
    assert g.returncode == 0, g.stderr
    assert g.stdout.startswith("Return the") and g.stdout.endswith("\n")

    # in process, to see the pieces arrive one write at a time (greedy: deterministic)
    from s4tf_py import cli

    class Recorder(io.StringIO):
        def __init__(self):
            super().__init__()
            self.writes = []

        def write(self, s):
            self.writes.append(s)
            return super().write(s)
    rec = Recorder()
    old, sys.stdout = sys.stdout, rec
    try:
        rc = cli.main(["generate", "gemma", "--checkpoint", str(out), "--prompt",
                       "Return the", "--max-new-tokens", "8", "--temperature", "0"])
    finally:
        sys.stdout = old
    assert rc == 0 and rec.getvalue() == g.stdout
    tok = gemma.Tokenizer.from_folder(out)
    ids = model.generate([tok.encode("Return the")], 8, stop_tokens=tok.stop_ids).numpy()[0]
    new = ids[len(tok.encode("Return the")):]
    assert rec.getvalue() == "Return the" + tok.decode(new) + "\n"
    pieces = [w for w in rec.writes[1:-1] if w]               # between prompt and newline
    assert len(pieces) >= 2 and "".join(pieces) == tok.decode(new)   # token by token


def test_cli_errors(tmp_path, capsys):
    from s4tf_py import cli
    assert cli.main(["train", "gemma", "--preset", "nope", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'nope'" in err and "gemma3-tiny" in err
    assert not (tmp_path / "x").exists()
    assert cli.main(["train", "gemma", "--data", str(tmp_path / "none"),
                     "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["train", "llama"]) == 2
    assert "choose from gemma" in capsys.readouterr().err
    assert cli.main(["generate", "gemma", "--checkpoint", str(tmp_path),
                     "--prompt", "x"]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_cli_module_imports_no_models():
    code = ("import sys, s4tf_py.cli; print('s4tf_models' in sys.modules, "
            "'s4tf_models.gemma' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True)
    assert r.stdout.split() == ["False", "False"]


def test_gemma_demo_trains_then_streams(capsys):
    from s4tf_py import demo
    assert demo.main(["--minutes", "0", "--steps", "3", "--seq-len", "16", "--batch-size", "2",
                      "--prompt", "Return the", "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "training the tiny Gemma 3" in out and "held-out loss by step: 3:" in out
    assert "--- prompt 1: 'Return the'" in out


@pytest.mark.parametrize("name", ["s4tf_models.gemma.train", "s4tf_models.gemma.distill"])
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in finder.find(mod, name):
        runner.run(t)
    res = runner.summarize(verbose=False)
    assert res.attempted > 0 and res.failed == 0
