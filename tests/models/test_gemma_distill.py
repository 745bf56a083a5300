"""Knowledge distillation (s4tf_models.gemma.distill): Gemma 3's sampled sparse targets, the
loss, and a real measurement that distillation brings a student closer to its teacher than
next-token training on the same steps."""
from __future__ import annotations

import importlib
import io

import numpy as np
import pytest

import s4tf_py as s4
from s4tf_models import gemma

gd = importlib.import_module("s4tf_models.gemma.distill")   # the modules, whatever the package
gt = importlib.import_module("s4tf_models.gemma.train")     # exports under these names

MICRO = gemma.GemmaConfig.preset("gemma3-tiny").replace(
    num_layers=2, hidden_size=64, intermediate_size=128, num_heads=2, num_kv_heads=1,
    head_dim=32, sliding_window=16, query_pre_attn_scalar=32)

QUIET = dict(config=MICRO, seq_len=32, batch_size=4, sample_prompt=None, progress=False)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ---- the sparse target --------------------------------------------------------------------------

def test_sampled_ids_carry_the_renormalized_teacher_probabilities():
    rng = np.random.default_rng(0)
    p = _softmax(rng.standard_normal((3, 5, 40)) * 2)
    p[..., 7] = 0.0                                        # never drawn
    p /= p.sum(-1, keepdims=True)
    t = gd.sample_teacher_targets(p, num_samples=16, rng=rng)
    assert t.ids.shape == (3, 5, 16) and t.ids.dtype == np.int32
    assert t.probs.shape == (3, 5, 16) and t.probs.dtype == np.float32
    assert t.shape == (3, 5)
    q = gd.dense_targets(t, 40)
    for b in range(3):
        for s in range(5):
            drawn = np.unique(t.ids[b, s])
            assert 7 not in drawn
            want = np.zeros(40)
            want[drawn] = p[b, s, drawn] / p[b, s, drawn].sum()       # renormalized
            np.testing.assert_allclose(q[b, s], want, rtol=1e-6, atol=1e-7)
            # one slot per distinct id carries its probability, repeats carry 0
            assert np.count_nonzero(t.probs[b, s]) == len(drawn)
    np.testing.assert_allclose(t.probs.sum(-1), 1.0, rtol=1e-6)


def test_sparse_targets_by_hand():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    t = gd.sparse_targets(p, np.array([3, 0, 3, 3]))
    assert t.ids.tolist() == [0, 3, 3, 3]
    np.testing.assert_allclose(t.probs, [0.2, 0.8, 0.0, 0.0], rtol=1e-6)
    with pytest.raises(ValueError, match="ids must be in"):
        gd.sparse_targets(p, np.array([4]))
    with pytest.raises(ValueError, match="finite"):
        gd.sample_token_ids(np.array([0.5, np.nan]), 4)


def test_the_256_samples_follow_the_teacher_probabilities():
    """Draws are i.i.d. from p: the counts pass a chi-square test, and an id's chance to be
    in a position's sampled set is 1 - (1 - p)^256 (sampling with replacement)."""
    from scipy import stats
    rng = np.random.default_rng(1)
    v, rows, k = 64, 400, 256
    p = _softmax(rng.standard_normal(v) * 1.5)
    p[[5, 40]] = 0.0
    p /= p.sum()
    ids = gd.sample_token_ids(np.broadcast_to(p, (rows, v)), k, np.random.default_rng(2))
    assert ids.shape == (rows, k)
    counts = np.bincount(ids.ravel(), minlength=v)
    assert counts[5] == 0 and counts[40] == 0
    live = p > 0
    expected = p[live] * rows * k
    chi2 = ((counts[live] - expected) ** 2 / expected).sum()
    assert stats.chi2.sf(chi2, live.sum() - 1) > 1e-3, chi2
    included = np.zeros(v)
    for r in ids:
        included[np.unique(r)] += 1
    want = 1 - (1 - p) ** k
    se = np.sqrt(want * (1 - want) / rows) + 1e-9
    assert (np.abs(included / rows - want) < 5 * se + 1e-3).all()


def test_the_loss_is_cross_entropy_with_the_dense_target_and_its_gradient():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((2, 3, 24)).astype(np.float32) * 2
    t = gd.sample_teacher_targets(_softmax(rng.standard_normal((2, 3, 24)) * 3), 32, rng)
    q = gd.dense_targets(t, 24)
    ls = logits - logits.max(-1, keepdims=True)
    ls = ls - np.log(np.exp(ls).sum(-1, keepdims=True))
    want = -(q * ls).sum(-1).mean()
    target = gd.TeacherSamples(s4.Tensor(t.ids), s4.Tensor(t.probs))
    loss, g = s4.value_with_gradient(at=s4.Tensor(logits),
                                     of=lambda x: gd.distillation_loss(x, target))
    assert abs(loss.item() - want) < 1e-5
    np.testing.assert_allclose(g.numpy(), (np.exp(ls) - q) / 6, atol=1e-6)
    assert abs(gt.next_token_loss(s4.Tensor(logits), target).item() - want) < 1e-5


# ---- with a teacher ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A micro Gemma trained for 100 steps on the embedded corpus, saved as a folder."""
    d = tmp_path_factory.mktemp("teacher")
    gt.train(steps=100, eval_every=100, seed=0, out=str(d), stream=io.StringIO(), **QUIET)
    return d


def test_teacher_targets_are_seeded_per_step(teacher_dir):
    teacher = gd.Teacher.load(teacher_dir, seed=5)
    x = np.array([[2, 17, 40, 33, 9], [2, 100, 101, 7, 7]], np.int32)
    a, b, c = teacher.targets(x, 3), teacher.targets(x, 3), teacher.targets(x, 4)
    assert a.ids.shape == (2, 5, 256)
    np.testing.assert_array_equal(a.ids, b.ids)
    assert not np.array_equal(a.ids, c.ids)
    p = teacher.probabilities(x)
    q = gd.dense_targets(a, teacher.vocab_size)
    drawn = q > 0
    np.testing.assert_allclose(q[drawn], (p / np.where(drawn, p, 0).sum(-1, keepdims=True))
                               [drawn], rtol=1e-4)
    with pytest.raises(FileNotFoundError, match="not a Gemma checkpoint"):
        gd.Teacher.load(teacher_dir / "nothing")


def test_distillation_lowers_kl_to_the_teacher_faster_than_next_token_training(teacher_dir):
    """Same student initialization, data order, learning rate and number of steps; only the
    targets differ. KL(teacher || student) is measured on held-out text."""
    steps = 60
    ntp = gt.train(steps=steps, eval_every=steps, seed=1, stream=io.StringIO(), **QUIET)
    log = io.StringIO()
    kd = gt.train(steps=steps, eval_every=steps, seed=1, teacher=str(teacher_dir), stream=log,
                  **QUIET)
    assert "distilling from" in log.getvalue() and "KL(teacher || student)" in log.getvalue()
    tok = gemma.Tokenizer.embedded()
    from s4tf_py.data import text_corpus
    _, valid = gt.token_windows(gt.corpus_token_ids(text_corpus(), tok), 32, tok.bos_id, 0.02)
    x, _ = valid.take(np.linspace(0, len(valid) - 1, 64).round().astype(np.int64))
    batches = [x[i:i + 16] for i in range(0, 64, 16)]
    teacher = gemma.load(teacher_dir)
    untrained = gemma.GemmaForCausalLM(MICRO, seed=1)
    kl0 = gd.kl_to_teacher(teacher, untrained, batches)
    ntp_kl = gd.kl_to_teacher(teacher, ntp.model, batches)
    distill_kl = gd.kl_to_teacher(teacher, kd.model, batches)
    print(f"KL(teacher || student): untrained {kl0:.4f}, next-token {ntp_kl:.4f}, "
          f"distilled {distill_kl:.4f}")
    assert distill_kl < ntp_kl < kl0


def test_cli_train_with_a_teacher(teacher_dir, tmp_path):
    from s4tf_py import cli
    out = tmp_path / "student"
    rc = cli.main(["train", "gemma", "--teacher", str(teacher_dir), "--steps", "2",
                   "--seq-len", "16", "--batch-size", "2", "--eval-every", "2",
                   "--distill-samples", "64", "--out", str(out), "--sample-prompt", "",
                   "--no-checkpoints"])
    assert rc == 0
    assert gemma.load(out).config == gemma.GemmaConfig.preset("gemma3-tiny")
    bad = tmp_path / "big-vocab"
    gemma.GemmaForCausalLM(MICRO.replace(vocab_size=2048), seed=0).save(bad)
    with pytest.raises(ValueError, match="vocabulary"):
        gt.train(steps=1, teacher=str(bad), stream=io.StringIO(), **QUIET)
