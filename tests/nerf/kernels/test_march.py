"""Ray marching: the sample lattice, skipping through both grid levels, caps, resuming, jitter, normalization."""
import pytest
import torch

import nerf_refs
from engine.nerf.kernels.composite import composite
from engine.nerf.kernels.march import MarchBuffers, march_rays
from engine.nerf.kernels.occupancy import OccupancyGrid

pytestmark = pytest.mark.usefixtures("taichi_cpu")

DT = nerf_refs.DT
camera_rays, box_interval, brute_force = nerf_refs.camera_rays, nerf_refs.box_interval, nerf_refs.brute_force
sphere_sigma, sphere_rgb = nerf_refs.sphere_sigma, nerf_refs.sphere_rgb


def test_full_grid_gives_the_brute_force_lattice():
    o, d = camera_rays(8)
    grid = OccupancyGrid(resolution=16)  # never updated: every cell occupied
    s = march_rays(o, d, grid, dt=DT, max_samples=200)
    t_in, t_out = box_interval(o, d)
    for r in range(o.shape[0]):
        rows = slice(int(s.ray_offset[r]), int(s.ray_offset[r] + s.ray_count[r]))
        expected_n = int(torch.ceil((t_out[r] - t_in[r]) / DT - 0.5).clamp(min=0))
        assert int(s.ray_count[r]) == expected_n
        t = s.t_dt[rows, 0]
        want = t_in[r] + (torch.arange(expected_n) + 0.5) * DT
        torch.testing.assert_close(t, want, atol=2e-5, rtol=0)
        assert torch.all(s.ray_index[rows] == r)
        torch.testing.assert_close(s.positions[rows], o[r] + t[:, None] * d[r], atol=1e-5, rtol=0)
    assert torch.all(s.t_dt[:, 1] == torch.tensor(DT, dtype=torch.float32))


def test_skipping_keeps_lattice_samples_in_occupied_cells_only():
    o, d = camera_rays(16)
    grid = OccupancyGrid(resolution=32)
    grid.update(sphere_sigma)
    full = march_rays(o, d, OccupancyGrid(resolution=32), dt=DT, max_samples=200)
    skip = march_rays(o, d, grid, dt=DT, max_samples=200)
    occupied = grid.query(full.positions.contiguous()).bool()
    assert skip.t_dt.shape[0] == int(occupied.sum()) < 0.5 * full.t_dt.shape[0]
    for r in range(o.shape[0]):
        fo, fn = int(full.ray_offset[r]), int(full.ray_count[r])
        so, sn = int(skip.ray_offset[r]), int(skip.ray_count[r])
        kept = full.t_dt[fo : fo + fn, 0][occupied[fo : fo + fn]]
        torch.testing.assert_close(skip.t_dt[so : so + sn, 0], kept, atol=2e-5, rtol=0)


def test_single_occupied_cell_in_a_partial_coarse_cell():
    """30 fine cells per side: the last coarse cell sticks out of the box; one occupied fine cell in it."""
    grid = OccupancyGrid(resolution=30)
    target = 29 + 30 * (28 + 30 * 25)  # cell (29, 28, 25)
    mask = torch.zeros(30**3, dtype=torch.bool)
    mask[target] = True
    grid.set_occupied(mask)
    g = torch.Generator().manual_seed(0)
    through = grid.cell_points(torch.full((64,), target, dtype=torch.int32), g)
    d = torch.randn(64, 3, generator=g)
    d = d / d.norm(dim=-1, keepdim=True)
    o = (through - 4.0 * d).contiguous()  # every ray crosses the occupied cell
    assert int(grid.coarse.sum()) == 1
    full = march_rays(o, d, OccupancyGrid(resolution=30), dt=DT / 4, max_samples=2000)
    skip = march_rays(o, d, grid, dt=DT / 4, max_samples=2000)
    in_cell = mask[_cells(full.positions, grid)]
    assert int(in_cell.sum()) > 0
    assert skip.t_dt.shape[0] == int(in_cell.sum())
    assert torch.all(mask[_cells(skip.positions, grid)])


def _cells(points, grid):
    ijk = torch.floor((points - torch.tensor(grid.lo)) / torch.tensor(grid.cell_size)).long().clamp(0, grid.resolution - 1)
    return ijk[:, 0] + grid.resolution * (ijk[:, 1] + grid.resolution * ijk[:, 2])


def test_cap_and_resume_cover_the_same_samples():
    o, d = camera_rays(12)
    grid = OccupancyGrid(resolution=32)
    grid.update(sphere_sigma)
    once = march_rays(o, d, grid, dt=DT, max_samples=500)
    cursor = torch.full((o.shape[0],), -1.0)
    buffers = MarchBuffers(o.shape[0], 5)
    per_ray = [[] for _ in range(o.shape[0])]
    for _ in range(200):
        s = march_rays(o, d, grid, dt=DT, max_samples=5, t_cursor=cursor, out=buffers)
        assert int(s.ray_count.max()) <= 5
        if s.t_dt.shape[0] == 0:
            break
        for r in torch.nonzero(s.ray_count).flatten().tolist():
            per_ray[r].append(s.t_dt[int(s.ray_offset[r]) : int(s.ray_offset[r] + s.ray_count[r]), 0].clone())
    for r in range(o.shape[0]):
        got = torch.cat(per_ray[r]) if per_ray[r] else torch.zeros(0)
        oo, on = int(once.ray_offset[r]), int(once.ray_count[r])
        torch.testing.assert_close(got, once.t_dt[oo : oo + on, 0], atol=5e-5, rtol=0)


def test_jitter_shifts_the_lattice_within_one_step():
    o, d = camera_rays(4)
    grid = OccupancyGrid(resolution=8)
    plain = march_rays(o, d, grid, dt=DT, max_samples=4)
    jit = march_rays(o, d, grid, dt=DT, max_samples=4, jitter=torch.full((16,), 0.5))
    a = plain.t_dt[plain.ray_offset.long(), 0]
    b = jit.t_dt[jit.ray_offset.long(), 0]
    torch.testing.assert_close(b - a, torch.full_like(a, 0.5 * DT), atol=1e-5, rtol=0)


def test_normalized_positions_map_the_box_to_the_unit_cube():
    o, d = camera_rays(6)
    grid = OccupancyGrid(aabb=(-1, -0.5, -1, 1, 0.5, 1), resolution=8)
    world = march_rays(o, d, grid, dt=DT, max_samples=64).positions.clone()
    unit = march_rays(o, d, grid, dt=DT, max_samples=64, normalize=True).positions
    lo, hi = torch.tensor(grid.lo), torch.tensor(grid.hi)
    torch.testing.assert_close(unit, (world - lo) / (hi - lo), atol=1e-6, rtol=1e-6)
    assert float(unit.min()) >= 0.0 and float(unit.max()) <= 1.0


def test_rays_missing_the_box_get_no_samples():
    o = torch.tensor([[0.0, 3.0, 3.0], [0.0, 0.0, 3.0]])
    d = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    s = march_rays(o, d, OccupancyGrid(resolution=8), dt=DT)
    assert s.ray_count.tolist() == [0, 0] and s.t_dt.shape[0] == 0


def test_training_path_composite_of_marched_samples_matches_brute_force():
    o, d = camera_rays(24)
    reference, _ = brute_force(o, d)
    s = march_rays(o, d, OccupancyGrid(resolution=16), dt=DT, max_samples=200)
    out = composite(sphere_sigma(s.positions), sphere_rgb(s.positions).contiguous(), s.t_dt, s.ray_offset, s.ray_count, 0.0)
    image = out[:, :3] + (1 - out[:, 4:5])
    assert nerf_refs.psnr(image, reference) >= 50.0


def test_no_rays_no_launch():
    s = march_rays(torch.zeros(0, 3), torch.zeros(0, 3), OccupancyGrid(resolution=8), dt=DT)
    assert s.t_dt.shape == (0, 2) and s.ray_count.shape == (0,)


def test_degenerate_rays_terminate():
    o = torch.tensor([[0.1, 0.2, 0.3], [0.9, 0.9, 0.9]])
    d = torch.zeros(2, 3)  # no direction: must not loop forever or overflow the step counter
    grid = OccupancyGrid(resolution=8)
    grid.set_occupied(torch.arange(512) == 0)
    s = march_rays(o, d, grid, dt=DT, max_samples=4)
    assert int(s.ray_count.max()) <= 4
    with pytest.raises(ValueError, match="dt"):
        march_rays(o, d, grid, dt=1e-9)
