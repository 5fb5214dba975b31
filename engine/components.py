"""Components and resources that several stages share (data only): the avatar and its renderer, its framing and
viewport, its picture, the scene's background and the frame waiting to be presented. They stand below every package
of the frame, so audio -> motion -> nerf -> scene -> display import them without importing one another."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

FRAMING_PRESETS: dict[str, float] = {"default": 0.0, "med": 0.5, "max": 1.0}
"""Upper-body proportion of each of the paper's framings (Table 2): 0 its default crop, 1 MaxScale. The
renderer maps the continuous value to its camera; values between presets are valid zooms."""


@dataclass
class Avatar:
    """Component: an avatar spawned from a trained avatar folder."""

    folder: Path
    """AVATAR_DIR written by `syncanim train` (motion.safetensors and the renderer's weights)."""
    name: str = "avatar"
    """What scripts and control messages call it (unique in a scene)."""


@dataclass
class ActiveRenderer:
    """Resource: inserted by the NeRF renderer's plugin; without it avatars cannot be spawned (nothing would draw
    them)."""

    name: str
    """Which renderer draws the AvatarImages (shown by `status`)."""


@dataclass
class Framing:
    """Component: how much of the upper body this avatar's camera shows (see FRAMING_PRESETS)."""

    zoom: float = 0.0
    """0 the paper's default framing, 0.5 MedScale, 1 MaxScale; anything in [0, 1] in between."""
    preset: str = "default"
    """The preset last asked for ('' after a free zoom)."""


@dataclass
class AvatarViewport:
    """Component: ScreenRect in canvas pixels for the current canvas size (what the renderer renders at)."""

    x: int = 0
    y: int = 0
    width: int = 0
    height: int = 0


@dataclass
class AvatarImage:
    """Component: the avatar's rendered picture this frame, written by the renderer, pasted by the compositor.

    `rgba` is [H, W, 4] uint8 (numpy, or a torch tensor on any device), straight alpha, row 0 at the top, the
    size of the avatar's AvatarViewport.
    """

    rgba: Any = None
    frame: int = -1


@dataclass
class Background:
    """Resource: what the compositor paints behind the avatars."""

    mode: Literal["color", "image", "chroma", "transparent"] = "color"
    color: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """RGB in [0, 1] for mode 'color' (and 'chroma', where it is the key colour)."""
    image: Path | None = None
    """Picture for mode 'image', scaled to cover the canvas (edges cropped)."""



@dataclass(frozen=True)
class Canvas:
    """Resource: the output canvas's size in pixels, published by the display every frame (what layouts divide)."""

    width: int
    height: int


@dataclass
class FrameImage:
    """Resource: the picture rendered this frame, waiting to be presented.

    `rgba` is a torch tensor or numpy array [H, W, 4], uint8 or float32 in [0, 1], straight
    (not premultiplied) alpha, row 0 at the top. It may live on the CPU or on a CUDA device; the
    present stage picks the upload path from where it lives.
    """

    rgba: Any = None
    frame: int = -1
    """Index of the frame it was rendered for (-1: nothing rendered yet)."""
