"""The NeRF renderer's resources: where its kernels run (NerfRuntimeSettings, then the RenderDevice they started on)
and how avatars are rendered (NerfRenderSettings). A light module: no torch, no taichi at import."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

HeadScale = float | Literal["auto"]
"""Fraction in (0, 1] of the output resolution the head is ray-marched at, or 'auto' (engine/nerf/render.py
resolve_head_scale: 0.5 on a CPU above 128 x 128 pixels, 1 otherwise)."""
Precision = Literal["auto", "float32", "bfloat16"]
"""Precision of the renderer's MLP matmuls ('auto': engine/nerf/render.py resolve_precision)."""


@dataclass(frozen=True)
class NerfRuntimeSettings:
    """Resource: the render device and Taichi's start-up options, read by `start_taichi` in STARTUP."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """'cpu' (ti.cpu), 'cuda' (ti.cuda, needs a CUDA build of torch and a GPU), or 'auto': CUDA when torch sees it."""
    kernel_cache: Path | None = None
    """Taichi's offline kernel cache; None: $SYNCANIM_TAICHI_CACHE or ~/.cache/syncanim/taichi."""
    cpu_threads: int | None = None
    """Taichi CPU threads; None: every core this process may run on."""


@dataclass(frozen=True)
class NerfRenderSettings:
    """Resource: how `render_avatars` renders each avatar (read every frame)."""

    size: tuple[int, int] = (256, 256)
    """(width, height) in pixels of an avatar that has no AvatarViewport (with one, its viewport's size is used)."""
    per_round: int = 4
    """Occupied samples per ray per march round."""
    max_rounds: int = 6
    """March rounds per frame: at most per_round x max_rounds head-field evaluations per ray. Most rays are opaque
    within four rounds; the rest (through an eye socket, along the silhouette) show the upper body through a hole
    if cut off there."""
    t_thresh: float = 1e-2
    """A ray stops taking samples once its transmittance is below this (checked between rounds)."""
    precision: Precision = "auto"
    """Precision of the MLP matmuls: bfloat16 is about 1.5x faster on CPUs with AVX-512 BF16, within about one
    8-bit step of float32. 'auto': bfloat16 on such CPUs, float32 elsewhere and on CUDA."""
    head_scale: HeadScale = "auto"
    """Fraction of the output resolution the head is ray-marched at; its colour and opacity are upsampled
    bilinearly over the full-resolution upper body (1: exact). 'auto': 0.5 on a CPU above 128 x 128 pixels,
    1 otherwise (engine/nerf/render.py resolve_head_scale)."""
    breathing: float = 1.0
    """How far the shoulders rise at the top of a breath (MotionState.breath = 1), relative to how far a breath
    raised them in the avatar's training frames (AvatarSpec.breathing_rise): 1 as recorded, 0 turns it off."""
    torso_follow: float = 1.0
    """How far the torso turns after the head, relative to how the avatar's recorded torso followed its head
    (AvatarSpec.torso_follow; nothing where it did not): 1 as recorded, 0 turns it off."""
    background: bool = True
    """Composite each avatar over its training background plate (opaque); False leaves it transparent (alpha is
    the person's coverage) for the scene's compositor or a chroma key."""


def check_head_scale(value: object, where: str = "--head-scale ") -> None:
    """A ValueError naming `where` (the flag or argument), the value and the fix unless `value` is 'auto' or a
    fraction in (0, 1]."""
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise ValueError(f"{where}{value!r}: pass a fraction in (0, 1] of the output resolution (1: full quality) "
                         "or 'auto' (half resolution on a CPU above 128x128 pixels)")


def check_precision(value: object, where: str = "--precision ") -> None:
    """A ValueError naming `where`, the value and the fix unless `value` is 'auto', 'float32' or 'bfloat16'."""
    if value not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"{where}{value!r}: pass 'float32', 'bfloat16' (CPUs with AVX-512 BF16) or 'auto'")


@dataclass(frozen=True)
class QualitySettings:
    """How finely avatars are rendered: the two settings that trade quality for speed.

    As a component of an avatar it is the scene's choice for that avatar (`Scene.avatar(..., head_scale=1)`); as a
    resource it is the operator's (`syncanim run --head-scale 1`, `syncanim bench`), which wins over every avatar's.
    A field left None leaves the choice to the next: operator, then avatar, then NerfRenderSettings."""

    head_scale: HeadScale | None = None
    """Fraction in (0, 1] of the output resolution the head is ray-marched at (1: full quality, the exact path), or
    'auto' (the fast setting: 0.5 on a CPU above 128x128 pixels, 1 otherwise). Default: the scene's choice per
    avatar, else 'auto'."""
    precision: Precision | None = None
    """Precision of the MLP matmuls: 'float32', 'bfloat16' (about 1.5x faster on CPUs with AVX-512 BF16, within
    about one 8-bit step) or 'auto' (bfloat16 on such CPUs, float32 elsewhere and on CUDA). Default: the scene's
    choice per avatar, else 'auto'."""

    def __post_init__(self) -> None:
        if self.head_scale is not None:
            check_head_scale(self.head_scale)
        if self.precision is not None:
            check_precision(self.precision)


def chosen_quality(settings: NerfRenderSettings, avatar: QualitySettings | None,
                   operator: QualitySettings | None) -> tuple[HeadScale, Precision]:
    """(head_scale, precision) an avatar is rendered with: per field the operator's, else the avatar's own, else
    the engine's NerfRenderSettings."""
    def pick(name: str):
        for source in (operator, avatar):
            value = getattr(source, name, None) if source is not None else None
            if value is not None:
                return value
        return getattr(settings, name)

    return pick("head_scale"), pick("precision")


@dataclass
class RenderDevice:
    """Resource: the device the NeRF kernels run on ('cpu' or 'cuda'), set by `engine.nerf.plugin.start_taichi`."""

    name: str = "cpu"
