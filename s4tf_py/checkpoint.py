"""Checkpoints: safetensors files with key-path names, a JSON metadata block and atomic writes.

``save(obj, path, metadata=...)`` writes every tensor of a layer (parameters *and*
non-differentiable state such as running statistics), a dict of tensors or arrays, or any
nest of structs, dicts, lists and tuples holding them. Tensors are named by their key path
(``block.0.conv.filter``, as ``Layer.named_parameters`` and ``Layer.state_dict`` name them) and
the file is a plain safetensors file that other tools (``safetensors``, PyTorch, JAX,
Hugging Face) read. ``metadata`` is one JSON document, stored with the format version and the
s4tf_py version under the ``"s4tf_py"`` key of safetensors' ``__metadata__`` string map.

``load(path)`` returns a :class:`Checkpoint`: a read-only mapping of key path to Tensor with
``.metadata`` (what was passed to ``save``). ``model.load_state(path)`` streams the file into
a model tensor by tensor, so peak memory stays near one copy of the model; ``strict=False``
loads what matches and returns a :class:`LoadReport` of the rest. ``open_checkpoint(path)``
reads lazily, one tensor at a time. Sharded folders (``model.safetensors.index.json``) and
foreign names (``name_map=``) are read too.

``save_training_state(path, model=, optimizer=, step=, rng=, extra=)`` adds what resuming a
run needs: the tensors of ``optimizer.state_dict()`` (any object with ``state_dict()`` and
``load_state_dict()``) under ``optimizer.``, the model's under ``model.``, and the rest (step,
hyperparameters, RNG state, the structure of the optimizer state) in the JSON document;
``load_training_state`` restores them, so a resumed run continues bit for bit.

Writes are atomic: the file is written under a temporary name in the same folder, flushed to
disk (fsync) and renamed over the old one, so a writer killed at any point leaves the previous
checkpoint intact under the final name.

>>> import os, tempfile
>>> import s4tf_py as s4
>>> from s4tf_py import checkpoint
>>> tmp = tempfile.TemporaryDirectory()
>>> path = os.path.join(tmp.name, "dense.safetensors")
>>> model = s4.nn.Dense(2, 3, seed=0)
>>> checkpoint.save(model, path, metadata={"step": 10})
>>> ckpt = checkpoint.load(path)
>>> sorted(ckpt), ckpt["weight"].shape, ckpt.metadata
(['bias', 'weight'], (2, 3), {'step': 10})
>>> fresh = s4.nn.Dense(2, 3, seed=1)
>>> fresh.load_state(path).ok
True
>>> bool(s4.all(fresh.weight == model.weight))
True
>>> tmp.cleanup()
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import struct
import uuid
from collections.abc import Mapping
from typing import Any, BinaryIO, Callable, Iterator, NamedTuple, Optional, Union

import numpy as np

from . import dtypes as dt
from .device import Device, get_default_device
from .errors import CheckpointError, CheckpointMismatchError, ConcretizationError
from .ir import graph
from .tensor import Tensor, wrap

__all__ = ["save", "load", "open_checkpoint", "state_dict", "load_state", "save_training_state",
           "load_training_state", "Checkpoint", "CheckpointReader", "LoadReport", "Mismatch",
           "TrainingState", "CheckpointError", "CheckpointMismatchError", "FORMAT_VERSION",
           "METADATA_KEY", "INDEX_NAME"]

PathLike = Union[str, "os.PathLike[str]"]
NameMap = Union[Mapping, Callable[[str], Optional[str]], None]

#: version of the layout s4tf_py writes (names, metadata document); readers refuse newer ones
FORMAT_VERSION = 1
#: the key of safetensors' ``__metadata__`` map that holds s4tf_py's JSON document
METADATA_KEY = "s4tf_py"
#: the index file of a sharded checkpoint (Hugging Face's name)
INDEX_NAME = "model.safetensors.index.json"

_MAX_HEADER = 100_000_000      # safetensors' own limit on the JSON header
_CODE = {dt.bool_: "BOOL", dt.uint8: "U8", dt.int8: "I8", dt.uint16: "U16", dt.int16: "I16",
         dt.float16: "F16", dt.bfloat16: "BF16", dt.uint32: "U32", dt.int32: "I32",
         dt.float32: "F32", dt.uint64: "U64", dt.int64: "I64", dt.float64: "F64"}
_DTYPE = {code: d for d, code in _CODE.items()}
# dtypes safetensors knows but a Tensor cannot hold: headers naming them still parse (a
# name_map can drop such tensors); reading one is an error
_FOREIGN_ITEMSIZE = {"F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "C64": 8}


# ---- key paths ------------------------------------------------------------------------------

def _fields(v) -> list[str] | None:
    """Field names of a struct, layer or dataclass instance (declaration order), else None."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return [f.name for f in dataclasses.fields(v)]
    return None


def _join(path: str, name) -> str:
    return f"{path}.{name}" if path else str(name)


def _put(out: dict, key: str, value) -> None:
    if key in out:
        raise ValueError(f"two values have the key path '{key}' (a dict key with a '.' in it?)")
    out[key] = value


def _walk(v, path: str, out: dict, strict: bool) -> None:
    """Collect the tensors and arrays of ``v`` by key path.

    Inside structs and layers, values that are not tensors (activations, flags, sizes) are
    configuration and are skipped; in plain containers given by the user (``strict``) they are
    an error, so that ``save({"lr": 0.1}, ...)`` does not silently drop the value."""
    if isinstance(v, (Tensor, np.ndarray)):
        if not path:
            raise TypeError("a single tensor needs a name: save({'name': tensor}, path)")
        _put(out, path, v)
        return
    names = _fields(v)
    if names is not None:
        for n in names:
            _walk(getattr(v, n, None), _join(path, n), out, strict=False)
    elif isinstance(v, Mapping):
        for k, x in v.items():
            _walk(x, _join(path, k), out, strict)
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            _walk(x, _join(path, i), out, strict)
    elif v is not None and strict:
        raise TypeError(f"the value at '{path or '<top>'}' is a {type(v).__name__}: checkpoints "
                        "hold tensors and numpy arrays (pass Python values in metadata=)")


def state_dict(obj, prefix: str = "") -> dict:
    """Every tensor (and numpy array) of ``obj`` by key path, ``prefix`` prepended.

    ``obj`` is a layer or struct (all fields, including ``s4.no_derivative`` ones holding
    tensors: that is state, such as running statistics), or a nest of dicts, lists and tuples.

    >>> import s4tf_py as s4
    >>> sorted(state_dict({"a": {"b": s4.zeros((2,))}, "c": [s4.ones(())]}))
    ['a.b', 'c.0']
    """
    out: dict = {}
    _walk(obj, "", out, strict=True)
    return {prefix + k: v for k, v in out.items()} if prefix else out


def _rebuild(v, path: str, fetch: Callable):
    """``v`` with each tensor replaced by ``fetch(key_path, old)``; the same traversal as
    :func:`_walk`. Structs and layers are updated in place (as ``move(along=)`` does); lists,
    tuples and dicts that change are rebuilt, never mutated (value semantics)."""
    if isinstance(v, (Tensor, np.ndarray)):
        return fetch(path, v)
    names = _fields(v)
    if names is not None:
        for n in names:
            old = getattr(v, n, None)
            new = _rebuild(old, _join(path, n), fetch)
            if new is not old:
                object.__setattr__(v, n, new)
        return v
    if isinstance(v, Mapping):
        new = {k: _rebuild(x, _join(path, k), fetch) for k, x in v.items()}
        if all(new[k] is v[k] for k in v):
            return v
        if type(v) is not dict:
            with contextlib.suppress(TypeError):
                return type(v)(new)
        return new
    if isinstance(v, (list, tuple)):
        items = [_rebuild(x, _join(path, i), fetch) for i, x in enumerate(v)]
        if all(a is b for a, b in zip(items, v)):
            return v
        if isinstance(v, tuple):
            return type(v)(*items) if hasattr(v, "_fields") else type(v)(items)
        return items
    return v


# ---- metadata document ------------------------------------------------------------------------

def _json_default(o):
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, Tensor):
        raise TypeError("metadata holds a Tensor: save tensors in the object itself (or in "
                        "save_training_state(extra=...)), keep metadata to JSON values")
    raise TypeError(f"metadata must be JSON (dicts, lists, strings, numbers, bools, None); "
                    f"it holds a {type(o).__name__}")


def _class_name(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _document(metadata, obj=None) -> dict:
    import s4tf_py
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict of JSON values, got {type(metadata).__name__}")
    doc: dict = {"format": "s4tf_py.checkpoint", "format_version": FORMAT_VERSION,
                 "s4tf_py_version": getattr(s4tf_py, "__version__", None)}
    if obj is not None and _fields(obj) is not None:
        doc["model_class"] = _class_name(obj)
    if metadata is not None:
        doc["metadata"] = dict(metadata)
    return doc


# ---- writing ----------------------------------------------------------------------------------

def _write_array(f: BinaryIO, arr: np.ndarray) -> None:
    """Write one tensor's bytes (a separate function so tests can interrupt a write here)."""
    f.write(memoryview(arr.reshape(-1).view(np.uint8)))


def _host_array(v, name: str, dtype: np.dtype) -> np.ndarray:
    arr = v._value() if isinstance(v, Tensor) else v
    # little-endian, C order: the layout safetensors prescribes
    return np.ascontiguousarray(arr, dtype=dtype)


def _write_safetensors(f: BinaryIO, tensors: dict, doc: dict, extra=None) -> None:
    entries = []
    for name, v in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be strings, got {name!r}")
        if isinstance(v, Tensor) and v._node.is_abstract:
            raise ConcretizationError(
                f"save: tensor '{name}' is traced (inside s4.compile or a derivative) and has "
                "no value yet; save outside the traced function")
        dtype = np.dtype(v.dtype).newbyteorder("=")
        if dtype not in _CODE:
            raise TypeError(f"save: tensor '{name}' has dtype {v.dtype}, which a checkpoint "
                            f"cannot hold (supported: {', '.join(map(str, _CODE))})")
        shape = tuple(int(d) for d in v.shape)
        entries.append((name, v, shape, dtype, math.prod(shape) * dtype.itemsize))
    # largest items first, then by name: every tensor starts aligned to its item size (the
    # order safetensors' own writer uses, so readers can map tensors without copying)
    entries.sort(key=lambda e: (-e[3].itemsize, e[0]))
    header: dict = {"__metadata__": {**(extra or {}),
                                     METADATA_KEY: json.dumps(doc, default=_json_default)}}
    offset = 0
    for name, _, shape, dtype, nbytes in entries:
        header[name] = {"dtype": _CODE[dtype], "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    hb = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hb += b" " * (-len(hb) % 8)       # data starts 8-byte aligned
    # compute every pending tensor in one run rather than one graph per tensor
    pending = [v._node for v in tensors.values()
               if isinstance(v, Tensor) and v._node.value is None]
    if pending:
        from .lazy import materialize
        materialize(pending)
    f.write(struct.pack("<Q", len(hb)))
    f.write(hb)
    for name, v, shape, dtype, nbytes in entries:
        if nbytes:
            _write_array(f, _host_array(v, name, dtype))   # one host copy at a time


def _fsync_dir(directory: str) -> None:
    # makes the rename itself durable; not possible everywhere (Windows), hence best effort
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through a temporary file in the same folder, fsync, then rename over it."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"cannot write checkpoint '{path}': it is a directory; give a file "
                              "name such as 'model.safetensors'", path)
    directory = os.path.dirname(os.path.abspath(path))
    # same folder: os.replace is atomic only within one file system
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def save(obj, path: PathLike, *, metadata: Mapping | None = None,
         header_metadata: Mapping[str, str] | None = None) -> None:
    """Write ``obj``'s tensors to ``path`` as safetensors, atomically.

    ``obj``: a layer or struct (every tensor field, parameters and ``s4.no_derivative`` state),
    a dict of tensors or numpy arrays, or a nest of dicts, lists and tuples of them; tensors
    are named by key path (``block.0.conv.filter``). ``metadata``: a dict of JSON values
    (step, config, ...), returned by ``load(path).metadata``. All dtypes round-trip exactly
    (bool, int8-64, uint8-64, float16, bfloat16, float32, float64). ``header_metadata``:
    string entries for the file's own ``__metadata__`` map, which other tools read (e.g.
    ``{"format": "pt"}``, which transformers asks of a checkpoint).
    """
    tensors = state_dict(obj)
    doc = _document(metadata, obj)
    extra = dict(header_metadata or {})
    if any(not isinstance(k, str) or not isinstance(v, str) for k, v in extra.items()):
        raise TypeError("save: header_metadata must map strings to strings")
    _atomic_write(path, lambda f: _write_safetensors(f, tensors, doc, extra))


# ---- reading ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Entry:
    shard: "_Shard"
    name: str          # the name inside the file
    dtype: Any         # a numpy dtype, or the code of a dtype no Tensor can hold
    shape: tuple
    start: int         # absolute offset in the file
    nbytes: int


_SIGNATURES = [(b"PK\x03\x04", "a zip archive (a PyTorch .pt/.bin checkpoint?)"),
               (b"\x89HDF\r\n\x1a\n", "an HDF5 file (a Keras .h5 checkpoint?)"),
               (b"\x93NUMPY", "a numpy .npy file"), (b"GGUF", "a GGUF file"),
               (b"\x80", "a Python pickle (a PyTorch or pickle checkpoint?)"),
               (b"{", "a JSON file (a sharded checkpoint's index? pass its folder)")]


def _err(path, problem: str) -> CheckpointError:
    return CheckpointError(f"cannot read checkpoint '{path}': {problem}", path)


def _not_safetensors(path, head: bytes, why: str) -> CheckpointError:
    what = next((w for sig, w in _SIGNATURES if head.startswith(sig)), None)
    kind = f"it looks like {what}" if what else f"it starts with {head[:16]!r}"
    return _err(path, f"not a safetensors file ({why}; {kind})")


class _Shard:
    """One open safetensors file and its parsed header."""

    def __init__(self, path: str):
        self.path = path
        self.file = open(path, "rb")     # noqa: SIM115 - held open: the header must match the data
        try:
            self.entries, self.raw_metadata = self._parse()
        except BaseException:
            self.file.close()
            raise

    def _parse(self):
        f, path = self.file, self.path
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if size < 8:
            return self._fail(_err(path, f"the file is {size} bytes long, too short for a "
                                         "safetensors file (empty or truncated)"))
        (n,) = struct.unpack("<Q", head)
        peek = f.read(min(max(n, 0), 64))
        if n > _MAX_HEADER or n < 2:
            return self._fail(_not_safetensors(path, head, f"its first 8 bytes give a header of "
                                                           f"{n} bytes"))
        if 8 + n > size:
            if peek.startswith(b"{") or not peek:   # a plausible length, then the file ends
                return self._fail(_err(path, f"truncated: its header needs {n} bytes, the file "
                                             f"ends after {size - 8} (a killed writer or an "
                                             "incomplete copy?)"))
            return self._fail(_not_safetensors(path, head, "its header length exceeds the file"))
        if not peek.startswith(b"{"):
            return self._fail(_not_safetensors(path, head, "its header is not a JSON object"))
        f.seek(8)
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return self._fail(_not_safetensors(path, head, f"its header is not valid JSON: {e}"))
        if not isinstance(header, dict):
            return self._fail(_not_safetensors(path, head, "its header is not a JSON object"))
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            return self._fail(_err(path, "its __metadata__ is not a map of strings"))
        entries: dict[str, _Entry] = {}
        spans = []
        for name, e in header.items():
            try:
                code, shape, (begin, end) = e["dtype"], tuple(e["shape"]), e["data_offsets"]
                ok = (isinstance(code, str) and all(type(d) is int and d >= 0 for d in shape)
                      and type(begin) is int and type(end) is int and 0 <= begin <= end)
            except (TypeError, KeyError, ValueError):
                ok = False
            if not ok:
                return self._fail(_err(path, f"corrupt header: bad entry for tensor '{name}': {e!r}"))
            if code in _DTYPE:
                dtype, itemsize = _DTYPE[code], _DTYPE[code].itemsize
            elif code in _FOREIGN_ITEMSIZE:
                dtype, itemsize = code, _FOREIGN_ITEMSIZE[code]
            else:
                return self._fail(_err(path, f"tensor '{name}' has dtype {code!r}, which s4tf_py "
                                             "cannot read"))
            if end - begin != math.prod(shape) * itemsize:
                return self._fail(_err(path, f"corrupt header: tensor '{name}' ({code}{list(shape)}) "
                                             f"needs {math.prod(shape) * itemsize} bytes, its "
                                             f"offsets span {end - begin}"))
            entries[name] = _Entry(self, name, dtype, shape, 8 + n + begin, end - begin)
            spans.append((begin, end, name))
        expected = 0
        for begin, end, name in sorted(spans):
            if begin != expected:
                return self._fail(_err(path, f"corrupt header: tensor '{name}' starts at byte "
                                             f"{begin} of the data, expected {expected}"))
            expected = end
        have = size - 8 - n
        if expected > have:
            return self._fail(_err(path, f"truncated: the header describes {expected} bytes of "
                                         f"tensor data, the file holds {have} (a killed writer "
                                         "or an incomplete copy?)"))
        if expected < have:
            return self._fail(_err(path, f"corrupt: {have - expected} unexpected bytes after the "
                                         "last tensor"))
        return entries, meta

    @staticmethod
    def _fail(err):
        raise err

    def read(self, e: _Entry) -> np.ndarray:
        if not isinstance(e.dtype, np.dtype):
            raise _err(self.path, f"tensor '{e.name}' has dtype {e.dtype}, which no s4tf_py "
                                  "Tensor holds (drop it with name_map=...: None)")
        arr = np.empty(e.shape, e.dtype)        # the one copy: read straight into it
        if e.nbytes:
            self.file.seek(e.start)
            got = self.file.readinto(memoryview(arr.reshape(-1).view(np.uint8)))
            if got != e.nbytes:
                raise _err(self.path, f"truncated while reading tensor '{e.name}' (the file "
                                      "changed after it was opened?)")
        return arr

    def close(self):
        self.file.close()


def _name_fn(name_map: NameMap) -> Callable[[str], Optional[str]]:
    if name_map is None:
        return lambda k: k
    if isinstance(name_map, Mapping):
        return lambda k: name_map.get(k, k)
    if callable(name_map):
        return name_map
    raise TypeError(f"name_map must be a dict or a function of the name, got "
                    f"{type(name_map).__name__}")


def _rename(names, name_map: NameMap, path) -> dict[str, str]:
    """{new name: old name}; names mapped to None are dropped."""
    fn = _name_fn(name_map)
    out: dict[str, str] = {}
    for k in names:
        nk = fn(k)
        if nk is None:
            continue
        if not isinstance(nk, str):
            raise TypeError(f"name_map must give a str or None, gave {nk!r} for '{k}'")
        if nk in out:
            raise CheckpointError(f"name_map maps both '{out[nk]}' and '{k}' of checkpoint "
                                  f"'{path}' to '{nk}'", path)
        out[nk] = k
    return out


def _parse_document(path, raw: dict) -> dict:
    text = raw.get(METADATA_KEY)
    if text is None:
        return {}                       # a foreign file: no s4tf_py document
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise _err(path, f"its '{METADATA_KEY}' metadata is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise _err(path, f"its '{METADATA_KEY}' metadata is not a JSON object")
    version = doc.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise _err(path, f"it was written in checkpoint format {version} by s4tf_py "
                         f"{doc.get('s4tf_py_version')}; this s4tf_py reads format "
                         f"{FORMAT_VERSION} and older: upgrade s4tf_py")
    return doc


def _resolve(path: PathLike) -> tuple[str, bool]:
    """(file to open, whether it is a sharded index)."""
    p = os.fspath(path)
    if os.path.isdir(p):
        if os.path.isfile(os.path.join(p, INDEX_NAME)):
            return os.path.join(p, INDEX_NAME), True
        names = sorted(os.listdir(p))
        indexes = [n for n in names if n.endswith(".safetensors.index.json")]
        if len(indexes) == 1:
            return os.path.join(p, indexes[0]), True
        files = [n for n in names if n.endswith(".safetensors")]
        if len(files) == 1:
            return os.path.join(p, files[0]), False
        raise _err(p, f"it is a directory holding {len(files)} .safetensors files and no "
                      f"{INDEX_NAME}: pass a file, or a folder with an index or exactly one "
                      ".safetensors file")
    return p, p.endswith(".json")


class _Info:
    """What every checkpoint view has: its path and metadata."""

    path: str | None
    document: dict                      # s4tf_py's JSON document ({} for a foreign file)
    raw_metadata: dict                  # safetensors' __metadata__ string map, as stored

    @property
    def metadata(self) -> dict:
        """The ``metadata`` given to :func:`save` (``{}`` when none, or a foreign file)."""
        return self.document.get("metadata", {})

    @property
    def format_version(self) -> int | None:
        return self.document.get("format_version")


class CheckpointReader(_Info, Mapping):
    """A checkpoint opened for reading tensor by tensor (see :func:`open_checkpoint`).

    A read-only mapping of (possibly renamed) key path to Tensor: ``reader[key]`` reads that
    tensor from disk each time. ``shape(key)``/``dtype(key)`` come from the header without
    reading data; ``read_numpy(key)`` gives a fresh numpy array. Close it (or use ``with``).
    """

    def __init__(self, path: PathLike, *, name_map: NameMap = None):
        target, sharded = _resolve(path)
        self.path = target
        self._shards: list[_Shard] = []
        try:
            entries = self._open_index(target) if sharded else self._open_file(target)
            self._names = _rename(entries, name_map, target)
            self._entries = entries
        except BaseException:
            self.close()
            raise

    def _open_file(self, path: str) -> dict[str, _Entry]:
        shard = _Shard(path)
        self._shards.append(shard)
        self.raw_metadata = shard.raw_metadata
        self.document = _parse_document(path, shard.raw_metadata)
        return shard.entries

    def _open_index(self, path: str) -> dict[str, _Entry]:
        try:
            with open(path, encoding="utf-8") as f:
                index = json.load(f)
        except (UnicodeDecodeError, ValueError) as e:
            raise _err(path, f"not a sharded-checkpoint index (invalid JSON: {e})") from None
        wmap = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(wmap, dict) or not all(isinstance(v, str) for v in wmap.values()):
            raise _err(path, "not a sharded-checkpoint index (no \"weight_map\" of tensor "
                             "name to file name)")
        folder = os.path.dirname(os.path.abspath(path))
        shards: dict[str, _Shard] = {}
        for fname in sorted(set(wmap.values())):
            if os.path.isabs(fname) or ".." in fname.replace("\\", "/").split("/"):
                raise _err(path, f"the index names the shard '{fname}' outside its folder")
            shard = _Shard(os.path.join(folder, fname))
            self._shards.append(shard)
            shards[fname] = shard
        entries: dict[str, _Entry] = {}
        for name, fname in wmap.items():
            e = shards[fname].entries.get(name)
            if e is None:
                raise _err(path, f"the index puts tensor '{name}' in shard '{fname}', which does "
                                 "not hold it")
            entries[name] = e
        first = next((s for s in self._shards if METADATA_KEY in s.raw_metadata),
                     self._shards[0] if self._shards else None)
        self.raw_metadata = dict(first.raw_metadata) if first else {}
        self.document = _parse_document(first.path if first else path, self.raw_metadata)
        return entries

    # Mapping
    def __getitem__(self, key: str) -> Tensor:
        return self.read(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, key) -> bool:
        return key in self._names

    def _entry(self, key: str) -> _Entry:
        try:
            return self._entries[self._names[key]]
        except KeyError:
            raise KeyError(f"checkpoint '{self.path}' has no tensor '{key}'") from None

    def shape(self, key: str) -> tuple:
        """The tensor's shape, from the header (reads no data)."""
        return self._entry(key).shape

    def dtype(self, key: str):
        """The tensor's dtype (a numpy dtype, or the safetensors code of one s4tf_py lacks)."""
        return self._entry(key).dtype

    def read_numpy(self, key: str) -> np.ndarray:
        """A fresh, writable numpy array holding the tensor (read from disk now)."""
        if self._shards and self._shards[0].file.closed:
            raise ValueError(f"checkpoint '{self.path}' is closed")
        e = self._entry(key)
        return e.shard.read(e)

    def read(self, key: str, device: Device | None = None) -> Tensor:
        """The tensor as a Tensor on ``device`` (the default device when None)."""
        return _adopt(self.read_numpy(key), device)

    def close(self) -> None:
        for s in self._shards:
            s.close()

    def __enter__(self) -> "CheckpointReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self):
        return f"CheckpointReader({self.path!r}, {len(self)} tensors)"


def _adopt(arr: np.ndarray, device: Device | None) -> Tensor:
    """A Tensor owning ``arr``, a fresh array nobody else holds (no second copy, unlike
    ``Tensor(arr)``, which must copy to keep the caller's array apart)."""
    return wrap(graph.leaf(arr, arr.shape, arr.dtype, False, device or get_default_device()))


def open_checkpoint(path: PathLike, *, name_map: NameMap = None) -> CheckpointReader:
    """Open a checkpoint for lazy reading: a file, a folder with ``model.safetensors.index.json``
    (sharded; Hugging Face's layout) or with one ``.safetensors`` file, or an index file.

    ``name_map`` renames the file's keys: a dict (names it lacks stay as they are) or a function
    of the name; a name mapped to None is dropped (S4TF's ``tensorNameMap`` and
    ``ignoredTensorPaths``). Errors: :class:`CheckpointError` for a truncated, corrupt or foreign
    file or an unusable folder; ``FileNotFoundError`` when nothing is there.
    """
    return CheckpointReader(path, name_map=name_map)


class Checkpoint(_Info, Mapping):
    """What :func:`load` returns: a read-only mapping of key path to Tensor, with ``metadata``
    (what was given to :func:`save`), ``document`` (s4tf_py's whole JSON block: format and
    library versions, model class, training state) and ``raw_metadata`` (safetensors'
    ``__metadata__`` map, for foreign files)."""

    def __init__(self, tensors: Mapping, *, path=None, document=None, raw_metadata=None):
        self._tensors = dict(tensors)
        self.path = path
        self.document = dict(document or {})
        self.raw_metadata = dict(raw_metadata or {})

    def __getitem__(self, key: str) -> Tensor:
        return self._tensors[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __repr__(self):
        return f"Checkpoint({self.path!r}, {len(self)} tensors, metadata={self.metadata!r})"


def load(path: PathLike, *, name_map: NameMap = None, device: Device | None = None) -> Checkpoint:
    """Read a whole checkpoint: a :class:`Checkpoint` (key path -> Tensor, plus ``metadata``).

    Accepts what :func:`open_checkpoint` accepts; tensors go to ``device`` (default: the
    default device). To fill a model without holding a second copy, use
    ``model.load_state(path)``, which streams.
    """
    with open_checkpoint(path, name_map=name_map) as r:
        tensors = {k: r.read(k, device) for k in r}
        return Checkpoint(tensors, path=r.path, document=r.document, raw_metadata=r.raw_metadata)


# ---- loading into a model ---------------------------------------------------------------------

def _type_str(shape, dtype) -> str:
    name = dt.SHORT_NAME.get(dtype, str(dtype)) if isinstance(dtype, np.dtype) else str(dtype)
    return f"{name}[{','.join(map(str, shape))}]"


class Mismatch(NamedTuple):
    """A key whose shape or dtype differs between the model and the checkpoint."""
    key: str
    model_shape: tuple
    model_dtype: Any
    checkpoint_shape: tuple
    checkpoint_dtype: Any

    def __str__(self):
        return (f"{self.key}: model {_type_str(self.model_shape, self.model_dtype)}, "
                f"checkpoint {_type_str(self.checkpoint_shape, self.checkpoint_dtype)}")


@dataclasses.dataclass
class LoadReport:
    """What ``load_state`` did: ``loaded`` keys; ``missing`` (in the model, not the checkpoint:
    kept their values); ``unexpected`` (in the checkpoint, not the model: ignored);
    ``mismatched`` (:class:`Mismatch`: kept their values); ``cast`` (loaded with a float dtype
    converted to the model's, e.g. a bfloat16 checkpoint into a float32 model)."""

    loaded: list = dataclasses.field(default_factory=list)
    missing: list = dataclasses.field(default_factory=list)
    unexpected: list = dataclasses.field(default_factory=list)
    mismatched: list = dataclasses.field(default_factory=list)
    cast: list = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every key matched (nothing missing, unexpected or mismatched)."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self):
        return (f"loaded {len(self.loaded)}, missing {len(self.missing)}, unexpected "
                f"{len(self.unexpected)}, mismatched {len(self.mismatched)}")


class _Source:
    """What load_state reads from: {key: (shape, dtype)} and a function reading one key."""

    def __init__(self, infos: dict, read: Callable, owned: bool, path):
        self.infos, self.read, self.owned, self.path = infos, read, owned, path


def _reader_source(reader: CheckpointReader, name_map: NameMap = None) -> _Source:
    names = _rename(list(reader), name_map, reader.path)
    infos = {nk: (reader.shape(k), reader.dtype(k)) for nk, k in names.items()}
    return _Source(infos, lambda nk: reader.read_numpy(names[nk]), True, reader.path)


def _as_source(source, name_map: NameMap) -> _Source:
    if isinstance(source, CheckpointReader):
        return _reader_source(source, name_map)
    flat = state_dict(source)
    names = _rename(list(flat), name_map, getattr(source, "path", None))
    infos = {nk: (tuple(flat[k].shape), np.dtype(flat[k].dtype)) for nk, k in names.items()}
    return _Source(infos, lambda nk: flat[names[nk]], False, getattr(source, "path", None))


def _compare(model: dict, src: _Source) -> LoadReport:
    report = LoadReport()
    for k, v in model.items():
        if k not in src.infos:
            report.missing.append(k)
            continue
        shape, dtype = src.infos[k]
        same_dtype = isinstance(dtype, np.dtype) and dtype == v.dtype
        castable = dt.is_floating(v.dtype) and isinstance(dtype, np.dtype) and dt.is_floating(dtype)
        if tuple(shape) == tuple(v.shape) and (same_dtype or castable):
            report.loaded.append(k)
            if not same_dtype:
                report.cast.append(k)
        else:
            report.mismatched.append(Mismatch(k, tuple(v.shape), v.dtype, tuple(shape), dtype))
    report.unexpected = [k for k in src.infos if k not in model]
    return report


def _prefix_hint(missing: list, unexpected: list) -> str | None:
    """A name_map suggestion when one side's names are the other's with a prefix."""
    def find(longer, shorter):
        short = set(shorter)
        parts = longer[0].split(".")
        for i in range(1, len(parts)):
            p = ".".join(parts[:i]) + "."
            if sum(1 for x in longer if x.startswith(p) and x[len(p):] in short) >= \
                    max(1, len(short) // 2):
                return p
        return None
    if not missing or not unexpected:
        return None
    p = find(unexpected, missing)
    if p:
        return (f"the checkpoint's names are the model's with the prefix '{p}': pass "
                f"name_map=lambda k: k[{len(p)}:] if k.startswith('{p}') else None")
    p = find(missing, unexpected)
    if p:
        return (f"the model's names are the checkpoint's with the prefix '{p}': pass "
                f"name_map=lambda k: '{p}' + k")
    return None


def _mismatch_message(report: LoadReport, model: dict, src: _Source, what: str) -> str:
    limit = 20

    def section(title, items):
        if not items:
            return []
        lines = [f"  {title} ({len(items)}):"]
        lines += [f"    {x}" for x in items[:limit]]
        if len(items) > limit:
            lines.append(f"    ... and {len(items) - limit} more")
        return lines
    lines = [f"checkpoint '{src.path}' does not match {what}: {len(report.missing)} missing, "
             f"{len(report.unexpected)} unexpected, {len(report.mismatched)} mismatched key(s)"]
    lines += section("missing (in the model, not in the checkpoint)",
                     [f"{k} {_type_str(model[k].shape, model[k].dtype)}" for k in report.missing])
    lines += section("unexpected (in the checkpoint, not in the model)",
                     [f"{k} {_type_str(*src.infos[k])}" for k in report.unexpected])
    lines += section("mismatched", [str(m) for m in report.mismatched])
    hint = _prefix_hint(report.missing, report.unexpected)
    if hint:
        lines.append(f"  hint: {hint}")
    lines.append(f"  (strict=False loads the {len(report.loaded)} matching tensor(s) and returns "
                 "this report)")
    return "\n".join(lines)


def _convert(value, old, owned: bool):
    """The loaded ``value`` as the kind, dtype and device of the model's ``old`` value."""
    dtype = old.dtype
    if isinstance(old, Tensor):
        if isinstance(value, Tensor):
            v = value.astype(dtype) if value.dtype != dtype else value.copy()
            return v if v.device == old.device else v.to(old.device)
        if owned:
            return _adopt(value if value.dtype == dtype else value.astype(dtype), old.device)
        return Tensor(value, dtype=dtype, device=old.device)
    return np.array(value, dtype=dtype, copy=not owned or value.dtype != dtype)


def _load_into(obj, source, strict: bool, name_map: NameMap, what: str | None = None):
    """(obj with its tensors replaced, report). Validates everything before changing anything,
    then reads one tensor at a time."""
    own = None
    if isinstance(source, (str, os.PathLike)):
        own = source = open_checkpoint(source)
    try:
        src = _as_source(source, name_map)
        model = state_dict(obj)
        report = _compare(model, src)
        if strict and not report.ok:
            raise CheckpointMismatchError(
                _mismatch_message(report, model, src, what or type(obj).__name__),
                src.path, report)
        take = set(report.loaded)

        def fetch(key, old):
            return _convert(src.read(key), old, src.owned) if key in take else old
        return _rebuild(obj, "", fetch), report
    finally:
        if own is not None:
            own.close()


def load_state(obj, source, strict: bool = True, *, name_map: NameMap = None) -> LoadReport:
    """Set the tensors of the layer or struct ``obj`` from ``source``, in place; returns a
    :class:`LoadReport`. This is ``Layer.load_state``; see it for the details."""
    if _fields(obj) is None:
        raise TypeError(f"load_state updates a layer or struct in place; for a "
                        f"{type(obj).__name__} use load(path) and build the value from it")
    _, report = _load_into(obj, source, strict, name_map)
    return report


# ---- training state -------------------------------------------------------------------------

def _scalar_key(k) -> bool:
    return k is None or isinstance(k, (bool, int, float, str))


def _encode(v, path: str, tensors: dict):
    """JSON for ``v``, with its tensors and arrays moved to ``tensors`` under key paths."""
    if isinstance(v, Tensor):
        _put(tensors, path, v)
        return {"__tensor__": path}
    if isinstance(v, np.ndarray):
        _put(tensors, path, v)
        return {"__ndarray__": path}
    if isinstance(v, np.generic):
        _put(tensors, path, np.asarray(v))
        return {"__npscalar__": path}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    names = _fields(v)
    if names is not None:
        return {"__struct__": _class_name(v),
                "fields": {n: _encode(getattr(v, n, None), _join(path, n), tensors)
                           for n in names}}
    if isinstance(v, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in v):
            return {k: _encode(x, _join(path, k), tensors) for k, x in v.items()}
        bad = next((k for k in v if not _scalar_key(k)), None)
        if bad is not None:
            raise TypeError(f"cannot store the dict at '{path}': its key {bad!r} is not a "
                            "string, number, bool or None")
        # typed keys (an optimizer's {0: {...}}) survive as a list of pairs
        return {"__dict__": [[k, _encode(x, _join(path, k), tensors)] for k, x in v.items()]}
    if isinstance(v, tuple):
        return {"__tuple__": [_encode(x, _join(path, i), tensors) for i, x in enumerate(v)]}
    if isinstance(v, list):
        return [_encode(x, _join(path, i), tensors) for i, x in enumerate(v)]
    raise TypeError(f"cannot store the {type(v).__name__} at '{path}' in a checkpoint: training "
                    "state holds tensors, arrays, numbers, strings, None, and dicts, lists, "
                    "tuples and structs of them")


def _child(template, k):
    if isinstance(template, Mapping):
        return template.get(k)
    if isinstance(template, (list, tuple)) and isinstance(k, int) and k < len(template):
        return template[k]
    return None


def _decode(j, template, reader: CheckpointReader, device, bad: list, path: str):
    """Rebuild what :func:`_encode` stored. ``template`` (the live object's current state)
    gives struct classes, devices, and the shapes to check against."""
    if isinstance(j, list):
        return [_decode(x, _child(template, i), reader, device, bad, _join(path, i))
                for i, x in enumerate(j)]
    if not isinstance(j, dict):
        return j
    for marker in ("__tensor__", "__ndarray__", "__npscalar__"):
        if marker in j and len(j) == 1:
            arr = reader.read_numpy(j[marker])
            if isinstance(template, (Tensor, np.ndarray)) and (
                    tuple(template.shape) != arr.shape or template.dtype != arr.dtype):
                bad.append(Mismatch(path, tuple(template.shape), template.dtype, arr.shape,
                                    arr.dtype))
            if marker == "__ndarray__":
                return arr
            if marker == "__npscalar__":
                return arr[()]
            return _adopt(arr, template.device if isinstance(template, Tensor) else device)
    if "__tuple__" in j and len(j) == 1:
        return tuple(_decode(x, _child(template, i), reader, device, bad, _join(path, i))
                     for i, x in enumerate(j["__tuple__"]))
    if "__dict__" in j and len(j) == 1:
        return {k: _decode(x, _child(template, k), reader, device, bad, _join(path, k))
                for k, x in j["__dict__"]}
    if "__struct__" in j and "fields" in j and len(j) == 2:
        fields = {n: _decode(x, getattr(template, n, None), reader, device, bad, _join(path, n))
                  for n, x in j["fields"].items()}
        if template is None:
            return fields        # no live object to say which class: the fields as a dict
        if _fields(template) is None or _class_name(template) != j["__struct__"]:
            raise CheckpointError(
                f"checkpoint '{reader.path}' holds a {j['__struct__']} at '{path}', where the "
                f"object being restored has a {type(template).__name__}", reader.path)
        obj = copy.copy(template)
        for n, x in fields.items():
            object.__setattr__(obj, n, x)
        return obj
    return {k: _decode(x, _child(template, k), reader, device, bad, _join(path, k))
            for k, x in j.items()}


@dataclasses.dataclass
class TrainingState:
    """What :func:`load_training_state` restored. ``model`` is the model given (updated in
    place; a new value when it was a dict), ``report`` its :class:`LoadReport`."""

    step: int | None
    rng: Any
    extra: Any
    metadata: dict
    model: Any = None
    report: LoadReport | None = None


def save_training_state(path: PathLike, *, model, optimizer=None, step: int | None = None,
                        rng=None, extra=None, metadata: Mapping | None = None) -> None:
    """Write everything a run needs to resume exactly, atomically, in one safetensors file.

    ``model``'s tensors go under ``model.`` and the tensors of ``optimizer.state_dict()``
    (any object with ``state_dict()``/``load_state_dict()``) under ``optimizer.``; the
    non-tensor parts (step counts, hyperparameters, the structure) go to the JSON metadata.
    ``rng`` (a key Tensor, a numpy Generator's ``bit_generator.state``, ...) and ``extra``
    (anything of tensors, arrays, numbers, strings, lists, tuples, dicts) are stored the same
    way. Read back with :func:`load_training_state`.
    """
    tensors = state_dict(model, prefix="model.")
    training: dict = {"step": None if step is None else int(step)}
    if optimizer is not None:
        training["optimizer_class"] = _class_name(optimizer)
        training["optimizer"] = _encode(optimizer.state_dict(), "optimizer", tensors)
    training["rng"] = _encode(rng, "rng", tensors)
    training["extra"] = _encode(extra, "extra", tensors)
    doc = _document(metadata, model)
    doc["training"] = training
    _atomic_write(path, lambda f: _write_safetensors(f, tensors, doc))


def load_training_state(path: PathLike, *, model=None, optimizer=None, strict: bool = True,
                        device: Device | None = None) -> TrainingState:
    """Restore what :func:`save_training_state` wrote: sets ``model``'s tensors (as
    ``load_state`` does, ``strict`` likewise) and calls ``optimizer.load_state_dict(state)``
    with the saved state rebuilt (its tensors on the devices of the optimizer's current ones,
    else ``device``). Nothing is changed unless the model's and the optimizer's tensors all
    fit. Returns a :class:`TrainingState` (step, rng, extra, metadata, model, report).
    """
    with open_checkpoint(path) as r:
        training = r.document.get("training")
        if not isinstance(training, dict):
            raise _err(r.path, "it holds no training state (it was not written by "
                               "save_training_state); load a model from it with "
                               "model.load_state(path)")
        opt_state = None
        if optimizer is not None:
            if training.get("optimizer") is None:
                raise _err(r.path, "it holds no optimizer state (saved without optimizer=)")
            bad: list = []
            opt_state = _decode(training["optimizer"], optimizer.state_dict(), r, device, bad,
                                "optimizer")
            if bad:
                report = LoadReport(mismatched=bad)
                raise CheckpointMismatchError(
                    f"checkpoint '{r.path}': the optimizer state does not fit "
                    f"{type(optimizer).__name__}'s current state:\n" +
                    "\n".join(f"  {m}" for m in bad), r.path, report)
        rng = _decode(training.get("rng"), None, r, device, [], "rng")
        extra = _decode(training.get("extra"), None, r, device, [], "extra")
        new_model, report = model, None
        if model is not None:
            prefix = "model."
            new_model, report = _load_into(
                model, r, strict, lambda k: k[len(prefix):] if k.startswith(prefix) else None)
        if opt_state is not None:
            optimizer.load_state_dict(opt_state)
        return TrainingState(step=training.get("step"), rng=rng, extra=extra,
                             metadata=r.metadata, model=new_model, report=report)
