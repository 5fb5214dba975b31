"""The upper-body field (paper Eqs. 8-9): a 2-D hash grid over image-plane coordinates, deformed by the head pose
through trainable anchor points.

Three anchors X~ live in canonical head space (cm). Each frame they are moved by the head pose and projected by
the dataset camera; their six image coordinates are the pose condition. A small MLP turns (pixel, condition) into
an offset of the pixel's coordinate, the hash grid is read at the moved coordinate, and a second MLP gives the
upper body's alpha and colour there. So shoulders, neck and clothes follow the rendered head pose: nothing is
pasted back onto a fixed torso. The condition is constant over a frame; the renderer folds its share of both
first layers into their biases once per frame (`frame_biases`).

What the head pose does not explain, a breath or the torso's own turn, is a per-frame shift of the shoulders and
chest, which each row takes a measured share of (`shoulder_weights`): training reads each frame's measured shift
(engine/nerf/torso_motion.py), the live engine one made of the breathing controller's breath and the head's recent
poses.
"""
from __future__ import annotations

import torch
from torch import nn

from engine.nerf.camera import Intrinsics, project
from engine.nerf.encodings import frequency_dim, frequency_encode
from engine.nerf.head import _mlp, colour_activation
from engine.nerf.kernels.hash_encode import PlaneHashEncoder
from engine.nerf.train_config import NerfDims

ANCHORS_CM = ((0.0, -9.0, -2.0), (-12.0, -22.0, -6.0), (12.0, -22.0, -6.0))
"""Initial anchors in canonical head space: under the chin and at both shoulders (trained from there)."""


PROFILE_EDGE = 0.03
"""Rows (fraction of the side) over which a measured profile's shift fades out at the frame's bottom edge, so the
grid is never read past it."""


def shoulder_weights(chin: torch.Tensor, shoulders: torch.Tensor, y: torch.Tensor,
                     profile: tuple[tuple[float, ...], ...] | torch.Tensor = ()) -> torch.Tensor:
    """How much of a torso shift (x, y) each pixel row y [...] (fractions of the side) takes: [..., 2]. None under
    the chin (the neck stays on the head), all of it at the shoulder line; below it, as the recording's own rows
    moved (`profile`: gains (x, y) of bands from the shoulder line down to the frame's edge, measured by
    engine/nerf/torso_motion.py), or, without one, less and less towards the frame's bottom edge (the assumption
    of avatars trained before it was measured). chin, shoulders: rows, as tensors; profile: [2, K] (a tensor
    already on y's device saves a copy per call)."""
    rise = ((y - chin) / (shoulders - chin).clamp(min=0.05)).clamp(0.0, 1.0)
    below = ((y - shoulders) / (1.0 - shoulders).clamp(min=0.05)).clamp(0.0, 1.0)
    if len(profile) == 0:
        fall = (1.0 - below)[..., None].expand(*below.shape, 2)
    else:
        gains = torch.as_tensor(profile, dtype=y.dtype, device=y.device)  # [2, K], band centres (k + 0.5) / K
        bands = gains.shape[1]
        position = (below * bands - 0.5).clamp(0.0, bands - 1.0)
        low = position.floor().long()
        high, part = (low + 1).clamp(max=bands - 1), position - low
        fall = torch.movedim(gains[:, low] * (1.0 - part) + gains[:, high] * part, 0, -1)
        fall = torch.minimum(fall, ((1.0 - y) / PROFILE_EDGE).clamp(0.0, 1.0)[..., None])
    return torch.minimum((rise * rise * (3.0 - 2.0 * rise))[..., None], fall)


def anchor_rows(anchors: torch.Tensor, rotation: torch.Tensor, trans: torch.Tensor,
                intrinsics: Intrinsics) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows (fractions of the side) of the chin anchor and of the shoulder line under head poses R [..., 3, 3],
    t [..., 3] (tensors: no device sync on CUDA)."""
    rows = project(anchors @ rotation.transpose(-1, -2) + trans[..., None, :], intrinsics)[..., 1]
    return rows[..., 0], rows[..., 1:].mean(-1)


class UpperBodyField(nn.Module):
    """F_upper-body of Eq. 8: pixels p [N, 2] (units of the dataset side) and the head pose -> alpha [N], rgb [N, 3]."""

    def __init__(self, dims: NerfDims, specialize: bool = False) -> None:
        super().__init__()
        self.dims = dims
        self.anchors = nn.Parameter(torch.tensor(ANCHORS_CM))
        self.encoder = PlaneHashEncoder(
            n_planes=1, levels=dims.body_levels, features=dims.body_features, log2_table=dims.body_log2_table,
            base_res=dims.body_base_res, max_res=dims.body_max_res, specialize=specialize,
        )
        p_dim = frequency_dim(2, dims.pixel_freqs)
        c_dim = frequency_dim(6, dims.anchor_freqs)
        self.pixel_dim, self.condition_dim = p_dim, c_dim
        self.deform_net = _mlp([p_dim + c_dim, dims.body_hidden, dims.body_hidden, 2])
        self.colour_net = _mlp([self.encoder.out_dim + p_dim + c_dim, dims.body_hidden, dims.body_hidden, 4])
        with torch.no_grad():  # start from the identity warp: the grid first learns the average frame
            self.deform_net[-1].weight.mul_(0.01)
            self.deform_net[-1].bias.zero_()

    def condition(self, rotation: torch.Tensor, trans: torch.Tensor, intrinsics: Intrinsics) -> torch.Tensor:
        """Head pose (R [3, 3], t [3] cm) -> frequency code [C] of the projected anchors (the pose condition)."""
        cam = self.anchors @ rotation.T + trans
        uv = project(cam, intrinsics) * 2.0 - 1.0
        return frequency_encode(uv.reshape(6), self.dims.anchor_freqs)

    def warp(self, pixels: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels [N, 2], condition [C] -> (moved pixels [N, 2], pixel code [N, P])."""
        code = frequency_encode(pixels * 2.0 - 1.0, self.dims.pixel_freqs)
        cond = condition.expand(pixels.shape[0], -1)
        offset = self.deform_net(torch.cat([code, cond], -1))
        return pixels + offset, code

    def forward(self, pixels: torch.Tensor, condition: torch.Tensor,
                shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels [N, 2] in units of the dataset side, condition [C] -> alpha [N], rgb [N, 3]. shift [N, 2]: each
        pixel's torso shift (its weight times the frame's shift), added to where the grid is read."""
        moved, code = self.warp(pixels, condition)
        if shift is not None:
            moved = moved + shift
        enc = self.encoder(moved.contiguous())
        out = self.colour_net(torch.cat([enc, code, condition.expand(pixels.shape[0], -1)], -1))
        return torch.sigmoid(out[:, 0]), colour_activation(out[:, 1:])

    def frame_biases(self, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first layers' biases of the deformation and colour MLPs with the condition [C] folded in."""
        c = self.condition_dim
        deform, colour = self.deform_net[0], self.colour_net[0]
        return deform.bias + deform.weight[:, -c:] @ condition, colour.bias + colour.weight[:, -c:] @ condition
