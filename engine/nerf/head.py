"""The head field (paper Eqs. 13-15): tri-plane hash encoding in canonical head space, audio and expression
conditions weighted per point by channel-wise region attention, density and colour MLPs.

    enc = H^3(x)                                   [N, 3 L]   xy, yz, xz planes, concatenated
    v_aud = Attn_aud(enc), v_exp = Attn_exp(enc)    [N, A], [N, K]   (Eq. 14)
    h = sigma_net([enc, a_h * v_aud, b * v_exp])    sigma = exp(h_0), geometry features h_1..
                                                    (b: blendshapes standardised by the training frames)
    rgb = colour_net(h_1..)

b holds the upper face and the mouth (engine/motion/config.py EXPRESSION): the tracked face tells the field how
the lips look, so a silent recording trains them, and any audio-to-expression model drives them. The audio code a_h
is optional (dims.audio_dim = 0: none), a second lip input for recordings with sound.

The head pose is the camera (rays are generated in canonical space, engine/nerf/camera.py), so nothing here
depends on pose. Because a_h and b are constant over a frame, a_h * v_aud enters the first sigma layer as
W_a diag(a_h) v_aud: the renderer folds them into that layer's weights once per frame (`frame_weights`).
"""
from __future__ import annotations

import torch
from torch import nn

from engine.nerf.encodings import AudioNet
from engine.nerf.kernels.hash_encode import PlaneHashEncoder
from engine.nerf.train_config import NerfDims

SIGMA_CLAMP = 15.0
"""Largest log-density: exp(15) is opaque over any step, and larger values only overflow."""


class MLP(nn.Sequential):
    """Linear layers with ReLU between them. While training on CUDA, `fused` (engine/nerf/tcnn.py) may run the
    arithmetic with tiny-cuda-nn's kernels; these layers keep the weights either way."""

    fused = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None and x.is_cuda and x.shape[0] > 0:
            return self.fused(self, x)
        return super().forward(x)


def _mlp(sizes: list[int], bias: bool = True) -> MLP:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1], bias=bias))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return MLP(*layers)


def colour_activation(x: torch.Tensor) -> torch.Tensor:
    """Sigmoid stretched slightly past [0, 1] so pure black and white are reachable with finite logits."""
    return torch.sigmoid(x) * 1.002 - 0.001


class HeadField(nn.Module):
    """F_head of Eq. 13: unit-box points x [N, 3], audio code a [A], expression b [K] -> sigma [N], rgb [N, 3]."""

    def __init__(self, dims: NerfDims, n_expression: int, feature_dim: int, window_frames: int, group: int,
                 specialize: bool = False) -> None:
        super().__init__()
        self.dims, self.n_expression = dims, n_expression
        self.encoder = PlaneHashEncoder(
            n_planes=3, levels=dims.head_levels, features=1, log2_table=dims.head_log2_table,
            base_res=dims.head_base_res, max_res=dims.head_max_res, specialize=specialize,
        )
        e, a, k, h = self.encoder.out_dim, dims.audio_dim, n_expression, dims.head_hidden
        self.audio_net = AudioNet(feature_dim, window_frames, group, out_dim=a) if a else None
        self.audio_attention = _mlp([e, h, a], bias=False) if a else None
        self.expression_attention = _mlp([e, h, k], bias=False)
        self.sigma_net = _mlp([e + a + k, h, h, 1 + dims.geo_features])
        self.colour_net = _mlp([dims.geo_features, dims.color_hidden, 3])
        # Blendshapes enter standardised by the training frames' statistics: raw eyeBlink moves 0.1 -> 0.5 for a
        # full blink on some faces, too faint a condition for the field to close the eyes; standardised it is ~5.
        self.register_buffer("expression_mean", torch.zeros(k))
        self.register_buffer("expression_std", torch.ones(k))

    def standardise(self, expression: torch.Tensor) -> torch.Tensor:
        """Blendshapes [K] or [N, K] -> the field's condition b: (values - training mean) / training std."""
        return (expression - self.expression_mean) / self.expression_std

    @property
    def encoding_dim(self) -> int:
        return self.encoder.out_dim

    @property
    def hears(self) -> bool:
        """The field takes an audio code beside the expression."""
        return self.audio_net is not None

    def attention(self, enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """enc [N, E] -> (v_aud [N, A], v_exp [N, K]) (Eq. 14); v_aud is [N, 0] for a field without audio."""
        v_aud = self.audio_attention(enc) if self.hears else enc.new_zeros(enc.shape[0], 0)
        return v_aud, self.expression_attention(enc)

    def forward(self, x: torch.Tensor, audio: torch.Tensor, expression: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [N, 3] in the head box's unit cube; audio [A] or [N, A] ([0] without audio); expression [K] or [N, K]
        -> sigma [N], rgb [N, 3], v_aud [N, A] (for the attention regulariser)."""
        enc = self.encoder(x)
        v_aud, v_exp = self.attention(enc)
        h = self.sigma_net(torch.cat([enc, audio * v_aud, self.standardise(expression) * v_exp], -1))
        sigma = torch.exp(h[:, 0].clamp(max=SIGMA_CLAMP))
        rgb = colour_activation(self.colour_net(h[:, 1:]))
        return sigma, rgb.contiguous(), v_aud

    def density(self, x: torch.Tensor, audio: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """sigma [N] only (occupancy updates)."""
        return self.forward(x, audio, expression)[0]

    def frame_weights(self, audio: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """The first sigma layer's weight [H, E + A + K] with a_h [A] and b [K] folded into its columns."""
        w = self.sigma_net[0].weight
        e, a = self.encoding_dim, self.dims.audio_dim
        return torch.cat([w[:, :e], w[:, e:e + a] * audio, w[:, e + a:] * self.standardise(expression)], 1)
