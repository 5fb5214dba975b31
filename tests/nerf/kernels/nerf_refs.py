"""Pure-torch references of the NeRF kernels (float64, autograd), written from the math, not from the kernels."""
from __future__ import annotations

import math

import torch

PRIME_Y = 2654435761


def slot(i: torch.Tensor, j: torch.Tensor, res: int, dense: int, rows: int) -> torch.Tensor:
    if dense:
        return i + (res + 1) * j
    return (i ^ ((j * PRIME_Y) & 0xFFFFFFFF)) % rows


def hash_encode(x: torch.Tensor, table: torch.Tensor, layout, axes) -> torch.Tensor:
    """x [N, D], table [P, rows, F] -> [N, P * L * F], plane-major then level then feature."""
    cols = []
    for p, (a0, a1) in enumerate(axes):
        for offset, res, dense, rows in layout:
            u = x[:, a0].clamp(0, 1) * res
            v = x[:, a1].clamp(0, 1) * res
            i = torch.floor(u).long().clamp(max=res - 1)
            j = torch.floor(v).long().clamp(max=res - 1)
            fu = (u - i.to(u.dtype))[:, None]
            fv = (v - j.to(v.dtype))[:, None]

            def emb(di, dj):
                return table[p, offset + slot(i + di, j + dj, res, dense, rows)]

            cols.append(
                (1 - fu) * (1 - fv) * emb(0, 0) + fu * (1 - fv) * emb(1, 0) + (1 - fu) * fv * emb(0, 1) + fu * fv * emb(1, 1)
            )
    return torch.cat(cols, dim=1)


def composite(sigma, rgb, t, dt, ray_offset, ray_count, n_rays: int, t_thresh: float = 0.0):
    """Front-to-back compositing per ray of packed samples -> [R, 5] (r, g, b, depth, opacity)."""
    rows = []
    for r in range(n_rays):
        acc = torch.zeros(5, dtype=sigma.dtype)
        trans = torch.ones((), dtype=sigma.dtype)
        o, n = int(ray_offset[r]), int(ray_count[r])
        for k in range(o, o + n):
            if float(trans.detach()) < t_thresh:
                break
            alpha = 1 - torch.exp(-sigma[k] * dt[k])
            w = alpha * trans
            acc = acc + torch.cat([w * rgb[k], (w * t[k]).reshape(1), w.reshape(1)])
            trans = trans * (1 - alpha)
        rows.append(acc)
    return torch.stack(rows)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return float("inf") if mse == 0 else -10.0 * torch.log10(torch.tensor(mse)).item()


# A test scene: a soft sphere with a colour field in the box [-1, 1]^3, seen by a pinhole camera.

DT = 2 * math.sqrt(3) / 128


def camera_rays(side: int, origin=(0.0, 0.0, 2.5), focal: float = 1.6):
    """Pinhole rays looking down -z: origins and unit directions [side*side, 3]."""
    s = (torch.arange(side) + 0.5) / side * 2 - 1
    v, u = torch.meshgrid(-s, s, indexing="ij")
    d = torch.stack([u, v, torch.full_like(u, -focal)], -1).reshape(-1, 3)
    d = d / d.norm(dim=-1, keepdim=True)
    o = torch.tensor(origin).expand_as(d).contiguous()
    return o, d.contiguous()


def sphere_sigma(p: torch.Tensor) -> torch.Tensor:
    return 30.0 * torch.sigmoid((0.55 - p.norm(dim=-1)) / 0.02)


def sphere_rgb(p: torch.Tensor) -> torch.Tensor:
    return 0.5 + 0.5 * torch.sin(4.0 * p + torch.tensor([0.0, 2.0, 4.0]))


def box_interval(o, d, lo=-1.0, hi=1.0, near=0.05):
    inv = 1.0 / d
    t0, t1 = (lo - o) * inv, (hi - o) * inv
    return torch.minimum(t0, t1).amax(-1).clamp(min=near), torch.maximum(t0, t1).amin(-1)


def brute_force(o, d, bg=1.0):
    """Every lattice sample of every ray, evaluated and composited in float64 torch."""
    t_in, t_out = box_interval(o.double(), d.double())
    k = torch.arange(int(4.0 / DT) + 2, dtype=torch.float64)
    t = t_in[:, None] + (k[None] + 0.5) * DT
    valid = t < t_out[:, None]
    p = o.double()[:, None] + t[..., None] * d.double()[:, None]
    sigma = torch.where(valid, sphere_sigma(p), 0.0)
    alpha = 1 - torch.exp(-sigma * DT)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], 1), 1)
    w = alpha * trans
    rgb = (w[..., None] * sphere_rgb(p)).sum(1)
    return rgb + (1 - w.sum(1, keepdim=True)) * bg, int(valid.sum())
