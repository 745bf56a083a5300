"""Checkpoints (s4tf_py/checkpoint.py): safetensors with key-path names, exact dtype round trips,
layer state vs parameters, atomic writes (a SIGKILLed writer), clear errors for truncated and
foreign files, strict/non-strict loading, name maps, sharded folders, value semantics, and
training state (model + optimizer + step + RNG) that resumes a run bit for bit."""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import zipfile

import ml_dtypes
import numpy as np
import pytest
import safetensors
import safetensors.numpy

import s4tf_py as s4
from s4tf_py import checkpoint
from s4tf_py.checkpoint import CheckpointError, CheckpointMismatchError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def same_bytes(a, b) -> bool:
    """Bitwise equality (NaNs, -0.0 and subnormals included), with dtype and shape."""
    a, b = np.asarray(a), np.asarray(b)
    return (a.dtype == b.dtype and a.shape == b.shape
            and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())


# ---- small layers ---------------------------------------------------------------------------

class Block(s4.nn.Layer):
    dense: s4.nn.Dense
    running_mean: s4.Tensor = s4.no_derivative(default=None)   # state, not a parameter
    count: s4.Tensor = s4.no_derivative(default=None)          # integer state
    momentum: float = s4.no_derivative(default=0.9)            # configuration: not saved

    def __call__(self, x):
        return self.dense(x) - self.running_mean


class Net(s4.nn.Layer):
    block: list
    head: s4.nn.Dense
    extras: dict
    frozen: s4.nn.Dense = s4.no_derivative(default=None)       # a frozen sub-layer: state too

    def __call__(self, x):
        for b in self.block:
            x = s4.tanh(b(x))
        return self.head(x)


def make_net(seed: int, width: int = 3) -> Net:
    rng = np.random.default_rng(seed)
    blocks = [Block(dense=s4.nn.Dense(width, width, seed=seed + i),
                    running_mean=s4.Tensor(rng.standard_normal(width).astype(np.float32)),
                    count=s4.Tensor(np.array(seed + i, np.int64)))
              for i in range(2)]
    return Net(block=blocks, head=s4.nn.Dense(width, 2, seed=seed + 10),
               extras={"scale": s4.Tensor(rng.standard_normal(2).astype(np.float32))},
               frozen=s4.nn.Dense(2, 2, seed=seed + 20))


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert same_bytes(sa[k].numpy(), sb[k].numpy()), k


# ---- round trips ----------------------------------------------------------------------------

def _every_dtype() -> dict:
    rng = np.random.default_rng(0)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, 3.0e38, -1.5]
    out = {
        "bool": np.array([True, False, True]),
        "f16": np.array(specials[:6] + [6.1e-5, 65504.0], np.float16),
        "bf16": np.array(specials + [1.0 / 3.0], ml_dtypes.bfloat16),
        "f32": np.array(specials + [np.float32(1) / 3], np.float32),
        "f64": np.array(specials + [5e-324, 1 / 3], np.float64),
        "scalar": np.array(2.5, np.float32),
        "empty": np.zeros((0, 3), np.float32),
        "matrix": rng.standard_normal((3, 5)).astype(np.float32),
    }
    for d in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64):
        info = np.iinfo(d)
        out[np.dtype(d).name] = np.array([info.min, info.max, 0, 1], d)
    return out


def test_every_dtype_round_trips_exactly_with_metadata(tmp_path):
    arrays = _every_dtype()
    tensors = {k: s4.Tensor(v) for k, v in arrays.items()}
    path = tmp_path / "all.safetensors"
    meta = {"step": 7, "config": {"lr": 0.001, "layers": [2, 3]}, "note": "ünïcode"}
    checkpoint.save(tensors, path, metadata=meta)
    ck = checkpoint.load(path)
    assert isinstance(ck, checkpoint.Checkpoint)
    assert sorted(ck) == sorted(arrays)
    for k, v in arrays.items():
        assert isinstance(ck[k], s4.Tensor)
        assert same_bytes(ck[k].numpy(), v), k
    assert ck.metadata == meta
    assert ck.document["format_version"] == checkpoint.FORMAT_VERSION
    assert ck.document["s4tf_py_version"] == s4.__version__
    # numpy arrays are accepted as they are, and come back as Tensors
    checkpoint.save(arrays, tmp_path / "np.safetensors")
    ck2 = checkpoint.load(tmp_path / "np.safetensors")
    assert all(same_bytes(ck2[k].numpy(), v) for k, v in arrays.items())
    assert ck2.metadata == {}


def test_files_are_plain_safetensors_both_ways(tmp_path):
    arrays = _every_dtype()
    ours = tmp_path / "ours.safetensors"
    checkpoint.save(arrays, ours, metadata={"step": 3})
    # the reference implementation reads what we write (bfloat16 included)
    with safetensors.safe_open(str(ours), framework="numpy") as f:
        assert sorted(f.keys()) == sorted(arrays)
        for k, v in arrays.items():
            assert same_bytes(f.get_tensor(k), v), k
        doc = json.loads(f.metadata()[checkpoint.METADATA_KEY])
        assert doc["metadata"] == {"step": 3}
    # and we read what it writes, with its metadata kept as raw strings
    theirs = tmp_path / "theirs.safetensors"
    safetensors.numpy.save_file(arrays, str(theirs), metadata={"format": "pt"})
    ck = checkpoint.load(theirs)
    assert all(same_bytes(ck[k].numpy(), v) for k, v in arrays.items())
    assert ck.raw_metadata == {"format": "pt"} and ck.metadata == {}


def test_state_dict_is_parameters_plus_state_with_key_paths():
    net = make_net(0)
    params = net.named_parameters()
    state = net.state_dict()
    names = [n for n, _ in params]
    assert names == ["block.0.dense.weight", "block.0.dense.bias", "block.1.dense.weight",
                     "block.1.dense.bias", "head.weight", "head.bias", "extras.scale"]
    # same names, same tensors; plus the no_derivative tensors (running stats, counts, frozen)
    for n, t in params:
        assert state[n] is t
    assert set(state) - set(names) == {
        "block.0.running_mean", "block.0.count", "block.1.running_mean", "block.1.count",
        "frozen.weight", "frozen.bias"}
    assert all(isinstance(t, s4.Tensor) for t in state.values())
    assert list(net.state_dict(prefix="model."))[0] == "model.block.0.dense.weight"


def test_nested_layer_round_trip_loads_every_tensor_including_state(tmp_path):
    a, b = make_net(1), make_net(50)
    path = tmp_path / "net.safetensors"
    checkpoint.save(a, path, metadata={"epoch": 2})
    ck = checkpoint.load(path)
    assert set(ck) == set(a.state_dict())
    assert ck.document["model_class"].endswith("Net")
    report = b.load_state(path)
    assert report.ok and sorted(report.loaded) == sorted(a.state_dict())
    assert_same_state(a, b)
    x = s4.ones((4, 3))
    assert same_bytes(a(x).numpy(), b(x).numpy())
    # configuration fields are not tensors: untouched, not saved
    assert b.block[0].momentum == 0.9 and "block.0.momentum" not in ck
    # the integer state kept its dtype
    assert b.block[1].count.dtype == s4.int64 and b.block[1].count.item() == 2


def test_load_state_from_mappings_readers_and_layers():
    a = make_net(2)
    for source in (a.state_dict(), {k: np.asarray(v) for k, v in a.state_dict().items()}, a):
        b = make_net(60)
        assert b.load_state(source).ok
        assert_same_state(a, b)


def test_bfloat16_layer_and_float_cast_on_load(tmp_path):
    a = s4.nn.Dense(3, 4, seed=0, dtype=s4.bfloat16)
    checkpoint.save(a, tmp_path / "bf16.safetensors")
    b = s4.nn.Dense(3, 4, seed=1, dtype=s4.bfloat16)
    b.load_state(tmp_path / "bf16.safetensors")
    assert b.weight.dtype == s4.bfloat16 and same_bytes(a.weight.numpy(), b.weight.numpy())
    # a bfloat16 checkpoint into a float32 model: converted (exactly: f32 holds every bf16)
    c = s4.nn.Dense(3, 4, seed=2)
    report = c.load_state(tmp_path / "bf16.safetensors")
    assert report.ok and sorted(report.cast) == ["bias", "weight"]
    assert c.weight.dtype == s4.float32
    assert same_bytes(c.weight.numpy(), a.weight.numpy().astype(np.float32))


def test_loaded_tensors_keep_the_models_device(tmp_path):
    a = s4.nn.Dense(2, 2, seed=0)
    checkpoint.save(a, tmp_path / "d.safetensors")
    ref = s4.Device("reference")
    with s4.default_device(ref):
        b = s4.nn.Dense(2, 2, seed=1)
    assert b.weight.device == ref
    b.load_state(tmp_path / "d.safetensors")
    assert b.weight.device == ref and same_bytes(b.weight.numpy(), a.weight.numpy())
    ck = checkpoint.load(tmp_path / "d.safetensors", device=ref)
    assert ck["weight"].device == ref


# ---- value semantics ------------------------------------------------------------------------

def test_load_state_has_value_semantics(tmp_path):
    a, b = make_net(3), make_net(70)
    path = tmp_path / "v.safetensors"
    checkpoint.save(a, path)
    held_weight = b.head.weight                 # a tensor held elsewhere
    held_before = np.array(held_weight.numpy())
    held_list = b.block                         # the model's list object
    first_block = b.block[0]
    b.load_state(path)
    # the model changed; what was held elsewhere did not
    assert same_bytes(b.head.weight.numpy(), a.head.weight.numpy())
    assert same_bytes(held_weight.numpy(), held_before)
    assert b.block[0] is first_block            # layers are updated in place, like move(along=)
    assert held_list is b.block
    # writing into the model afterwards changes neither the source model nor a loaded checkpoint
    ck = checkpoint.load(path)
    src = a.state_dict()
    c = make_net(80)
    c.load_state(ck)
    c.head.weight[0, 0] = 123.0
    assert ck["head.weight"].numpy()[0, 0] != 123.0
    assert src["head.weight"].numpy()[0, 0] != 123.0
    c.load_state(src)
    c.head.weight[0, 1] = -5.0
    assert a.head.weight.numpy()[0, 1] != -5.0


def test_save_snapshots_the_value_at_save_time(tmp_path):
    t = s4.Tensor([1.0, 2.0])
    path = tmp_path / "s.safetensors"
    checkpoint.save({"t": t}, path)
    t[0] = 9.0
    assert checkpoint.load(path)["t"].tolist() == [1.0, 2.0]


# ---- atomic writes --------------------------------------------------------------------------

_CHILD = r"""
import os, sys, time
import numpy as np
from s4tf_py import checkpoint

def half_then_hang(f, arr):
    data = arr.reshape(-1).view(np.uint8)
    f.write(memoryview(data[: len(data) // 2]))
    f.flush()
    os.fsync(f.fileno())
    print("HALF", flush=True)      # the parent kills us now, mid-write
    time.sleep(600)

checkpoint._write_array = half_then_hang
checkpoint.save({"w": np.full((4096,), 2.0, np.float32)}, sys.argv[1], metadata={"gen": 2})
print("FINISHED", flush=True)
"""


def test_a_writer_killed_mid_write_leaves_the_old_checkpoint(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    checkpoint.save({"w": np.full((4096,), 1.0, np.float32)}, path, metadata={"gen": 1})
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, child.kill)   # never hang the suite if the child does
    watchdog.start()
    try:
        line = child.stdout.readline()
        assert line.strip() == "HALF", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        watchdog.cancel()
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    # the final name still holds the old, complete checkpoint
    ck = checkpoint.load(path)
    assert ck.metadata == {"gen": 1} and np.all(ck["w"].numpy() == 1.0)
    # the killed writer's temporary file is a half checkpoint, refused as truncated
    temps = [n for n in os.listdir(tmp_path) if n != "ckpt.safetensors"]
    assert len(temps) == 1 and temps[0].startswith(".ckpt.safetensors.")
    with pytest.raises(CheckpointError, match="truncated"):
        checkpoint.load(tmp_path / temps[0])
    # a later save replaces the checkpoint normally
    checkpoint.save({"w": np.full((4096,), 3.0, np.float32)}, path)
    assert np.all(checkpoint.load(path)["w"].numpy() == 3.0)


def test_a_failure_before_the_rename_keeps_the_old_file_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    checkpoint.save({"w": np.zeros(3, np.float32)}, path, metadata={"gen": 1})
    assert os.listdir(tmp_path) == ["m.safetensors"]          # no stray temporary file

    def no_rename(src, dst):
        raise OSError("simulated crash between write and rename")
    monkeypatch.setattr(checkpoint.os, "replace", no_rename)
    with pytest.raises(OSError, match="simulated"):
        checkpoint.save({"w": np.ones(3, np.float32)}, path, metadata={"gen": 2})
    monkeypatch.undo()

    def broken_write(f, arr):
        f.write(b"\0" * 5)
        raise RuntimeError("simulated failure mid-write")
    monkeypatch.setattr(checkpoint, "_write_array", broken_write)
    with pytest.raises(RuntimeError, match="mid-write"):
        checkpoint.save({"w": np.ones(3, np.float32)}, path, metadata={"gen": 3})
    monkeypatch.undo()
    ck = checkpoint.load(path)
    assert ck.metadata == {"gen": 1} and ck["w"].tolist() == [0.0, 0.0, 0.0]
    assert os.listdir(tmp_path) == ["m.safetensors"]


# ---- bad input ------------------------------------------------------------------------------

def _good_file(tmp_path) -> bytes:
    p = tmp_path / "good.safetensors"
    checkpoint.save({"a": np.arange(16, dtype=np.float32), "b": np.ones((2, 2), np.int64)}, p)
    return p.read_bytes()


@pytest.mark.parametrize("cut", ["empty", "in_length", "in_header", "in_data", "last_byte"])
def test_truncated_files_give_a_clear_error(tmp_path, cut):
    data = _good_file(tmp_path)
    (n,) = struct.unpack("<Q", data[:8])
    keep = {"empty": 0, "in_length": 5, "in_header": 8 + n // 2, "in_data": 8 + n + 20,
            "last_byte": len(data) - 1}[cut]
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:keep])
    with pytest.raises(CheckpointError) as ei:
        checkpoint.load(path)
    msg = str(ei.value)
    assert str(path) in msg and ei.value.path == str(path)
    assert ("truncated" in msg) or ("too short" in msg), msg
    assert isinstance(ei.value, s4.S4TFError) and isinstance(ei.value, ValueError)
    with pytest.raises(CheckpointError):
        s4.nn.Dense(2, 2).load_state(path)


def test_foreign_files_give_a_clear_error(tmp_path):
    z = tmp_path / "model.pt"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("archive/data.pkl", b"x" * 100)
    pk = tmp_path / "weights.pkl"
    pk.write_bytes(pickle.dumps({"w": list(range(100))}, protocol=4))
    txt = tmp_path / "notes.safetensors"
    txt.write_text("these are not the tensors you are looking for\n" * 3)
    npy = tmp_path / "a.npy"
    np.save(npy, np.arange(50))
    cases = {z: "zip", pk: "pickle", txt: "not a safetensors file", npy: "npy"}
    for path, word in cases.items():
        with pytest.raises(CheckpointError) as ei:
            checkpoint.load(path)
        msg = str(ei.value)
        assert str(path) in msg and "not a safetensors file" in msg and word in msg, msg


def test_corrupt_headers_give_a_clear_error(tmp_path):
    def write(header: dict, data: bytes, name: str):
        hb = json.dumps(header).encode()
        p = tmp_path / name
        p.write_bytes(struct.pack("<Q", len(hb)) + hb + data)
        return p
    bad_size = write({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8,
                     "size.safetensors")
    hole = write({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8,
                 "hole.safetensors")
    extra = write({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 12,
                  "extra.safetensors")
    dtype = write({"a": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4,
                  "dtype.safetensors")
    for p, word in [(bad_size, "needs 12 bytes"), (hole, "starts at byte 4"),
                    (extra, "unexpected bytes"), (dtype, "Q7")]:
        with pytest.raises(CheckpointError, match=word) as ei:
            checkpoint.load(p)
        assert str(p) in str(ei.value)


def test_directories_and_missing_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="directory") as ei:
        checkpoint.load(empty)
    assert str(empty) in str(ei.value)
    with pytest.raises(CheckpointError, match="directory"):
        checkpoint.save({"a": np.zeros(2)}, empty)
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        checkpoint.load(tmp_path / "nothing-here.safetensors")
    # a folder holding exactly one checkpoint file loads it
    one = tmp_path / "one"
    one.mkdir()
    checkpoint.save({"a": np.arange(3.0)}, one / "model.safetensors")
    assert checkpoint.load(one)["a"].tolist() == [0.0, 1.0, 2.0]


def test_bad_values_to_save(tmp_path):
    with pytest.raises(TypeError, match="lr"):
        checkpoint.save({"w": np.zeros(2), "lr": 0.1}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="name"):
        checkpoint.save(s4.zeros((2,)), tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="JSON"):
        checkpoint.save({"w": np.zeros(2)}, tmp_path / "x.safetensors", metadata={"f": object()})
    with pytest.raises(TypeError, match="Tensor"):
        checkpoint.save({"w": np.zeros(2)}, tmp_path / "x.safetensors",
                        metadata={"f": s4.zeros(())})
    with pytest.raises(ValueError, match="a.b"):
        checkpoint.save({"a.b": np.zeros(1), "a": {"b": np.zeros(1)}}, tmp_path / "x.safetensors")
    assert os.listdir(tmp_path) == []


def test_a_newer_format_is_refused(tmp_path):
    doc = {"format_version": checkpoint.FORMAT_VERSION + 1, "s4tf_py_version": "9.0"}
    p = tmp_path / "new.safetensors"
    safetensors.numpy.save_file({"a": np.zeros(2, np.float32)}, str(p),
                                metadata={checkpoint.METADATA_KEY: json.dumps(doc)})
    with pytest.raises(CheckpointError, match="upgrade"):
        checkpoint.load(p)


# ---- strict and non-strict ------------------------------------------------------------------

class Small(s4.nn.Layer):
    l1: s4.nn.Dense
    l2: s4.nn.Dense

    def __call__(self, x):
        return self.l2(self.l1(x))


def test_strict_mismatch_lists_missing_unexpected_and_mismatched_and_changes_nothing(tmp_path):
    src = Small(l1=s4.nn.Dense(3, 4, seed=0), l2=s4.nn.Dense(4, 2, seed=1))
    path = tmp_path / "src.safetensors"
    checkpoint.save({**src.state_dict(), "l3.weight": np.zeros((2, 2), np.float32)}, path)
    # a model whose l2 has another shape and no bias... plus a field the file lacks
    dst = Small(l1=s4.nn.Dense(3, 4, seed=5), l2=s4.nn.Dense(4, 5, seed=6))
    dst.l2.bias = None
    before = {k: np.array(v.numpy()) for k, v in dst.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as ei:
        dst.load_state(path)
    msg = str(ei.value)
    assert str(path) in msg and "Small" in msg
    assert "missing" in msg and "unexpected" in msg and "mismatched" in msg
    assert "l3.weight f32[2,2]" in msg                            # unexpected, with its shape
    assert "l2.weight: model f32[4,5], checkpoint f32[4,2]" in msg
    assert "l2.bias" in msg and "strict=False" in msg
    rep = ei.value.report
    assert rep.missing == [] and sorted(rep.unexpected) == ["l2.bias", "l3.weight"]
    assert [m.key for m in rep.mismatched] == ["l2.weight"]
    # strict failure changed nothing
    assert all(same_bytes(dst.state_dict()[k].numpy(), v) for k, v in before.items())

    report = dst.load_state(path, strict=False)
    assert not report.ok
    assert sorted(report.loaded) == ["l1.bias", "l1.weight"]
    assert sorted(report.unexpected) == ["l2.bias", "l3.weight"]
    assert report.mismatched[0] == ("l2.weight", (4, 5), s4.float32, (4, 2), s4.float32)
    assert same_bytes(dst.l1.weight.numpy(), src.l1.weight.numpy())
    assert same_bytes(dst.l2.weight.numpy(), before["l2.weight"])   # mismatched: kept
    assert "loaded 2" in str(report)


def test_missing_keys_are_reported_with_model_shapes():
    m = Small(l1=s4.nn.Dense(3, 4), l2=s4.nn.Dense(4, 2))
    with pytest.raises(CheckpointMismatchError) as ei:
        m.load_state({"l1.weight": np.zeros((3, 4), np.float32)})
    msg = str(ei.value)
    assert "l2.weight f32[4,2]" in msg and "l1.bias f32[4]" in msg
    assert sorted(ei.value.report.missing) == ["l1.bias", "l2.bias", "l2.weight"]
    # an integer tensor does not silently become a float parameter
    with pytest.raises(CheckpointMismatchError, match="i32"):
        s4.nn.Dense(1, 2).load_state({"weight": np.zeros((1, 2), np.int32),
                                      "bias": np.zeros(2, np.float32)})


def test_a_prefix_difference_suggests_a_name_map(tmp_path):
    m = Small(l1=s4.nn.Dense(3, 4, seed=0), l2=s4.nn.Dense(4, 2, seed=1))
    checkpoint.save({"model": m}, tmp_path / "p.safetensors")
    with pytest.raises(CheckpointMismatchError, match="prefix 'model.'"):
        Small(l1=s4.nn.Dense(3, 4), l2=s4.nn.Dense(4, 2)).load_state(tmp_path / "p.safetensors")


# ---- name maps and shards -------------------------------------------------------------------

def test_name_map_renames_and_drops_foreign_keys(tmp_path):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.arange(4, dtype=np.float32)
    foreign = tmp_path / "hf.safetensors"
    safetensors.numpy.save_file({"transformer.h.0.w": w, "transformer.h.0.b": b,
                                 "lm_head.rotary_cache": np.zeros(5, np.float32)}, str(foreign))
    mapping = {"transformer.h.0.w": "weight", "transformer.h.0.b": "bias",
               "lm_head.rotary_cache": None}
    ck = checkpoint.load(foreign, name_map=mapping)
    assert sorted(ck) == ["bias", "weight"]
    d = s4.nn.Dense(3, 4)
    assert d.load_state(foreign, name_map=mapping).ok
    assert same_bytes(d.weight.numpy(), w) and same_bytes(d.bias.numpy(), b)

    def fn(name):
        if name.startswith("lm_head."):
            return None
        return {"w": "weight", "b": "bias"}[name.rsplit(".", 1)[1]]
    d2 = s4.nn.Dense(3, 4)
    assert d2.load_state(foreign, name_map=fn).ok and same_bytes(d2.bias.numpy(), b)
    # a dict leaves the names it does not list alone
    assert "lm_head.rotary_cache" in checkpoint.load(foreign, name_map={"transformer.h.0.w": "w"})
    with pytest.raises(CheckpointError, match="both"):
        checkpoint.load(foreign, name_map=lambda k: "same")


def _write_sharded(folder, tensors: dict, split: list) -> None:
    folder.mkdir()
    weight_map = {}
    for i, names in enumerate(split):
        fname = f"model-{i + 1:05d}-of-{len(split):05d}.safetensors"
        checkpoint.save({k: tensors[k] for k in names}, folder / fname)
        weight_map.update({k: fname for k in names})
    (folder / checkpoint.INDEX_NAME).write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))


def test_sharded_folder_with_index_loads_as_one_checkpoint(tmp_path):
    a = make_net(4)
    state = a.state_dict()
    keys = list(state)
    folder = tmp_path / "sharded"
    _write_sharded(folder, state, [keys[:5], keys[5:]])
    ck = checkpoint.load(folder)
    assert sorted(ck) == sorted(keys)
    b = make_net(90)
    assert b.load_state(folder).ok
    assert_same_state(a, b)
    # the index file itself is accepted too
    with checkpoint.open_checkpoint(folder / checkpoint.INDEX_NAME) as r:
        assert len(r) == len(keys) and r.shape("head.weight") == (3, 2)
        assert r.dtype("block.0.count") == np.int64
    # an index pointing at the wrong shard is a clear error
    index = json.loads((folder / checkpoint.INDEX_NAME).read_text())
    index["weight_map"]["head.bias"] = "model-00001-of-00002.safetensors"
    (folder / checkpoint.INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="does not hold it"):
        checkpoint.load(folder)


def test_open_checkpoint_reads_lazily_and_closes(tmp_path):
    p = tmp_path / "lazy.safetensors"
    checkpoint.save({"a": np.arange(4.0), "b": np.ones(2, np.int8)}, p, metadata={"k": 1})
    with checkpoint.open_checkpoint(p) as r:
        assert sorted(r) == ["a", "b"] and r.metadata == {"k": 1}
        arr = r.read_numpy("a")
        arr[0] = 99.0                                 # fresh and writable: the file is untouched
        assert r["a"].tolist() == [0.0, 1.0, 2.0, 3.0]
        with pytest.raises(KeyError, match="c"):
            r["c"]
    with pytest.raises(ValueError, match="closed"):
        r.read_numpy("a")


# ---- training state -------------------------------------------------------------------------

class StructMomentum:
    """A tiny optimizer whose state is a struct of tensors (the model's TangentVector)."""

    def __init__(self, model, lr=0.1, beta=0.9):
        self.lr, self.beta, self.step = lr, beta, 0
        self.velocity = type(model).TangentVector.zero(like=model)

    def update(self, model, grad):
        self.velocity = self.velocity * self.beta + grad
        model.move(along=self.velocity * -self.lr)
        self.step += 1

    def state_dict(self):
        return {"velocity": self.velocity, "step": self.step, "hyper": (self.lr, self.beta)}

    def load_state_dict(self, state):
        self.velocity, self.step = state["velocity"], state["step"]
        self.lr, self.beta = state["hyper"]


class TorchStyle:
    """A fake optimizer with PyTorch's state layout: integer keys, lists, numpy values."""

    def __init__(self, n):
        self.state = {"state": {i: {"exp_avg": s4.Tensor(np.full(3, float(i), np.float32))}
                                for i in range(n)},
                      "param_groups": [{"lr": 0.01, "betas": (0.9, 0.999), "params": list(range(n))}],
                      "count": np.int64(4), "table": np.arange(3, dtype=np.uint16),
                      "nothing": None}
        self.loaded = None

    def state_dict(self):
        return self.state

    def load_state_dict(self, state):
        self.loaded = state


def loss_of(x, y):
    return lambda m: ((m(x) - y) ** 2).mean()


def train(model, opt, steps, x, y):
    losses = []
    for _ in range(steps):
        loss, g = s4.value_with_gradient(at=model, of=loss_of(x, y))
        opt.update(model, g)
        losses.append(np.asarray(loss.numpy()).tobytes())
    return losses


def test_training_state_resumes_bit_for_bit(tmp_path):
    rng = np.random.default_rng(0)
    x = s4.Tensor(rng.standard_normal((8, 3)).astype(np.float32))
    y = s4.Tensor(rng.standard_normal((8, 2)).astype(np.float32))

    def fresh(seed):
        return Small(l1=s4.nn.Dense(3, 4, seed=seed), l2=s4.nn.Dense(4, 2, seed=seed + 1))
    full = fresh(0)
    full_losses = train(full, StructMomentum(full), 6, x, y)

    m = fresh(0)
    opt = StructMomentum(m)
    first = train(m, opt, 3, x, y)
    gen = np.random.default_rng(123)
    gen.standard_normal(5)
    path = tmp_path / "train.safetensors"
    checkpoint.save_training_state(path, model=m, optimizer=opt, step=3,
                                   rng={"key": s4.random.key(42),
                                        "numpy": gen.bit_generator.state},
                                   extra={"best": 0.5, "history": [1, 2]},
                                   metadata={"run": "r1"})
    expected_next = gen.standard_normal(3)

    m2 = fresh(100)
    opt2 = StructMomentum(m2, lr=0.5, beta=0.1)
    st = checkpoint.load_training_state(path, model=m2, optimizer=opt2)
    assert st.step == 3 and st.metadata == {"run": "r1"} and st.report.ok
    assert st.model is m2
    assert opt2.step == 3 and (opt2.lr, opt2.beta) == (0.1, 0.9)
    assert isinstance(opt2.velocity, Small.TangentVector)
    assert isinstance(opt2.velocity.l1, s4.nn.Dense.TangentVector)
    assert st.rng["key"].tolist() == [0, 42] and st.rng["key"].dtype == s4.uint32
    gen2 = np.random.default_rng()
    gen2.bit_generator.state = st.rng["numpy"]
    assert same_bytes(gen2.standard_normal(3), expected_next)
    assert st.extra == {"best": 0.5, "history": [1, 2]}
    rest = train(m2, opt2, 3, x, y)
    assert first + rest == full_losses                 # the same loss sequence, bit for bit
    assert_same_state(full, m2)
    # the file is a normal checkpoint too: the model's tensors under "model."
    ck = checkpoint.load(path)
    assert "model.l1.weight" in ck and "optimizer.velocity.l1.weight" in ck
    assert ck.document["training"]["optimizer_class"].endswith("StructMomentum")


def test_training_state_with_torch_style_optimizer_state(tmp_path):
    model = Small(l1=s4.nn.Dense(3, 4, seed=0), l2=s4.nn.Dense(4, 2, seed=1))
    opt = TorchStyle(2)
    path = tmp_path / "t.safetensors"
    checkpoint.save_training_state(path, model=model, optimizer=opt, step=np.int64(10))
    ck = checkpoint.load(path)
    assert "optimizer.state.1.exp_avg" in ck
    opt2 = TorchStyle(2)
    st = checkpoint.load_training_state(path, model=model, optimizer=opt2)
    got = opt2.loaded
    assert st.step == 10 and st.rng is None and st.extra is None
    assert set(got["state"]) == {0, 1}                           # integer keys survive
    assert got["state"][1]["exp_avg"].tolist() == [1.0, 1.0, 1.0]
    assert got["param_groups"] == [{"lr": 0.01, "betas": (0.9, 0.999), "params": [0, 1]}]
    assert type(got["count"]) is np.int64 and got["count"] == 4
    assert same_bytes(got["table"], np.arange(3, dtype=np.uint16)) and got["nothing"] is None
    # an optimizer for another model (other shapes) is refused before anything changes
    other = TorchStyle(2)
    other.state["state"][0]["exp_avg"] = s4.zeros((5,))
    before = np.array(model.l1.weight.numpy())
    m3 = Small(l1=s4.nn.Dense(3, 4, seed=9), l2=s4.nn.Dense(4, 2, seed=9))
    with pytest.raises(CheckpointMismatchError, match="exp_avg"):
        checkpoint.load_training_state(path, model=m3, optimizer=other)
    assert other.loaded is None and not same_bytes(m3.l1.weight.numpy(), before)
    # a plain model checkpoint holds no training state
    checkpoint.save(model, tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="no training state"):
        checkpoint.load_training_state(tmp_path / "plain.safetensors", model=model)
    with pytest.raises(TypeError, match="object"):
        checkpoint.save_training_state(tmp_path / "bad.safetensors", model=model,
                                       extra={"x": object()})


@dataclasses.dataclass
class _State:
    m: object
    t: int


def test_struct_state_must_match_the_live_optimizer(tmp_path):
    class Opt:
        def __init__(self, state):
            self.state = state

        def state_dict(self):
            return self.state

        def load_state_dict(self, s):
            self.state = s
    model = s4.nn.Dense(1, 1, seed=0)
    checkpoint.save_training_state(tmp_path / "s.safetensors", model=model,
                                   optimizer=Opt(_State(m=s4.ones((2,)), t=3)))
    o = Opt(_State(m=s4.zeros((2,)), t=0))
    checkpoint.load_training_state(tmp_path / "s.safetensors", optimizer=o)
    assert isinstance(o.state, _State) and o.state.t == 3 and o.state.m.tolist() == [1.0, 1.0]
    with pytest.raises(CheckpointError, match="_State"):
        checkpoint.load_training_state(tmp_path / "s.safetensors", optimizer=Opt({"m": 1}))


def test_tensors_of_dtypes_s4tf_py_lacks_are_named_and_can_be_dropped(tmp_path):
    f8 = np.zeros(4, ml_dtypes.float8_e4m3fn)
    w = np.ones((1, 2), np.float32)
    p = tmp_path / "f8.safetensors"
    specs = {"scales": safetensors.TensorSpec(dtype="float8_e4m3fn", shape=[4],
                                              data_ptr=f8.ctypes.data, data_len=f8.nbytes),
             "weight": safetensors.TensorSpec(dtype="float32", shape=[1, 2],
                                              data_ptr=w.ctypes.data, data_len=w.nbytes)}
    safetensors.serialize_file(specs, str(p))
    with pytest.raises(CheckpointError, match="scales.*F8_E4M3"):
        checkpoint.load(p)
    assert sorted(checkpoint.load(p, name_map={"scales": None})) == ["weight"]
    d = s4.nn.Dense(1, 2)
    report = d.load_state(p, strict=False, name_map={"scales": "bias"})
    assert report.loaded == ["weight"] and "F8_E4M3[4]" in str(report.mismatched[0])
