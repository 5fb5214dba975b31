"""The same kernels on ti.cuda with CUDA torch tensors (zero-copy) agree with the references (needs a GPU)."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)"),
]

# Taichi runs one backend per process and the session fixture holds ti.cpu, so CUDA runs in a child process.
SCRIPT = textwrap.dedent(
    """
    import sys, torch
    sys.path.insert(0, REFS)
    import nerf_refs
    from engine.nerf.kernels.runtime import init_taichi
    init_taichi("cuda")
    from engine.nerf.kernels.hash_encode import HEAD_PLANES, PlaneHashEncoder
    from engine.nerf.kernels.composite import composite
    from engine.nerf.kernels.march import march_rays
    from engine.nerf.kernels.occupancy import OccupancyGrid

    torch.manual_seed(0)
    enc = PlaneHashEncoder(n_planes=3, levels=5, features=2, log2_table=8, base_res=3, max_res=40, init_scale=1.0).cuda()
    x = torch.rand(500, 3, device="cuda", requires_grad=True)
    y = enc(x)
    y.square().sum().backward()
    layout = [tuple(lv) for lv in enc.levels.tolist()]
    x64 = x.detach().cpu().double().requires_grad_(True)
    t64 = enc.table.detach().cpu().double().requires_grad_(True)
    ref = nerf_refs.hash_encode(x64, t64, layout, HEAD_PLANES)
    ref.square().sum().backward()
    torch.testing.assert_close(y.detach().cpu().double(), ref.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(enc.table.grad.cpu().double(), t64.grad, atol=1e-4, rtol=1e-4)

    grid = OccupancyGrid(resolution=32).cuda()
    grid.update(lambda p: torch.where(p.norm(dim=-1) < 0.5, 20.0, 0.0))
    cpu = lambda t: t.detach().cpu()
    for n_rays in (64, 100, 64):  # later launches take fast_launch's path: new shapes, same compiled kernels
        o = torch.tensor([[0.0, 0.0, 3.0]], device="cuda").repeat(n_rays, 1)
        d = torch.nn.functional.normalize(torch.randn(n_rays, 3, device="cuda") * 0.1 + torch.tensor([0.0, 0.0, -1.0], device="cuda"), dim=-1)
        s = march_rays(o, d, grid, dt=0.02, max_samples=64)
        assert s.positions.is_cuda and s.t_dt.shape[0] > 0
        sigma = torch.full((s.t_dt.shape[0],), 5.0, device="cuda", requires_grad=True)
        rgb = torch.rand(s.t_dt.shape[0], 3, device="cuda", requires_grad=True)
        out = composite(sigma, rgb, s.t_dt, s.ray_offset, s.ray_count, 0.0)
        out.sum().backward()
        s64, c64 = cpu(sigma).double().requires_grad_(True), cpu(rgb).double().requires_grad_(True)
        want = nerf_refs.composite(s64, c64, cpu(s.t_dt)[:, 0].double(), cpu(s.t_dt)[:, 1].double(), cpu(s.ray_offset), cpu(s.ray_count), 64)
        want.sum().backward()
        torch.testing.assert_close(cpu(out).double(), want.detach(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(cpu(sigma.grad).double(), s64.grad, atol=1e-4, rtol=1e-4)
    from engine.nerf.kernels import composite as composite_module, march as march_module
    assert march_module._march_kernel.fast_launches >= 2, march_module._march_kernel.fast_launches
    assert composite_module._forward_kernel.fast_launches >= 2, composite_module._forward_kernel.fast_launches
    print("OK")
    """
)


def test_kernels_on_cuda_match_references():
    script = SCRIPT.replace("REFS", repr(str(Path(__file__).parent)))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("OK")
