"""Loaders for the validation suite's original file formats, on small files in exactly those
formats that the tests write byte by byte (and the errors for damaged ones)."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from s4tf_py.data import (DataFormatError, ImageFolder, TrainingEpochs, load_cifar10,
                          load_cifar100, load_csv, load_image, load_mnist, load_tsv,
                          read_cifar10_batch, read_cifar100_batch, read_idx, read_label_names,
                          read_text)

RNG = np.random.default_rng(1234)


# ---- MNIST IDX ----------------------------------------------------------------------------------
def _idx_bytes(arr: np.ndarray, code: int) -> bytes:
    header = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    big = arr.astype(arr.dtype.newbyteorder(">"))
    return header + big.tobytes()


def _write_mnist(d, prefix, images, labels, *, gz=False, dotted=False):
    sep = "." if dotted else "-"
    ext = ".gz" if gz else ""
    ip = d / f"{prefix}-images{sep}idx3-ubyte{ext}"
    lp = d / f"{prefix}-labels{sep}idx1-ubyte{ext}"
    ib, lb = _idx_bytes(images, 0x08), _idx_bytes(labels, 0x08)
    ip.write_bytes(gzip.compress(ib) if gz else ib)
    lp.write_bytes(gzip.compress(lb) if gz else lb)
    return ip, lp


def test_mnist_idx_plain_and_gzip(tmp_path):
    images = RNG.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = RNG.integers(0, 10, 7, dtype=np.uint8)
    ip, _ = _write_mnist(tmp_path, "train", images, labels)
    assert (ip.read_bytes()[:4]) == b"\x00\x00\x08\x03"       # magic 2051, as in the real files
    x, y = load_mnist(tmp_path, "train")
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    assert x.dtype == np.uint8 and y.dtype == np.int32
    gz = tmp_path / "gz"
    gz.mkdir()
    _write_mnist(gz, "t10k", images[:3], labels[:3], gz=True, dotted=True)
    x, y = load_mnist(gz, "test")
    np.testing.assert_array_equal(x, images[:3])
    np.testing.assert_array_equal(y, labels[:3])
    # the images feed straight into epochs
    xb, yb = TrainingEpochs((x, y), batch_size=2, seed=0)[0][0]
    assert xb.shape == (2, 28, 28)


@pytest.mark.parametrize("dtype,code", [(np.int16, 0x0B), (np.int32, 0x0C),
                                        (np.float32, 0x0D), (np.float64, 0x0E), (np.int8, 0x09)])
def test_idx_other_types_are_big_endian(tmp_path, dtype, code):
    a = (RNG.standard_normal((3, 2, 4)) * 100).astype(dtype)
    p = tmp_path / "a.idx"
    p.write_bytes(_idx_bytes(a, code))
    out = read_idx(p)
    np.testing.assert_array_equal(out, a)
    assert out.dtype == np.dtype(dtype)


def test_idx_errors_name_the_file_and_the_problem(tmp_path):
    good = _idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4), 0x08)
    cases = {
        "magic.idx": (b"\x12\x34" + good[2:], r"wrong magic number 0x12340802"),
        "code.idx": (good[:2] + b"\x07" + good[3:], r"wrong magic number 0x00000702"),
        "short.idx": (b"\x00\x00", r"truncated: 2 bytes"),
        "header.idx": (good[:9], r"truncated: the header announces 2 dimensions"),
        "data.idx": (good[:-5], r"truncated: .*shape \(3, 4\) \(12 bytes of data\) but only 7"),
        "extra.idx": (good + b"\x00\x00", r"2 unexpected bytes after the data"),
        "bad.gz": (gzip.compress(good)[:-10], r"damaged or truncated gzip"),
    }
    for name, (data, pattern) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(DataFormatError, match=pattern) as info:
            read_idx(p)
        assert str(p) in str(info.value) and info.value.path == str(p)
    with pytest.raises(DataFormatError, match="no such file"):
        read_idx(tmp_path / "missing.idx")


def test_mnist_inconsistent_files(tmp_path):
    images = np.zeros((4, 28, 28), np.uint8)
    _write_mnist(tmp_path, "train", images, np.zeros(3, np.uint8))
    with pytest.raises(DataFormatError, match="3 labels for the 4 images"):
        load_mnist(tmp_path)
    _write_mnist(tmp_path, "train", images, np.zeros((4, 1), np.uint8))
    with pytest.raises(DataFormatError, match=r"labels-idx1-ubyte: expected unsigned-byte labels"):
        load_mnist(tmp_path)
    with pytest.raises(DataFormatError, match="no MNIST file 't10k-images-idx3-ubyte'"):
        load_mnist(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, "validation")


# ---- CIFAR --------------------------------------------------------------------------------------
def _cifar_bytes(images_nhwc: np.ndarray, *label_columns: np.ndarray) -> bytes:
    out = bytearray()
    for i, img in enumerate(images_nhwc):
        for col in label_columns:
            out.append(int(col[i]))
        out += img.transpose(2, 0, 1).tobytes()     # R plane, G plane, B plane, row-major
    return bytes(out)


def test_cifar10_batches(tmp_path):
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    all_images, all_labels = [], []
    for i in range(1, 6):
        imgs = RNG.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
        labs = RNG.integers(0, 10, 3)
        (d / f"data_batch_{i}.bin").write_bytes(_cifar_bytes(imgs, labs))
        all_images.append(imgs)
        all_labels.append(labs)
    test_imgs = RNG.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    (d / "test_batch.bin").write_bytes(_cifar_bytes(test_imgs, np.array([9, 0])))
    (d / "batches.meta.txt").write_text("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\n"
                                        "horse\nship\ntruck\n\n")
    x, y = load_cifar10(tmp_path, "train")             # finds the subfolder
    np.testing.assert_array_equal(x, np.concatenate(all_images))
    np.testing.assert_array_equal(y, np.concatenate(all_labels))
    assert x.shape == (15, 32, 32, 3) and y.dtype == np.int32
    x, y = load_cifar10(d, "test")
    np.testing.assert_array_equal(x, test_imgs)
    assert y.tolist() == [9, 0]
    assert read_label_names(d / "batches.meta.txt")[9] == "truck"
    # a known pixel: record 0's first byte after the label is the red value of pixel (0, 0)
    raw = (d / "test_batch.bin").read_bytes()
    assert x[0, 0, 0, 0] == raw[1] and x[0, 0, 0, 1] == raw[1 + 1024] and x[0, 0, 1, 2] == raw[
        1 + 2048 + 1]


def test_cifar100(tmp_path):
    imgs = RNG.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    coarse, fine = np.array([0, 19, 5, 3]), np.array([99, 0, 42, 7])
    (tmp_path / "train.bin").write_bytes(_cifar_bytes(imgs, coarse, fine))
    x, c, f = read_cifar100_batch(tmp_path / "train.bin")
    np.testing.assert_array_equal(x, imgs)
    assert c.tolist() == coarse.tolist() and f.tolist() == fine.tolist()
    x, y = load_cifar100(tmp_path, "train")
    assert y.tolist() == fine.tolist()
    assert load_cifar100(tmp_path, "train", label_mode="coarse")[1].tolist() == coarse.tolist()


def test_cifar_errors(tmp_path):
    imgs = np.zeros((2, 32, 32, 3), np.uint8)
    p = tmp_path / "data_batch_1.bin"
    p.write_bytes(_cifar_bytes(imgs, np.array([1, 2]))[:-100])
    with pytest.raises(DataFormatError, match=r"data_batch_1.bin: truncated .*3073-byte records"):
        read_cifar10_batch(p)
    p.write_bytes(_cifar_bytes(imgs, np.array([1, 12])))
    with pytest.raises(DataFormatError, match="record 1 has a label 12, outside 0..9"):
        read_cifar10_batch(p)
    p.write_bytes(b"")
    with pytest.raises(DataFormatError, match="empty"):
        read_cifar10_batch(p)
    c100 = tmp_path / "test.bin"
    c100.write_bytes(_cifar_bytes(imgs, np.array([25, 1]), np.array([1, 1])))
    with pytest.raises(DataFormatError, match="record 0 has a coarse label 25"):
        read_cifar100_batch(c100)
    with pytest.raises(DataFormatError, match="data_batch_2.bin: no such file"):
        p.write_bytes(_cifar_bytes(imgs, np.array([1, 2])))
        load_cifar10(tmp_path, "train")


# ---- image folders ------------------------------------------------------------------------------
def _image_folder(root):
    from PIL import Image
    made = {}
    for cls, fmt in (("n01440764", "JPEG"), ("n02102040", "PNG"), ("zebra", "PNG")):
        (root / cls).mkdir(parents=True)
        for k in range(2):
            arr = RNG.integers(0, 256, (10 + k, 12, 3), dtype=np.uint8)
            if fmt == "JPEG":
                arr[:] = 200 - 50 * k        # flat colour: JPEG stores it (almost) exactly
            name = f"img{k}.{'JPEG' if fmt == 'JPEG' else 'png'}"
            Image.fromarray(arr).save(root / cls / name, format=fmt)
            made[(cls, name)] = arr
    (root / "zebra" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    return made


def test_image_folder_jpeg_and_png(tmp_path):
    made = _image_folder(tmp_path)
    ds = ImageFolder(tmp_path)
    assert ds.classes == ["n01440764", "n02102040", "zebra"]
    assert len(ds) == 6 and ds.labels.tolist() == [0, 0, 1, 1, 2, 2]
    for i, (path, label) in enumerate(ds.samples):
        img, lab = ds[i]
        want = made[(path.parent.name, path.name)]
        assert img.shape == want.shape and img.dtype == np.uint8 and lab == label
        if path.suffix == ".png":                  # PNG is lossless
            np.testing.assert_array_equal(img, want)
        else:
            assert np.abs(img.astype(int) - want).max() <= 2
    # different sizes do not batch without size=
    with pytest.raises(ValueError, match="shape"):
        list(TrainingEpochs(ds, batch_size=6, seed=0, prefetch=0)[0])
    sized = ImageFolder(tmp_path, size=(8, 9), mode="L")
    xb, yb = TrainingEpochs(sized, batch_size=3, seed=0)[0][0]
    assert xb.shape == (3, 8, 9, 1) and yb.dtype == np.int32
    images, labels = sized.arrays()
    assert images.shape == (6, 8, 9, 1) and labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_image_errors(tmp_path):
    (tmp_path / "cls").mkdir()
    bad = tmp_path / "cls" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    ds = ImageFolder(tmp_path)
    with pytest.raises(DataFormatError, match=r"broken.jpg: cannot be decoded as an image"):
        ds[0]
    from PIL import Image
    good = tmp_path / "cls" / "cut.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8) + 7).save(good)
    good.write_bytes(good.read_bytes()[:60])          # truncated PNG
    with pytest.raises(DataFormatError, match="cut.png"):
        load_image(good)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataFormatError, match="no class subfolders"):
        ImageFolder(empty)
    (empty / "a").mkdir()
    with pytest.raises(DataFormatError, match="no image files"):
        ImageFolder(empty)
    with pytest.raises(DataFormatError, match="no such folder"):
        ImageFolder(tmp_path / "nope")


# ---- CSV / TSV / text ---------------------------------------------------------------------------
def test_csv_types_quotes_and_missing_values(tmp_path):
    p = tmp_path / "ratings.csv"
    p.write_text('userId,movieId,rating,timestamp,title\n'
                 '1,31,2.5,1260759144,"Dangerous Minds (1995)"\n'
                 '1,1029,,1260759179,"Dumbo, the ""flying"" elephant"\n'
                 '\n'
                 '7,1061,3.0,1260759182,Sleepers\n', encoding="utf-8")
    t = load_csv(p)
    assert list(t) == ["userId", "movieId", "rating", "timestamp", "title"]
    assert t["userId"].dtype == np.int64 and t["timestamp"].tolist()[2] == 1260759182
    assert t["rating"].dtype == np.float64 and np.isnan(t["rating"][1])
    assert t["title"].tolist()[1] == 'Dumbo, the "flying" elephant'
    t32 = load_csv(p, dtypes={"rating": np.float32, "userId": np.int32})
    assert t32["rating"].dtype == np.float32 and t32["userId"].dtype == np.int32
    x, y = TrainingEpochs({"user": t["userId"], "rating": t["rating"]}, batch_size=3,
                          seed=0)[0][0].values()
    assert x.shape == (3,)
    headerless = tmp_path / "housing.csv"
    headerless.write_text("0.00632,18.0,24.0\n0.02731,0.0,21.6\n")
    h = load_csv(headerless, header=False, names=["crim", "zn", "medv"])
    assert h["medv"].tolist() == [24.0, 21.6]
    assert list(load_csv(headerless, header=False)) == ["column_0", "column_1", "column_2"]


def test_tsv_like_cola(tmp_path):
    p = tmp_path / "in_domain_train.tsv"
    p.write_text('gj04\t1\t\tOur friends won\'t buy this analysis, let alone the next one.\n'
                 'gj04\t0\t*\tThey drank the pub "dry".\n', encoding="utf-8")
    t = load_tsv(p, header=False, names=["source", "label", "mark", "sentence"])
    assert t["label"].tolist() == [1, 0]
    assert t["sentence"].tolist()[1] == 'They drank the pub "dry".'    # quotes kept as text
    assert t["mark"].tolist() == ["", "*"]


def test_table_errors(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("a,b,c\n1,2,3\n4,5\n")
    with pytest.raises(DataFormatError, match=r"bad.csv: line 3: expected 3 fields .* found 2"):
        load_csv(p)
    p.write_bytes(b"a,b\n1,2\n\xff\xfe,3\n")
    with pytest.raises(DataFormatError, match=r"not valid UTF-8 text: byte 0xff at offset 8 "
                                              r"\(line 3\)"):
        load_csv(p)
    p.write_text("")
    with pytest.raises(DataFormatError, match="empty"):
        load_csv(p)
    p.write_text("a,a\n1,2\n")
    with pytest.raises(DataFormatError, match="duplicate column"):
        load_csv(p)
    p.write_text("a,b\nx,2\n")
    with pytest.raises(DataFormatError, match="column 'a' does not convert"):
        load_csv(p, dtypes={"a": np.float32})
    p.write_text('a,b\n"unterminated,2\n')
    with pytest.raises(DataFormatError, match="bad.csv: line"):
        load_csv(p)


def test_read_text_file_and_folder(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_text("first file\n", encoding="utf-8")
    (tmp_path / "b" / "c.txt").write_text("zweite Datei: Größe\n", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ignored")
    (tmp_path / "d.md").write_bytes(gzip.compress("gzipped ✓".encode("utf-8")))
    assert read_text(tmp_path / "a.txt") == "first file\n"
    assert read_text(tmp_path) == "first file\n\n\nzweite Datei: Größe\n\n\ngzipped ✓"
    assert read_text(tmp_path, extensions=[".txt"]) == "first file\n\n\nzweite Datei: Größe\n"
    (tmp_path / "b" / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1.txt: is not valid UTF-8 text: byte 0xe9 "
                                              r"at offset 3 \(line 1\)"):
        read_text(tmp_path)
    with pytest.raises(DataFormatError, match="no such file or folder"):
        read_text(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataFormatError, match="contains no text files"):
        read_text(empty)
