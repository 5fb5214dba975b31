"""The whole training chain on a tiny 3-D scene: tri-plane encoder + MLPs, jittered marching, differentiable
compositing and occupancy updates from the learned density fit eight views of a ball and generalise to a ninth."""
import math

import pytest
import torch

import nerf_refs
from engine.nerf.kernels.composite import composite
from engine.nerf.kernels.hash_encode import PlaneHashEncoder
from engine.nerf.kernels.march import march_rays
from engine.nerf.kernels.occupancy import OccupancyGrid

pytestmark = pytest.mark.usefixtures("taichi_cpu")

SIDE = 32
DT = 2 * math.sqrt(3) / 64


def orbit_rays(angle: float, radius: float = 2.5, focal: float = 2.0):
    """Pinhole rays [SIDE*SIDE, 3] from a camera on a circle around the ball, looking at its centre."""
    eye = torch.tensor([radius * math.sin(angle), 0.3, radius * math.cos(angle)])
    forward = -eye / eye.norm()
    right = torch.linalg.cross(forward, torch.tensor([0.0, 1.0, 0.0]))
    right = right / right.norm()
    up = torch.linalg.cross(right, forward)
    s = (torch.arange(SIDE) + 0.5) / SIDE * 2 - 1
    v, u = torch.meshgrid(-s, s, indexing="ij")
    d = (u[..., None] * right + v[..., None] * up + focal * forward).reshape(-1, 3)
    d = d / d.norm(dim=-1, keepdim=True)
    return eye.expand_as(d).contiguous(), d.contiguous()


class TinyField(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = PlaneHashEncoder(n_planes=3, levels=8, features=2, log2_table=12, base_res=8, max_res=128)
        self.sigma_net = torch.nn.Sequential(torch.nn.Linear(self.encoder.out_dim, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16))
        self.color_net = torch.nn.Sequential(torch.nn.Linear(15, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))

    def forward(self, unit_points):
        h = self.sigma_net(self.encoder(unit_points))
        return torch.exp(h[:, 0].clamp(max=10)), torch.sigmoid(self.color_net(h[:, 1:])).contiguous()


def render(field, grid, rays_o, rays_d, jitter=None):
    samples = march_rays(rays_o, rays_d, grid, dt=DT, max_samples=64, jitter=jitter, normalize=True)
    sigma, rgb = field(samples.positions)
    out = composite(sigma, rgb, samples.t_dt, samples.ray_offset, samples.ray_count)
    return out[:, :3] + (1 - out[:, 4:5])  # white background


@pytest.mark.slow
def test_tiny_nerf_fits_views_and_generalises():
    torch.manual_seed(0)
    views = [orbit_rays(a) for a in torch.linspace(0, 2 * math.pi, 9)[:-1].tolist()]
    rays_o = torch.cat([o for o, _ in views])
    rays_d = torch.cat([d for _, d in views])
    colours = torch.cat([nerf_refs.brute_force(o, d)[0].float() for o, d in views])
    held_o, held_d = orbit_rays(0.4)
    held_out = nerf_refs.brute_force(held_o, held_d)[0].float()

    field = TinyField()
    grid = OccupancyGrid(resolution=32)
    optimizer = torch.optim.Adam(
        [
            {"params": field.encoder.parameters(), "lr": 2e-2},
            {"params": [*field.sigma_net.parameters(), *field.color_net.parameters()], "lr": 5e-3},
        ]
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matmuls: torch's spinning workers would only slow Taichi down
    try:
        for step in range(200):
            batch = torch.randint(0, rays_o.shape[0], (1024,))
            pred = render(field, grid, rays_o[batch], rays_d[batch], jitter=torch.rand(1024))
            loss = torch.mean((pred - colours[batch]) ** 2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 50 == 49:
                with torch.no_grad():
                    grid.update(lambda p: field((p + 1) / 2)[0])  # world box [-1, 1]^3 -> unit box
        with torch.no_grad():
            image = render(field, grid, held_o, held_d)
    finally:
        torch.set_num_threads(threads)
    assert grid.occupied_fraction() < 0.6  # the learned density carved empty space
    assert nerf_refs.psnr(image, held_out) >= 25.0
