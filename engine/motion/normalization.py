"""Normalisation: mean/std statistics fitted on training data, z-scoring and its inverse, kept as model buffers."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def fit_stats(values: np.ndarray, floor: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std of values [N, D]; std is floored so a constant column cannot divide by zero."""
    values = np.asarray(values, np.float64).reshape(len(values), -1)
    return values.mean(0).astype(np.float32), np.maximum(values.std(0), floor).astype(np.float32)


class ZScore(nn.Module):
    """z = (x - mean) / std and back; mean and std [D] are buffers, so they travel inside the checkpoint."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., D] -> z [..., D]."""
        return (x - self.mean) / self.std

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """z [..., D] -> x [..., D]."""
        return z * self.std + self.mean

    def stats(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


class FeatureNorm(nn.Module):
    """Speech-feature normalisation with clipped z-scores, so absurd input cannot push the syncers far outside what
    they were trained on. `silence` [D] holds the features of silent audio: the run time puts it in place of
    non-finite values (engine/motion/runtime.py), so NaN input reads as calm silence."""

    def __init__(self, dim: int, clip: float = 6.0) -> None:
        super().__init__()
        self.z = ZScore(dim)
        self.register_buffer("silence", torch.zeros(dim))
        self.clip = clip

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """window [B, W, D] raw features -> [B, W, D] normalised."""
        return self.z(window).clamp(-self.clip, self.clip)

    def speech_level(self, frames: torch.Tensor) -> torch.Tensor:
        """How far raw feature frames [N, D] lie from silence's, in z-scores, as a share of how far the training
        frames' mean lies from it: [N], 0 for silence (the noise gate brings quiet pauses there), around 1-2 in
        speech. Any feature kind; where it tells speech from pauses is calibrated per model (motion training)."""
        silence = self.z(self.silence)
        return torch.linalg.vector_norm(self.z(frames) - silence, dim=-1) / torch.linalg.vector_norm(silence).clamp(
            min=1e-6)
