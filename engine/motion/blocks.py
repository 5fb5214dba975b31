"""Building blocks shared by the syncers: MLPs, a 1-D temporal U-Net and a dilated conv stack over a causal feature
window, (C)VAE pieces and sinusoidal features."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def mlp(dims: list[int], dropout: float | None = None, final_activation: bool = False) -> nn.Sequential:
    """Linear layers dims[0] -> ... -> dims[-1] with SiLU between them, and Dropout(dropout) after each activation
    when dropout is not None (the layer exists even at 0, so state dicts match whatever rate was trained with)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2 or final_activation:
            layers.append(nn.SiLU())
            if dropout is not None:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def shrink_output(head: nn.Sequential, scale: float = 0.05) -> None:
    """Scale a residual head's last layer down, so a fresh syncer starts close to "hold the previous frame" (stable
    rollouts) while, unlike a zero init, gradients still reach the layers below from the first step."""
    with torch.no_grad():
        head[-1].weight.mul_(scale)
        head[-1].bias.zero_()


class Conv1d(nn.Conv1d):
    """nn.Conv1d (same weights and results) computed as one matmul over gathered taps.

    At run time a window is a handful of frames and the batch a few avatars; there torch's convolution kernels cost
    about twice a matmul of the same taps (measured on the 2-core CPU), and a frame runs ~20 of them.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C_in, L] -> [B, C_out, L_out]
        (k,), (stride,), (dilation,), (pad,) = self.kernel_size, self.stride, self.dilation, self.padding
        if self.groups != 1 or isinstance(self.padding, str):
            return super().forward(x)
        if pad:
            x = F.pad(x, (pad, pad))
        length = (x.shape[-1] - dilation * (k - 1) - 1) // stride + 1
        taps = [x[:, :, i * dilation: i * dilation + (length - 1) * stride + 1: stride] for i in range(k)]
        cols = torch.stack(taps, -1).transpose(1, 2).flatten(2)  # [B, L_out, C_in * k], matching weight's layout
        return F.linear(cols, self.weight.flatten(1), self.bias).transpose(1, 2)


class _ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = Conv1d(c_in, c_out, 3, stride=stride, padding=1)
        self.conv2 = Conv1d(c_out, c_out, 3, padding=1)
        self.norm = nn.GroupNorm(1, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C_in, L] -> [B, C_out, L / stride]
        h = F.silu(self.conv1(x))
        return F.silu(self.norm(self.conv2(h)) + h)


class TemporalUNet(nn.Module):
    """A 1-D U-Net over the frames of one causal feature window, read out at the current video frame.

    The window holds only past audio and a bounded look-ahead (see engine/audio/streaming.py), so everything this
    net sees is causal. The readout concatenates the decoder's features at the `focus` positions (the current
    video frame's own feature frames) with a mean over the window.
    """

    def __init__(self, in_dim: int, channels: int, out_dim: int, focus: tuple[int, ...], depth: int = 2) -> None:
        super().__init__()
        self.focus = tuple(focus)
        self.stem = nn.Linear(in_dim, channels)
        widths = [channels * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList(_ConvBlock(widths[i], widths[i + 1], stride=2) for i in range(depth))
        self.mid = _ConvBlock(channels * 2 ** depth, channels * 2 ** depth)
        self.up = nn.ModuleList(_ConvBlock(channels * 2 ** (i + 1), channels * 2 ** i) for i in reversed(range(depth)))
        self.readout = nn.Linear(channels * (len(self.focus) + 1), out_dim)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """window [B, W, D] (normalised features) -> [B, out_dim]."""
        h = self.stem(window).transpose(1, 2)
        skips = []
        for block in self.down:
            skips.append(h)
            h = block(h)
        h = self.mid(h)
        for block, skip in zip(self.up, reversed(skips)):
            h = block(F.interpolate(h, size=skip.shape[-1], mode="nearest")) + skip
        picked = h[:, :, list(self.focus)].flatten(1)
        return self.readout(torch.cat([picked, h.mean(-1)], 1))


class DilatedConvStack(nn.Module):
    """Stacked dilated convolutions without padding over a feature window, pooled to one vector (the paper's A_seq:
    a temporally contextualised summary of the neighbouring audio frames)."""

    def __init__(self, in_dim: int, channels: int, out_dim: int, window: int) -> None:
        super().__init__()
        self.stem = nn.Linear(in_dim, channels)
        layers: list[nn.Module] = []
        length, dilation = window, 1
        while length - 2 * dilation >= 1 and dilation <= 8:
            layers += [nn.SiLU(), Conv1d(channels, channels, 3, dilation=dilation)]
            length -= 2 * dilation
            dilation *= 2
        self.net = nn.Sequential(*layers)
        self.out = nn.Linear(channels, out_dim)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """window [B, W, D] -> [B, out_dim]."""
        return self.out(F.silu(self.net(self.stem(window).transpose(1, 2))).mean(-1))


class GaussianEncoder(nn.Module):
    """MLP -> (mu, logvar) of a diagonal Gaussian latent; logvar is clamped so a bad batch cannot overflow exp."""

    def __init__(self, in_dim: int, hidden: int, latent: int) -> None:
        super().__init__()
        self.net = mlp([in_dim, hidden, hidden, 2 * latent])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, in_dim] -> mu [B, latent], logvar [B, latent]."""
        mu, logvar = self.net(x).chunk(2, dim=-1)
        return mu, logvar.clamp(-8.0, 4.0)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """A sample of N(mu, exp(logvar)) [B, L] that gradients flow through."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def kl_to_standard(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float = 0.0) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the latent, averaged over the batch (the paper's Eq. 5).

    With free_bits > 0 each latent dimension's batch-mean KL below that many nats costs nothing ("free bits"), so
    the latent is not driven to carry nothing before the decoder has learnt to use it (posterior collapse).
    """
    per_dim = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).mean(0)
    return per_dim.clamp(min=free_bits).sum() if free_bits > 0 else per_dim.sum()


def sinusoidal(x: torch.Tensor, frequencies: int) -> torch.Tensor:
    """x [B, N] -> [B, N * 2 * frequencies]: sin and cos of pi * 2^i * x for i < frequencies."""
    scales = math.pi * 2.0 ** torch.arange(frequencies, dtype=x.dtype, device=x.device)
    angles = (x.unsqueeze(-1) * scales).flatten(1)
    return torch.cat([angles.sin(), angles.cos()], -1)
