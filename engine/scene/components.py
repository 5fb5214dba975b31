"""Scene components and resources (data only): what scripts spawn and lay out, captions, the scene's events. The
components the renderer and the display share with scenes are in engine/components.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class SceneOwned:
    """Component: spawned by the current scene; despawned when the scene reloads."""


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
    follows_speech: bool = False
    """The text is what `speech` (streamed speech with text) is saying now, updated every frame."""


@dataclass
class Captions:
    """Resource: captions by slot ('main' is the one `say(..., caption=...)` uses), drawn by the compositor."""

    slots: dict[str, Caption] = field(default_factory=dict)


@dataclass
class SceneEvent:
    """Message: something a scene script did or saw, stamped with engine time (the choreography's timeline)."""

    time_s: float
    frame: int
    script: str
    kind: str
    """'start', 'say', 'said', 'wait', 'waited', 'mode', 'frame', 'framed', 'message', 'caption', 'end', 'error'."""
    detail: dict[str, Any] = field(default_factory=dict)
