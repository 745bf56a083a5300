"""CSV and TSV files as columns of numpy arrays (MovieLens' ``ratings.csv``, Boston Housing,
CoLA's ``in_domain_train.tsv``).

A table comes back as a dict from column name to a 1-D array, in the file's column order; a
column whose every value is an integer becomes int64, one whose values are all numbers (empty
fields count as NaN) float64, anything else str. ``dtypes`` overrides the choice per column.
The dict plugs straight into :class:`~s4tf_py.data.ArrayDataset` and
:class:`~s4tf_py.data.TrainingEpochs`.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "ratings.csv")
>>> with open(path, "w") as f:
...     _ = f.write("userId,movieId,rating,title\\n1,31,2.5,Heat\\n2,1029,3,\\"Up, Up\\"\\n")
>>> t = load_csv(path)
>>> list(t), t["movieId"].dtype, t["rating"].tolist(), t["title"].tolist()
(['userId', 'movieId', 'rating', 'title'], dtype('int64'), [2.5, 3.0], ['Heat', 'Up, Up'])
"""
from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping, Sequence

import numpy as np

from ._files import decode_utf8, read_bytes
from .errors import DataFormatError

_INT = re.compile(r"\s*[-+]?\d+\s*\Z")


def _column(values: list[str], dtype) -> np.ndarray:
    if dtype is not None:
        return np.array(values, dtype=dtype) if np.dtype(dtype).kind in "US" \
            else np.array([v if v.strip() else "nan" for v in values]).astype(dtype)
    if values and all(_INT.match(v) for v in values):
        try:
            return np.array([int(v) for v in values], np.int64)
        except OverflowError:
            pass
    try:
        return np.array([float(v) if v.strip() else np.nan for v in values], np.float64)
    except ValueError:
        return np.array(values, dtype=str)


def load_delimited(path: str | os.PathLike, *, delimiter: str, header: bool = True,
                   names: Sequence[str] | None = None,
                   dtypes: Mapping[str, object] | None = None,
                   quoting: int = csv.QUOTE_MINIMAL) -> dict[str, np.ndarray]:
    """A delimited text file as ``{column: array}`` (see the module docstring).

    ``header``: the first row names the columns. ``names``: column names to use (replacing
    the header's when there is one); without either the columns are ``column_0``,
    ``column_1``, .... A row with the wrong number of fields, a file that is empty, not UTF-8,
    or a value that does not convert to a requested dtype raises DataFormatError naming the
    file and the line.
    """
    text = decode_utf8(read_bytes(path), path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting,
                        strict=quoting != csv.QUOTE_NONE)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue                          # blank line
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as e:
        raise DataFormatError(path, f"line {reader.line_num}: {e}") from None
    if not rows:
        raise DataFormatError(path, "is empty (no rows)")
    if header:
        head, head_line = rows.pop(0), lines.pop(0)
        cols = list(names) if names is not None else [h.strip() for h in head]
        if names is not None and len(names) != len(head):
            raise DataFormatError(path, f"line {head_line}: the header has {len(head)} "
                                        f"columns but {len(names)} names were given")
    else:
        width = len(rows[0])
        cols = list(names) if names is not None else [f"column_{i}" for i in range(width)]
    if len(set(cols)) != len(cols):
        dup = sorted({c for c in cols if cols.count(c) > 1})
        raise DataFormatError(path, f"duplicate column names {dup}")
    for row, line in zip(rows, lines):
        if len(row) != len(cols):
            raise DataFormatError(path, f"line {line}: expected {len(cols)} fields (columns "
                                        f"{cols}), found {len(row)}")
    dtypes = dict(dtypes or {})
    unknown = set(dtypes) - set(cols)
    if unknown:
        raise ValueError(f"dtypes names columns {sorted(unknown)} that {path} does not have "
                         f"(it has {cols})")
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(cols):
        values = [row[j] for row in rows]
        try:
            out[name] = _column(values, dtypes.get(name))
        except (ValueError, TypeError) as e:
            raise DataFormatError(path, f"column {name!r} does not convert to "
                                        f"{dtypes.get(name)}: {e}") from None
    return out


def load_csv(path: str | os.PathLike, *, header: bool = True,
             names: Sequence[str] | None = None, dtypes: Mapping[str, object] | None = None,
             delimiter: str = ",") -> dict[str, np.ndarray]:
    """A CSV file (comma-separated, RFC 4180 double-quote quoting) as ``{column: array}``."""
    return load_delimited(path, delimiter=delimiter, header=header, names=names, dtypes=dtypes)


def load_tsv(path: str | os.PathLike, *, header: bool = True,
             names: Sequence[str] | None = None,
             dtypes: Mapping[str, object] | None = None) -> dict[str, np.ndarray]:
    """A TSV file (tab-separated, no quoting: quote characters are kept as text, as in CoLA's
    sentences) as ``{column: array}``. CoLA's files have no header: ``load_tsv(path,
    header=False, names=["source", "label", "original_label", "sentence"])``."""
    return load_delimited(path, delimiter="\t", header=header, names=names, dtypes=dtypes,
                          quoting=csv.QUOTE_NONE)
