"""Camera and framing: head pose -> canonical head rays, output pixels -> dataset pixels for any crop and size.

The dataset camera (engine/data/preprocess/pose.py) is a pinhole at the origin looking down -z (x right, y up);
pixels run x right, y down; the head pose maps the canonical head into it: x_cam = R x_head + t (cm). The head
is rendered in canonical head space, so the pose is the camera: a ray o + s d in the camera frame becomes
R^T (o - t) + s R^T d there.

Framing never resizes a picture: an output of W x H pixels looks through a crop rectangle of the dataset frame,
and each output pixel is a ray through its own point of that rectangle (continuous dataset pixel coordinates),
so zooming out renders more of the upper body at the output resolution, natively.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

WHERE = "engine/nerf/camera.py"

FRAMING_ZOOM = {"default": 0.0, "med": 0.5, "max": 1.0}
"""The paper's framings (Table 2) as zoom values: default crop, MedScale, MaxScale (the whole dataset frame)."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of the dataset frames (pixels at the dataset size)."""

    focal_px: float
    cx: float
    cy: float
    size: int
    """Side of the square dataset frame in pixels."""


@dataclass(frozen=True)
class FramingRange:
    """Where the default framing looks: a crop of the dataset frame around the face, widening to the whole frame."""

    center: tuple[float, float]
    """Face centre (x, y) in units of the dataset side (0..1, origin top-left): the default crop's centre."""
    default_side: float
    """Height of the default crop in units of the dataset side (zoom 0); zoom 1 shows the whole frame."""


def euler_to_matrix(euler_deg: torch.Tensor) -> torch.Tensor:
    """euler_deg [..., 3] (roll, pitch, yaw) -> R [..., 3, 3] = Rz(roll) Ry(yaw) Rx(pitch) (the datasets' order)."""
    roll, pitch, yaw = torch.deg2rad(euler_deg).unbind(-1)
    cr, sr, cp, sp, cy, sy = roll.cos(), roll.sin(), pitch.cos(), pitch.sin(), yaw.cos(), yaw.sin()
    one, zero = torch.ones_like(roll), torch.zeros_like(roll)
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(*roll.shape, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*roll.shape, 3, 3)
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(*roll.shape, 3, 3)
    return rz @ ry @ rx


def crop_rect(zoom: float, aspect: float, framing: FramingRange) -> tuple[float, float, float, float]:
    """(x0, y0, width, height) of the crop for `zoom` in [0, 1] and output aspect width / height, in units of the
    dataset side; it stays inside the frame (a wide aspect at full zoom shows the full width, less height)."""
    if not (math.isfinite(zoom) and math.isfinite(aspect) and aspect > 0):
        raise ValueError(f"{WHERE}: zoom={zoom}, aspect={aspect}; need a finite zoom and aspect > 0")
    zoom = min(max(zoom, 0.0), 1.0)
    height = framing.default_side + (1.0 - framing.default_side) * zoom
    width = height * aspect
    if width > 1.0:
        width, height = 1.0, 1.0 / aspect
    cx = framing.center[0] + (0.5 - framing.center[0]) * zoom
    cy = framing.center[1] + (0.5 - framing.center[1]) * zoom
    x0 = min(max(cx - width / 2, 0.0), 1.0 - width)
    y0 = min(max(cy - height / 2, 0.0), 1.0 - height)
    return x0, y0, width, height


def crop_pixels(rect: tuple[float, float, float, float], width: int, height: int, size: int,
                out: torch.Tensor | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """Dataset pixel coordinates [H*W, 2] (u right, v down; pixel centres) of a width x height output through
    `rect` (units of the dataset side `size`); row-major from the top-left output pixel."""
    x0, y0, w, h = (v * size for v in rect)
    if out is None:
        out = torch.empty(height * width, 2, device=device)
    grid = out.view(height, width, 2)
    grid[..., 0].copy_((torch.arange(width, device=out.device, dtype=torch.float32) + 0.5) * (w / width) + x0)
    grid[..., 1].copy_(((torch.arange(height, device=out.device, dtype=torch.float32) + 0.5) * (h / height) + y0)[:, None])
    return out


def camera_directions(pixels: torch.Tensor, intrinsics: Intrinsics, out: torch.Tensor | None = None) -> torch.Tensor:
    """Unit ray directions [N, 3] in the camera frame through dataset pixels [N, 2]."""
    if out is None:
        out = torch.empty(pixels.shape[0], 3, device=pixels.device)
    out[:, 0] = (pixels[:, 0] - intrinsics.cx) / intrinsics.focal_px
    out[:, 1] = (intrinsics.cy - pixels[:, 1]) / intrinsics.focal_px
    out[:, 2] = -1.0
    out /= out.norm(dim=-1, keepdim=True)
    return out


def head_rays(directions: torch.Tensor, rotation: torch.Tensor, trans: torch.Tensor,
              out_o: torch.Tensor | None = None, out_d: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-frame unit directions [N, 3] and the head pose (R [3, 3], t [3] cm) -> canonical rays (o, d) [N, 3]."""
    n = directions.shape[0]
    if out_o is None:
        out_o = torch.empty(n, 3, device=directions.device)
    if out_d is None:
        out_d = torch.empty(n, 3, device=directions.device)
    # Row vectors: d_head = R^T d  <=>  d_head^T = d^T R.
    torch.mm(directions, rotation, out=out_d)
    out_o.copy_((-(rotation.T @ trans)).expand(n, 3))
    return out_o, out_d


def project(points_cam: torch.Tensor, intrinsics: Intrinsics) -> torch.Tensor:
    """Camera-frame points [..., 3] (z < 0 in front) -> dataset pixel coordinates [..., 2] in units of the side."""
    z = (-points_cam[..., 2]).clamp(min=1e-3)
    u = intrinsics.cx + intrinsics.focal_px * points_cam[..., 0] / z
    v = intrinsics.cy - intrinsics.focal_px * points_cam[..., 1] / z
    return torch.stack([u, v], -1) / intrinsics.size
