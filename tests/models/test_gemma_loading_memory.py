"""Loading a Gemma checkpoint streams tensor by tensor: the process's peak memory grows by about
the model's size, not twice it (a loader that read the whole file and then converted it would
hold two copies at once)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np

import s4tf_py as s4
from s4tf_models.gemma import GemmaConfig
from s4tf_models.gemma.model import _build

_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import s4tf_py as s4
    from s4tf_models import gemma
    def peak_mib():
        # VmHWM: this process image's peak (getrusage's ru_maxrss also counts the parent's
        # memory before exec)
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024.0
    (s4.ones((4,)) * 2).numpy()                  # the backend loaded (LLVM, the JIT) first
    base = peak_mib()
    model = gemma.load(sys.argv[1])
    held = [p.numpy() for p in model.parameters()]
    total = sum(a.nbytes for a in held)
    print(base, peak_mib(), total / 2**20)
""")


def test_loading_streams_so_peak_memory_grows_by_about_one_model(tmp_path):
    # ~22M float32 parameters (~86 MiB) in two shards, written as a Hugging Face folder
    c = GemmaConfig.preset("gemma3-tiny").replace(vocab_size=8192, hidden_size=512,
                                                  intermediate_size=2048, num_layers=6,
                                                  head_dim=128)
    skeleton = _build(c, seed=0, dtype=s4.float32, init="zeros")
    rng = np.random.default_rng(0)
    names = [n for n, _ in skeleton.named_parameters()]
    shapes = {n: tuple(p.shape) for n, p in skeleton.named_parameters()}
    half = len(names) // 2
    index = {"metadata": {}, "weight_map": {}}
    for k, part in enumerate((names[:half], names[half:])):
        fname = f"model-0000{k + 1}-of-00002.safetensors"
        s4.save({"model." + n: rng.standard_normal(shapes[n]).astype(np.float32) for n in part},
                tmp_path / fname, header_metadata={"format": "pt"})
        index["weight_map"].update({"model." + n: fname for n in part})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "config.json").write_text(json.dumps(c.to_hf()))
    r = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path)], capture_output=True,
                       text=True, check=True)
    base, peak, model_mib = map(float, r.stdout.split())
    assert model_mib > 80
    grown = peak - base
    # at least the model itself (the measurement sees it), well under two copies of it
    assert 0.9 * model_mib < grown < 1.35 * model_mib, (
        f"peak memory grew by {grown:.0f} MiB loading a {model_mib:.0f} MiB model")
