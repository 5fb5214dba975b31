"""Pure-torch references of the NeRF kernels (float64, autograd), written from the math, not from the kernels."""
from __future__ import annotations

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
