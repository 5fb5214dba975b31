"""AudioPose Syncer (the paper's Eqs. 1-7): speech window + own previous pose + a VAE latent -> head pose offsets.

Targets are Euler angles and translations as offsets from the dataset's mean pose, z-scored (Eq. 2). Per frame:

    a       = U-Net(speech window)                        g(a): causal window with a bounded look-ahead
    S_pose  = MLP(state + N(0, sigma_S))                  Eq. 4; state = previous output and its velocity
    D_pose  = MLP(z),  z ~ q(z | pose, state, a) in training, N(0, I) at run time (KL of Eq. 5)
    Off     = state.previous + heads(MLP([a, D_pose, S_pose]))   Eq. 3, rotation and translation heads

The state is the model's own previous two outputs at run time (never the tracked pose): the velocity lets a
first-order latent give second-order smooth motion, and predicting a residual keeps the rollout stable.
"""
from __future__ import annotations

import torch
from torch import nn

from engine.motion.blocks import GaussianEncoder, TemporalUNet, mlp, shrink_output
from engine.motion.config import SyncerDims
from engine.motion.normalization import FeatureNorm, ZScore

POSE_NAMES = ("roll", "pitch", "yaw", "x", "y", "z")
POSE_DIM = len(POSE_NAMES)


class AudioPoseSyncer(nn.Module):
    def __init__(self, feature_dim: int, window: int, focus: tuple[int, ...], dims: SyncerDims,
                 state_dropout: float = 0.1) -> None:
        super().__init__()
        h, a = dims.hidden, dims.audio_dim
        self.latent = dims.latent
        self.features = FeatureNorm(feature_dim)
        self.pose_norm = ZScore(POSE_DIM)
        self.audio = TemporalUNet(feature_dim, dims.audio_channels, a, focus, dims.unet_depth)
        self.s_pose = mlp([2 * POSE_DIM, h, h], dropout=state_dropout, final_activation=True)
        self.encoder = GaussianEncoder(POSE_DIM + 2 * POSE_DIM + a, h, dims.latent)
        self.d_pose = mlp([dims.latent, h, h], final_activation=True)
        self.fuse = mlp([a + 2 * h, h, h], final_activation=True)
        self.rotation = mlp([h, h // 2, 3])
        self.translation = mlp([h, h // 2, 3])
        for head in (self.rotation, self.translation):
            shrink_output(head)

    def encode_audio(self, window: torch.Tensor) -> torch.Tensor:
        """window [B, W, D] raw speech features -> audio embedding [B, audio_dim]."""
        return self.audio(self.features(window))

    def posterior(self, target: torch.Tensor, state: torch.Tensor,
                  audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | target [B, 6], state [B, 12], audio [B, A]) -> mu, logvar [B, latent] (training only)."""
        return self.encoder(torch.cat([target, state, audio], -1))

    def forward(self, audio: torch.Tensor, state: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """audio [B, A], state [B, 12] (previous offsets and their velocity), z [B, latent] -> offsets [B, 6]
        (z-scored)."""
        h = self.fuse(torch.cat([audio, self.d_pose(z), self.s_pose(state)], -1))
        return state[:, :POSE_DIM] + torch.cat([self.rotation(h), self.translation(h)], -1)
