"""Reading whole files with errors that name them."""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

from .errors import DataFormatError

GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: str | os.PathLike, *, gunzip: bool = True) -> bytes:
    """The bytes of ``path``; a gzip file (detected by its first two bytes, whatever its name)
    is decompressed when ``gunzip``. Missing files and bad gzip data raise DataFormatError."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(p, "no such file") from None
    except IsADirectoryError:
        raise DataFormatError(p, "is a folder, expected a file") from None
    except OSError as e:
        raise DataFormatError(p, f"cannot be read: {e.strerror or e}") from None
    if gunzip and data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataFormatError(p, f"is a damaged or truncated gzip file ({e})") from None
    return data


def decode_utf8(data: bytes, path: str | os.PathLike) -> str:
    """``data`` decoded as UTF-8 (a leading byte-order mark dropped); invalid bytes raise
    DataFormatError naming the file, the line and the byte offset."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataFormatError(path, f"is not valid UTF-8 text: byte 0x{data[e.start]:02x} at "
                                    f"offset {e.start} (line {line}): {e.reason}") from None
