"""Text: UTF-8 files and folders, byte- and character-level tokens, and language-model
batches (contiguous windows of ``seq_len + 1`` tokens split into inputs and targets).

>>> tokens = encode_bytes("hello, world")
>>> tokens.dtype, decode_bytes(tokens[:5])
(dtype('uint8'), 'hello')
>>> windows = LanguageModelWindows(tokens, seq_len=4)
>>> len(windows), [decode_bytes(t) for t in windows[0]]
(2, ['hell', 'ello'])
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ._files import decode_utf8, read_bytes
from .datasets import _as_indices
from .errors import DataFormatError


def text_files(path: str | os.PathLike, *, extensions: Iterable[str] | None = None
               ) -> list[Path]:
    """The files that :func:`read_text` reads for ``path``: the file itself, or every
    non-hidden file under the folder (recursively, sorted by relative path; only those ending
    in ``extensions`` when given)."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise DataFormatError(p, "no such file or folder")
    exts = tuple(e.lower() for e in extensions) if extensions is not None else None
    found = []
    for dirpath, dirnames, filenames in os.walk(p):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if f.startswith(".") or (exts is not None and not f.lower().endswith(exts)):
                continue
            found.append(Path(dirpath) / f)
    found.sort(key=lambda f: f.relative_to(p).as_posix())
    if not found:
        raise DataFormatError(p, "contains no text files" + (
            f" ending in {', '.join(exts)}" if exts else ""))
    return found


def read_text(path: str | os.PathLike, *, extensions: Iterable[str] | None = None) -> str:
    """The UTF-8 text of a file, or of every file in a folder (see :func:`text_files`) joined
    with a blank line between files. A file that is not valid UTF-8 raises DataFormatError
    naming it, the line and the byte offset; gzip-compressed files are decompressed."""
    parts = []
    for f in text_files(path, extensions=extensions):
        parts.append(decode_utf8(read_bytes(f), f))
    return "\n\n".join(parts)


def encode_bytes(text: str) -> np.ndarray:
    """``text`` as its UTF-8 bytes: uint8 token ids 0..255 (a 256-symbol vocabulary)."""
    return np.frombuffer(text.encode("utf-8"), np.uint8).copy()


def decode_bytes(tokens: Any) -> str:
    """UTF-8 byte tokens back to text (a byte sequence cut mid-character becomes U+FFFD)."""
    a = np.asarray(tokens)
    if a.size and (a.min() < 0 or a.max() > 255):
        raise ValueError(f"byte tokens are 0..255; got values in {int(a.min())}..{int(a.max())}")
    return a.astype(np.uint8).tobytes().decode("utf-8", errors="replace")


class CharVocabulary:
    """A character-level vocabulary: id ``i`` is ``chars[i]``.

    >>> vocab = CharVocabulary.from_text("abracadabra")
    >>> vocab.chars, vocab.encode("cab").tolist(), vocab.decode([4, 0])
    ('abcdr', [2, 0, 1], 'ra')
    """

    def __init__(self, chars: Iterable[str]):
        chars = "".join(chars)
        if len(set(chars)) != len(chars):
            raise ValueError("a CharVocabulary's characters must be distinct")
        self.chars = chars
        self._index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharVocabulary":
        """The vocabulary of the distinct characters in ``text``, sorted by code point."""
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Character ids (int32); a character outside the vocabulary raises KeyError."""
        try:
            return np.fromiter((self._index[c] for c in text), np.int32, len(text))
        except KeyError as e:
            raise KeyError(f"character {e.args[0]!r} is not in the vocabulary of "
                           f"{len(self)} characters") from None

    def decode(self, ids: Any) -> str:
        """Text from character ids."""
        return "".join(self.chars[int(i)] for i in np.asarray(ids).ravel())

    def __repr__(self) -> str:
        return f"CharVocabulary({len(self)} characters)"


class LanguageModelWindows:
    """A dataset of contiguous windows over a token stream, for next-token prediction.

    Window ``i`` is ``tokens[i*stride : i*stride + seq_len + 1]``; sample ``i`` is
    ``(inputs, targets)`` = (its first ``seq_len`` tokens, its last ``seq_len``). The default
    ``stride`` = ``seq_len`` makes consecutive windows share one token, so every token after the
    first is a target exactly once. ``take(indices)`` gathers a batch ``(B, seq_len)`` of each
    in one step. Token ids are kept in their dtype.
    """

    def __init__(self, tokens: Any, seq_len: int, *, stride: int | None = None):
        t = np.asarray(tokens)
        if t.ndim != 1 or t.dtype.kind not in "iu":
            raise ValueError(f"tokens must be a 1-D array of integer ids, got shape {t.shape} "
                             f"and dtype {t.dtype}")
        if not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
            raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
        stride = seq_len if stride is None else stride
        if not isinstance(stride, (int, np.integer)) or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride!r}")
        self.tokens, self.seq_len, self.stride = t, int(seq_len), int(stride)
        self._n = max(0, (len(t) - self.seq_len - 1) // self.stride + 1)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"window indices are integers, not {type(i).__name__}")
        if not -self._n <= i < self._n:
            raise IndexError(f"window {i} is out of range ({self._n} windows)")
        start = (i % self._n) * self.stride
        w = self.tokens[start:start + self.seq_len + 1]
        return w[:-1], w[1:]

    def take(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs, targets)``, each ``(len(indices), seq_len)``."""
        idx = _as_indices(indices, self._n)
        w = self.tokens[idx[:, None] * self.stride + np.arange(self.seq_len + 1)]
        return w[:, :-1], w[:, 1:]

    def __repr__(self) -> str:
        return (f"LanguageModelWindows({self._n} windows of {self.seq_len}+1 tokens, "
                f"stride {self.stride})")


def language_model_batches(tokens: Any, seq_len: int, batch_size: int, *, seed: int = 0,
                           stride: int | None = None, drop_remainder: bool = True,
                           prefetch: int = 2):
    """Shuffled, seeded epochs of ``(inputs, targets)`` batches, each ``(batch_size,
    seq_len)``, over the :class:`LanguageModelWindows` of ``tokens``: a
    :class:`~s4tf_py.data.TrainingEpochs`.

    >>> epochs = language_model_batches(encode_bytes("abcdefghijklmnopq"), seq_len=4,
    ...                                 batch_size=2, seed=0)
    >>> x, y = epochs[0][0]
    >>> x.shape, bool((x[:, 1:] == y[:, :-1]).all())
    ((2, 4), True)
    """
    from .epochs import TrainingEpochs
    windows = LanguageModelWindows(tokens, seq_len, stride=stride)
    if len(windows) == 0:
        raise ValueError(f"{len(np.asarray(tokens))} tokens make no window of seq_len + 1 = "
                         f"{seq_len + 1} tokens")
    return TrainingEpochs(windows, batch_size, seed=seed, drop_remainder=drop_remainder,
                          prefetch=prefetch)
