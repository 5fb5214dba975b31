"""Occupancy grid over the head's bounding box: a G^3 density EMA, the uint8 occupied mask derived from it, updates.

Update (instant-ngp style): every cell's density decays by `decay`, cells sampled this round take
max(decayed, sigma at a jittered point inside the cell), and a cell is occupied while its density exceeds
min(mean density, threshold). Before the first update every cell counts as occupied, so early training
marches through the whole box. Cells are indexed x fastest: index = x + G * (y + G * z). A coarse level
(a cell is occupied if any of its MIP^3 fine cells is) lets the marcher cross empty space in fewer steps.
"""
from collections.abc import Callable

import taichi as ti
import torch

from engine.nerf.kernels import runtime
from engine.nerf.kernels.common import F32, I32, U8, F32x2, cell_linear, check_tensor, grid_cell, inside_box, row3
from engine.nerf.kernels.launch import fast_launch

WHERE = "engine/nerf/kernels/occupancy.py"

MIP = 4
"""Fine cells per side of one coarse cell; the marcher crosses empty coarse cells in one step."""


@fast_launch
@ti.kernel
def _cell_points_kernel(cells: I32, jitter: F32x2, bounds: F32x2, res: ti.i32, out: F32x2):
    lo = row3(bounds, 0)
    cell = (row3(bounds, 1) - lo) / res
    for m in range(cells.shape[0]):
        c = cells[m]
        ijk = ti.math.vec3(c % res, (c // res) % res, c // (res * res))
        for k in ti.static(range(3)):
            out[m, k] = lo[k] + (ijk[k] + jitter[m, k]) * cell[k]


@fast_launch
@ti.kernel
def _decay_max_kernel(density: F32, cells: I32, sigma: F32, decay: ti.f32):
    for c in range(density.shape[0]):
        density[c] *= decay
    for m in range(cells.shape[0]):
        ti.atomic_max(density[cells[m]], sigma[m])


@fast_launch
@ti.kernel
def _query_kernel(points: F32x2, occupied: U8, bounds: F32x2, res: ti.i32, out: U8):
    lo, hi = row3(bounds, 0), row3(bounds, 1)
    inv_cell = res / (hi - lo)
    for n in range(points.shape[0]):
        p = row3(points, n)
        hit = ti.u8(0)
        if inside_box(p, lo, hi):
            hit = occupied[cell_linear(grid_cell(p, lo, inv_cell, res), res)]
        out[n] = hit


class OccupancyGrid(torch.nn.Module):
    """A res^3 occupancy grid over aabb = (xmin, ymin, zmin, xmax, ymax, zmax); buffers save with the weights.

    density [res^3] f32 (EMA of sigma), occupied [res^3] u8 (1: march through, 0: skip), coarse [ceil(res/MIP)^3]
    u8 (derived from occupied; change occupied through `set_occupied` so both stay in step).
    `threshold` is in sigma units (1 / world length): a cell below it adds opacity < threshold * dt per step.
    `dilation` grows the occupied mask by that many cells after each update (thin parts such as lips stay
    marched even when a jittered sample missed them).
    """

    def __init__(
        self,
        aabb: tuple[float, float, float, float, float, float] = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0),
        resolution: int = 64,
        decay: float = 0.95,
        threshold: float = 0.01,
        dilation: int = 0,
    ) -> None:
        super().__init__()
        lo, hi = tuple(float(v) for v in aabb[:3]), tuple(float(v) for v in aabb[3:])
        if len(lo) != 3 or len(hi) != 3 or any(h <= l for l, h in zip(lo, hi)):
            raise ValueError(f"{WHERE}: aabb={aabb} must be (xmin, ymin, zmin, xmax, ymax, zmax) with max > min")
        if resolution < 1:
            raise ValueError(f"{WHERE}: resolution={resolution} must be >= 1")
        self.lo, self.hi, self.resolution = lo, hi, int(resolution)
        self.decay, self.threshold, self.dilation = float(decay), float(threshold), int(dilation)
        self.coarse_resolution = -(-self.resolution // MIP)
        n = self.resolution**3
        self.register_buffer("density", torch.zeros(n))
        self.register_buffer("occupied", torch.ones(n, dtype=torch.uint8))
        self.register_buffer("coarse", torch.ones(self.coarse_resolution**3, dtype=torch.uint8), persistent=False)
        self.occupied_box: tuple[tuple[float, float, float], tuple[float, float, float]] = (lo, hi)
        """World (min corner, max corner) of the occupied cells; rays that miss it take no samples."""
        # Rows: box lo, box hi, occupied lo, occupied hi; one tensor argument launches faster than four vectors.
        self.register_buffer("bounds", torch.tensor([lo, hi, lo, hi]), persistent=False)

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh_derived()

    def _refresh_derived(self) -> None:
        """Recompute what the marcher reads besides the mask: the coarse level and the occupied box."""
        g = self.resolution
        fine = self.occupied.view(1, 1, g, g, g).float()
        pooled = torch.nn.functional.max_pool3d(fine, kernel_size=MIP, stride=MIP, ceil_mode=True)
        self.coarse.copy_(pooled.reshape(-1))
        zyx = torch.nonzero(self.occupied.view(g, g, g))
        if zyx.shape[0] == 0:
            self.occupied_box = (self.hi, self.lo)  # hi < lo: marks "nothing occupied" for the marcher
        else:
            cell = self.cell_size
            first, last = zyx.amin(0).flip(0).tolist(), zyx.amax(0).flip(0).tolist()
            self.occupied_box = (
                tuple(l + c * i for l, c, i in zip(self.lo, cell, first)),
                tuple(l + c * (i + 1) for l, c, i in zip(self.lo, cell, last)),
            )
        self.bounds.copy_(torch.tensor([self.lo, self.hi, *self.occupied_box]))

    @torch.no_grad()
    def set_occupied(self, mask: torch.Tensor) -> None:
        """Overwrite the occupied mask ([res^3] bool/u8, x fastest), e.g. to clear cells no camera sees."""
        self.occupied.copy_(mask.reshape(-1).to(torch.uint8))
        self._refresh_derived()

    @property
    def cell_size(self) -> tuple[float, float, float]:
        return tuple((h - l) / self.resolution for l, h in zip(self.lo, self.hi))

    def occupied_fraction(self) -> float:
        return float(self.occupied.float().mean())

    def cell_points(self, cells: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Jittered world points inside cells [M] i32 -> [M, 3] f32 (uniform within each cell)."""
        runtime.require_device(cells, self.density)
        check_tensor(cells, "cells", torch.int32, (-1,), WHERE)
        jitter = torch.rand(cells.shape[0], 3, device=cells.device, generator=generator)
        out = torch.empty(cells.shape[0], 3, device=cells.device)
        if cells.shape[0] > 0:
            _cell_points_kernel(cells, jitter, self.bounds, self.resolution, out)
        return out

    def _sample_cells(self, n_cells: int, generator: torch.Generator | None) -> torch.Tensor:
        device = self.density.device
        n_uniform = n_cells - n_cells // 2
        uniform = torch.randint(0, self.resolution**3, (n_uniform,), device=device, generator=generator)
        occupied = torch.nonzero(self.occupied).flatten()
        if occupied.numel() == 0:
            return uniform.int()
        pick = torch.randint(0, occupied.numel(), (n_cells // 2,), device=device, generator=generator)
        return torch.cat([uniform, occupied[pick]]).int()

    @torch.no_grad()
    def update(
        self,
        density_fn: Callable[[torch.Tensor], torch.Tensor],
        n_cells: int | None = None,
        generator: torch.Generator | None = None,
        chunk: int = 1 << 17,
    ) -> float:
        """One EMA round: sigma = density_fn(points [M, 3] world) -> [M]; returns the occupied fraction.

        n_cells=None samples every cell once; otherwise half of n_cells are drawn uniformly and half among the
        occupied cells (as instant-ngp does after warm-up), so surfaces are refreshed more often than empty space.
        """
        device = self.density.device
        total = self.resolution**3
        if n_cells is None:
            cells = torch.arange(total, dtype=torch.int32, device=device)
        else:
            cells = self._sample_cells(int(n_cells), generator)
        sigma = torch.empty(cells.shape[0], device=device)
        for start in range(0, cells.shape[0], chunk):
            part = cells[start : start + chunk]
            values = density_fn(self.cell_points(part, generator)).reshape(-1)
            if values.shape[0] != part.shape[0]:
                raise ValueError(
                    f"{WHERE}: density_fn returned {tuple(values.shape)} for {part.shape[0]} points; return [M] sigma"
                )
            sigma[start : start + part.shape[0]] = values
        _decay_max_kernel(self.density, cells, sigma.float().contiguous(), self.decay)
        limit = min(float(self.density.mean()), self.threshold)
        mask = self.density > limit
        if self.dilation > 0:
            g, k = self.resolution, 2 * self.dilation + 1
            grown = torch.nn.functional.max_pool3d(mask.view(1, 1, g, g, g).float(), k, stride=1, padding=self.dilation)
            mask = grown.reshape(-1) > 0
        self.set_occupied(mask)
        return self.occupied_fraction()

    def query(self, points: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """points [N, 3] f32 world -> [N] u8: 1 where the cell is occupied (0 outside the box)."""
        runtime.require_device(points, self.occupied)
        check_tensor(points, "points", torch.float32, (-1, 3), WHERE)
        if out is None:
            out = torch.empty(points.shape[0], dtype=torch.uint8, device=points.device)
        check_tensor(out, "out", torch.uint8, (points.shape[0],), WHERE)
        if points.shape[0] == 0:
            return out
        _query_kernel(
            points.detach(), self.occupied, self.bounds, self.resolution, out
        )
        return out
