"""Occupancy grid: EMA update from a density function, thresholding, queries, and saving with the weights."""
import pytest
import torch

from engine.nerf.kernels.occupancy import OccupancyGrid

pytestmark = pytest.mark.usefixtures("taichi_cpu")


def ball(points: torch.Tensor) -> torch.Tensor:
    return torch.where(points.norm(dim=-1) < 0.5, 50.0, 0.0)


def test_starts_fully_occupied_then_marks_the_ball():
    grid = OccupancyGrid(resolution=16)
    assert grid.occupied_fraction() == 1.0
    fraction = grid.update(ball, generator=torch.Generator().manual_seed(0))
    # ball volume / box volume = (4/3 pi 0.125) / 8 = 0.065; boundary cells make the grid a bit larger
    assert 0.03 < fraction < 0.15
    centres = torch.tensor([[0.0, 0.0, 0.0], [0.2, -0.2, 0.1], [0.9, 0.9, 0.9], [-0.8, 0.0, 0.0], [3.0, 0.0, 0.0]])
    assert grid.query(centres).tolist() == [1, 1, 0, 0, 0]


def test_density_is_a_decaying_max():
    grid = OccupancyGrid(resolution=4, decay=0.5, threshold=0.01)
    grid.update(lambda p: torch.full((p.shape[0],), 8.0))
    assert torch.allclose(grid.density, torch.full((64,), 8.0))
    grid.update(lambda p: torch.where(p[:, 0] > 0, 6.0, 0.0))
    expected = torch.tensor([6.0 if x >= 2 else 4.0 for z in range(4) for y in range(4) for x in range(4)])
    assert torch.allclose(grid.density, expected)  # x fastest in the cell index
    assert grid.occupied_fraction() == 1.0  # everything above threshold=0.01
    for _ in range(20):
        grid.update(lambda p: torch.zeros(p.shape[0]))
    # densities fell below 0.01: the threshold becomes the mean, which keeps the denser x >= 2 half
    assert float(grid.density.max()) < 0.01
    assert torch.equal(grid.occupied.bool(), expected > 5.0)


def test_partial_updates_touch_only_sampled_cells_and_favour_occupied_ones():
    grid = OccupancyGrid(resolution=8, decay=1.0)
    grid.update(lambda p: torch.ones(p.shape[0]), n_cells=40, generator=torch.Generator().manual_seed(1))
    touched = int((grid.density > 0).sum())
    assert 0 < touched <= 40
    mask = torch.zeros(512, dtype=torch.bool)
    mask[:8] = True
    grid.set_occupied(mask)
    seen = torch.zeros(512)

    def count_visits(points):
        seen.index_add_(0, _cell_of(points), torch.ones(points.shape[0]))
        return torch.zeros(points.shape[0])

    grid.update(count_visits, n_cells=400)
    assert float(seen[:8].sum()) >= 200  # half of the draws go to the 8 occupied cells
    assert float(seen[8:].sum()) >= 150


def _cell_of(points):
    ijk = torch.floor((points + 1) / 0.25).long().clamp(0, 7)
    return ijk[:, 0] + 8 * (ijk[:, 1] + 8 * ijk[:, 2])


def test_dilation_grows_the_mask_by_whole_cells():
    def one_cell(p):  # dense only inside cell (4, 4, 4) of 8^3, which spans [0, 0.25)^3
        return torch.where(((p >= 0) & (p < 0.25)).all(-1), 9.0, 0.0)

    plain = OccupancyGrid(resolution=8)
    plain.update(one_cell)
    assert plain.occupied.nonzero().flatten().tolist() == [4 + 8 * (4 + 8 * 4)]
    grown = OccupancyGrid(resolution=8, dilation=1)
    grown.update(one_cell)
    assert int(grown.occupied.sum()) == 27
    assert grown.occupied_box == ((-0.25, -0.25, -0.25), (0.5, 0.5, 0.5))


def test_cell_points_lie_in_their_cells():
    grid = OccupancyGrid(aabb=(-1, -0.5, -1, 1, 0.5, 1), resolution=8)
    cells = torch.arange(512, dtype=torch.int32)
    pts = grid.cell_points(cells, torch.Generator().manual_seed(2))
    size = torch.tensor(grid.cell_size)
    ijk = torch.floor((pts - torch.tensor(grid.lo)) / size).long()
    assert torch.equal(ijk[:, 0] + 8 * (ijk[:, 1] + 8 * ijk[:, 2]), cells.long())


def test_buffers_round_trip_through_state_dict():
    grid = OccupancyGrid(resolution=16)
    grid.update(ball)
    other = OccupancyGrid(resolution=16)
    other.load_state_dict(grid.state_dict())
    assert torch.equal(other.occupied, grid.occupied) and other.occupied.dtype == torch.uint8
    assert torch.equal(other.coarse, grid.coarse) and 0 < int(grid.coarse.sum()) < grid.coarse.numel()


def test_bad_config_names_the_fix():
    with pytest.raises(ValueError, match="aabb"):
        OccupancyGrid(aabb=(1, 0, 0, -1, 1, 1))
    grid = OccupancyGrid(resolution=4)
    with pytest.raises(ValueError, match="density_fn returned"):
        grid.update(lambda p: torch.zeros(3))
