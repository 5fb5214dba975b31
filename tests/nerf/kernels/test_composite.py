"""The compositor against a float64 torch reference: values, gradients, early termination, round accumulation."""
import pytest
import torch

import nerf_refs
from engine.nerf.kernels.composite import composite, composite_into

pytestmark = pytest.mark.usefixtures("taichi_cpu")


def _packed(n_rays=40, max_n=12, seed=0, sigma_scale=8.0):
    """Random packed samples; rays own shuffled, non-overlapping row ranges (as the marcher's atomics give)."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, max_n + 1, (n_rays,), generator=g)
    counts[0] = 0
    order = torch.randperm(n_rays, generator=g)
    offsets = torch.zeros(n_rays, dtype=torch.int64)
    offsets[order] = torch.cumsum(counts[order], 0) - counts[order]
    m = int(counts.sum())
    sigma = torch.rand(m, generator=g) * sigma_scale
    rgb = torch.rand(m, 3, generator=g)
    dt = 0.05 + 0.1 * torch.rand(m, generator=g)
    t = torch.zeros(m)
    for r in range(n_rays):
        o, n = int(offsets[r]), int(counts[r])
        t[o : o + n] = 0.5 + torch.cumsum(dt[o : o + n], 0) - 0.5 * dt[o : o + n]
    return sigma, rgb, torch.stack([t, dt], 1), offsets.int(), counts.int()


@pytest.mark.parametrize("t_thresh", [0.0, 0.05])
def test_values_and_gradients_match_reference(t_thresh):
    sigma, rgb, t_dt, off, cnt = _packed()
    sigma.requires_grad_(True)
    rgb.requires_grad_(True)
    out = composite(sigma, rgb, t_dt, off, cnt, t_thresh=t_thresh)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(5))
    (out * grad).sum().backward()

    s64 = sigma.detach().double().requires_grad_(True)
    c64 = rgb.detach().double().requires_grad_(True)
    t64 = t_dt.double()
    want = nerf_refs.composite(s64, c64, t64[:, 0], t64[:, 1], off, cnt, len(off), t_thresh)
    (want * grad.double()).sum().backward()

    torch.testing.assert_close(out.double(), want.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sigma.grad.double(), s64.grad, atol=5e-5, rtol=1e-4)
    torch.testing.assert_close(rgb.grad.double(), c64.grad, atol=1e-5, rtol=1e-5)
    assert torch.all(out[0] == 0)  # a ray without samples stays empty
    if t_thresh > 0:
        # early termination really happened: some samples got no gradient at all
        assert int((sigma.grad == 0).sum()) > 0


def test_opacity_is_one_minus_transmittance():
    sigma, rgb, t_dt, off, cnt = _packed(seed=1)
    out = composite(sigma, rgb, t_dt, off, cnt, t_thresh=0.0)
    for r in range(len(off)):
        o, n = int(off[r]), int(cnt[r])
        trans = torch.exp(-(sigma[o : o + n] * t_dt[o : o + n, 1]).sum())
        assert abs(float(out[r, 4]) - (1 - float(trans))) < 1e-5


def test_inference_rounds_accumulate_to_the_single_pass_result():
    sigma, rgb, t_dt, off, cnt = _packed(seed=2, sigma_scale=3.0)
    whole = composite(sigma, rgb, t_dt, off, cnt, t_thresh=1e-4)
    first = torch.minimum(cnt, torch.full_like(cnt, 4))
    accum = torch.zeros(len(off), 5)
    composite_into(sigma, rgb, t_dt, off, first, accum, t_thresh=1e-4)
    composite_into(sigma, rgb, t_dt, off + first, cnt - first, accum, t_thresh=1e-4)
    torch.testing.assert_close(accum, whole, atol=1e-6, rtol=1e-5)


def test_bad_arguments_name_the_fix():
    sigma, rgb, t_dt, off, cnt = _packed(seed=3)
    with pytest.raises(TypeError, match="ray_offset"):
        composite(sigma, rgb, t_dt, off.long(), cnt)
    with pytest.raises(ValueError, match="rgb"):
        composite(sigma, rgb[:-1], t_dt, off, cnt)


def test_no_samples_gives_empty_rays_and_empty_gradients():
    sigma = torch.zeros(0, requires_grad=True)
    rgb = torch.zeros(0, 3, requires_grad=True)
    none = torch.zeros(3, dtype=torch.int32)
    out = composite(sigma, rgb, torch.zeros(0, 2), none, none)
    out.sum().backward()
    assert out.shape == (3, 5) and torch.all(out == 0) and sigma.grad.shape == (0,)
