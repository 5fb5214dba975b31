"""Taichi start-up: nothing starts at import, kernels refuse to run before init_taichi, one device per process."""
import subprocess
import sys
import textwrap

import pytest
import torch

from engine.nerf.kernels import runtime

SCRIPT = textwrap.dedent(
    """
    import taichi.lang.impl as impl
    import torch
    import engine.nerf, engine.nerf.kernels
    from engine.nerf.kernels import composite, hash_encode, march, occupancy, runtime
    assert impl.get_runtime().prog is None, "a Taichi program started at import"
    enc = hash_encode.PlaneHashEncoder(n_planes=1, levels=2, log2_table=6, base_res=2, max_res=8)
    try:
        enc(torch.rand(4, 2))
    except RuntimeError as e:
        assert "init_taichi" in str(e), e
    else:
        raise AssertionError("a kernel ran before init_taichi")
    assert runtime.init_taichi("cpu", cache_dir=CACHE, cpu_threads=1) == "cpu"
    assert runtime.init_taichi("cpu") == "cpu"  # idempotent
    assert impl.get_runtime().prog is not None
    from taichi.lang import kernel_impl, util
    assert kernel_impl.has_pytorch is util.has_pytorch and util.has_pytorch.cache_info(), "launch probes not cached"
    assert enc(torch.rand(4, 2)).shape == (4, 2)
    assert util.has_pytorch.cache_info().hits > 0  # the kernel's torch arguments asked the cached probe
    try:
        runtime.init_taichi("cuda")
    except RuntimeError as e:
        assert "cannot switch" in str(e) or "no CUDA" in str(e), e
    else:
        raise AssertionError("switched device after start")
    print("OK")
    """
)


@pytest.mark.slow
def test_nothing_starts_at_import_and_init_is_idempotent(tmp_path):
    script = SCRIPT.replace("CACHE", repr(str(tmp_path / "cache")))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("OK")
    assert (tmp_path / "cache").is_dir()


def test_rejects_unknown_device():
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        runtime.init_taichi("gpu")


@pytest.mark.usefixtures("taichi_cpu")
def test_tensor_on_another_device_names_the_fix():
    fake = torch.empty(2, device="meta")
    with pytest.raises(RuntimeError, match=r"\.to\('cpu'\)"):
        runtime.require_device(fake)
