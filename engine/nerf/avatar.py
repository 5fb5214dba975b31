"""The avatar model: head field over upper-body field over the background plate, its spec, saving and loading.

Composition per pixel (the head is always in front, Sec. 3.3):
    under = alpha_body rgb_body + (1 - alpha_body) background
    rgb   = head_rgb (premultiplied) + (1 - head_opacity) under
    alpha = head_opacity + (1 - head_opacity) alpha_body        (the person's coverage, for RGBA output)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.io.checkpoint import load_checkpoint, save_checkpoint
from engine.nerf.camera import FramingRange, Intrinsics, camera_directions, euler_to_matrix, head_rays
from engine.nerf.encodings import FeatureScaler
from engine.nerf.head import HeadField
from engine.nerf.kernels.composite import composite
from engine.nerf.kernels.march import march_rays
from engine.nerf.kernels.occupancy import OccupancyGrid
from engine.nerf.train_config import NERF_FILE, NerfDims
from engine.nerf.upper_body import UpperBodyField, anchor_rows, shoulder_weights

WHERE = "engine/nerf/avatar.py"
KIND = "syncanim-nerf-avatar"
FRAME_SHIFTS = "frame_torso_shift"
"""Checkpoint key of AvatarModel.frame_torso_shift (not a model weight)."""
FRAME_EXPOSURE = "frame_exposure"
"""Checkpoint key of AvatarModel.frame_exposure (not a model weight)."""


@dataclass(frozen=True)
class AvatarSpec:
    """What rebuilds an avatar model besides its tensors (stored as checkpoint metadata)."""

    dims: NerfDims
    expression: tuple[str, ...]
    """Blendshape names the head is conditioned on, in order."""
    feature_dim: int
    """Speech-feature dimension D of the audio windows."""
    window_frames: int
    """Feature frames per window W."""
    group: int
    """Feature frames per video frame (50 Hz / fps)."""
    extractor: str
    """Speech-feature extractor id the audio network was trained on."""
    intrinsics: Intrinsics
    framing: FramingRange
    head_box: tuple[float, float, float, float, float, float]
    """Canonical head box (cm)."""
    grid_resolution: int
    steps_per_diagonal: int
    rest_euler: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Mean training head rotation (degrees): the pose shown when nothing drives the avatar."""
    rest_trans: tuple[float, float, float] = (0.0, 0.0, -50.0)
    """Mean training head translation (cm)."""
    breathing_rise: float = 0.004
    """How far a breath raised the shoulders in the training frames (fraction of the side; the torso shift the
    engine gives at the top of a breath). Avatars trained before it was measured keep 0.004, 1 px at 256 px."""
    torso_follow: tuple[float, ...] = ()
    """How the torso's own turn followed the head's recent poses in the training frames (engine/nerf/torso_motion.py
    `fit_follow`); the live engine turns the torso by it. Empty: the torso follows the head pose alone."""
    torso_profile: tuple[tuple[float, ...], ...] = ()
    """How far each band of rows below the shoulder line moved with the shoulders in the training frames, (x gains,
    y gains) (engine/nerf/torso_motion.py `measure_profile`). Empty: the falloff avatars before it assumed."""

    @property
    def dt(self) -> float:
        lo, hi = self.head_box[:3], self.head_box[3:]
        return math.dist(lo, hi) / self.steps_per_diagonal

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AvatarSpec:
        fields = dict(data)
        fields["dims"] = NerfDims(**fields["dims"])
        fields["intrinsics"] = Intrinsics(**fields["intrinsics"])
        framing = dict(fields["framing"])
        framing["center"] = tuple(framing["center"])
        fields["framing"] = FramingRange(**framing)
        fields["expression"] = tuple(fields["expression"])
        for name in ("head_box", "rest_euler", "rest_trans", "torso_follow"):
            if name in fields:  # (older avatars lack the later ones: their defaults apply)
                fields[name] = tuple(fields[name])
        if "torso_profile" in fields:
            fields["torso_profile"] = tuple(tuple(gains) for gains in fields["torso_profile"])
        return cls(**fields)


class AvatarModel(nn.Module):
    """Head field, upper-body field, occupancy grid, feature scaler and background plate [S, S, 3] of one avatar."""

    def __init__(self, spec: AvatarSpec, specialize: bool = False) -> None:
        super().__init__()
        self.spec = spec
        self.head = HeadField(spec.dims, len(spec.expression), spec.feature_dim, spec.window_frames, spec.group,
                              specialize=specialize)
        self.body = UpperBodyField(spec.dims, specialize=specialize)
        self.grid = OccupancyGrid(aabb=spec.head_box, resolution=spec.grid_resolution, dilation=1)
        self.scaler = FeatureScaler(spec.feature_dim)
        size = spec.intrinsics.size
        self.register_buffer("background", torch.zeros(size, size, 3))
        self.frame_torso_shift: torch.Tensor | None = None
        """[T, 2] the torso shift measured on each dataset frame (saved beside the weights), so `eval` renders a
        dataset frame as training saw it; None for avatars trained before it was measured."""
        self.frame_exposure: torch.Tensor | None = None
        """[T, 3] each dataset frame's exposure against the plate (engine/nerf/exposure.py), saved likewise; None
        for avatars trained without it."""

    def audio_code(self, windows: torch.Tensor) -> torch.Tensor:
        """Raw feature windows [B, W, D] -> audio codes [B, A] ([B, 0] for a head without audio input)."""
        if not self.head.hears:
            return windows.new_zeros(windows.shape[0], 0)
        return self.head.audio_net(self.scaler(windows))

    def unit(self, points: torch.Tensor) -> torch.Tensor:
        """Canonical head-space points [N, 3] (cm) -> the head box's unit cube."""
        lo = torch.tensor(self.spec.head_box[:3], device=points.device)
        hi = torch.tensor(self.spec.head_box[3:], device=points.device)
        return (points - lo) / (hi - lo)

    @torch.no_grad()
    def update_grid(self, audio: torch.Tensor, expression: torch.Tensor, n_cells: int | None = None,
                    generator: torch.Generator | None = None) -> float:
        """One occupancy update with the head's density under audio [A] and expression [K]; occupied fraction."""
        return self.grid.update(lambda p: self.head.density(self.unit(p), audio, expression), n_cells, generator)


@torch.no_grad()
def tighten_grid(model: AvatarModel, alpha: float) -> float:
    """Keep only cells whose density makes a step at least `alpha` opaque (grown by one cell); occupied fraction.

    Training marches with a permissive grid (sigma > 0.01) so faint parts can still grow; the real-time renderer
    has a budget of about 16 samples per ray, and faint fog in front of the face would spend them (measured on a
    synthetic presenter at 256^2: 28 dB at 16 samples with the training grid, 34.5 dB with alpha = 0.2).
    """
    grid = model.grid
    threshold = -math.log(1.0 - alpha) / model.spec.dt
    g = grid.resolution
    dense = (grid.density > threshold).float().view(1, 1, g, g, g)
    grown = torch.nn.functional.max_pool3d(dense, 3, stride=1, padding=1).reshape(-1) > 0
    grid.set_occupied(grown & grid.occupied.bool())
    return grid.occupied_fraction()


def sample_background(background: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of the plate [S, S, 3] at dataset pixel coordinates [N, 2] -> [N, 3] (texture sampling of the
    input plate at each ray's own point, not a resize of anything rendered)."""
    size = background.shape[0]
    grid = (pixels / size * 2.0 - 1.0).view(1, 1, -1, 2)
    plate = background.permute(2, 0, 1)[None]
    out = torch.nn.functional.grid_sample(plate, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, 0].T.contiguous()


def render_rays(model: AvatarModel, pixels: torch.Tensor, euler_deg: torch.Tensor, trans: torch.Tensor,
                audio: torch.Tensor, expression: torch.Tensor, background: torch.Tensor, head: bool = True,
                max_samples: int = 24, jitter: torch.Tensor | None = None,
                torso_shift: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Differentiable render of dataset pixels [R, 2] for one frame (training and validation).

    euler_deg [3], trans [3] (cm): head pose; audio [A]: audio code; expression [K]; background [R, 3];
    torso_shift [2]: the frame's shift of the shoulders and chest (fractions of the side; see AvatarRenderer.render).
    Returns rgb [R, 3], alpha [R], body_alpha [R], head_opacity [R], v_aud [M, A] and sample_ray [M] (i64).
    """
    spec = model.spec
    rotation = euler_to_matrix(euler_deg)
    condition = model.body.condition(rotation, trans, spec.intrinsics)
    shift = None
    if torso_shift is not None:
        chin, shoulders = anchor_rows(model.body.anchors.detach(), rotation, trans, spec.intrinsics)
        shift = shoulder_weights(chin, shoulders, pixels[:, 1] / spec.intrinsics.size, spec.torso_profile) * torso_shift
    body_alpha, body_rgb = model.body(pixels / spec.intrinsics.size, condition, shift)
    under = body_alpha[:, None] * body_rgb + (1.0 - body_alpha[:, None]) * background
    out = {"body_alpha": body_alpha}
    if not head:
        out.update(rgb=under, alpha=body_alpha, head_opacity=torch.zeros_like(body_alpha))
        return out
    dirs = camera_directions(pixels.detach(), spec.intrinsics)
    rays_o, rays_d = head_rays(dirs, rotation.detach(), trans.detach())
    samples = march_rays(rays_o, rays_d, model.grid, spec.dt, max_samples=max_samples, jitter=jitter, normalize=True)
    sigma, rgb, v_aud = model.head(samples.positions, audio, expression)
    accum = composite(sigma, rgb, samples.t_dt, samples.ray_offset, samples.ray_count)
    opacity = accum[:, 4]
    out.update(
        rgb=accum[:, :3] + (1.0 - opacity[:, None]) * under,
        alpha=opacity + (1.0 - opacity) * body_alpha,
        head_opacity=opacity, v_aud=v_aud, sample_ray=samples.ray_index.long(),
    )
    return out


def save_avatar(path: Path, model: AvatarModel, extra: dict[str, Any] | None = None) -> Path:
    """Write the model's tensors and spec to a safetensors checkpoint (atomically)."""
    metadata = {"kind": KIND, "spec": model.spec.to_json(), **(extra or {})}
    tensors = dict(model.state_dict())
    if model.frame_torso_shift is not None:
        tensors[FRAME_SHIFTS] = model.frame_torso_shift
    if model.frame_exposure is not None:
        tensors[FRAME_EXPOSURE] = model.frame_exposure
    return save_checkpoint(path, tensors, metadata)


def load_avatar(path: Path, device: str | torch.device = "cpu", specialize: bool = False) -> AvatarModel:
    """Rebuild a saved avatar model on `device` (Taichi must already run there)."""
    tensors, metadata = load_checkpoint(
        path, expect={"kind": KIND}, fix="Pass the nerf.safetensors that `syncanim train` wrote into AVATAR_DIR."
    )
    model = AvatarModel(AvatarSpec.from_json(metadata["spec"]), specialize=specialize)
    model.frame_torso_shift = tensors.pop(FRAME_SHIFTS, None)
    model.frame_exposure = tensors.pop(FRAME_EXPOSURE, None)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ValueError(f"{WHERE}: {path} does not fit its own spec (missing {missing}, unexpected {unexpected}); "
                         "re-train the avatar with this engine version")
    return model.to(device).eval()


def nerf_path(avatar: Path) -> Path:
    """AVATAR_DIR (or the file itself) -> its nerf.safetensors."""
    avatar = Path(avatar)
    return avatar if avatar.suffix == ".safetensors" else avatar / NERF_FILE
