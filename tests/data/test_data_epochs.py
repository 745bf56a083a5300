"""The Epochs API: datasets, views, collation, seeded shuffled epochs, inference batches."""
from __future__ import annotations

import collections

import numpy as np
import pytest

from s4tf_py.data import (ArrayDataset, InferenceBatches, Sampling, Slices, TrainingEpochs,
                          as_dataset, collate, epoch_order, to_tensors)
from s4tf_py.errors import ShapeError


def _xy(n=10):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int32)
    return x, y


def _ids(epoch):
    """The sample ids an epoch visits, batch by batch (y holds each sample's own index)."""
    return [yb.tolist() for _, yb in epoch]


def test_same_seed_same_epochs_and_batches_match_samples():
    x, y = _xy(10)
    a = TrainingEpochs((x, y), batch_size=3, seed=42)
    b = TrainingEpochs((x, y), batch_size=3, seed=42)
    for ea, eb in zip(a.prefix(3), b.prefix(3)):
        assert _ids(ea) == _ids(eb)
        for xb, yb in ea:                       # each batch row is the sample it claims to be
            np.testing.assert_array_equal(xb, x[yb])
            assert xb.dtype == np.float32 and yb.dtype == np.int32


def test_epochs_differ_from_each_other_and_seeds_differ():
    x, y = _xy(64)
    epochs = TrainingEpochs((x, y), batch_size=8, seed=0)
    orders = [sum(_ids(e), []) for e in epochs.prefix(4)]
    assert len({tuple(o) for o in orders}) == 4
    for o in orders:                            # every sample once per epoch
        assert sorted(o) == list(range(64))
    other = sum(_ids(TrainingEpochs((x, y), batch_size=8, seed=1)[0]), [])
    assert other != orders[0]
    assert orders[0] != list(range(64))         # shuffled, not the identity


def test_epoch_order_is_a_function_of_seed_and_index_only():
    np.random.seed(0)
    first = epoch_order(50, seed=5, epoch=3)
    np.random.seed(123)                         # global numpy state plays no part
    np.random.rand(10)
    np.testing.assert_array_equal(first, epoch_order(50, 5, 3))
    epochs = TrainingEpochs(np.arange(50), batch_size=5, seed=5)
    np.testing.assert_array_equal(epochs[3].order, first)
    # resuming at epoch 3 sees exactly what the uninterrupted iteration saw
    it = iter(epochs)
    for _ in range(3):
        next(it)
    assert [b.tolist() for b in next(it)] == [b.tolist() for b in epochs.prefix(1, start=3)[0]]


def test_iterating_an_epoch_twice_gives_the_same_batches():
    e = TrainingEpochs(np.arange(20), batch_size=4, seed=9)[0]
    assert [b.tolist() for b in e] == [b.tolist() for b in e]
    assert [b.tolist() for b in e] == [e[i].tolist() for i in range(len(e))]


def test_drop_remainder():
    x, y = _xy(10)
    dropped = TrainingEpochs((x, y), batch_size=4, seed=0)
    assert dropped.batches_per_epoch == 2 == len(dropped[0])
    assert all(len(b) == 4 for b in _ids(dropped[0]))
    kept = TrainingEpochs((x, y), batch_size=4, seed=0, drop_remainder=False)
    sizes = [len(b) for b in _ids(kept[0])]
    assert sizes == [4, 4, 2] and kept.batches_per_epoch == 3
    assert sorted(sum(_ids(kept[0]), [])) == list(range(10))
    with pytest.raises(ValueError, match="drop_remainder"):
        TrainingEpochs((x, y), batch_size=11)


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        TrainingEpochs(np.arange(5), batch_size=0)
    with pytest.raises(ValueError, match="seed"):
        TrainingEpochs(np.arange(5), batch_size=1, seed=-1)
    with pytest.raises(ValueError, match="prefetch"):
        TrainingEpochs(np.arange(5), batch_size=1, prefetch=-2)
    with pytest.raises(IndexError):
        TrainingEpochs(np.arange(5), batch_size=1)[-1]
    with pytest.raises(TypeError, match="dataset"):
        TrainingEpochs(42, batch_size=1)


def test_dict_and_namedtuple_samples_keep_their_structure():
    Pair = collections.namedtuple("Pair", "image label")
    data = {"image": np.random.default_rng(0).random((9, 2, 2)), "label": np.arange(9)}
    for batch in TrainingEpochs(data, batch_size=3, seed=1)[0]:
        assert list(batch) == ["image", "label"]
        np.testing.assert_array_equal(batch["image"], data["image"][batch["label"]])
    nt = Pair(np.zeros((6, 4)), np.arange(6))
    batch = TrainingEpochs(nt, batch_size=2, seed=0)[0][0]
    assert isinstance(batch, Pair) and batch.image.shape == (2, 4)


def test_list_of_samples_is_collated_sample_by_sample():
    samples = [{"x": np.full(2, i, np.float32), "name": f"s{i}", "n": i} for i in range(7)]
    epoch = TrainingEpochs(samples, batch_size=3, seed=3)[0]
    for b in epoch:
        assert b["x"].shape == (3, 2)
        assert b["name"].tolist() == [f"s{i}" for i in b["n"]]
        np.testing.assert_array_equal(b["x"][:, 0], b["n"])


def test_fast_gather_equals_sample_by_sample_collation():
    x, y = _xy(12)
    ds = ArrayDataset((x, y))
    as_list = [ds[i] for i in range(len(ds))]
    fast = TrainingEpochs(ds, batch_size=5, seed=2)[1]
    slow = TrainingEpochs(as_list, batch_size=5, seed=2)[1]
    for (fx, fy), (sx, sy) in zip(fast, slow):
        np.testing.assert_array_equal(fx, sx)
        np.testing.assert_array_equal(fy, sy)


def test_collate_errors_name_the_field_and_sample():
    with pytest.raises(ShapeError, match=r"field \['image'\] of sample 2 has shape \(3,\)"):
        collate([{"image": np.zeros(2)}, {"image": np.zeros(2)}, {"image": np.zeros(3)}])
    with pytest.raises(ValueError, match="sample 1"):
        collate([{"a": 1}, {"b": 1}])
    with pytest.raises(ValueError, match="length"):
        collate([(1, 2), (1, 2, 3)])
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_collate_nested_and_custom_collate_gets_a_view():
    batch = collate([((np.zeros(2), 1), {"k": [1.0, 2.0]}), ((np.ones(2), 2), {"k": [3.0, 4.0]})])
    (xs, ns), d = batch
    assert xs.shape == (2, 2) and ns.tolist() == [1, 2] and d["k"][1].tolist() == [2.0, 4.0]
    seen = []

    def my_collate(view):
        assert isinstance(view, Sampling)
        seen.append(list(view))
        return len(view)
    epochs = TrainingEpochs(list(range(6)), batch_size=2, seed=0, collate=my_collate)
    assert list(epochs[0]) == [2, 2, 2]
    assert sorted(sum(seen, [])) == list(range(6))
    raw = TrainingEpochs(list(range(6)), batch_size=2, seed=0, collate=None, prefetch=0)[0]
    assert all(isinstance(v, Sampling) for v in raw)


def test_array_dataset():
    x, y = _xy(5)
    ds = ArrayDataset((x, y))
    assert len(ds) == 5
    xi, yi = ds[-1]
    np.testing.assert_array_equal(xi, x[4])
    assert int(yi) == 4
    assert len(ds[1:4]) == 3
    np.testing.assert_array_equal(ds.take([3, 3, 0])[1], [3, 3, 0])
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(IndexError, match="out of range"):
        ds.take([7])
    with pytest.raises(ValueError, match="same length"):
        ArrayDataset((np.zeros(3), np.zeros(4)))
    with pytest.raises(ValueError, match="leading"):
        ArrayDataset(np.float32(1.0))
    with pytest.raises(TypeError, match="boolean"):
        ds.take(np.array([True, False, True, False, True]))


def test_sampling_and_slices():
    base = ["a", "b", "c", "d", "e"]
    s = Sampling(base, [4, 1, 1])
    assert list(s) == ["e", "b", "b"] and len(s) == 3 and list(s[1:]) == ["b", "b"]
    assert s.collated().tolist() == ["e", "b", "b"]
    sl = Slices(base, 2)
    assert len(sl) == 3 and [list(p) for p in sl] == [["a", "b"], ["c", "d"], ["e"]]
    assert list(sl[-1]) == ["e"]
    with pytest.raises(IndexError):
        Sampling(base, [5])
    with pytest.raises(ValueError):
        Slices(base, 0)
    assert isinstance(as_dataset({"a": np.zeros(3)}), ArrayDataset)
    assert as_dataset(base) is base


def test_inference_batches_keep_order_and_remainder():
    x, y = _xy(7)
    batches = InferenceBatches((x, y), batch_size=3)
    assert len(batches) == 3
    assert [yb.tolist() for _, yb in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [yb.tolist() for _, yb in batches] == [[0, 1, 2], [3, 4, 5], [6]]  # re-iterable
    np.testing.assert_array_equal(batches[2][0], x[6:])


def test_to_tensors_on_a_device():
    import s4tf_py as s4
    dev = s4.Device("reference")
    batch = {"x": np.ones((2, 3), np.float32), "y": np.array([1, 2], np.int32),
             "name": np.array(["a", "b"])}
    out = to_tensors(batch, dev)
    assert isinstance(out["x"], s4.Tensor) and out["x"].device == dev
    assert out["y"].dtype == np.int32 and out["y"].tolist() == [1, 2]
    assert isinstance(out["name"], np.ndarray)
    half = to_tensors(batch, dev, float_dtype=s4.float16)
    assert half["x"].dtype == s4.float16 and half["y"].dtype == np.int32
