"""Numbers for `syncanim bench`: how fast the NeRF kernels run (hash encoders, march + composite) on a device.

The encoders are timed at the head's and the upper body's shapes on random points; marching and compositing
on a synthetic scene (a soft ball filling about a third of the image, seen through a 64^3 occupancy grid) with
a free field (precomputed densities and colours), so the numbers are the kernels' share of a frame.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

from engine.nerf.kernels.runtime import init_taichi

ENCODERS = {
    "head_3x14x1": dict(n_planes=3, levels=14, features=1, log2_table=14, base_res=16, max_res=2048),
    "upper_body_1x16x2": dict(n_planes=1, levels=16, features=2, log2_table=16, base_res=16, max_res=2048),
}
"""Encoder shapes timed: the paper's head tri-plane (L = 14, F = 1, 2^14 rows) and the upper-body image plane."""
DT = 2 * 3**0.5 / 128
"""Step of the timed march: ER-NeRF's constant step for a 128-cell grid over a box of side 2."""


def _timed(fn, repeats: int, sync) -> dict[str, float]:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times)}


def _ball_rays(size: int, device):
    import torch

    s = (torch.arange(size, device=device) + 0.5) / size * 2 - 1
    v, u = torch.meshgrid(-s, s, indexing="ij")
    d = torch.stack([u, v, torch.full_like(u, -3.0)], -1).reshape(-1, 3)
    d = d / d.norm(dim=-1, keepdim=True)
    o = torch.tensor([0.0, 0.0, 2.5], device=device).expand_as(d).contiguous()
    return o, d.contiguous()


def measure_kernels(
    device: str = "cpu",
    points: int = 65536,
    size: int = 128,
    repeats: int = 10,
    per_round: int = 8,
    rounds: int = 2,
    specialize: bool = True,
) -> dict[str, Any]:
    """Time the encoders on `points` points and one march + composite frame of `size` x `size` rays.

    Starts Taichi on `device` if needed (it must be the process's render device). Returns milliseconds
    (median and min over `repeats`), samples per frame and the first-call (compile) seconds. `specialize` also
    times the layout-specialised inference kernel (seconds of compilation per shape on its first use).
    """
    import torch

    from engine.nerf.kernels.hash_encode import PlaneHashEncoder
    from engine.nerf.kernels.occupancy import OccupancyGrid
    from engine.nerf.volume import VolumeBuffers, render_volume

    init_taichi(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    gen = torch.Generator(device=device).manual_seed(0)
    report: dict[str, Any] = {"device": device, "points": points, "size": size, "encoders": {}}
    for name, shape in ENCODERS.items():
        enc = PlaneHashEncoder(**shape).to(device)
        x = torch.rand(points, enc.in_dim, device=device, generator=gen)
        x_grad = x.clone().requires_grad_(True)
        out = torch.empty(points, enc.out_dim, device=device)
        grad = torch.randn(points, enc.out_dim, device=device, generator=gen)
        start = time.perf_counter()
        enc(x_grad).backward(grad)
        sync()
        first_s = time.perf_counter() - start

        def forward():
            with torch.no_grad():
                enc(x, out=out)

        def train_step(inputs):
            enc.table.grad = None
            enc(inputs).backward(grad)

        row = report["encoders"][name] = {
            "out_dim": enc.out_dim,
            "first_call_s": first_s,
            "forward": _timed(forward, repeats, sync),
            "forward_backward": _timed(lambda: train_step(x), repeats, sync),
            "forward_backward_with_input_grad": _timed(lambda: train_step(x_grad), repeats, sync),
        }
        if specialize:
            enc.specialize = True
            start = time.perf_counter()
            forward()
            sync()
            row["specialized_first_call_s"] = time.perf_counter() - start
            row["forward_specialized"] = _timed(forward, repeats, sync)

    grid = OccupancyGrid(resolution=64).to(device)

    def ball(p):
        return 30.0 * torch.sigmoid((0.55 - p.norm(dim=-1)) / 0.02)

    for _ in range(3):
        grid.update(ball, generator=gen)
    rays_o, rays_d = _ball_rays(size, device)
    capacity = size * size * per_round
    sigma = torch.full((capacity,), 30.0, device=device)
    rgb = torch.rand(capacity, 3, device=device, generator=gen)
    evaluated = [0]

    def free_field(samples):
        m = samples.t_dt.shape[0]
        evaluated[0] += m
        return sigma[:m], rgb[:m]

    buffers = VolumeBuffers.allocate(size * size, per_round, device)

    def frame():
        render_volume(rays_o, rays_d, grid, free_field, buffers, DT, per_round=per_round, max_rounds=rounds)

    start = time.perf_counter()
    frame()
    sync()
    first_s = time.perf_counter() - start
    evaluated[0] = 0
    timing = _timed(frame, repeats, sync)
    report["march_composite"] = {
        "rays": size * size,
        "per_round": per_round,
        "rounds": rounds,
        "samples_per_frame": evaluated[0] // (repeats + 1),
        "first_call_s": first_s,
        **timing,
    }
    return report
