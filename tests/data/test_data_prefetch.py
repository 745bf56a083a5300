"""Background prefetch: order, errors with their traceback, bounded buffering, clean shutdown."""
from __future__ import annotations

import gc
import threading
import time
import traceback

import numpy as np
import pytest

from s4tf_py.data import Prefetcher, TrainingEpochs, prefetch


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name.startswith("s4tf-data-prefetch")]


def _wait_until(cond, what, limit_s=20.0):
    """Wait for a condition another thread makes true (the limit only guards against a hang)."""
    end = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_items_arrive_in_order_and_the_thread_ends():
    it = prefetch(iter(range(1000)), buffer_size=3)
    assert list(it) == list(range(1000))
    assert not it.thread.is_alive()
    with pytest.raises(StopIteration):
        next(it)


def test_producer_exception_is_reraised_with_its_traceback():
    def batches():
        yield 1
        yield 2
        raise_in_producer()

    def raise_in_producer():
        raise KeyError("bad sample 17")

    it = prefetch(batches())
    assert next(it) == 1 and next(it) == 2     # items before the error still arrive
    with pytest.raises(KeyError, match="bad sample 17") as info:
        next(it)
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "raise_in_producer" in frames and "batches" in frames
    assert info.value.__traceback__ is not None
    assert not it.thread.is_alive()
    with pytest.raises(StopIteration):          # the iterator is finished afterwards
        next(it)


def test_an_error_in_a_batch_reaches_the_training_loop():
    class Broken:
        def __len__(self):
            return 8

        def __getitem__(self, i):
            if i == 5:
                raise ValueError(f"cannot decode sample {i}")
            return np.float32(i)

    epoch = TrainingEpochs(Broken(), batch_size=2, seed=0)[0]
    with pytest.raises(ValueError, match="cannot decode sample 5") as info:
        for _ in epoch:
            pass
    assert "__getitem__" in [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert _prefetch_threads() == []


def test_breaking_out_of_an_epoch_stops_the_thread():
    finished = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield np.full(1000, i)
                i += 1
        finally:
            finished.set()

    before = set(threading.enumerate())
    for i, _ in enumerate(prefetch(endless(), buffer_size=2)):
        if i == 3:
            break
    # the Prefetcher was dropped at the end of the loop: its thread is joined, the source closed
    assert [t for t in threading.enumerate() if t not in before] == []
    assert finished.is_set()

    epochs = TrainingEpochs(np.arange(10_000), batch_size=10, seed=0)
    for epoch in epochs:                       # the endless sequence of epochs
        for j, _ in enumerate(epoch):
            if j == 2:
                break
        if epoch.index == 2:
            break
    gc.collect()
    assert _prefetch_threads() == []


def test_an_exception_in_the_consumer_stops_the_thread():
    def consume():
        for i, _ in enumerate(prefetch(iter(range(10**9)))):
            if i == 5:
                raise RuntimeError("training step failed")

    with pytest.raises(RuntimeError, match="training step failed"):
        consume()
    gc.collect()   # the traceback held the frame; pytest has released it
    assert _prefetch_threads() == []


def test_close_and_context_manager():
    it = Prefetcher(iter(range(10**9)), buffer_size=1)
    assert next(it) == 0
    it.close()
    assert not it.thread.is_alive()
    it.close()                                  # idempotent
    with pytest.raises(StopIteration):
        next(it)
    with prefetch(iter(range(10**9))) as it2:
        assert next(it2) == 0
    assert not it2.thread.is_alive()
    with pytest.raises(ValueError, match="buffer_size"):
        Prefetcher([], buffer_size=0)


def test_the_producer_runs_at_most_buffer_size_items_ahead():
    produced = []

    def source():
        for i in range(100):
            produced.append(i)
            yield i

    with prefetch(source(), buffer_size=3) as it:
        assert next(it) == 0
        _wait_until(lambda: it._queue.full(), "the queue to fill")
        # 1 consumed, 3 waiting in the queue, at most 1 more held by a producer blocked in put
        assert len(produced) <= 1 + 3 + 1
        assert [next(it) for _ in range(3)] == [1, 2, 3]
