"""The real-time volume rendering loop over the kernels: march a few samples per live ray, evaluate, composite.

Each round marches at most `per_round` occupied samples per ray from where the ray stopped, asks the field for
sigma and colour of just those samples (one batched call), and adds them into the per-ray accumulator; rays
whose transmittance fell below `t_thresh` stop taking samples, so the field is not evaluated behind opaque
surfaces. All buffers are allocated once per image size (`VolumeBuffers`).
"""
from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.nerf.kernels.composite import ACCUM_WIDTH, composite_into
from engine.nerf.kernels.march import MarchBuffers, RaySamples, march_rays
from engine.nerf.kernels.occupancy import OccupancyGrid

FieldFn = Callable[[RaySamples], tuple[torch.Tensor, torch.Tensor]]
"""samples -> (sigma [M] f32 >= 0, rgb [M, 3] f32), both contiguous, for the M packed samples."""


@dataclass
class VolumeBuffers:
    """Per-image-size buffers of `render_volume`, reused every frame."""

    march: MarchBuffers
    accum: torch.Tensor
    """[R, 5] f32: rgb (premultiplied), depth, opacity per ray; the result of `render_volume`."""
    cursor: torch.Tensor
    """[R] f32: where each ray stopped marching."""

    @classmethod
    def allocate(cls, n_rays: int, per_round: int, device: torch.device | str = "cpu") -> "VolumeBuffers":
        return cls(
            MarchBuffers(n_rays, per_round, device),
            torch.zeros(n_rays, ACCUM_WIDTH, device=device),
            torch.full((n_rays,), -1.0, device=device),
        )


def render_volume(
    rays_o: torch.Tensor,
    rays_d: torch.Tensor,
    grid: OccupancyGrid,
    field: FieldFn,
    buffers: VolumeBuffers,
    dt: float,
    near: float = 0.05,
    per_round: int = 8,
    max_rounds: int = 2,
    t_thresh: float = 1e-4,
    normalize: bool = True,
) -> torch.Tensor:
    """Render rays_o, rays_d [R, 3] (unit directions) -> buffers.accum [R, 5]; at most per_round * max_rounds
    field evaluations per ray. `normalize`: samples reach the field in the grid's unit box (encoder-ready)."""
    if buffers.march.n_rays != rays_o.shape[0] or buffers.march.max_samples < per_round:
        raise ValueError(
            f"engine/nerf/volume.py: buffers are for {buffers.march.n_rays} rays x {buffers.march.max_samples} "
            f"samples, the call has {rays_o.shape[0]} x {per_round}; use VolumeBuffers.allocate({rays_o.shape[0]}, {per_round})"
        )
    buffers.accum.zero_()
    buffers.cursor.fill_(-1.0)
    for _ in range(max_rounds):
        samples = march_rays(
            rays_o, rays_d, grid, dt, near=near, max_samples=per_round, t_cursor=buffers.cursor,
            accum=buffers.accum, t_thresh=t_thresh, normalize=normalize, out=buffers.march,
        )  # fmt: skip
        if samples.t_dt.shape[0] == 0:
            break
        sigma, rgb = field(samples)
        composite_into(sigma, rgb, samples.t_dt, samples.ray_offset, samples.ray_count, buffers.accum, t_thresh)
    return buffers.accum
