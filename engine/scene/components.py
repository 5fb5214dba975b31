"""Scene components and resources: avatars, framing, screen rectangles, captions and the background (data only)."""
from __future__ import annotations

from dataclasses import dataclass, field
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
class SceneOwned:
    """Component: spawned by the current scene; despawned when the scene reloads."""


@dataclass
class Framing:
    """Component: how much of the upper body this avatar's camera shows (see FRAMING_PRESETS)."""

    zoom: float = 0.0
    """0 the paper's default framing, 0.5 MedScale, 1 MaxScale; anything in [0, 1] in between."""
    preset: str = "default"
    """The preset last asked for ('' after a free zoom)."""


@dataclass
class FramingTween:
    """Component: an eased framing transition in progress (removed when it arrives)."""

    start_zoom: float
    end_zoom: float
    start_s: float
    """Engine time the transition began."""
    duration_s: float


@dataclass
class ScreenRect:
    """Component: where on the canvas this avatar is drawn, in normalised units (0..1, origin top-left)."""

    x: float = 0.0
    y: float = 0.0
    width: float = 1.0
    height: float = 1.0


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
class Caption:
    """Component: text drawn onto the composed frame (so it is in recordings and captures, unlike the overlay)."""

    text: str = ""
    anchor: Literal["bottom", "top"] = "bottom"
    """Which edge of the canvas the caption box sits on."""
    size: float = 0.06
    """Font height as a fraction of the canvas height (at least 10 pixels)."""
    color: tuple[int, int, int] = (255, 255, 255)
    box_alpha: float = 0.55
    """Opacity of the dark box behind the text (0: no box)."""
    until_s: float | None = None
    """Hide the caption from this engine time on (None: until changed)."""
    speech: Any = None
    """A PlaybackHandle: show the caption only while that speech is heard (from its start to its end)."""


@dataclass
class Captions:
    """Resource: captions by slot ('main' is the one `say(..., caption=...)` uses), drawn by the compositor."""

    slots: dict[str, Caption] = field(default_factory=dict)


@dataclass
class Background:
    """Resource: what the compositor paints behind the avatars."""

    mode: Literal["color", "image", "chroma", "transparent"] = "color"
    color: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """RGB in [0, 1] for mode 'color' (and 'chroma', where it is the key colour)."""
    image: Path | None = None
    """Picture for mode 'image', scaled to cover the canvas (edges cropped)."""


@dataclass
class SceneEvent:
    """Message: something a scene script did or saw, stamped with engine time (the choreography's timeline)."""

    time_s: float
    frame: int
    script: str
    kind: str
    """'start', 'say', 'said', 'wait', 'waited', 'mode', 'frame', 'framed', 'message', 'caption', 'end', 'error'."""
    detail: dict[str, Any] = field(default_factory=dict)
