"""Losses and image metrics of NeRF training: photometric L2 (Eq. 9), the lip term of Eq. 15 (SSIM or LPIPS),
PSNR."""
from __future__ import annotations

import logging
import math
from typing import Callable

import torch

from engine.perceptual import LPIPS_MIN_SIZE, LPIPSLoss, WeightsUnavailable

log = logging.getLogger(__name__)

LIP_WEIGHTS = {"lpips": 0.01, "ssim": 0.2}
"""lambda of Eq. 15 per lip term (LPIPS: the public reference code's; SSIM: this engine's before LPIPS was
available)."""

LipTerm = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of `values` [R] over the entries `weight` [R] (0/1) keeps; 0 when it keeps none."""
    return (values * weight).sum() / weight.sum().clamp(min=1.0)


def photometric(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error of colours [R, 3]; `weight` [R] (0/1) leaves rays out."""
    err = ((pred - target) ** 2).mean(-1)
    return err.mean() if weight is None else weighted_mean(err, weight)


def _gaussian_window(size: int, sigma: float, device) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of two images [H, W, 3] in [0, 1] (Gaussian window, 'valid' borders; window shrinks to fit)."""
    window = min(window, a.shape[0], a.shape[1])
    if window % 2 == 0:
        window -= 1
    kernel = _gaussian_window(window, sigma, a.device)
    x, y = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]

    def blur(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(t, kernel, groups=3)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    score = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return score.mean()


def lip_term(choice: str, patch: int, device) -> tuple[str, LipTerm]:
    """Eq. 15's term on two lip patches [P, P, 3] in [0, 1], and its name: 'lpips' (AlexNet LPIPS) or 'ssim'
    (1 - SSIM). `choice` 'auto' takes LPIPS where it can (its weights installed, P >= 31) and says why not otherwise;
    'lpips' raises where it cannot, naming the fix."""
    if choice not in ("auto", "lpips", "ssim"):
        raise ValueError(f"lip_loss {choice!r}: use 'auto', 'lpips' or 'ssim'")
    if choice != "ssim":
        try:
            if patch < LPIPS_MIN_SIZE:
                raise ValueError(f"the lip patch is {patch} px a side and LPIPS needs at least {LPIPS_MIN_SIZE} "
                                 "(a larger lip_patch)")
            network = LPIPSLoss().to(device)
            return "lpips", lambda a, b: network(a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None])
        except (WeightsUnavailable, ValueError) as error:
            if choice == "lpips":
                raise
            log.info("lips stage: 1 - SSIM on the lip patch instead of LPIPS: %s", error)
    return "ssim", lambda a, b: 1.0 - ssim(a, b)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of images in [0, 1] (any matching shapes)."""
    mse = float(((pred.float().clamp(0, 1) - target.float()) ** 2).mean())
    return 99.0 if mse <= 1e-10 else 10.0 * math.log10(1.0 / mse)
