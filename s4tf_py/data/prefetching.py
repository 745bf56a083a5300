"""Background prefetch: produce the next batches on a thread while the training step runs.

:func:`prefetch` (or :class:`Prefetcher`) iterates a source on a daemon thread into a bounded
queue, so batch ``i + 1`` is being gathered, decoded and collated while step ``i`` runs (numpy
and Pillow release the GIL for the heavy parts). Guarantees:

* order: items arrive in the source's order;
* errors: an exception raised by the source is raised again in the consumer, after the items
  produced before it, as the same exception object with its original traceback (the frames of
  the producer thread) still attached;
* shutdown: when the consumer stops early — ``break``, an exception, or simply dropping the
  iterator — :meth:`Prefetcher.close` runs (explicitly, through ``with``, or when the object is
  garbage collected, which CPython does at once when the last reference goes), stops the thread
  and joins it; the source generator's ``finally`` blocks run. No thread outlives it.

>>> it = prefetch(range(5), buffer_size=2)
>>> list(it)
[0, 1, 2, 3, 4]
>>> with prefetch(x * x for x in range(100)) as it:
...     next(it), next(it)
(0, 1)
"""
from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

_ITEM, _END, _ERROR = 0, 1, 2
_POLL_S = 0.05        # how often a blocked producer checks whether the consumer has gone
_JOIN_S = 30.0        # how long close() waits for a producer busy inside its source


def _put(q: queue.Queue, entry: tuple, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(entry, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _produce(source: Iterable, q: queue.Queue, stop: threading.Event) -> None:
    # runs on the producer thread; it holds no reference to the Prefetcher, so the consumer
    # dropping its iterator really frees it (and __del__ stops this thread)
    it = None
    try:
        it = iter(source)
        for item in it:
            if not _put(q, (_ITEM, item), stop):
                return
            item = None
        _put(q, (_END, None), stop)
    except BaseException as e:  # noqa: BLE001 - every error goes to the consumer
        _put(q, (_ERROR, e), stop)
    finally:
        close = getattr(it, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001 - the consumer has the first error already
                pass


class Prefetcher(Iterator):
    """An iterator over ``source`` whose items are produced ahead on a background thread.

    ``buffer_size`` bounds how many items wait in the queue (memory: that many batches). See
    the module docstring for the guarantees on order, errors and shutdown.
    """

    def __init__(self, source: Iterable, buffer_size: int = 2, *,
                 name: str = "s4tf-data-prefetch"):
        if not isinstance(buffer_size, int) or buffer_size < 1:
            raise ValueError(f"buffer_size must be a positive integer, got {buffer_size!r}")
        self._queue: queue.Queue = queue.Queue(maxsize=buffer_size)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=_produce, args=(source, self._queue, self._stop),
                                        name=name, daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        """The producer thread (alive until the source ends or :meth:`close`)."""
        return self._thread

    def __iter__(self) -> "Prefetcher":
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        while True:
            try:
                kind, value = self._queue.get(timeout=_POLL_S * 4)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self._done = True
                    raise RuntimeError("the prefetch thread stopped without an end marker "
                                       "(was the Prefetcher closed from another thread?)")
        if kind == _ITEM:
            return value
        self._done = True
        self._thread.join()
        if kind == _ERROR:
            try:
                raise value            # the producer's traceback stays attached
            finally:
                value = None           # no reference cycle through this frame
        raise StopIteration

    def close(self) -> None:
        """Stop the producer and wait for its thread to end (idempotent)."""
        self._done = True
        self._stop.set()
        try:
            while True:                  # free the batches waiting in the queue
                self._queue.get_nowait()
        except queue.Empty:
            pass
        if self._thread is not threading.current_thread():
            self._thread.join(_JOIN_S)
            if self._thread.is_alive():  # pragma: no cover - a source stuck for 30 s
                warnings.warn(f"prefetch thread {self._thread.name} is still inside its source "
                              f"after {_JOIN_S:.0f} s; leaving it (a daemon thread) behind",
                              ResourceWarning, stacklevel=2)

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def prefetch(source: Iterable, buffer_size: int = 2) -> Prefetcher:
    """Iterate ``source`` on a background thread, ``buffer_size`` items ahead (see the module
    docstring)."""
    return Prefetcher(source, buffer_size)
