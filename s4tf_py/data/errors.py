"""The error raised for a data file that cannot be read as what it claims to be."""
from __future__ import annotations

import os

from ..errors import S4TFError


class DataFormatError(S4TFError, ValueError):
    """A data file (or folder) that is missing, malformed or of the wrong kind.

    The message starts with the path and says what is wrong, e.g. ``train-images-idx3-ubyte:
    wrong magic number 0x00000000 ...``. ``path`` holds the offending path.

    >>> str(DataFormatError("labels.idx", "truncated: expected 10 bytes of data, found 3"))
    'labels.idx: truncated: expected 10 bytes of data, found 3'
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):          # picklable (the message is rebuilt from the two parts)
        return (type(self), (self.path, self.problem))
