"""Small encodings of the fields: sinusoidal frequency codes and the audio network with temporal attention.

The audio network reads the engine's speech-feature window (W feature frames at 50 Hz, z-scored with the training
statistics), groups it into video frames (2 feature frames per frame at 25 fps), encodes each video frame with a
small MLP and blends the neighbouring frames with learned temporal attention (the AudioNet + AudioAttNet pattern
of ER-NeRF), giving the head field's audio code a_h.
"""
from __future__ import annotations

import torch
from torch import nn


def frequency_dim(in_dim: int, n_freqs: int) -> int:
    """Width of `frequency_encode` for in_dim inputs and n_freqs octaves."""
    return in_dim * (1 + 2 * n_freqs)


def frequency_encode(x: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """x [..., D] -> [..., D (1 + 2 F)]: x, then sin and cos of 2^k pi x for k < F."""
    scales = (2.0 ** torch.arange(n_freqs, device=x.device, dtype=x.dtype)) * torch.pi
    angles = (x[..., None, :] * scales[:, None]).flatten(-2)
    return torch.cat([x, angles.sin(), angles.cos()], -1)


class AudioNet(nn.Module):
    """Feature window [B, W, D] (normalised) -> audio code [B, out_dim]: per-video-frame MLP + temporal attention."""

    def __init__(self, feature_dim: int, window_frames: int, group: int, out_dim: int = 32, hidden: int = 64) -> None:
        super().__init__()
        if window_frames % group != 0:
            raise ValueError(f"engine/nerf/encodings.py: window of {window_frames} feature frames does not split "
                             f"into video frames of {group}; use an AudioSettings.window_frames divisible by {group}")
        self.group, self.frames = group, window_frames // group
        self.frame_net = nn.Sequential(
            nn.Linear(feature_dim * group, hidden), nn.LeakyReLU(0.02), nn.Linear(hidden, hidden), nn.LeakyReLU(0.02),
            nn.Linear(hidden, out_dim),
        )
        # Temporal attention over the neighbouring video frames: a 1-D conv stack over time, then a softmax.
        self.attention = nn.Sequential(
            nn.Conv1d(out_dim, 16, 3, padding=1), nn.LeakyReLU(0.02), nn.Conv1d(16, 4, 3, padding=1),
            nn.LeakyReLU(0.02), nn.Conv1d(4, 1, 3, padding=1),
        )
        self.mix = nn.Linear(self.frames, self.frames)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """window [B, W, D] -> [B, out_dim]."""
        b = window.shape[0]
        per_frame = self.frame_net(window.reshape(b, self.frames, -1))  # [B, F, A]
        scores = self.mix(self.attention(per_frame.transpose(1, 2))[:, 0])  # [B, F]
        weights = torch.softmax(scores, -1)
        return (weights[:, :, None] * per_frame).sum(1)


class FeatureScaler(nn.Module):
    """Z-scores raw speech features with the training statistics (buffers, saved with the weights)."""

    def __init__(self, dim: int, clip: float = 6.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.clip = clip

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """window [..., D] raw -> [..., D] clipped z-scores; NaN (no audio yet) reads as the mean (silence-like)."""
        z = ((window - self.mean) / self.std).clamp(-self.clip, self.clip)
        return torch.nan_to_num(z, nan=0.0)
