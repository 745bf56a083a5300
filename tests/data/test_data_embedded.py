"""Embedded real data (scikit-learn's digits and diabetes), splits, resizing, text helpers."""
from __future__ import annotations

import numpy as np
import pytest

from s4tf_py.data import (CharVocabulary, LanguageModelWindows, TrainingEpochs, decode_bytes,
                          diabetes, digits, encode_bytes, language_model_batches, resize_images,
                          split_indices, train_validation_split)


def test_digits_are_the_real_data():
    images, labels = digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int32
    assert images.min() == 0.0 and images.max() == 1.0
    counts = np.bincount(labels)
    assert len(counts) == 10 and counts.min() >= 170     # about 180 of each digit
    # every value is one of the 17 gray levels / 16
    assert np.all((images * 16) == np.round(images * 16))
    # a "0" has an empty centre and ink around it; class means differ clearly
    means = np.stack([images[labels == k].mean(0) for k in range(10)])
    assert means[0][3:5, 3:5].mean() < means[0][1:7, 1:3].mean()
    # each call gives fresh arrays (value semantics for the caller)
    images[:] = 0
    assert digits().images.max() == 1.0


def test_diabetes():
    x, y = diabetes()
    assert x.shape == (442, 10) and y.shape == (442,) and x.dtype == y.dtype == np.float32
    assert abs(float(x.mean(0).max())) < 1e-6                 # the scaled version is centred
    assert 25 <= y.min() and y.max() <= 346
    raw, _ = diabetes(scaled=False)
    assert raw[:, 0].max() > 50                               # ages in years


def test_split_is_seeded_disjoint_and_complete():
    tr, va = split_indices(100, 0.25, seed=4)
    assert len(va) == 25 and len(tr) == 75
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(100))
    tr2, va2 = split_indices(100, 0.25, seed=4)
    np.testing.assert_array_equal(va, va2)
    assert split_indices(100, 0.25, seed=5)[1].tolist() != va.tolist()
    assert split_indices(10, 0.3, shuffle=False)[1].tolist() == [7, 8, 9]
    with pytest.raises(ValueError):
        split_indices(10, 1.0)
    with pytest.raises(ValueError):
        split_indices(1, 0.5)


def test_train_validation_split_of_digits_keeps_structure_and_classes():
    data = digits()
    train, valid = train_validation_split(data, 0.2, seed=0, stratify=data.labels)
    assert type(train).__name__ == "Digits"
    assert len(train.labels) + len(valid.labels) == 1797
    assert abs(len(valid.labels) - 359) <= 5
    counts = np.bincount(valid.labels, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38            # ~20 % of each class
    again, _ = train_validation_split(digits(), 0.2, seed=0, stratify=data.labels)
    np.testing.assert_array_equal(train.images, again.images)
    d_train, d_valid = train_validation_split({"x": data.images, "y": data.labels}, 0.1, seed=1)
    assert set(d_train) == {"x", "y"} and len(d_valid["y"]) == 180
    # the parts are exactly the rows split_indices picks: disjoint and complete
    tr, va = split_indices(1797, 0.2, seed=0, stratify=data.labels)
    np.testing.assert_array_equal(valid.images, data.images[va])
    np.testing.assert_array_equal(train.labels, data.labels[tr])
    assert not set(tr.tolist()) & set(va.tolist())


def test_resize_digits_to_lenet_size():
    images, _ = digits()
    big = resize_images(images[:5], (28, 28))
    assert big.shape == (5, 28, 28) and big.dtype == np.float32
    assert 0.0 <= big.min() and big.max() <= 1.0 + 1e-6
    # the coarse structure survives: downsampling back is close to the original
    back = resize_images(big, (8, 8))
    assert np.abs(back - images[:5]).mean() < 0.1
    u8 = resize_images((images[:2] * 255).astype(np.uint8)[..., None], (16, 16))
    assert u8.shape == (2, 16, 16, 1) and u8.dtype == np.uint8


def test_bytes_and_characters():
    text = "Größe 42 ✓"
    ids = encode_bytes(text)
    assert ids.dtype == np.uint8 and len(ids) == len(text.encode("utf-8"))
    assert decode_bytes(ids) == text
    with pytest.raises(ValueError):
        decode_bytes([300])
    vocab = CharVocabulary.from_text(text)
    assert vocab.decode(vocab.encode(text)) == text and len(vocab) == len(set(text))
    with pytest.raises(KeyError, match="'z'"):
        vocab.encode("z")


def test_language_model_windows_and_batches():
    tokens = np.arange(23, dtype=np.int32)
    w = LanguageModelWindows(tokens, seq_len=5)
    assert len(w) == 4                             # windows start at 0, 5, 10, 15 (+6 tokens)
    x, y = w[1]
    assert x.tolist() == [5, 6, 7, 8, 9] and y.tolist() == [6, 7, 8, 9, 10]
    xb, yb = w.take([3, 0])
    assert xb[0].tolist() == [15, 16, 17, 18, 19] and yb[1].tolist() == [1, 2, 3, 4, 5]
    # every token after the first is a target exactly once (stride = seq_len)
    targets = np.concatenate([w[i][1] for i in range(len(w))])
    assert sorted(targets.tolist()) == list(range(1, 21))
    assert len(LanguageModelWindows(tokens, seq_len=5, stride=1)) == 18
    epochs = language_model_batches(tokens, seq_len=5, batch_size=2, seed=3)
    seen = []
    for xb, yb in epochs[0]:
        assert xb.shape == yb.shape == (2, 5) and xb.dtype == np.int32
        np.testing.assert_array_equal(xb[:, 1:], yb[:, :-1])
        np.testing.assert_array_equal(yb, xb + 1)
        seen += xb[:, 0].tolist()
    assert sorted(seen) == [0, 5, 10, 15]
    first = [b[0].tolist() for b in epochs[0]]
    assert first == [b[0].tolist() for b in language_model_batches(tokens, 5, 2, seed=3)[0]]
    with pytest.raises(ValueError, match="no window"):
        language_model_batches(tokens[:4], seq_len=5, batch_size=1)
    assert isinstance(epochs, TrainingEpochs)
