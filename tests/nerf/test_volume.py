"""The real-time rendering loop: occupancy skipping and early termination change speed, not the image."""
import pytest
import torch

import nerf_refs
from engine.nerf.kernels.occupancy import OccupancyGrid
from engine.nerf.volume import VolumeBuffers, render_volume

pytestmark = pytest.mark.usefixtures("taichi_cpu")


class CountingSphere:
    """The reference sphere as a field over samples in the grid's unit box; counts evaluations."""

    def __init__(self):
        self.evaluated = 0

    def __call__(self, samples):
        world = samples.positions * 2.0 - 1.0  # unit box -> [-1, 1]^3
        self.evaluated += world.shape[0]
        return nerf_refs.sphere_sigma(world), nerf_refs.sphere_rgb(world).contiguous()


def _image(accum, bg=1.0):
    return accum[:, :3] + (1 - accum[:, 4:5]) * bg


def test_occupancy_skipping_changes_speed_not_the_image():
    o, d = nerf_refs.camera_rays(48, focal=3.0)  # the sphere fills about a third of the image
    reference, brute_samples = nerf_refs.brute_force(o, d)
    assert float((reference - 1).abs().amax(-1).gt(0.1).float().mean()) > 0.2  # not two blank images
    grid = OccupancyGrid(resolution=64)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        grid.update(nerf_refs.sphere_sigma, generator=g)
    field = CountingSphere()
    buffers = VolumeBuffers.allocate(o.shape[0], 8)
    accum = render_volume(o, d, grid, field, buffers, dt=nerf_refs.DT, per_round=8, max_rounds=64)
    assert nerf_refs.psnr(_image(accum), reference) >= 40.0
    assert field.evaluated < 0.25 * brute_samples  # the speed: far fewer field evaluations


def test_real_time_budget_of_two_rounds_stays_close_and_reuses_buffers():
    o, d = nerf_refs.camera_rays(32, focal=3.0)
    reference, _ = nerf_refs.brute_force(o, d)
    grid = OccupancyGrid(resolution=64)
    grid.update(nerf_refs.sphere_sigma)
    buffers = VolumeBuffers.allocate(o.shape[0], 8)
    field = CountingSphere()
    first = render_volume(o, d, grid, field, buffers, dt=nerf_refs.DT, per_round=8, max_rounds=2).clone()
    assert field.evaluated <= 16 * o.shape[0]
    # 16 samples, some spent in the grid's conservative shell around the surface: close, not exact
    # (a blank image scores about 8 dB here)
    assert nerf_refs.psnr(_image(first), reference) >= 27.0
    again = render_volume(o, d, grid, field, buffers, dt=nerf_refs.DT, per_round=8, max_rounds=2)
    assert again.data_ptr() == buffers.accum.data_ptr()
    torch.testing.assert_close(again, first, atol=1e-6, rtol=0)  # per-frame state was reset


def test_wrong_buffers_name_the_fix():
    o, d = nerf_refs.camera_rays(4)
    with pytest.raises(ValueError, match="VolumeBuffers.allocate"):
        render_volume(o, d, OccupancyGrid(resolution=8), CountingSphere(), VolumeBuffers.allocate(5, 8), dt=0.1)
