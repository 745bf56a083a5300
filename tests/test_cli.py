"""The `s4tf` command (`python -m s4tf_py`): ir, demo, bench and the pending subcommands."""
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def s4tf(*args, check=False, timeout=300):
    return subprocess.run([sys.executable, "-m", "s4tf_py", *args], capture_output=True,
                          text=True, timeout=timeout, check=check, cwd=ROOT)


def test_ir_of_an_expression():
    r = s4tf("ir", "--expr", "a*b+1", "--shape", "2,3", check=True)
    out = r.stdout
    assert out.startswith("func @expr(%0: f32[2,3], %1: f32[2,3]) -> (f32[2,3]) {")
    assert re.search(r"%\d+ = mul\(%0, %1\) : f32\[2,3\]", out)
    assert re.search(r"= add\(%\d+, %\d+\) : f32\[2,3\]", out)
    assert out.rstrip().endswith("}")


def test_ir_with_functions_shapes_per_input_and_dtype():
    r = s4tf("ir", "--expr", "exp(x).sum(axis=0) @ w", "--shape", "2,3", "--shape", "3,4",
             "--dtype", "float64", check=True)
    assert "func @expr(%0: f64[2,3], %1: f64[3,4]) -> (f64[4])" in r.stdout
    assert "exp(%0)" in r.stdout


def test_ir_builtin_examples():
    r = s4tf("ir", check=True)
    assert "func @dense_relu(" in r.stdout and "dot_general" in r.stdout
    r = s4tf("ir", "--example", "sgd-step", check=True)
    assert "func @train_step(" in r.stdout


def test_ir_rejects_bad_expressions():
    r = s4tf("ir", "--expr", "__import__('os').getcwd()")
    assert r.returncode != 0 and "may not use" in r.stderr
    r = s4tf("ir", "--expr", "a+b", "--shape", "2,3", "--shape", "4,5")
    assert r.returncode != 0 and "cannot be broadcast" in r.stderr
    r = s4tf("ir", "--expr", "a+(")
    assert r.returncode != 0 and "cannot parse" in r.stderr


@pytest.mark.parametrize("command, issue", [("validate", "validation-suite issue")])
def test_pending_commands_exit_nonzero_with_a_clear_message(command, issue):
    r = s4tf(command, "gemma", "--steps", "3")
    assert r.returncode != 0
    assert f"s4tf {command}: not available yet: arrives with" in r.stderr
    assert issue in r.stderr
    assert r.stdout == ""


def test_no_command_prints_help_and_fails():
    r = s4tf()
    assert r.returncode != 0 and "demo" in r.stdout and "ir" in r.stdout


def test_demo_one_epoch():
    r = s4tf("demo", "--epochs", "1", check=True)
    lines = r.stdout.strip().splitlines()
    assert any(line.startswith("epoch   1/1") and "steps/s" in line for line in lines)
    m = re.fullmatch(r"held-out accuracy: (\d\.\d+) \((\d+)/(\d+)\)", lines[-1])
    assert m, lines[-1]
    assert float(m.group(1)) > 0.5
    assert "traced 1 time(s)" in r.stdout


def test_demo_step_matches_torch_autograd():
    """The demo's compiled step (s4.value_with_gradient + move) is SGD with PyTorch's gradient."""
    import torch

    import s4tf_py as s4
    from s4tf_py import demo
    rng = np.random.default_rng(0)
    model = demo.make_model(3, hidden=16)
    before = [p.numpy().copy() for p in model.parameters()]
    x = rng.random((8, demo.INPUTS), dtype=np.float32)
    y = rng.integers(0, demo.CLASSES, 8).astype(np.int32)
    lr = 0.5
    new, loss = s4.compile(demo.train_step)(model, s4.Tensor(x), s4.Tensor(y), lr)
    assert isinstance(new, demo.MLP)

    tp = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in before]
    tx = torch.tensor(x, dtype=torch.float64)
    logits = torch.relu(tx @ tp[0] + tp[1]) @ tp[2] + tp[3]
    tloss = torch.nn.functional.cross_entropy(logits, torch.tensor(y, dtype=torch.long))
    tloss.backward()
    assert abs(loss.item() - tloss.item()) < 1e-5
    names = [n for n, _ in new.named_parameters()]
    assert names == ["hidden.weight", "hidden.bias", "output.weight", "output.bias"]
    for p_new, t in zip(new.parameters(), tp):
        want = (t - lr * t.grad).detach().numpy()
        np.testing.assert_allclose(p_new.numpy(), want, rtol=1e-4, atol=1e-5)


def test_console_script_demo_help():
    import shutil
    exe = shutil.which("s4tf", path=os.path.dirname(sys.executable))
    r = subprocess.run([exe, "demo", "--help"], capture_output=True, text=True, check=True)
    assert "--epochs" in r.stdout


def test_bench_quick_writes_json(tmp_path):
    r = s4tf("bench", "record", "dispatch", "--quick", "--out", str(tmp_path), check=True)
    assert "recording one elementwise op" in r.stdout
    assert "calling a compiled a + b" in r.stdout
    rec = json.loads((tmp_path / "bench_record.json").read_text())
    names = {row["name"] for row in rec["rows"]}
    assert {"s4tf_py record (new node)", "torch eager a+b",
            "jax.make_jaxpr (100 adds)/100"} <= names
    assert all("median_s" in row for row in rec["rows"])   # every peer is installed for tests
    disp = json.loads((tmp_path / "bench_dispatch.json").read_text())
    assert {row["name"] for row in disp["rows"]} >= {"s4tf_py s4.compile'd a+b", "jax.jit a+b"}


def test_ir_backend_llvm_prints_the_fusion_plan_and_kernels():
    r = s4tf("ir", "--expr", "s4.tanh(a*b+1).sum(axis=1)", "--shape", "4,8", "--backend", "llvm",
             check=True)
    assert "fusion plan" in r.stdout
    assert "kernel over [4, 8], reducing 1 trailing axes: mul, constant, add, tanh, reduce_sum" \
        in r.stdout
    assert "define void" in r.stdout


def test_ir_backend_llvm_names_the_steps_the_runtime_runs():
    r = s4tf("ir", "--expr", "concatenate([exp(a), a], axis=0)[1:3] * 2", "--backend", "llvm",
             check=True)
    assert "; runtime step (in the run of kernels): concatenate" in r.stdout
    assert "; runtime step (in the run of kernels): slice" in r.stdout
    assert "; host step" not in r.stdout


def test_the_gemma_demo_trains_then_generates(tmp_path):
    """`make demo`'s job, shortened: a few steps of the tiny Gemma 3 on the embedded corpus,
    the held-out loss reported, then generated text."""
    r = s4tf("demo", "--steps", "4", "--seq-len", "32", "--max-new-tokens", "8",
             "--prompt", "def ", check=True)
    out = r.stdout + r.stderr
    losses = [float(v) for v in re.findall(r"held-out loss by step: (?:\d+: ([\d.]+))", out)]
    assert losses and losses[-1] < math.log(1024), out       # below a uniform guess
    text = r.stdout.split("--- prompt 1: 'def '\n", 1)[1]
    assert text.startswith("def ") and len(text.strip()) > len("def"), text
