"""Images: folders of JPEG/PNG files, one subfolder per class (Imagenette, Imagewoof,
ImageNet's ``train/``), decoded with Pillow.

>>> import os, tempfile, numpy as np
>>> from PIL import Image
>>> root = tempfile.mkdtemp()
>>> for cls, value in (("cat", 0), ("dog", 255)):
...     os.mkdir(os.path.join(root, cls))
...     Image.fromarray(np.full((4, 6, 3), value, np.uint8)).save(
...         os.path.join(root, cls, "a.png"))
>>> ds = ImageFolder(root, size=(2, 3))
>>> ds.classes, len(ds), ds[1][0].shape, int(ds[1][1])
(['cat', 'dog'], 2, (2, 3, 3), 1)
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import DataFormatError

#: file name endings read as images (compared case-insensitively)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _pil():
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow is a dependency
        raise ImportError("reading images needs Pillow: pip install pillow") from e
    return Image


def _size_hw(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        size = (size, size)
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive (height, width), got {size!r}")
    return h, w


def load_image(path: str | os.PathLike, *, size=None, mode: str = "RGB") -> np.ndarray:
    """One image file as a uint8 array of shape (H, W, C).

    ``mode`` is a Pillow mode: "RGB" (C = 3), "L" (grayscale, C = 1), "RGBA" (C = 4).
    ``size`` (an int or ``(height, width)``) resizes with bilinear filtering. A file Pillow
    cannot decode (not an image, truncated) raises DataFormatError naming it.
    """
    Image = _pil()
    p = Path(path)
    hw = _size_hw(size)
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode != mode:
                im = im.convert(mode)
            if hw is not None and im.size != (hw[1], hw[0]):
                im = im.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise DataFormatError(p, "no such file") from None
    except (OSError, ValueError, SyntaxError) as e:   # UnidentifiedImageError is an OSError
        raise DataFormatError(p, f"cannot be decoded as an image ({type(e).__name__}: {e})") \
            from None
    return arr[:, :, None] if arr.ndim == 2 else arr


class ImageFolder(Sequence):
    """A dataset of the images under ``root``, one subfolder per class.

    Classes are the subfolder names, sorted (label ``i`` is ``classes[i]``); the images of a
    class are its files ending in ``extensions`` (searched recursively, sorted by path; hidden
    files and folders are skipped). ``ds[i]`` reads and decodes image ``i`` on demand and
    returns ``(image, label)``: a uint8 (H, W, C) array (see :func:`load_image` for ``size``
    and ``mode``) and an int32 label. Give ``size`` to batch images of different sizes.
    """

    def __init__(self, root: str | os.PathLike, *, size=None, mode: str = "RGB",
                 extensions: Sequence[str] = IMAGE_EXTENSIONS):
        self.root = Path(root)
        self.size = _size_hw(size)
        self.mode = mode
        exts = tuple(e.lower() for e in extensions)
        if not self.root.is_dir():
            raise DataFormatError(self.root, "no such folder")
        self.classes: list[str] = sorted(
            e.name for e in self.root.iterdir() if e.is_dir() and not e.name.startswith("."))
        if not self.classes:
            raise DataFormatError(self.root, "has no class subfolders (expected "
                                             "root/<class>/<image>.jpg)")
        self.samples: list[tuple[Path, int]] = []
        for label, cls in enumerate(self.classes):
            for dirpath, dirnames, filenames in os.walk(self.root / cls):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for f in sorted(filenames):
                    if not f.startswith(".") and f.lower().endswith(exts):
                        self.samples.append((Path(dirpath) / f, label))
        if not self.samples:
            raise DataFormatError(self.root, f"has no image files ({', '.join(exts)}) in its "
                                             f"class subfolders {self.classes}")
        self.labels = np.array([lab for _, lab in self.samples], np.int32)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):
        if isinstance(i, slice):
            raise TypeError("ImageFolder does not slice; use s4.data.Sampling(ds, indices)")
        path, label = self.samples[i]
        return load_image(path, size=self.size, mode=self.mode), self.labels[i]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Every image, decoded: ``(images (N, H, W, C) uint8, labels (N,) int32)``."""
        from .collation import collate
        images = collate([self[i][0] for i in range(len(self))])
        return images, self.labels.copy()

    def __repr__(self) -> str:
        return (f"ImageFolder({str(self.root)!r}: {len(self)} images, "
                f"{len(self.classes)} classes)")


def resize_images(images: np.ndarray, size) -> np.ndarray:
    """A batch of images (N, H, W) or (N, H, W, C), resized to ``size`` = ``(height, width)``
    with bilinear filtering (Pillow). Floating-point images stay float32; integer images are
    rounded back to their dtype. Used to bring scikit-learn's 8×8 digits to LeNet's 28×28.

    >>> import numpy as np
    >>> resize_images(np.ones((2, 8, 8), np.float32), (28, 28)).shape
    (2, 28, 28)
    """
    Image = _pil()
    h, w = _size_hw(size)
    a = np.asarray(images)
    if a.ndim not in (3, 4):
        raise ValueError(f"resize_images expects (N, H, W) or (N, H, W, C) images, got shape "
                         f"{a.shape}")
    squeeze = a.ndim == 3
    x = a[..., None] if squeeze else a
    out = np.empty((x.shape[0], h, w, x.shape[3]), np.float32)
    for n in range(x.shape[0]):
        for c in range(x.shape[3]):
            im = Image.fromarray(np.ascontiguousarray(x[n, :, :, c], dtype=np.float32))
            out[n, :, :, c] = np.asarray(im.resize((w, h), Image.Resampling.BILINEAR))
    if a.dtype.kind in "iub":
        info = np.iinfo(a.dtype) if a.dtype.kind != "b" else None
        out = np.rint(out)
        if info is not None:
            out = np.clip(out, info.min, info.max)
        out = out.astype(a.dtype)
    return out[..., 0] if squeeze else out
