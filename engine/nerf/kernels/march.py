"""Ray marching through the occupancy grid: packed samples with empty-space skipping and a per-call sample cap.

Samples sit on a fixed lattice per ray: midpoints t = t0 + (k + 1/2) dt from the ray's box entry
t0 = max(entry, near) (plus an optional per-ray jitter * dt for training). Empty cells are skipped with a DDA
step to the cell's exit snapped to the lattice, so skipping drops only samples in empty cells and never moves
the others: with a conservative grid the image equals brute-force marching. Only occupied samples count
against `max_samples`.

Each ray walks once into a per-ray scratch row, then reserves a contiguous run of output rows with one atomic
add, so a launch packs all samples with no prefix-sum pass; runs are in arbitrary ray order, each sorted by t.
Empty space is crossed through the grid's coarse level (MIP^3 fine cells per coarse cell) where it is empty.
Marching can resume: `t_cursor` [R] holds where each ray stopped (-1: not started), and rays whose
accumulated opacity (the compositor's accum [R, 5]) leaves transmittance below `t_thresh` take no samples.
"""
from dataclasses import dataclass

import taichi as ti
import torch

from engine.nerf.kernels import runtime
from engine.nerf.kernels.common import (
    F32,
    I32,
    U8,
    F32x2,
    cell_exit_distance,
    cell_linear,
    check_tensor,
    grid_cell,
    ray_box,
    row3,
    safe_inverse,
)
from engine.nerf.kernels.launch import fast_launch
from engine.nerf.kernels.occupancy import MIP, OccupancyGrid

WHERE = "engine/nerf/kernels/march.py"


@ti.func
def _walk(
    o, d, inv_d, t_start, t_out, dt, max_n,
    occupied: ti.template(), res, coarse: ti.template(), coarse_res, lo, cell, scratch: ti.template(), r,
):  # fmt: skip
    """March one ray from t_start, storing sample midpoints in scratch[r, :]; return (count, cursor).

    Empty space is crossed a coarse cell (MIP cells per side) at a time, then a fine cell at a time.
    """
    coarse_cell = cell * MIP
    inv_cell = 1.0 / cell
    inv_coarse = 1.0 / coarse_cell
    n = 0
    k = 0
    while n < max_n:
        tm = t_start + (k + 0.5) * dt
        if tm >= t_out:
            break
        p = o + tm * d
        cc = grid_cell(p, lo, inv_coarse, coarse_res)
        skip = -1.0
        if coarse[cell_linear(cc, coarse_res)] == 0:
            skip = cell_exit_distance(p, inv_d, cc, lo, coarse_cell)
        else:
            c = grid_cell(p, lo, inv_cell, res)
            if occupied[cell_linear(c, res)] == 0:
                skip = cell_exit_distance(p, inv_d, c, lo, cell)
        if skip < 0.0:
            scratch[r, n] = tm
            n += 1
            k += 1
        else:
            # Capped so a degenerate ray (a zero direction exits cells at ~1e9) cannot overflow the step count.
            k += ti.max(1, ti.cast(ti.min(ti.ceil(skip / dt), 1e8), ti.i32))
    return n, t_start + k * dt


@fast_launch
@ti.kernel
def _march_kernel(
    rays_o: F32x2,
    rays_d: F32x2,
    occupied: U8,
    res: ti.i32,
    coarse: U8,
    coarse_res: ti.i32,
    bounds: F32x2,
    dt: ti.f32,
    near: ti.f32,
    max_samples: ti.i32,
    t_cursor: F32,
    jitter: F32,
    use_jitter: ti.i32,
    accum: F32x2,
    use_accum: ti.i32,
    t_thresh: ti.f32,
    normalize: ti.i32,
    scratch: F32x2,
    ray_offset: I32,
    ray_count: I32,
    sample_ray: I32,
    t_dt: F32x2,
    pos: F32x2,
    counter: I32,
):
    counter[0] = 0
    lo, hi = row3(bounds, 0), row3(bounds, 1)
    occ_lo, occ_hi = row3(bounds, 2), row3(bounds, 3)
    cell = (hi - lo) / res
    inv_extent = 1.0 / (hi - lo)
    for r in range(rays_o.shape[0]):
        o = row3(rays_o, r)
        d = row3(rays_d, r)
        inv_d = safe_inverse(d)
        t_in, t_out = ray_box(o, inv_d, lo, hi)
        t = t_cursor[r]
        if t < 0.0:
            t = ti.max(t_in, near)
            if use_jitter != 0:
                t += jitter[r] * dt
        # Start at the box of occupied cells, snapped to the lattice anchored at the grid's box entry, so
        # skipping there moves no sample; rays missing it are done at once (most background pixels).
        occ_in, occ_out = ray_box(o, inv_d, occ_lo, occ_hi)
        if occ_out < occ_in or (occ_hi < occ_lo).any():
            t = t_out
        else:
            t += ti.max(0.0, ti.floor((occ_in - t) / dt)) * dt
            t_out = ti.min(t_out, occ_out)
        alive = t + 0.5 * dt < t_out
        if use_accum != 0 and 1.0 - accum[r, 4] < t_thresh:
            alive = False
        n = 0
        if alive:
            n, t = _walk(o, d, inv_d, t, t_out, dt, max_samples, occupied, res, coarse, coarse_res, lo, cell, scratch, r)
        # One atomic reservation per ray packs the samples without a prefix-sum pass; the buffers hold
        # R * max_samples rows, so a reservation never overflows.
        base = ti.atomic_add(counter[0], n)
        ray_offset[r] = base
        ray_count[r] = n
        for i in range(n):
            tm = scratch[r, i]
            p = o + tm * d
            if normalize != 0:
                p = (p - lo) * inv_extent
            sample_ray[base + i] = r
            t_dt[base + i, 0] = tm
            t_dt[base + i, 1] = dt
            for a in ti.static(range(3)):
                pos[base + i, a] = p[a]
        t_cursor[r] = t


@dataclass
class RaySamples:
    """Packed samples of one march call; tensors are views into the call's buffers (valid until the next call).

    Rows ray_offset[r] .. ray_offset[r] + ray_count[r] - 1 belong to ray r, sorted by t.
    """

    ray_index: torch.Tensor
    """[M] i32: the ray each sample belongs to."""
    t_dt: torch.Tensor
    """[M, 2] f32: sample midpoint t and step length dt (ray-parameter units; world units for unit directions)."""
    positions: torch.Tensor
    """[M, 3] f32: world positions o + t d (or normalized to the grid's box, see `march_rays`)."""
    ray_offset: torch.Tensor
    """[R] i32: first row of each ray."""
    ray_count: torch.Tensor
    """[R] i32: number of rows of each ray (0: none this call)."""


class MarchBuffers:
    """Preallocated outputs of `march_rays` for R rays and up to `max_samples` per ray (no per-frame allocations)."""

    def __init__(self, n_rays: int, max_samples: int, device: torch.device | str = "cpu") -> None:
        capacity = int(n_rays) * int(max_samples)
        self.n_rays, self.max_samples = int(n_rays), int(max_samples)
        self.ray_offset = torch.zeros(n_rays, dtype=torch.int32, device=device)
        self.ray_count = torch.zeros(n_rays, dtype=torch.int32, device=device)
        self.sample_ray = torch.zeros(capacity, dtype=torch.int32, device=device)
        self.t_dt = torch.zeros(capacity, 2, device=device)
        self.pos = torch.zeros(capacity, 3, device=device)
        self.counter = torch.zeros(1, dtype=torch.int32, device=device)
        self.scratch = torch.zeros(n_rays, max_samples, device=device)
        # a kernel argument must be a real array even when its flag says unused: one small stand-in serves both
        self.unused = torch.zeros(1, 5, device=device)


def march_rays(
    rays_o: torch.Tensor,
    rays_d: torch.Tensor,
    grid: OccupancyGrid,
    dt: float,
    near: float = 0.05,
    max_samples: int = 16,
    t_cursor: torch.Tensor | None = None,
    jitter: torch.Tensor | None = None,
    accum: torch.Tensor | None = None,
    t_thresh: float = 1e-4,
    normalize: bool = False,
    out: MarchBuffers | None = None,
) -> RaySamples:
    """March rays_o, rays_d [R, 3] f32 (unit directions) through `grid`; at most `max_samples` per ray this call.

    t_cursor [R] f32 in/out (-1: start at the box entry; updated to where each ray stopped; None: a fresh start);
    jitter [R] f32 in [0, 1): lattice offset in steps (training); accum [R, 5]: skip rays already opaque (inference);
    normalize: write positions as (p - lo) / (hi - lo) in the grid's box, ready for the hash encoder;
    out: buffers to reuse, with n_rays == R and max_samples >= this call's cap.
    """
    n_rays = rays_o.shape[0]
    runtime.require_device(rays_o, rays_d, grid.occupied)
    check_tensor(rays_o, "rays_o", torch.float32, (-1, 3), WHERE)
    check_tensor(rays_d, "rays_d", torch.float32, (n_rays, 3), WHERE)
    diagonal = sum((h - l) ** 2 for l, h in zip(grid.lo, grid.hi)) ** 0.5
    if not 0 < dt or diagonal / dt > 1e6 or max_samples < 1:
        raise ValueError(
            f"{WHERE}: dt={dt}, max_samples={max_samples}; need max_samples >= 1 and 0 < dt with at most 1e6 steps "
            f"across the grid's diagonal ({diagonal:.3g})"
        )
    device = rays_o.device
    if out is None:
        out = MarchBuffers(n_rays, max_samples, device)
    elif out.n_rays != n_rays or out.max_samples < max_samples:
        raise ValueError(
            f"{WHERE}: out buffers are for {out.n_rays} rays x {out.max_samples} samples, the call needs "
            f"{n_rays} x {max_samples}; allocate MarchBuffers({n_rays}, {max_samples})"
        )
    if t_cursor is None:
        t_cursor = torch.full((n_rays,), -1.0, device=device)
    check_tensor(t_cursor, "t_cursor", torch.float32, (n_rays,), WHERE)
    if n_rays == 0:  # no zero-size launches: CUDA external arrays need real allocations
        return RaySamples(out.sample_ray[:0], out.t_dt[:0], out.pos[:0], out.ray_offset, out.ray_count)
    unused = out.unused
    if jitter is not None:
        check_tensor(jitter, "jitter", torch.float32, (n_rays,), WHERE)
    if accum is not None:
        check_tensor(accum, "accum", torch.float32, (n_rays, 5), WHERE)
    _march_kernel(
        rays_o.detach(), rays_d.detach(), grid.occupied, grid.resolution, grid.coarse, grid.coarse_resolution,
        grid.bounds, float(dt), float(near), int(max_samples),
        t_cursor, unused[0] if jitter is None else jitter, int(jitter is not None),
        unused if accum is None else accum.detach(), int(accum is not None),
        float(t_thresh), int(normalize), out.scratch, out.ray_offset, out.ray_count, out.sample_ray, out.t_dt, out.pos, out.counter,
    )  # fmt: skip
    m = int(out.counter[0])
    return RaySamples(out.sample_ray[:m], out.t_dt[:m], out.pos[:m], out.ray_offset, out.ray_count)
